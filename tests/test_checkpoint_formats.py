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
