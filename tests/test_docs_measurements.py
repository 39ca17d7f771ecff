"""docs/measurements.md runs as written: its command on two real PTB-XL records prints the table shown (this run's)."""

import pytest

pytest.importorskip("neurokit2")

from doc_pages import fenced_blocks, run_commands  # noqa: E402

PAGE = "measurements.md"


def test_measure_prints_what_the_page_shows(docs_workdir, capsys):
    (command,) = fenced_blocks(PAGE, "bash")
    assert run_commands(command, capsys).rstrip() == fenced_blocks(PAGE, "")[0].rstrip()
