"""The ``hubert-ecg`` console command: a router that starts in a fraction of a second.

``hubert-ecg COMMAND [ARGS...]``; ``hubert-ecg COMMAND --help`` lists a command's arguments.

This module lives beside the ``hubert_ecg`` package, not inside it, on purpose: importing ``hubert_ecg`` registers the
model family with transformers' Auto classes and the ``ecg-classification`` pipeline, which imports torch and
transformers' modelling and pipeline code (about 5 s on a 2-core machine). Listing the commands and printing a
command's ``--help`` need none of that: the help texts are stored in ``hubert_ecg/cli_help.json``, written from the
commands' own parsers by ``python -m hubert_ecg_cli --write-help`` (``tests/test_cli.py`` checks that they are up to
date). Running a command imports its module, and only then the package.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import sys
from pathlib import Path
from typing import NamedTuple


class Command(NamedTuple):
    """One ``hubert-ecg`` command: where its code lives, its one-line help and the extra it needs."""

    module: str  # imported only when the command runs
    function: str  # takes argv (list[str]) and returns an exit code
    help: str  # one line for `hubert-ecg --help`
    extra: str | None  # the optional dependencies it needs: "train", "onnx", "plot", ..., or None for the core install


# The modules that each extra provides (import names); a command whose extra is missing stops with one line.
EXTRAS = {
    "train": ("accelerate", "datasets", "sklearn", "pandas", "librosa", "matplotlib", "yaml", "pyarrow"),
    "onnx": ("onnx", "onnxruntime"),
    "plot": ("matplotlib",),
    "app": ("gradio", "matplotlib"),
    "umap": ("umap",),
    "clinical": ("neurokit2",),  # measure (the clinical readers are checked by read_ecg itself)
}

COMMANDS = {
    "predict": Command("hubert_ecg.pipelines", "predict_main",
                       "score ECG files with a classifier (default: the demo model)", None),
    "finetune": Command("hubert_ecg.training.finetune", "main", "fine-tune a classifier with the Trainer", "train"),
    "evaluate": Command("hubert_ecg.training.evaluate", "main",
                        "AUROC, AUPRC, F1 with bootstrap CIs on a labelled set", "train"),
    "calibrate": Command("hubert_ecg.training.calibration", "main",
                         "fit score calibration and per-label thresholds on a validation split", "train"),
    "windows": Command("hubert_ecg.commands.windows", "main",
                       "preprocess records into 5 s window shards (Arrow, or Parquet to stream)", "train"),
    "cluster": Command("hubert_ecg.training.clustering", "main",
                       "k-means pretraining targets for a HuBERT iteration", "train"),
    "pretrain": Command("hubert_ecg.training.pretrain", "main",
                        "pretraining on the Trainer: HuBERT, CMSC, SimCLR (accelerate)", "train"),
    "embed": Command("hubert_ecg.training.probe", "embed_main",
                     "per-record embedding vectors of ECG files -> Parquet", "train"),
    "probe": Command("hubert_ecg.training.probe", "probe_main",
                     "linear probe of embeddings: AUROC, AUPRC with bootstrap CIs", "train"),
    "plot-embeddings": Command("hubert_ecg.training.probe", "plot_main",
                               "2-D view of embeddings (PCA, or UMAP with [umap])", "train"),
    "convert": Command("hubert_ecg.conversion", "convert_main",
                       "original .pt / hub checkpoint -> save_pretrained directory", None),
    "export-onnx": Command("hubert_ecg.export", "export_onnx_main", "export a classifier to ONNX (dynamic batch)",
                           "onnx"),
    "measure": Command("hubert_ecg.commands.measure", "main",
                       "heart rate, PR, QRS, QT, QTc and axes of ECG files, beside the device's", "clinical"),
    "tune": Command("hubert_ecg.commands.tune", "main",
                    "measure the fastest inference settings for a model on this machine (cached)", None),
    "plot": Command("hubert_ecg.plotting", "plot_main", "draw a record in the 12-lead layout (PNG, SVG, PDF)", "plot"),
    "explain": Command("hubert_ecg.explain", "explain_main",
                       "attributions for a label, drawn on the 12-lead plot (default: the demo model)", "plot"),
    "report": Command("hubert_ecg.report", "report_main",
                      "one page for a clinician: 12-lead plot, predictions, measurements (PDF, PNG, HTML, JSON)",
                      "plot"),
    "app": Command("hubert_ecg.app", "app_main", "local web app: upload ECGs, see the plot, scores, attributions",
                   "app"),
}

HELP_FILE = "cli_help.json"
HELP_COLUMNS = "100"  # the width the stored help texts are formatted for


def _usage() -> str:
    lines = [f"  {name:<15} {command.help}" for name, command in COMMANDS.items()]
    return (
        "usage: hubert-ecg COMMAND [ARGS...]\n\ncommands:\n" + "\n".join(lines)
        + "\n\n`hubert-ecg COMMAND --help` lists a command's arguments."
    )


def _help_path() -> Path:
    """``hubert_ecg/cli_help.json``, found without importing (and so registering) the package."""
    spec = importlib.util.find_spec("hubert_ecg")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("the hubert_ecg package is not installed")
    return Path(list(spec.submodule_search_locations)[0]) / HELP_FILE


def missing_modules(extra: str | None) -> list[str]:
    """The import names of ``extra`` (see :data:`EXTRAS`) that are not installed; empty for the core install."""
    return [name for name in EXTRAS.get(extra, ()) if not _installed(name)]


def _installed(name: str) -> bool:
    if name in sys.modules:
        return sys.modules[name] is not None  # None: import blocked, it raises ImportError
    return importlib.util.find_spec(name) is not None


def generate_help_texts() -> dict[str, str]:
    """Every command's ``--help`` output, from its own parser (imports every command module)."""
    import contextlib
    import io

    os.environ["COLUMNS"] = HELP_COLUMNS
    texts = {}
    for name, command in COMMANDS.items():
        buffer = io.StringIO()
        function = getattr(importlib.import_module(command.module), command.function)
        with contextlib.redirect_stdout(buffer):
            try:
                function(["--help"])
            except SystemExit as exit_:
                if exit_.code not in (0, None):
                    raise RuntimeError(f"`hubert-ecg {name} --help` exited with {exit_.code}") from None
        texts[name] = buffer.getvalue()
    return texts


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``hubert-ecg`` command; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--write-help"]:
        _help_path().write_text(json.dumps(generate_help_texts(), indent=1, sort_keys=True) + "\n", encoding="utf-8")
        print(f"wrote {_help_path()}")
        return 0
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0
    name, args = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"hubert-ecg: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    command = COMMANDS[name]
    if "-h" in args or "--help" in args:
        texts = json.loads(_help_path().read_text(encoding="utf-8"))
        sys.stdout.write(texts[name])
        return 0
    missing = missing_modules(command.extra)
    if missing:
        print(
            f"hubert-ecg {name}: needs the optional [{command.extra}] dependencies (missing: {', '.join(missing)}); "
            f"install them with: pip install \"hubert-ecg[{command.extra}]\"",
            file=sys.stderr,
        )
        return 2
    function = getattr(importlib.import_module(command.module), command.function)
    return int(function(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
