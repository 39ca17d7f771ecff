"""docs/checkpoints.md runs as written: its commands on the release's reference checkpoint and a real record (the
output shown is this run's), and its Hub commands against a pre-seeded Hub cache holding a synthesized checkpoint
in the layout of the authors' Cardio-Learning classifiers (tests never touch the network)."""

import torch
from safetensors.torch import load_file, save_file

from doc_pages import fenced_blocks, run_commands
from test_checkpoint_formats import HEADS, _backbone, _seed_hub_cache, write_2026_classifier

PAGE = "checkpoints.md"
CARDIO_ID = "Edoardo-BS/HuBERT-ECG-SFT-CardioLearning-small"


def test_convert_and_predict_print_what_the_page_shows(docs_workdir, capsys):
    command, shown = fenced_blocks(PAGE, "bash")[0], fenced_blocks(PAGE, "")[0]
    assert run_commands(command, capsys).rstrip() == shown.rstrip()


def test_cardio_learning_commands_and_pipeline(docs_workdir, tmp_path, monkeypatch, capsys):
    import huggingface_hub.constants as hub_constants

    authors = tmp_path / "authors"
    write_2026_classifier(authors, _backbone(), HEADS["linear"], "multi_label", num_labels=164)
    state = load_file(authors / "model.safetensors")
    generator = torch.Generator().manual_seed(8)
    state.update({"classifier.weight": torch.randn(164, 32, generator=generator), "classifier.bias": torch.zeros(164)})
    save_file(state, str(authors / "model.safetensors"))
    _seed_hub_cache(tmp_path / "hub", CARDIO_ID, authors)
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True)

    from hubert_ecg.label_sets import load_label_set

    label_set = load_label_set("cardio-learning")
    table = run_commands(fenced_blocks(PAGE, "bash")[1], capsys)
    assert CARDIO_ID in table and "Edoardo-BS" in fenced_blocks(PAGE, "bash")[1]
    assert any(f"{code} " in table and label_set.descriptions[code] in table for code in label_set.labels)

    code = fenced_blocks(PAGE, "python")[0]
    namespace = {}
    exec(compile(code.replace("clf(", "result = clf("), "docs/checkpoints.md", "exec"), namespace)
    result = namespace["result"]
    assert len(result) == 5 and all(row["label"] in label_set.labels for row in result)
    assert all(row["description"] == label_set.descriptions[row["label"]] for row in result)
