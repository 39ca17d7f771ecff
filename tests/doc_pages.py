"""Running the docs' pages as written: their fenced blocks, and their ``hubert-ecg`` command lines through the CLI
(the tests of docs/checkpoints.md, docs/clinical-files.md and docs/measurements.md; the ``docs_workdir`` fixture of
conftest.py puts the working directory beside a ``shared`` link so the pages' ``../shared/...`` paths resolve)."""

import shlex
from pathlib import Path

from hubert_ecg_cli import main as cli_main

DOCS = Path(__file__).resolve().parents[1] / "docs"


def fenced_blocks(page: str, kind: str) -> list[str]:
    """The fenced blocks of language ``kind`` ("" for the untagged output blocks) of ``docs/<page>``, in order."""
    blocks, language, lines = [], None, []
    for line in (DOCS / page).read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            if language is None:
                language, lines = line[3:].strip(), []
            else:
                if language == kind:
                    blocks.append("\n".join(lines) + "\n")
                language = None
        elif language is not None:
            lines.append(line)
    return blocks


def run_commands(block: str, capsys) -> str:
    """Run each line of a ``bash`` block (every one a ``hubert-ecg`` command) in this process; assert that each exits
    0; return what they printed on stdout, in order."""
    out = []
    for line in block.strip().splitlines():
        argv = shlex.split(line)
        assert argv[0] == "hubert-ecg", line
        assert cli_main(argv[1:]) == 0, line
        out.append(capsys.readouterr().out)
    return "".join(out)
