"""docs/clinical-files.md runs as written: its `hubert-ecg predict` command on the clinical fixtures (the table shown
is this run's, with the bundled demo model) and its Python example (the output shown is this run's)."""

import contextlib
import io

import pytest

pytest.importorskip("ecgdatakit")

import hubert_ecg  # noqa: E402
from doc_pages import fenced_blocks, run_commands  # noqa: E402

PAGE = "clinical-files.md"


def test_predict_prints_the_table_shown(docs_workdir, capsys):
    try:
        hubert_ecg.demo_model_path()
    except ValueError:
        pytest.skip("demo model not trained yet")
    command, shown = fenced_blocks(PAGE, "bash")[0], fenced_blocks(PAGE, "")
    assert run_commands(command, capsys).rstrip() == shown[1].rstrip()  # shown[0] is the install line
    assert shown[0].strip() == 'pip install "hubert-ecg[clinical]"'


def test_python_example_prints_what_the_page_shows(docs_workdir):
    (code,) = fenced_blocks(PAGE, "python")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "docs/clinical-files.md", "exec"), {})
    assert out.getvalue().rstrip() == fenced_blocks(PAGE, "")[2].rstrip()


def test_measure_and_report_print_what_the_page_shows(docs_workdir, capsys):
    pytest.importorskip("neurokit2")
    printed = run_commands(fenced_blocks(PAGE, "bash")[1], capsys)
    assert printed.rstrip() == fenced_blocks(PAGE, "")[3].rstrip()
    assert (docs_workdir / "report.pdf").read_bytes().startswith(b"%PDF")
