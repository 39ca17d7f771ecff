"""The house rules of docs/development.md, checked on the source: data flows one way through the layers, no two
modules import each other (directly or round a longer cycle), nothing inside the package imports its root, the
package never imports the commands layer (``hubert_ecg_cli``), and the commands import the package only once their
arguments are parsed.

Every import counts, at module level or inside a function (a lazy import is still a dependency)."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "hubert_ecg"

# lowest first: a module may import its own layer and the layers below it, never one above
LAYERS = [
    ("foundations", {"leads", "configuration", "label_sets", "demo", "model_card", "sharding"}),
    ("io", {"io", "clinical_io"}),
    ("records", {"windows", "processing", "augmentations", "measurements"}),
    ("modeling", {"modeling", "inference", "onnx_backend"}),
    ("consumers", {"pipelines", "embeddings", "conversion", "export", "plotting", "explain", "report", "app",
                   "training"}),
    ("entry points", {"__main__"}),
]
CLI = PACKAGE.parent / "hubert_ecg_cli"


def _modules() -> dict[str, Path]:
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        modules[name] = path
    return modules


def _imports(name: str, path: Path, modules: dict) -> set[str]:
    """The package's modules that ``name`` imports ("" is the root)."""
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    if name == "":
        package = []
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                if not (node.module or "").startswith("hubert_ecg"):
                    continue
                module = node.module.removeprefix("hubert_ecg").lstrip(".")
            targets = [f"{module}.{alias.name}".lstrip(".") if f"{module}.{alias.name}".lstrip(".") in modules
                       else module for alias in node.names]
            found.update(targets)
            continue
        else:
            continue
        for target in targets:
            if target == "hubert_ecg" or target.startswith("hubert_ecg."):
                found.add(target.removeprefix("hubert_ecg").lstrip("."))
    return {t for t in found if t in modules and t != name}


def _graph():
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def _layer(name: str) -> int:
    top = name.split(".")[0]
    for index, (_, members) in enumerate(LAYERS):
        if top in members:
            return index
    raise AssertionError(f"hubert_ecg.{name} is in no layer of tests/test_import_rules.py: add it to LAYERS")


def test_nothing_inside_imports_the_package_root():
    # importing any submodule runs hubert_ecg/__init__.py first (Python imports the parents), so registering the
    # model type never needs it; importing it from inside makes the root and its modules import each other
    offenders = sorted(f"hubert_ecg.{name}" for name, targets in _graph().items() if name and "" in targets)
    assert offenders == []


def test_no_import_cycles():
    graph = {name: targets - {""} for name, targets in _graph().items() if name}
    index, low, stack, on_stack, cycles, counter = {}, {}, [], set(), [], [0]

    def visit(v):  # Tarjan's strongly connected components
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    assert cycles == []


def test_data_flows_one_way_through_the_layers():
    upward = []
    for name, targets in _graph().items():
        if not name:
            continue
        for target in targets - {""}:
            if _layer(target) <= _layer(name):
                continue
            upward.append(f"hubert_ecg.{name} ({LAYERS[_layer(name)][0]}) imports hubert_ecg.{target} "
                          f"({LAYERS[_layer(target)][0]})")
    assert sorted(upward) == []


def test_the_checker_sees_imports():
    """The rules above would pass on a graph with no edges: the graph must hold the imports it is known to have."""
    graph = _graph()
    assert "configuration" in graph["modeling"] and "io" in graph["windows"]
    assert "training.objectives" in graph["training.trainer"]  # a function-level import
    assert {"modeling", "pipelines"} <= graph[""]  # the root registers the model family


def _cli_imports(path: Path, module_level_only: bool) -> set[str]:
    """The top-level names of what ``path`` imports (``hubert_ecg``, ``torch``, ...), absolute imports only."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes = tree.body if module_level_only else list(ast.walk(tree))
    found = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level:
            found.add(node.module)
    return found


def test_the_package_never_imports_the_commands():
    offenders = []
    for name, path in _modules().items():
        if name == "__main__":  # `python -m hubert_ecg`: an entry point
            continue
        for target in _cli_imports(path, module_level_only=False):
            if target.split(".")[0] != "hubert_ecg_cli":
                continue
            offenders.append(f"hubert_ecg.{name} imports {target}")
    assert offenders == []


def test_the_commands_import_the_package_only_after_parsing():
    """A command module imports neither the package (its import registers the model: torch) nor torch at module
    level, so that ``--help`` and usage errors are answered without them (tests/test_cli.py runs them)."""
    heavy = {"hubert_ecg", "torch", "numpy", "accelerate", "datasets"}
    offenders = sorted(f"{path.name}: {target}" for path in CLI.glob("*.py")
                       for target in _cli_imports(path, module_level_only=True) if target.split(".")[0] in heavy)
    assert offenders == []
    assert "hubert_ecg.pipelines" in _cli_imports(CLI / "predict.py", module_level_only=False)  # the checker sees
