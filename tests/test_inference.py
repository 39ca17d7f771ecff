"""Fast inference paths keep the outputs: bf16 (weights or autocast) within 0.01 in probability, SDPA = eager."""

import copy

import numpy as np
import pytest
import torch
from transformers.models.hubert.modeling_hubert import HubertPositionalConvEmbedding

from hubert_ecg import HuBERTECGConfig, HuBERTECGForSequenceClassification, HuBERTECGModel
from hubert_ecg.inference import (
    cpu_has_bf16,
    inference_context,
    keep_positional_conv_accurate,
    low_precision_conv_is_accurate,
    optimize_for_inference,
    resolve_dtype,
    run_model,
)


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-np.asarray(x, dtype=np.float64)))


@pytest.mark.parametrize("length", ["5s", "10s"])
@pytest.mark.parametrize("path", [dict(dtype="bfloat16"), dict(autocast="bfloat16")], ids=["bf16", "autocast"])
def test_bf16_probabilities_within_0_01(finetuned_dir, expected, length, path):
    model = optimize_for_inference(HuBERTECGForSequenceClassification.from_pretrained(finetuned_dir), **path)
    logits = run_model(model, expected[f"input_values_{length}"])
    assert logits.dtype == torch.float32 and logits.shape == (6, 5)
    reference = expected[f"classifier_logits_{length}"]
    delta = np.abs(_sigmoid(logits.numpy()) - _sigmoid(reference)).max()
    softmax = lambda z: np.exp(z - z.max(-1, keepdims=True)) / np.exp(z - z.max(-1, keepdims=True)).sum(-1, keepdims=True)  # noqa: E731
    assert delta < 0.01
    assert np.abs(softmax(logits.numpy().astype(np.float64)) - softmax(reference.astype(np.float64))).max() < 0.01


def test_float32_fast_path_matches_reference(finetuned_dir, expected):
    model = optimize_for_inference(HuBERTECGForSequenceClassification.from_pretrained(finetuned_dir))
    logits = run_model(model, torch.from_numpy(expected["input_values_5s"]))
    assert np.abs(logits.numpy() - expected["classifier_logits_5s"]).max() < 1e-5


@pytest.mark.parametrize("length", ["5s", "10s"])
def test_sdpa_matches_eager(reference_dir, expected, length):
    sdpa = HuBERTECGModel.from_pretrained(reference_dir / "hub_layout")
    eager = HuBERTECGModel.from_pretrained(reference_dir / "hub_layout", attn_implementation="eager")
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


def test_inference_context_and_settings(finetuned_dir):
    model = optimize_for_inference(HuBERTECGForSequenceClassification.from_pretrained(finetuned_dir), autocast=True)
    with inference_context(model):
        assert torch.is_inference_mode_enabled()
        assert torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16
    assert not torch.is_inference_mode_enabled()
    with pytest.raises(ValueError, match="float32 weights"):
        optimize_for_inference(model, dtype="bfloat16", autocast="bfloat16")
    bf16 = optimize_for_inference(model, dtype="bf16")
    assert bf16.dtype == torch.bfloat16 and bf16 is model


def _positional_embedding(model):
    return next(m for m in model.modules() if isinstance(m, HubertPositionalConvEmbedding))


needs_bf16 = pytest.mark.skipif(not cpu_has_bf16(), reason="bf16 is slower than fp32 without bf16 units; not a path")


@needs_bf16
@pytest.mark.parametrize("channels_per_group", [2, 32])  # the reference checkpoints; the released models
def test_positional_conv_in_bf16_is_right_or_float32(finetuned_dir, channels_per_group):
    """Whatever the device's bf16 grouped-conv kernel does, the positional embedding of a bf16 model is right."""
    if channels_per_group == 2:
        model = HuBERTECGForSequenceClassification.from_pretrained(finetuned_dir)
    else:
        torch.manual_seed(0)
        model = HuBERTECGModel(HuBERTECGConfig.from_preset("small", num_hidden_layers=1))
    module = _positional_embedding(model)
    assert module.conv.weight.shape[1] == channels_per_group
    hidden = torch.randn(3, 93, module.conv.in_channels).to(torch.bfloat16).float()
    with torch.inference_mode():
        exact = module(hidden)
    optimize_for_inference(model, dtype="bfloat16")
    with torch.inference_mode():
        fast = module(hidden.to(torch.bfloat16)).float()
    assert (fast - exact).abs().max() <= 0.02 * exact.abs().max()
    kept = getattr(module, "_hubert_ecg_float32", False)
    assert kept == (module.conv.weight.dtype == torch.float32)
    if channels_per_group == 32:  # a correct kernel: runs in bf16
        assert low_precision_conv_is_accurate(module.conv, torch.bfloat16) and not kept


@needs_bf16
def test_positional_conv_right_under_bf16_autocast_training(finetuned_dir):
    """Mixed-precision training (autocast, float32 weights) gets a right positional embedding, with gradients."""
    model = HuBERTECGForSequenceClassification.from_pretrained(finetuned_dir).train()
    module = _positional_embedding(model)
    hidden = torch.randn(2, 93, module.conv.in_channels)
    exact = module(hidden).detach()
    keep_positional_conv_accurate(model, torch.bfloat16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        output = module(hidden.requires_grad_())
    assert (output.float() - exact).abs().max() <= 0.02 * exact.abs().max()
    output.float().sum().backward()
    assert hidden.grad is not None and torch.isfinite(hidden.grad).all()
    assert module.conv.parametrizations.weight.original1.grad is not None


def test_first_conv_as_matmul_keeps_outputs(reference_dir, expected):
    model = HuBERTECGModel.from_pretrained(reference_dir / "hub_layout")
    conv = model.feature_extractor.conv_layers[0].conv
    x = torch.from_numpy(expected["input_values_10s"])[:, None]
    with torch.inference_mode():
        plain = conv(x)
    optimize_for_inference(model)
    assert conv._hubert_ecg_matmul and conv.forward.__self__ is conv
    with torch.inference_mode():
        torch.testing.assert_close(conv(x), plain, rtol=1e-6, atol=1e-6)
    assert np.abs(run_model(model, x[:, 0]).numpy() - expected["last_hidden_state_10s"]).max() < 1e-5
    twin = copy.deepcopy(model)  # the rewritten forward follows the copy's own weights
    twin_conv = twin.feature_extractor.conv_layers[0].conv
    assert twin_conv.forward.__self__ is twin_conv


def test_resolve_dtype():
    assert resolve_dtype(None) == torch.float32
    assert resolve_dtype("bf16") == torch.bfloat16
    assert resolve_dtype(torch.float32) == torch.float32
    assert resolve_dtype("auto", "cpu") == (torch.bfloat16 if cpu_has_bf16() else torch.float32)
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


@pytest.mark.parametrize("how", ["pipeline_dtype", "optimize"])
def test_pipeline_bf16_within_0_01_on_bundled_records(finetuned_dir, how):
    from transformers import pipeline

    from hubert_ecg import HuBERTECGFeatureExtractor
    from hubert_ecg.demo import demo_records

    HuBERTECGFeatureExtractor().save_pretrained(finetuned_dir)
    records = demo_records()
    exact = pipeline("ecg-classification", model=str(finetuned_dir))(records, batch_size=3)
    if how == "pipeline_dtype":  # transformers loads the weights in bf16; run_model keeps the positional conv in fp32
        fast = pipeline("ecg-classification", model=str(finetuned_dir), dtype=torch.bfloat16)
    else:
        fast = pipeline("ecg-classification", model=str(finetuned_dir))
        optimize_for_inference(fast.model, dtype="bfloat16")
    assert fast.model.dtype == torch.bfloat16
    for a, b in zip(exact, fast(records, batch_size=3)):
        scores = {p["label"]: p["score"] for p in b}
        assert max(abs(p["score"] - scores[p["label"]]) for p in a) < 0.01
