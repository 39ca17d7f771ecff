"""docs/measurements.md runs as written: its command on two real PTB-XL records prints the table shown (this run's)."""

import shlex
from pathlib import Path

import pytest

pytest.importorskip("neurokit2")

from hubert_ecg_cli import main as cli_main  # noqa: E402

DOC = Path(__file__).resolve().parents[1] / "docs" / "measurements.md"


def _blocks(kind: str) -> list[str]:
    """The page's fenced blocks of language ``kind`` ("" for the untagged output blocks), in order."""
    blocks, language, lines = [], None, []
    for line in DOC.read_text(encoding="utf-8").splitlines():
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


def test_measure_prints_what_the_page_shows(tmp_path, data_dir, monkeypatch, capsys):
    (tmp_path / "shared").symlink_to(data_dir.parent, target_is_directory=True)
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")  # so the page's ../shared/... paths resolve
    (command,) = _blocks("bash")
    out = []
    for line in command.strip().splitlines():
        argv = shlex.split(line)
        assert argv[0] == "hubert-ecg", line
        assert cli_main(argv[1:]) == 0, line
        out.append(capsys.readouterr().out)
    assert "".join(out).rstrip() == _blocks("")[0].rstrip()
