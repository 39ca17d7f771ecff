"""Inference paths keep the outputs: bf16 (weights, or autocast) within 0.01 in probability, SDPA = eager; running a
model never changes it."""

import numpy as np
import pytest
import torch

from hubert_ecg import HuBERTECGConfig, HuBERTECGForSequenceClassification, HuBERTECGModel
from hubert_ecg.inference import cast_model, optimize_for_inference, resolve_dtype, run_model


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-np.asarray(x, dtype=np.float64)))


def _softmax(z):
    z = np.asarray(z, dtype=np.float64)
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


@pytest.mark.parametrize("length", ["5s", "10s"])
@pytest.mark.parametrize("path", ["bf16 weights", "bf16 from_pretrained", "autocast"])
def test_bf16_probabilities_within_0_01(finetuned_dir, expected, length, path):
    if path == "bf16 weights":
        model = optimize_for_inference(HuBERTECGForSequenceClassification.from_pretrained(finetuned_dir), dtype="bf16")
        logits = run_model(model, expected[f"input_values_{length}"])
    elif path == "bf16 from_pretrained":
        model = HuBERTECGForSequenceClassification.from_pretrained(finetuned_dir, dtype=torch.bfloat16).eval()
        logits = run_model(model, expected[f"input_values_{length}"])
    else:
        model = HuBERTECGForSequenceClassification.from_pretrained(finetuned_dir).eval()
        logits = run_model(model, expected[f"input_values_{length}"], autocast="bfloat16")
    assert logits.dtype == torch.float32 and logits.shape == (6, 5)
    reference = expected[f"classifier_logits_{length}"]
    assert np.abs(_sigmoid(logits.numpy()) - _sigmoid(reference)).max() < 0.01
    assert np.abs(_softmax(logits.numpy()) - _softmax(reference)).max() < 0.01


def test_cast_model_is_from_pretrained_with_dtype(finetuned_dir):
    """Casting by hand gives the same dtypes per parameter as loading in bf16 (the positional conv in float32)."""
    loaded = HuBERTECGForSequenceClassification.from_pretrained(finetuned_dir, dtype=torch.bfloat16)
    cast = cast_model(HuBERTECGForSequenceClassification.from_pretrained(finetuned_dir), torch.bfloat16)
    dtypes = {name: p.dtype for name, p in cast.named_parameters()}
    assert dtypes == {name: p.dtype for name, p in loaded.named_parameters()}
    assert dtypes["hubert_ecg.encoder.pos_conv_embed.conv.bias"] == torch.float32
    assert dtypes["classifier.weight"] == torch.bfloat16
    assert cast_model(cast, torch.float32).dtype == torch.float32
    assert {p.dtype for p in cast.parameters()} == {torch.float32}


def test_float32_path_matches_reference(finetuned_dir, expected):
    model = optimize_for_inference(HuBERTECGForSequenceClassification.from_pretrained(finetuned_dir))
    logits = run_model(model, torch.from_numpy(expected["input_values_5s"]))
    assert np.abs(logits.numpy() - expected["classifier_logits_5s"]).max() < 1e-5


def test_run_model_changes_nothing(finetuned_dir, expected):
    model = HuBERTECGForSequenceClassification.from_pretrained(finetuned_dir, dtype=torch.bfloat16).train()
    before = {name: (p.dtype, p.device, p.detach().clone()) for name, p in model.named_parameters()}
    attributes = set(vars(model))
    run_model(model, expected["input_values_5s"], autocast="bfloat16")
    assert model.training and set(vars(model)) == attributes
    for name, p in model.named_parameters():
        dtype, device, value = before[name]
        assert p.dtype == dtype and p.device == device and torch.equal(p.detach(), value)


@pytest.mark.parametrize("length", ["5s", "10s"])
def test_sdpa_matches_eager(reference_dir, expected, length):
    sdpa = HuBERTECGModel.from_pretrained(reference_dir / "hub_layout").eval()
    eager = HuBERTECGModel.from_pretrained(reference_dir / "hub_layout", attn_implementation="eager").eval()
    assert sdpa.config._attn_implementation == "sdpa" and eager.config._attn_implementation == "eager"
    x = expected[f"input_values_{length}"]
    a, b = run_model(sdpa, x), run_model(eager, x)
    assert (a - b).abs().max() < 1e-5
    assert np.abs(b.numpy() - expected[f"last_hidden_state_{length}"]).max() < 1e-5


def test_sdpa_matches_eager_small_preset_with_padding():
    torch.manual_seed(0)
    config = HuBERTECGConfig.from_preset("small", num_hidden_layers=2, num_labels=3)
    sdpa = HuBERTECGForSequenceClassification(config).eval()
    eager = HuBERTECGForSequenceClassification(config).eval()
    eager.load_state_dict(sdpa.state_dict())
    eager.set_attn_implementation("eager")
    x = torch.rand(3, 6000) * 2 - 1
    mask = torch.ones(3, 6000, dtype=torch.long)
    mask[1, 4000:] = 0
    x[1, 4000:] = 0
    assert (run_model(sdpa, x, mask) - run_model(eager, x, mask)).abs().max() < 1e-5


def test_resolve_dtype():
    assert resolve_dtype("bf16") == torch.bfloat16
    assert resolve_dtype(torch.float32) == torch.float32
    # not fixed: the caller measures (hubert_ecg.inference.tuned_settings), see tests/test_tuning.py
    assert resolve_dtype(None) is None and resolve_dtype("auto", "cpu") is None
    with pytest.raises(ValueError, match="float16"):
        resolve_dtype("float16", "cpu")
    with pytest.raises(ValueError, match="dtype must be"):
        resolve_dtype("int8")


def test_run_model_rejects_bad_shapes(finetuned_dir):
    model = HuBERTECGForSequenceClassification.from_pretrained(finetuned_dir)
    with pytest.raises(ValueError, match=r"\(batch, samples\)"):
        run_model(model, np.zeros(6000, dtype=np.float32))


@pytest.mark.slow
def test_compile_keeps_outputs(finetuned_dir, expected):
    model = optimize_for_inference(HuBERTECGForSequenceClassification.from_pretrained(finetuned_dir), compile=True)
    logits = run_model(model, expected["input_values_5s"])
    assert np.abs(logits.numpy() - expected["classifier_logits_5s"]).max() < 1e-4


def test_pipeline_bf16_within_0_01_on_bundled_records(finetuned_dir):
    """``pipeline(..., dtype=torch.bfloat16)``: transformers loads the weights in bf16, the positional convolution
    in float32 (the model's own _keep_in_fp32_modules_strict); nothing else prepares the model."""
    from transformers import pipeline

    from hubert_ecg import HuBERTECGFeatureExtractor
    from hubert_ecg.demo import demo_records

    HuBERTECGFeatureExtractor().save_pretrained(finetuned_dir)
    records = demo_records()
    exact = pipeline("ecg-classification", model=str(finetuned_dir))(records, batch_size=3)
    fast = pipeline("ecg-classification", model=str(finetuned_dir), dtype=torch.bfloat16)
    assert fast.model.dtype == torch.bfloat16
    assert fast.model.hubert_ecg.encoder.pos_conv_embed.conv.bias.dtype == torch.float32
    for a, b in zip(exact, fast(records, batch_size=3)):
        scores = {p["label"]: p["score"] for p in b}
        assert max(abs(p["score"] - scores[p["label"]]) for p in a) < 0.01
