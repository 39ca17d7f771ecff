"""docs/clinical-files.md runs as written: its `hubert-ecg predict` command on the clinical fixtures (the table shown
is this run's, with the bundled demo model) and its Python example (the output shown is this run's)."""

import contextlib
import io
import shlex
from pathlib import Path

import pytest

pytest.importorskip("ecgdatakit")

import hubert_ecg  # noqa: E402
from hubert_ecg_cli import main as cli_main  # noqa: E402

DOC = Path(__file__).resolve().parents[1] / "docs" / "clinical-files.md"


def _blocks(kind: str) -> list[str]:
    """The page's fenced blocks of language ``kind`` ("" for the untagged ones), in order."""
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


@pytest.fixture
def workdir(tmp_path, data_dir, monkeypatch):
    """A folder beside a ``shared`` link, so the documented ``../shared/...`` paths resolve."""
    (tmp_path / "shared").symlink_to(data_dir.parent, target_is_directory=True)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return work


def test_predict_prints_the_table_shown(workdir, capsys):
    try:
        hubert_ecg.demo_model_path()
    except ValueError:
        pytest.skip("demo model not trained yet")
    command, shown = _blocks("bash")[0], _blocks("")
    argv = shlex.split(command.strip())
    assert argv[0] == "hubert-ecg" and cli_main(argv[1:]) == 0
    assert capsys.readouterr().out.rstrip() == shown[1].rstrip()  # shown[0] is the install line
    assert shown[0].strip() == 'pip install "hubert-ecg[clinical]"'


def test_python_example_prints_what_the_page_shows(workdir):
    (code,) = _blocks("python")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, str(DOC), "exec"), {})
    assert out.getvalue().rstrip() == _blocks("")[2].rstrip()


def test_measure_and_report_print_what_the_page_shows(workdir, capsys):
    pytest.importorskip("neurokit2")
    printed = []
    for line in _blocks("bash")[1].strip().splitlines():
        argv = shlex.split(line)
        assert argv[0] == "hubert-ecg" and cli_main(argv[1:]) == 0, line
        printed.append(capsys.readouterr().out)
    assert "".join(printed).rstrip() == _blocks("")[3].rstrip()
    assert (workdir / "report.pdf").read_bytes().startswith(b"%PDF")
