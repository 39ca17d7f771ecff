"""docs/lead-sets.md runs as written from the clone root: its pipeline example scores the MIT-BIH record (2 leads), a
single lead and a 12-lead record on leads I and II with the bundled demo model; its evaluation per lead set prints
the table shown (about 2 min: marked slow)."""

import json
import re

import pytest

from doc_pages import fenced_blocks, run_commands

PAGE = "lead-sets.md"


def test_fewer_leads_example_scores_every_record(docs_workdir):
    (code,) = fenced_blocks(PAGE, "python")
    calls = re.findall(r"^clf\(.*?\)(?=\s*#|$)", code, re.M)
    assert len(calls) == 3
    # each scoring line's result kept (the page shows them as expressions)
    code = re.sub(r"^(clf\(.*?\))(?=\s*#|$)", r"_results.append(\1)", code, flags=re.M)
    namespace = {"_results": []}
    exec(compile(code, "docs/lead-sets.md", "exec"), namespace)
    labels = set(namespace["clf"].model.config.id2label.values())
    for result in namespace["_results"]:
        assert {row["label"] for row in result} == labels and all(0 <= row["score"] <= 1 for row in result)


@pytest.mark.slow
def test_evaluation_per_lead_set_prints_what_the_page_shows(docs_workdir, capsys):
    (command,) = fenced_blocks(PAGE, "bash")
    assert run_commands(command, capsys).rstrip() == fenced_blocks(PAGE, "")[0].rstrip()
    metrics = json.loads((docs_workdir / "out" / "metrics.json").read_text())
    assert list(metrics["lead_sets"]) == ["12", "6", "4", "3", "2", "1"]  # as the page describes the outputs
    assert (docs_workdir / "out" / "lead_sets.csv").is_file() and (docs_workdir / "out" / "lead_sets.png").is_file()
