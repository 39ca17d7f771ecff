"""Inference settings measured on the user's machine (hubert_ecg.inference: measure_settings, tuned_settings,
apply_settings), how the pipeline and the commands use them, and the cache."""

import copy
import json
import logging as std_logging

import numpy as np
import pytest
import torch
from transformers import AutoModelForSequenceClassification, pipeline

import hubert_ecg
from hubert_ecg.demo import demo_records
from hubert_ecg.inference import (
    InferenceSettings,
    apply_settings,
    choose_settings,
    clear_tuning_cache,
    measure_settings,
    tuned_settings,
    tuning_cache_path,
)
from hubert_ecg.modeling import HuBERTECGInputConv

RECORDS = demo_records()
VARIANTS = [InferenceSettings(dtype=d, attn_implementation=a, input_conv=c)
            for d in ("float32", "bfloat16") for a in ("sdpa", "eager") for c in ("matmul", "conv")]


@pytest.fixture
def tuning_on(tmp_path, monkeypatch):
    """Measured settings on, with an empty cache of this test's own."""
    monkeypatch.setenv("HUBERT_ECG_TUNING", "1")
    monkeypatch.setenv("HUBERT_ECG_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "inference_settings.json"


@pytest.fixture(scope="module")
def demo_model():
    return AutoModelForSequenceClassification.from_pretrained(hubert_ecg.demo_model_path()).eval()


@pytest.fixture(scope="module")
def windows():
    """The 5 s windows of the bundled records, as the pipeline feeds them to the model: (records * 2, 6000)."""
    from hubert_ecg.pipelines import load_feature_extractor

    extractor = load_feature_extractor(hubert_ecg.demo_model_path())
    records = [hubert_ecg.read_ecg(r) for r in RECORDS[:3]]
    signals = [np.asarray(r.signal)[:, start:start + 2500] for r in records for start in (0, 2500)]
    return extractor(signals, sampling_rate=500, return_tensors="pt")["input_values"]


def _scores(model, input_values):
    from hubert_ecg.inference import run_model

    return torch.sigmoid(run_model(model, input_values)).numpy()


def test_every_variant_keeps_the_scores_of_float32_on_real_records(demo_model, windows):
    reference = _scores(demo_model, windows)
    for settings in VARIANTS:
        model = apply_settings(copy.deepcopy(demo_model), settings)
        assert model.config._attn_implementation == settings.attn_implementation
        assert all(m.implementation == settings.input_conv
                   for m in model.modules() if isinstance(m, HuBERTECGInputConv))
        diff = np.abs(_scores(model, windows) - reference).max()
        # exact variants agree to rounding; bfloat16 within the 0.02 the defaults promise
        assert diff < (1e-5 if settings.dtype == "float32" else 0.02), (settings.name, diff)


def test_measure_settings_times_every_variant_and_leaves_the_model_as_it_was(demo_model):
    before = {k: v.clone() for k, v in demo_model.state_dict().items()}
    settings = measure_settings(demo_model, batch_size=2, rounds=1)
    assert demo_model.dtype == torch.float32 and demo_model.config._attn_implementation == "sdpa"
    assert all(torch.equal(before[k], v) for k, v in demo_model.state_dict().items())
    assert all(m.implementation == "matmul" for m in demo_model.modules() if isinstance(m, HuBERTECGInputConv))
    # float32 SDPA / matmul always timed; the chosen one among the timed, all speeds positive
    assert "float32/sdpa/matmul" in settings.measured and settings.name in settings.measured
    assert len(settings.measured) == 8 and min(settings.measured.values()) > 0
    fastest_fp32 = max(v for k, v in settings.measured.items() if k.startswith("float32"))
    if settings.dtype == "bfloat16":  # only when clearly faster than the best float32 variant
        assert settings.measured[settings.name] >= 1.15 * fastest_fp32


def test_tuned_settings_are_measured_once_and_cached_per_model_shape(demo_model, tuning_on, monkeypatch):
    calls = []

    def fake_measure(model, **kwargs):
        calls.append(type(model).__name__)
        return InferenceSettings(dtype="bfloat16", attn_implementation="eager", input_conv="conv",
                                 measured={"float32/sdpa/matmul": 10.0, "bfloat16/eager/conv": 25.0})

    monkeypatch.setattr(hubert_ecg.inference, "measure_settings", fake_measure)
    first = tuned_settings(demo_model)
    again = tuned_settings(demo_model)
    assert calls == ["HuBERTECGForSequenceClassification"] and first == again
    (key, entry), = json.loads(tuning_cache_path().read_text()).items()
    assert entry["dtype"] == "bfloat16" and f"torch={torch.__version__}" in key and "hidden_size=128" in key
    assert "2.50x float32 SDPA" in again.describe()
    other_shape = hubert_ecg.HuBERTECGForSequenceClassification(
        hubert_ecg.HuBERTECGConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                                   conv_dim=(32,) * 5, num_labels=2))
    tuned_settings(other_shape)
    assert len(calls) == 2  # another shape: measured for itself
    tuned_settings(demo_model, refresh=True)
    assert len(calls) == 3
    assert clear_tuning_cache() and not tuning_cache_path().exists() and not clear_tuning_cache()


def test_pipeline_without_dtype_runs_the_measured_settings(tuning_on, caplog):
    model_dir = hubert_ecg.demo_model_path()
    seeded = AutoModelForSequenceClassification.from_pretrained(model_dir)
    from hubert_ecg.inference import _machine_key, _save_cache, _shape_key

    key = f"{_machine_key(torch.device('cpu'))}|{_shape_key(seeded)}"
    _save_cache(key, InferenceSettings("bfloat16", "eager", "conv", {"float32/sdpa/matmul": 1.0}))
    from transformers.utils import logging

    logging.set_verbosity_info()
    try:
        with caplog.at_level(std_logging.INFO):
            clf = pipeline("ecg-classification", model=str(model_dir))
    finally:
        logging.set_verbosity_warning()
    assert clf.model.dtype == torch.bfloat16 and clf.model.config._attn_implementation == "eager"
    assert clf.inference_settings.name == "bfloat16/eager/conv"
    assert [m.implementation for m in clf.model.modules() if isinstance(m, HuBERTECGInputConv)] == ["conv"]
    # the positional convolution stays in float32 in a bfloat16 model
    assert clf.model.base_model.encoder.pos_conv_embed.conv.weight.dtype == torch.float32
    scores = clf(RECORDS[0])
    assert len(scores) == 5
    # an explicit dtype wins: nothing measured or applied
    exact = pipeline("ecg-classification", model=str(model_dir), dtype=torch.float32)
    assert exact.model.dtype == torch.float32 and exact.inference_settings.name == "float32/sdpa/matmul"


def test_tuning_off_keeps_float32(monkeypatch, tmp_path):
    monkeypatch.setenv("HUBERT_ECG_TUNING", "0")
    monkeypatch.setenv("HUBERT_ECG_CACHE", str(tmp_path))
    clf = hubert_ecg.pipelines.load_pipeline()
    assert clf.model.dtype == torch.float32 and clf.inference_settings == InferenceSettings()
    assert not (tmp_path / "inference_settings.json").exists()


def test_tune_command_measures_shows_and_resets(tuning_on, capsys):
    from hubert_ecg_cli import main

    assert main(["tune"]) == 0
    out = capsys.readouterr().out
    assert "<- chosen" in out and "float32/sdpa/matmul" in out and tuning_on.is_file()
    chosen = json.loads(out.strip().splitlines()[-1])
    assert chosen["dtype"] in ("float32", "bfloat16")
    assert main(["tune", "--show"]) == 0
    assert "HuBERTECGForSequenceClassification(hidden_size=128" in capsys.readouterr().out
    assert main(["tune", "--reset"]) == 0
    assert "removed" in capsys.readouterr().out and not tuning_on.exists()
    assert main(["tune", "--model", str(tuning_on.parent / "missing")]) == 2
    assert "cannot load the model" in capsys.readouterr().err


def _speeds(**by_name):
    base = {f"{d}/{a}/{c}": 100.0 for d in ("float32", "bfloat16") for a in ("sdpa", "eager") for c in ("matmul", "conv")}
    base.update({k.replace("__", "/"): v for k, v in by_name.items()})
    return base


def test_the_choice_rule():
    # bfloat16 clearly faster and close to float32: chosen, with its fastest attention / convolution
    chosen = choose_settings(_speeds(bfloat16__eager__conv=190.0, bfloat16__sdpa__matmul=150.0), 0.003)
    assert chosen.name == "bfloat16/eager/conv" and chosen.measured["bfloat16/eager/conv"] == 190.0
    # only 10 % faster: float32 stays (noise must not flip the numbers users get)
    assert choose_settings(_speeds(bfloat16__sdpa__matmul=110.0), 0.003).name == "float32/sdpa/matmul"
    # faster but scores off by more than 0.02: float32
    assert choose_settings(_speeds(bfloat16__sdpa__matmul=300.0), 0.05).name == "float32/sdpa/matmul"
    # bfloat16 not tried (a GPU without it)
    speeds = {k: v for k, v in _speeds(float32__eager__matmul=120.0).items() if k.startswith("float32")}
    assert choose_settings(speeds, None).name == "float32/eager/matmul"
    # an exact variant 2 % faster is noise: the default stays
    assert choose_settings(_speeds(float32__eager__conv=102.0), None).name == "float32/sdpa/matmul"
    # bfloat16 is compared with the fastest float32 variant, not with the default
    assert choose_settings(_speeds(float32__sdpa__conv=150.0, bfloat16__sdpa__matmul=160.0), 0.0).name == \
        "float32/sdpa/conv"
