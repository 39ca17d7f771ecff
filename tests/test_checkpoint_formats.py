"""The authors' current formats: their 2026 package's classifiers (``model_type: "hubert_ecg_classification"``) with
every head and task type, and the legacy ``.pt`` classifiers with MLP and label-embedding heads.

The checkpoints are built here from transformers' own ``HubertModel`` (the modules the released weights are), in the
authors' key layouts; the expected logits are computed independently: the mean of ``HubertModel``'s last hidden
state over the valid frames, then the head written out in torch.
"""

import json

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from transformers import AutoConfig, AutoModel, AutoModelForSequenceClassification, HubertConfig, HubertModel

from hubert_ecg import HuBERTECGConfig, HuBERTECGForSequenceClassification, HuBERTECGModel

NUM_LABELS = 4
HUBERT_FIELDS = dict(
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=4,
    intermediate_size=37,
    conv_dim=(16, 16, 16, 16, 16),
    conv_kernel=(10, 3, 3, 2, 2),
    conv_stride=(4, 2, 2, 2, 2),
    conv_bias=False,
    feat_extract_norm="group",
    num_conv_pos_embeddings=16,
    num_conv_pos_embedding_groups=4,
    do_stable_layer_norm=False,
    feat_proj_layer_norm=True,
    layer_norm_eps=1e-5,
    mask_time_prob=0.33,
    classifier_proj_size=8,
)
ACTIVATIONS = {"tanh": torch.tanh, "relu": torch.relu, "gelu": torch.nn.functional.gelu, "sigmoid": torch.sigmoid}
HEADS = {
    "linear": dict(classifier_hidden_size=None, use_label_embedding=False),
    "mlp": dict(classifier_hidden_size=12, use_label_embedding=False, activation="gelu"),
    "label_embedding": dict(classifier_hidden_size=None, use_label_embedding=True),
}
TASK_TYPES = {
    "multi_label": "multi_label_classification",
    "multi_class": "single_label_classification",
    "regression": "regression",
}


def _backbone(seed: int = 0) -> HubertModel:
    torch.manual_seed(seed)
    model = HubertModel(HubertConfig(**HUBERT_FIELDS)).eval()
    with torch.no_grad():  # weights away from the initialisation (group norm 1/0, biases 0) so that every one counts
        for parameter in model.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    return model


def _head_weights(head: dict, seed: int = 1) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    rand = lambda *shape: 0.3 * torch.randn(*shape, generator=generator)  # noqa: E731
    hidden = HUBERT_FIELDS["hidden_size"]
    if head["use_label_embedding"]:
        return {"label_embedding.weight": rand(NUM_LABELS, hidden)}
    if head["classifier_hidden_size"] is None:
        return {"classifier.weight": rand(NUM_LABELS, hidden), "classifier.bias": rand(NUM_LABELS)}
    size = head["classifier_hidden_size"]
    return {
        "classifier.0.weight": rand(size, hidden),
        "classifier.0.bias": rand(size),
        "classifier.2.weight": rand(NUM_LABELS, size),
        "classifier.2.bias": rand(NUM_LABELS),
    }


def _expected_logits(backbone, head: dict, weights: dict, input_values, attention_mask=None) -> np.ndarray:
    """The authors' forward written out: mean over the valid frames, then the head."""
    with torch.no_grad():
        hidden = backbone(input_values, attention_mask=attention_mask).last_hidden_state
        if attention_mask is None:
            pooled = hidden.mean(1)
        else:
            frames = backbone._get_feature_vector_attention_mask(hidden.shape[1], attention_mask).unsqueeze(-1)
            pooled = (hidden * frames).sum(1) / frames.sum(1)
        if head["use_label_embedding"]:
            embedding = weights["label_embedding.weight"]
            return (torch.nn.functional.normalize(pooled, dim=-1) @ torch.nn.functional.normalize(embedding, dim=-1).T).numpy()
        if head["classifier_hidden_size"] is None:
            return (pooled @ weights["classifier.weight"].T + weights["classifier.bias"]).numpy()
        inner = ACTIVATIONS[head.get("activation", "tanh")](pooled @ weights["classifier.0.weight"].T + weights["classifier.0.bias"])
        return (inner @ weights["classifier.2.weight"].T + weights["classifier.2.bias"]).numpy()


def write_2026_classifier(directory, backbone, head: dict, task_type: str, num_labels: int = NUM_LABELS, seed: int = 1):
    """A directory as the authors' 2026 package saves a fine-tuned ``HuBERTECGForClassification``: its
    ``HuBERTECGClassificationConfig`` and the backbone under ``hubert_ecg.`` next to the head."""
    directory.mkdir(parents=True, exist_ok=True)
    config = backbone.config.to_dict()
    for key in ("model_type", "architectures", "transformers_version", "dtype", "torch_dtype"):
        config.pop(key, None)
    config.update(
        model_type="hubert_ecg_classification",
        architectures=["HuBERTECGForClassification"],
        vocab_sizes=[20],
        ensemble_length=1,
        classifier_hidden_size=head["classifier_hidden_size"],
        activation=head.get("activation", "tanh"),
        use_label_embedding=head["use_label_embedding"],
        classifier_dropout_prob=0.1,
        task_type=task_type,
        id2label={str(i): f"LABEL_{i}" for i in range(num_labels)},
        label2id={f"LABEL_{i}": i for i in range(num_labels)},
        transformers_version="4.46.0",
    )
    (directory / "config.json").write_text(json.dumps(config, indent=2))
    weights = _head_weights(head, seed) if num_labels == NUM_LABELS else {}
    state = {f"hubert_ecg.{k}": v.contiguous() for k, v in backbone.state_dict().items()}
    # the pretraining heads the authors' backbone keeps (ignored by a classifier)
    state["hubert_ecg.final_proj.0.weight"] = torch.zeros(8, 32)
    state["hubert_ecg.label_embedding.0.weight"] = torch.zeros(20, 8)
    save_file({**state, **weights}, str(directory / "model.safetensors"))
    return weights


@pytest.fixture(scope="module")
def backbone():
    return _backbone()


@pytest.fixture(scope="module")
def inputs():
    torch.manual_seed(3)
    input_values = torch.randn(3, 1200)
    attention_mask = torch.ones(3, 1200, dtype=torch.long)
    attention_mask[1, 900:] = 0  # right padding: the masked mean over the valid frames
    return input_values, attention_mask


@pytest.mark.parametrize("task_type", sorted(TASK_TYPES))
@pytest.mark.parametrize("head_name", sorted(HEADS))
def test_2026_classifier_loads_natively_with_the_authors_logits(tmp_path, backbone, inputs, head_name, task_type):
    head = HEADS[head_name]
    weights = write_2026_classifier(tmp_path / "authors", backbone, head, task_type)
    config = AutoConfig.from_pretrained(tmp_path / "authors")
    assert type(config) is HuBERTECGConfig and config.problem_type == TASK_TYPES[task_type]
    model = AutoModelForSequenceClassification.from_pretrained(tmp_path / "authors").eval()
    assert isinstance(model, HuBERTECGForSequenceClassification)
    input_values, attention_mask = inputs
    expected = _expected_logits(backbone, head, weights, input_values, attention_mask)
    with torch.no_grad():
        logits = model(input_values, attention_mask=attention_mask).logits.numpy()
    assert np.abs(logits - expected).max() <= 1e-4

    # saved back in this package's format, it reloads with the same outputs
    model.save_pretrained(tmp_path / "ours")
    saved = json.loads((tmp_path / "ours" / "config.json").read_text())
    assert saved["model_type"] == "hubert_ecg" and "task_type" not in saved and "activation" not in saved
    reloaded = AutoModelForSequenceClassification.from_pretrained(tmp_path / "ours").eval()
    with torch.no_grad():
        again = reloaded(input_values, attention_mask=attention_mask).logits.numpy()
    np.testing.assert_array_equal(again, logits)
    assert reloaded.config.problem_type == TASK_TYPES[task_type]


def test_2026_classifier_backbone_through_automodel(tmp_path, backbone, inputs):
    write_2026_classifier(tmp_path, backbone, HEADS["mlp"], "multi_label")
    model = AutoModel.from_pretrained(tmp_path).eval()
    assert isinstance(model, HuBERTECGModel)
    input_values, _ = inputs
    with torch.no_grad():
        np.testing.assert_allclose(
            model(input_values).last_hidden_state.numpy(), backbone(input_values).last_hidden_state.numpy(), atol=1e-5
        )


def test_head_options_are_validated():
    with pytest.raises(ValueError, match="classifier_activation"):
        HuBERTECGConfig(classifier_hidden_size=8, classifier_activation="swish")
    with pytest.raises(ValueError, match="exclude each other"):
        HuBERTECGConfig(classifier_hidden_size=8, use_label_embedding=True)
    with pytest.raises(ValueError, match="task_type"):
        HuBERTECGConfig.from_dict({"model_type": "hubert_ecg_classification", "task_type": "ordinal"})


# --- legacy .pt classifiers with MLP and label-embedding heads -------------------------------------------------------


def _legacy_checkpoint(reference_dir, path, head_weights: dict, **flags):
    """The release's fine-tuned reference checkpoint with its linear head replaced (``model_config`` as a plain dict
    of its fields; the pickled config object of the release is covered by tests/test_conversion.py)."""
    from hubert_ecg.conversion import load_original_checkpoint

    checkpoint = load_original_checkpoint(reference_dir / "original_finetuned.pt")
    state = {k: v for k, v in checkpoint["model_state_dict"].items() if not k.startswith("classifier.")}
    torch.save({**checkpoint, **flags, "model_state_dict": {**state, **head_weights}}, path)


LEGACY_HEADS = {
    "mlp": ({"linear": False, "use_label_embedding": False}, {"classifier_hidden_size": 12, "use_label_embedding": False}),
    "label_embedding": ({"linear": True, "use_label_embedding": True}, {"classifier_hidden_size": None, "use_label_embedding": True}),
}


@pytest.mark.parametrize("head_name", sorted(LEGACY_HEADS))
def test_legacy_pt_with_mlp_and_label_embedding_heads_convert(reference_dir, expected, tmp_path, head_name):
    from hubert_ecg import convert_original_checkpoint

    flags, head = LEGACY_HEADS[head_name]
    weights = _head_weights(head, seed=5)
    weights = {k: v[:5] if v.shape[0] == NUM_LABELS and k != "classifier.0.weight" else v for k, v in weights.items()}
    if "classifier.2.weight" in weights or "label_embedding.weight" in weights:  # 5 labels, as the reference head
        generator = torch.Generator().manual_seed(9)
        for key in ("classifier.2.weight", "classifier.2.bias", "label_embedding.weight"):
            if key in weights:
                weights[key] = 0.3 * torch.randn(5, *weights[key].shape[1:], generator=generator)
    _legacy_checkpoint(reference_dir, tmp_path / "legacy.pt", weights, finetuning_vocab_size=5, **flags)
    model = convert_original_checkpoint(tmp_path / "legacy.pt", tmp_path / "out").eval()
    assert model.config.use_label_embedding == head["use_label_embedding"]
    assert model.config.classifier_hidden_size == head["classifier_hidden_size"]
    pooled = torch.from_numpy(expected["last_hidden_state_5s"]).mean(1)
    if head["use_label_embedding"]:
        want = torch.nn.functional.cosine_similarity(pooled[:, None], weights["label_embedding.weight"][None], dim=-1)
    else:  # the release's MLP: tanh between the layers (its default; the checkpoints do not record it)
        inner = torch.tanh(pooled @ weights["classifier.0.weight"].T + weights["classifier.0.bias"])
        want = inner @ weights["classifier.2.weight"].T + weights["classifier.2.bias"]
    reloaded = AutoModelForSequenceClassification.from_pretrained(tmp_path / "out").eval()
    with torch.no_grad():
        logits = reloaded(torch.from_numpy(expected["input_values_5s"])).logits
    assert (logits - want).abs().max() <= 1e-4
    assert (tmp_path / "out" / "preprocessor_config.json").is_file()


def test_unknown_legacy_head_is_refused(reference_dir, tmp_path):
    from hubert_ecg import convert_original_checkpoint

    _legacy_checkpoint(reference_dir, tmp_path / "odd.pt", {"classifier.1.weight": torch.zeros(5, 32)}, linear=False)
    with pytest.raises(ValueError, match=r"odd\.pt: unknown classification head"):
        convert_original_checkpoint(tmp_path / "odd.pt", tmp_path / "out")


# --- the Cardio-Learning classifiers -------------------------------------------------------------------------------


def test_cardio_learning_2026_classifier_gets_its_164_labels(tmp_path, backbone, inputs):
    from hubert_ecg.label_sets import load_label_set

    codes = list(load_label_set("cardio-learning").labels)
    head = HEADS["linear"]
    generator = torch.Generator().manual_seed(2)
    write_2026_classifier(tmp_path / "authors", backbone, head, "multi_label", num_labels=164)
    from safetensors.torch import load_file

    state = load_file(tmp_path / "authors" / "model.safetensors")
    state.update({"classifier.weight": torch.randn(164, 32, generator=generator), "classifier.bias": torch.zeros(164)})
    save_file(state, str(tmp_path / "authors" / "model.safetensors"))
    model = AutoModelForSequenceClassification.from_pretrained(tmp_path / "authors")
    assert [model.config.id2label[i] for i in range(164)] == codes
    assert model.config.label2id["IRBBB"] == codes.index("IRBBB")
    assert set(model.config.label_descriptions) == set(codes)


def test_cardio_learning_pt_by_name_or_flag(reference_dir, tmp_path):
    from hubert_ecg import convert_original_checkpoint
    from hubert_ecg.label_sets import load_label_set

    codes = list(load_label_set("cardio-learning").labels)
    generator = torch.Generator().manual_seed(4)
    head = {"classifier.weight": 0.3 * torch.randn(164, 32, generator=generator), "classifier.bias": torch.zeros(164)}
    _legacy_checkpoint(reference_dir, tmp_path / "hubert_ecg_small_cardio_learning.pt", head, finetuning_vocab_size=164)
    model = convert_original_checkpoint(tmp_path / "hubert_ecg_small_cardio_learning.pt", tmp_path / "named")
    assert list(model.config.id2label.values()) == codes and model.config.label_descriptions["NORM"]
    # another name: the labels only with the explicit label set
    (tmp_path / "hubert_ecg_small_cardio_learning.pt").rename(tmp_path / "model.pt")
    plain = convert_original_checkpoint(tmp_path / "model.pt", tmp_path / "plain")
    assert plain.config.id2label[0] == "LABEL_0" and plain.config.label_descriptions is None
    flagged = convert_original_checkpoint(tmp_path / "model.pt", tmp_path / "flagged", label_set="cardio-learning")
    assert list(flagged.config.id2label.values()) == codes
    with pytest.raises(ValueError, match="164 labels, but the model has 5 outputs"):
        convert_original_checkpoint(reference_dir / "original_finetuned.pt", tmp_path / "x", label_set="cardio-learning")


def _seed_hub_cache(cache, repo_id: str, files_from) -> None:
    """A Hub cache as ``huggingface_hub`` writes it (``models--owner--name/refs/main`` -> ``snapshots/<sha>/``)."""
    commit = "0" * 40
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    for path in files_from.iterdir():
        (snapshot / path.name).write_bytes(path.read_bytes())


def test_hub_id_converts_offline_then_predict_scores_a_real_record(tmp_path, backbone, monkeypatch, capsys):
    """`hubert-ecg convert <Cardio-Learning Hub id> OUT` (from the local cache), then `hubert-ecg predict --model OUT`
    on a real record: the condition codes with their descriptions, no "Can't load feature extractor"."""
    import huggingface_hub.constants as hub_constants

    from hubert_ecg.demo import demo_records
    from hubert_ecg_cli import main as cli_main

    write_2026_classifier(tmp_path / "authors", backbone, HEADS["linear"], "multi_label", num_labels=164)
    from safetensors.torch import load_file

    state = load_file(tmp_path / "authors" / "model.safetensors")
    generator = torch.Generator().manual_seed(6)
    state.update({"classifier.weight": torch.randn(164, 32, generator=generator), "classifier.bias": torch.zeros(164)})
    save_file(state, str(tmp_path / "authors" / "model.safetensors"))
    repo_id = "Edoardo-BS/HuBERT-ECG-SFT-CardioLearning-small"
    _seed_hub_cache(tmp_path / "hub", repo_id, tmp_path / "authors")
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True)

    assert cli_main(["convert", repo_id, str(tmp_path / "out")]) == 0
    assert "HuBERTECGForSequenceClassification" in capsys.readouterr().out
    assert {"config.json", "model.safetensors", "preprocessor_config.json"} <= {p.name for p in (tmp_path / "out").iterdir()}
    record = str(demo_records()[0])
    assert cli_main(["predict", "--model", str(tmp_path / "out"), "--top-k", "3", "--format", "csv", record]) == 0
    out = capsys.readouterr().out
    model = AutoModelForSequenceClassification.from_pretrained(tmp_path / "out")
    assert model.config.id2label[0] == "PAC|SVPB"
    assert any(code in out for code in model.config.id2label.values())

    assert cli_main(["convert", "nobody/no-such-model", str(tmp_path / "none")]) == 2
    assert "nobody/no-such-model" in capsys.readouterr().err


def test_convert_then_predict_the_release_checkpoint(reference_dir, tmp_path, capsys):
    """The original fine-tuned .pt, converted as a new user would, is scored by predict straight away."""
    from hubert_ecg.demo import demo_records
    from hubert_ecg_cli import main as cli_main

    assert cli_main(["convert", str(reference_dir / "original_finetuned.pt"), str(tmp_path / "out")]) == 0
    capsys.readouterr()
    assert cli_main(["predict", "--model", str(tmp_path / "out"), str(demo_records()[0])]) == 0
    assert "LABEL_" in capsys.readouterr().out


def test_cardio_learning_detection_rule():
    from hubert_ecg.configuration import implied_label_set

    generic = {"id2label": {str(i): f"LABEL_{i}" for i in range(164)}}
    assert implied_label_set(generic) is None  # 164 outputs alone say nothing of the labels
    assert implied_label_set(generic, origin="Edoardo-BS/HuBERT-ECG-SFT-CardioLearning-base") == "cardio-learning"
    assert implied_label_set(generic, origin="/ckpts/hubert_ecg_large_cardio_learning.pt") == "cardio-learning"
    assert implied_label_set({**generic, "_name_or_path": "C:\\models\\hubert_ecg_small_cardio_learning"}) == "cardio-learning"
    assert implied_label_set({**generic, "model_type": "hubert_ecg_classification"}) == "cardio-learning"
    named = {"id2label": {str(i): f"code{i}" for i in range(164)}, "model_type": "hubert_ecg_classification"}
    assert implied_label_set(named, origin="HuBERT-ECG-SFT-CardioLearning-small") is None  # its own names win
    assert implied_label_set({"num_labels": 5}, origin="hubert_ecg_small_cardio_learning.pt") is None


def test_cardio_learning_hub_layout_named_by_its_repository(tmp_path, finetuned_dir, monkeypatch):
    """A Cardio-Learning classifier in the original release's hub layout (model_type hubert_ecg) gets its labels from
    `from_pretrained(<its Hub id>)` (name known), not from its 164 outputs alone."""
    import huggingface_hub.constants as hub_constants
    from safetensors.torch import load_file

    from hubert_ecg.label_sets import load_label_set

    src = tmp_path / "src"
    src.mkdir()
    config = json.loads((finetuned_dir / "config.json").read_text())
    config.update(id2label={str(i): f"LABEL_{i}" for i in range(164)}, label2id={f"LABEL_{i}": i for i in range(164)})
    (src / "config.json").write_text(json.dumps(config))
    state = load_file(finetuned_dir / "model.safetensors")
    state.update({"classifier.weight": torch.zeros(164, 32), "classifier.bias": torch.zeros(164)})
    save_file(state, str(src / "model.safetensors"))
    repo_id = "Edoardo-BS/HuBERT-ECG-SFT-CardioLearning-base"
    _seed_hub_cache(tmp_path / "hub", repo_id, src)
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True)
    model = AutoModelForSequenceClassification.from_pretrained(repo_id)
    assert list(model.config.id2label.values()) == list(load_label_set("cardio-learning").labels)
    assert AutoModelForSequenceClassification.from_pretrained(src).config.id2label[0] == "LABEL_0"
