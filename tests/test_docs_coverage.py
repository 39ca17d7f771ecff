"""Every ``bash`` and ``python`` block of README.md and docs/ is run by a test or marked, in the page's source, as not
runnable here with the reason (``<!-- not run: REASON -->`` on the line before its fence; tests/doc_pages.py): a new
block cannot go untested unnoticed. ``RUN_BY`` says which test runs which block; a block added, removed or moved
changes the blocks' indices and fails here until this table (or the mark) says what becomes of it."""

import re
from pathlib import Path

import pytest

from doc_pages import DOCS, page_blocks

TESTS = Path(__file__).resolve().parent

#: page -> {(language, index among the page's blocks of that language): "test file::test function"}
RUN_BY = {
    "README.md": {
        ("python", 0): "test_readme.py::test_quick_tour_runs_and_says_what_it_gets",
        ("bash", 2): "test_report.py::test_readme_report_command_draws_the_readme_image",
    },
    "checkpoints.md": {
        ("bash", 0): "test_docs_checkpoints.py::test_convert_and_predict_print_what_the_page_shows",
        ("bash", 1): "test_docs_checkpoints.py::test_cardio_learning_commands_and_pipeline",
        ("python", 0): "test_docs_checkpoints.py::test_cardio_learning_commands_and_pipeline",
    },
    "clinical-files.md": {
        ("bash", 0): "test_docs_clinical_files.py::test_predict_prints_the_table_shown",
        ("python", 0): "test_docs_clinical_files.py::test_python_example_prints_what_the_page_shows",
        ("bash", 1): "test_docs_clinical_files.py::test_measure_and_report_print_what_the_page_shows",
    },
    "embeddings.md": {
        ("bash", 1): "test_docs_embeddings.py::test_embed_probe_and_plot_print_what_the_page_shows",  # slow
        ("python", 0): "test_docs_embeddings.py::test_pipeline_example_gives_the_vectors_described",
    },
    "exported-models.md": {
        ("bash", 0): "test_docs_exported_models.py::test_the_page_runs_as_written",  # slow
        ("bash", 1): "test_docs_exported_models.py::test_the_page_runs_as_written",  # slow
        ("python", 0): "test_docs_exported_models.py::test_the_page_runs_as_written",  # slow
    },
    "fine-tuning.md": {
        ("bash", 1): "test_docs_fine_tuning.py::test_manifest_command_prints_what_the_page_shows",  # slow
        ("python", 0): "test_docs_fine_tuning.py::test_cardio_learning_config_example",
    },
    "lead-sets.md": {
        ("python", 0): "test_docs_lead_sets.py::test_fewer_leads_example_scores_every_record",
        ("bash", 0): "test_docs_lead_sets.py::test_evaluation_per_lead_set_prints_what_the_page_shows",  # slow
    },
    "measurements.md": {
        ("bash", 0): "test_docs_measurements.py::test_measure_prints_what_the_page_shows",
        ("python", 0): "test_docs_measurements.py::test_python_example_gives_the_values_shown",
    },
    "preprocessing.md": {
        ("python", 0): "test_docs_preprocessing.py::test_extractor_example_gives_the_inputs_described",
    },
    "visualisation.md": {
        ("bash", 0): "test_docs_visualisation.py::test_plot_commands",
        ("python", 0): "test_docs_visualisation.py::test_plot_python_example",
        ("bash", 1): "test_docs_visualisation.py::test_explain_commands",  # slow
        ("python", 1): "test_docs_visualisation.py::test_explain_python_example",  # slow
        ("python", 2): "test_docs_visualisation.py::test_gradio_client_example_gets_the_table_shown",  # slow
        ("bash", 3): "test_docs_visualisation.py::test_the_pictures_commands",
    },
}

#: pages whose blocks are not checked yet, with the reason
PENDING: dict[str, str] = {}

PAGES = ["README.md"] + sorted(path.name for path in DOCS.glob("*.md"))


@pytest.mark.parametrize("page", PAGES)
def test_every_block_is_run_or_marked(page):
    if page in PENDING:
        pytest.skip(f"{page}: {PENDING[page]}")
    run_by = RUN_BY.get(page, {})
    blocks = {(b.kind, b.index): b for b in page_blocks(page) if b.kind in ("bash", "python")}
    unaccounted = [f"{page}:{b.line} ({b.kind} block {b.index})" for key, b in blocks.items()
                   if key not in run_by and b.not_run is None]
    assert not unaccounted, "neither run by a test (RUN_BY) nor marked <!-- not run: REASON -->: " + ", ".join(
        unaccounted)
    for key, test in run_by.items():
        assert key in blocks, f"RUN_BY names {page} {key}, which the page does not have"
        assert blocks[key].not_run is None, f"{page}:{blocks[key].line} is marked not run but RUN_BY runs it"
        filename, function = test.split("::")
        assert re.search(rf"^def {function}\(", (TESTS / filename).read_text(encoding="utf-8"), re.M), test
    for block in blocks.values():
        assert block.not_run is None or len(block.not_run) > 10, f"{page}:{block.line}: say why it is not run"


def test_marks_sit_right_before_a_fence():
    """A ``not run`` mark anywhere else would mark nothing."""
    for page in PAGES:
        lines = (DOCS.parent / page if page == "README.md" else DOCS / page).read_text(encoding="utf-8").splitlines()
        for number, line in enumerate(lines[:-1], 1):
            if "<!-- not run" in line:
                assert lines[number].startswith("```"), f"{page}:{number}: the mark must be right before a fence"


def test_commands_are_in_bash_blocks():
    """A ``hubert-ecg`` command in an untagged block would escape the check above: commands go in ``bash`` blocks;
    untagged blocks hold outputs and synopses (``[--option]``, ``A|B``, ``FILES...``)."""
    for page in PAGES:
        for block in page_blocks(page):
            first = block.text.strip().splitlines()[0] if block.text.strip() else ""
            if block.kind == "" and first.startswith("hubert-ecg ") and len(first.split()) > 2:
                assert any(sign in first for sign in ("[", "|", "...")), (
                    f"{page}:{block.line}: a command in an untagged block; make it a bash block")
