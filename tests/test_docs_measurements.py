"""docs/measurements.md runs as written: its command on two real PTB-XL records prints the table shown (this run's), and
its Python example gives the values its comments show."""

import pytest

pytest.importorskip("neurokit2")

from doc_pages import check_shown_values, fenced_blocks, run_commands  # noqa: E402

PAGE = "measurements.md"


def test_measure_prints_what_the_page_shows(docs_workdir, capsys):
    (command,) = fenced_blocks(PAGE, "bash")
    assert run_commands(command, capsys).rstrip() == fenced_blocks(PAGE, "")[0].rstrip()


def test_python_example_gives_the_values_shown(docs_workdir):
    pytest.importorskip("ecgdatakit")
    (code,) = fenced_blocks(PAGE, "python")
    namespace = {}
    exec(compile(code, "docs/measurements.md", "exec"), namespace)
    assert check_shown_values(code, namespace) == 2
    assert "difference" not in namespace["result"]  # as the page says: a PTB-XL record carries no device values
