"""docs/checkpoints.md runs as written: its commands on the release's reference checkpoint and a real record (the
output shown is this run's), and its Hub commands against a pre-seeded Hub cache holding a synthesized checkpoint
in the layout of the authors' Cardio-Learning classifiers (tests never touch the network)."""

import shlex
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from hubert_ecg_cli import main as cli_main

from test_checkpoint_formats import HEADS, _backbone, _seed_hub_cache, write_2026_classifier

DOC = Path(__file__).resolve().parents[1] / "docs" / "checkpoints.md"
CARDIO_ID = "Edoardo-BS/HuBERT-ECG-SFT-CardioLearning-small"


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


@pytest.fixture
def workdir(tmp_path, data_dir, monkeypatch):
    """A folder beside a ``shared`` link, so the documented ``../shared/...`` paths resolve."""
    (tmp_path / "shared").symlink_to(data_dir.parent, target_is_directory=True)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return work


def _run(block: str, capsys) -> str:
    out = []
    for line in block.strip().splitlines():
        argv = shlex.split(line)
        assert argv[0] == "hubert-ecg", line
        assert cli_main(argv[1:]) == 0, line
        out.append(capsys.readouterr().out)
    return "".join(out)


def test_convert_and_predict_print_what_the_page_shows(workdir, capsys):
    command, shown = _blocks("bash")[0], _blocks("")[0]
    assert _run(command, capsys).rstrip() == shown.rstrip()


def test_cardio_learning_commands_and_pipeline(workdir, tmp_path, monkeypatch, capsys):
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
    table = _run(_blocks("bash")[1], capsys)
    assert CARDIO_ID in table and "Edoardo-BS" in _blocks("bash")[1]
    assert any(f"{code} " in table and label_set.descriptions[code] in table for code in label_set.labels)

    code = _blocks("python")[0]
    namespace = {}
    exec(compile(code.replace("clf(", "result = clf("), "docs/checkpoints.md", "exec"), namespace)
    result = namespace["result"]
    assert len(result) == 5 and all(row["label"] in label_set.labels for row in result)
    assert all(row["description"] == label_set.descriptions[row["label"]] for row in result)
