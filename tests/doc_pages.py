"""Running the docs' pages as written: their fenced blocks, and their ``hubert-ecg`` command lines through the CLI
(the tests of the pages in docs/ and of README.md; the ``docs_workdir`` fixture of conftest.py puts the working
directory beside a ``shared`` link so the pages' ``../shared/...`` paths resolve).

A block that cannot run in the tests says so in the page's source, on the line right before its fence::

    <!-- not run: needs a GPU -->
    ```bash
    ...

(an HTML comment: the rendered page does not show it). ``tests/test_docs_coverage.py`` fails when a ``bash`` or
``python`` block is neither run by a test (its table ``RUN_BY``) nor marked that way."""

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

from hubert_ecg_cli import main as cli_main

REPO_ROOT = Path(__file__).resolve().parents[1]
DOCS = REPO_ROOT / "docs"
NOT_RUN = re.compile(r"^<!--\s*not run:\s*(.*?)\s*-->\s*$")


@dataclass
class Block:
    """A fenced block of a page: its language (``""`` untagged), its index among the page's blocks of that
    language, its first line number (the opening fence), its text, and the reason of a ``not run`` mark before it
    (None: not marked)."""

    kind: str
    index: int
    line: int
    text: str
    not_run: str | None


def page_path(page: str) -> Path:
    """``README.md`` is the repository's; any other page is ``docs/<page>``."""
    return REPO_ROOT / page if page == "README.md" else DOCS / page


def page_blocks(page: str) -> list[Block]:
    """Every fenced block of a page, in order."""
    blocks, counts, language, lines, start, mark, previous = [], {}, None, [], 0, None, ""
    for number, line in enumerate(page_path(page).read_text(encoding="utf-8").splitlines(), 1):
        if line.startswith("```"):
            if language is None:
                language, lines, start = line[3:].strip(), [], number
                found = NOT_RUN.match(previous.strip())
                mark = found.group(1) if found else None
            else:
                index = counts.get(language, 0)
                counts[language] = index + 1
                blocks.append(Block(language, index, start, "\n".join(lines) + "\n", mark))
                language = None
        elif language is not None:
            lines.append(line)
        previous = line
    return blocks


def fenced_blocks(page: str, kind: str) -> list[str]:
    """The fenced blocks of language ``kind`` ("" for the untagged output blocks) of the page, in order."""
    return [block.text for block in page_blocks(page) if block.kind == kind]


def run_commands(block: str, capsys) -> str:
    """Run each line of a ``bash`` block (every one a ``hubert-ecg`` command; ``#`` comments and ``\\``
    continuations as in bash) in this process; assert that each exits 0; return what they printed on stdout, in
    order."""
    out = []
    for line in block.replace("\\\n", " ").strip().splitlines():
        argv = shlex.split(line, comments=True)
        if not argv:
            continue
        assert argv[0] == "hubert-ecg", line
        assert cli_main(argv[1:]) == 0, line
        out.append(capsys.readouterr().out)
    return "".join(out)


def shown_literal(comment: str):
    """The Python literal a code line's comment starts with (``# {"value": 390.2, "unit": "ms"}; None where ...``
    gives the dict), or None when it starts with none."""
    import ast

    text = comment.lstrip("# ").rstrip()
    if not text or text[0] not in "{[('\"-0123456789":
        return None
    for end in range(len(text), 0, -1):
        try:
            return ast.literal_eval(text[:end])
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            continue
    return None


def check_shown_values(code: str, namespace: dict) -> int:
    """After ``exec(code, namespace)``: each expression line of ``code`` whose comment starts with a literal equals
    it (evaluated again in ``namespace``); return how many were checked."""
    checked = 0
    for line in code.splitlines():
        if "#" not in line or line.lstrip().startswith("#"):
            continue
        expression, comment = line.split("#", 1)
        value = shown_literal(comment)
        if value is None or "=" in expression.replace("==", "") or not expression.strip():
            continue
        actual = eval(expression, namespace)
        if isinstance(value, list) and value and value[-1] is Ellipsis:  # [first, second, ...]: the first items
            value, actual = value[:-1], list(actual)[:len(value) - 1]
        assert actual == value, line
        checked += 1
    return checked
