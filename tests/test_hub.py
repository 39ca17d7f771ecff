"""push_to_hub against a mocked Hub: nothing leaves the machine."""

from unittest import mock

import yaml
from huggingface_hub import HfApi
from safetensors import safe_open

from hubert_ecg import HuBERTECGForSequenceClassification


def test_push_to_hub_uploads_safetensors_config_and_card(reference_dir, tmp_path):
    model = HuBERTECGForSequenceClassification.from_pretrained(
        reference_dir / "hub_layout", id2label={0: "NORM", 1: "MI"}, label2id={"NORM": 0, "MI": 1}
    )
    model.card_data.update(
        base_model="Edoardo-BS/hubert-ecg-small",
        datasets=["PTB-XL"],
        metrics={"macro_auroc": 0.871},
        command="hubert-ecg finetune examples/finetune_ptbxl.yaml",
    )
    uploaded = {}

    def fake_upload_folder(self, *, repo_id, folder_path, **kwargs):
        for path in sorted(__import__("pathlib").Path(folder_path).iterdir()):
            uploaded[path.name] = path.read_bytes()
        return "commit-info"

    created = mock.Mock(return_value=mock.Mock(repo_id="me/hubert-ecg-ptbxl"))
    with mock.patch.object(HfApi, "create_repo", created), mock.patch.object(HfApi, "upload_folder", fake_upload_folder):
        assert model.push_to_hub("me/hubert-ecg-ptbxl", token="hf_fake") == "commit-info"

    created.assert_called_once()
    assert {"model.safetensors", "config.json", "README.md"} <= set(uploaded)
    assert not any(name.endswith(".bin") for name in uploaded)
    (tmp_path / "model.safetensors").write_bytes(uploaded["model.safetensors"])
    with safe_open(tmp_path / "model.safetensors", "pt") as handle:
        assert "classifier.weight" in set(handle.keys())

    card = uploaded["README.md"].decode()
    header = yaml.safe_load(card.split("---")[1])
    assert header["license"] == "cc-by-nc-4.0"
    assert header["base_model"] == "Edoardo-BS/hubert-ecg-small"
    assert header["datasets"] == ["PTB-XL"]
    assert "hubert-ecg" in header["tags"] and "ecg" in header["tags"]
    assert header["metrics"] == ["macro_auroc"]
    assert "| macro_auroc | 0.8710 |" in card
    assert "hubert-ecg finetune examples/finetune_ptbxl.yaml" in card
    assert "NORM, MI" in card


def test_save_pretrained_keeps_a_users_own_readme(reference_dir, tmp_path):
    (tmp_path / "README.md").write_text("my notes")
    HuBERTECGForSequenceClassification.from_pretrained(reference_dir / "hub_layout").save_pretrained(tmp_path)
    assert (tmp_path / "README.md").read_text() == "my notes"
