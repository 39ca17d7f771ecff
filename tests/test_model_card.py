"""Model cards (hubert_ecg.model_card) and the upload of a saved model against a mocked Hub: nothing leaves the
machine."""

from unittest import mock

from huggingface_hub import EvalResult, HfApi, ModelCard
from safetensors import safe_open

from hubert_ecg import HuBERTECGConfig, HuBERTECGForSequenceClassification
from hubert_ecg.model_card import card_license, create_model_card


def test_card_metadata_and_eval_results(reference_dir, tmp_path):
    model = HuBERTECGForSequenceClassification.from_pretrained(
        reference_dir / "hub_layout", id2label={0: "NORM", 1: "MI"}, label2id={"NORM": 0, "MI": 1}
    )
    result = EvalResult(task_type="ecg-classification", dataset_type="ptb-xl", dataset_name="PTB-XL",
                        dataset_split="validation", metric_type="macro_auroc", metric_name="macro auroc",
                        metric_value=0.871)
    card = create_model_card(model, license="cc-by-nc-4.0", title="ptbxl classifier",
                             base_model="Edoardo-BS/hubert-ecg-small", datasets=["PTB-XL"], eval_results=[result],
                             command="hubert-ecg finetune examples/finetune_ptbxl.yaml")
    card.save(tmp_path / "README.md")
    loaded = ModelCard.load(tmp_path / "README.md")
    assert loaded.data.license == "cc-by-nc-4.0" and loaded.data.base_model == "Edoardo-BS/hubert-ecg-small"
    assert loaded.data.datasets == ["PTB-XL"] and loaded.data.metrics == ["macro_auroc"]
    assert "hubert-ecg" in loaded.data.tags and "ecg" in loaded.data.tags
    (parsed,) = loaded.data.eval_results
    assert (parsed.metric_type, parsed.metric_value, parsed.dataset_split) == ("macro_auroc", 0.871, "validation")
    text = (tmp_path / "README.md").read_text()
    assert "| validation | macro auroc | 0.8710 |" in text
    assert "hubert-ecg finetune examples/finetune_ptbxl.yaml" in text and "NORM, MI" in text


def test_card_license_rule(tmp_path):
    assert card_license(None) == "apache-2.0"  # random initialisation: the package's licence by default
    assert card_license(None, "mit") == "mit"
    assert card_license("Edoardo-BS/hubert-ecg-small") == "cc-by-nc-4.0"  # released weights
    assert card_license(tmp_path / "original.pt") == "cc-by-nc-4.0"
    (tmp_path / "README.md").write_text("---\nlicense: cc-by-4.0\n---\nmy model\n")
    assert card_license(tmp_path) == "cc-by-4.0"  # a local checkpoint's own card
    assert card_license(tmp_path, "apache-2.0") == "apache-2.0"  # the author's own weights
    # weights derived from the released ones stay CC BY-NC 4.0 whatever the author asks for
    assert card_license("Edoardo-BS/hubert-ecg-small", "apache-2.0") == "cc-by-nc-4.0"
    (tmp_path / "README.md").write_text("---\nlicense: cc-by-nc-4.0\n---\nfine-tuned from the release\n")
    assert card_license(tmp_path, "mit") == "cc-by-nc-4.0"


def test_push_to_hub_uploads_safetensors_config_and_code(reference_dir, tmp_path):
    """transformers' own push: a commit with safetensors weights, config and the two code files."""
    model = HuBERTECGForSequenceClassification(HuBERTECGConfig(
        hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64, conv_dim=(32,) * 5,
        num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4, num_labels=2))
    uploaded = {}

    def fake_create_commit(self, repo_id, operations, **kwargs):
        for op in operations:
            content = op.path_or_fileobj
            uploaded[op.path_in_repo] = content if isinstance(content, bytes) else open(content, "rb").read()
        return mock.Mock(oid="abc", commit_url="https://hub/commit/abc", pr_url=None)

    created = mock.Mock(return_value=mock.Mock(repo_id="me/hubert-ecg-ptbxl"))
    with mock.patch.object(HfApi, "create_repo", created), \
            mock.patch.object(HfApi, "create_commit", fake_create_commit), \
            mock.patch.object(HfApi, "list_repo_files", mock.Mock(return_value=[])), \
            mock.patch.object(HfApi, "repo_exists", mock.Mock(return_value=False)):
        model.push_to_hub("me/hubert-ecg-ptbxl", token="hf_fake")
    assert {"model.safetensors", "config.json", "configuration.py", "modeling.py"} <= set(uploaded)
    assert not any(name.endswith(".bin") for name in uploaded)
    (tmp_path / "model.safetensors").write_bytes(uploaded["model.safetensors"])
    with safe_open(tmp_path / "model.safetensors", "pt") as handle:
        assert "classifier.weight" in set(handle.keys())
