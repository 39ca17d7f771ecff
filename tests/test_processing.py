"""HuBERTECGFeatureExtractor against the released preprocessing (reference vectors) on real records."""

import json

import numpy as np
import pytest
import scipy.signal
import torch

from hubert_ecg.io import STANDARD_LEADS, ECGRecord, read_ecg
from hubert_ecg import processing
from hubert_ecg.leads import map_leads, normalize_lead_name
from hubert_ecg.processing import HuBERTECGFeatureExtractor, _decimate, _zero_phase_fir

TOL = 1e-4  # the bar for reproducing the released preprocessing


@pytest.fixture(scope="module")
def ref(reference_dir):
    with np.load(reference_dir / "preprocessing.npz") as data:
        return {key: data[key] for key in data.files}


@pytest.fixture(scope="module")
def fe():
    return HuBERTECGFeatureExtractor()


def released(raw, fs, window=slice(0, 2500), pad_to=2500):
    """The released steps 1-5 with scipy (../shared/reference/README.md), all leads in one call per step (the same
    numbers as lead by lead); the window optionally zero-padded to ``pad_to`` samples per lead."""
    n = int(raw.shape[1] * 500 / fs)
    taps = scipy.signal.firwin(151, [0.05, 47], pass_zero=False, fs=500)
    x = scipy.signal.filtfilt(taps, 1.0, scipy.signal.resample(np.asarray(raw, dtype=np.float64), n, axis=-1), axis=-1)
    lo, hi = x.min(axis=-1, keepdims=True), x.max(axis=-1, keepdims=True)
    x = (2 * (x - lo) / (hi - lo + 1e-8) - 1)[:, window]
    x = np.pad(x, ((0, 0), (0, pad_to - x.shape[1])))
    return scipy.signal.decimate(x.reshape(-1), 5)


# ---------------------------------------------------------------------------------------------- the release


@pytest.mark.parametrize("i", range(6))  # 500, 500, 500, 100, 100, 1000 Hz
def test_reference_vectors(fe, ref, i):
    out = fe(ref[f"raw_{i}"], sampling_rate=int(ref[f"fs_{i}"]))
    assert out["input_values"].shape == (1, 6000) and out["input_values"].dtype == np.float32
    np.testing.assert_allclose(out["input_values"][0], ref[f"input5s_{i}"], atol=TOL)
    assert out["attention_mask"].shape == (1, 6000) and out["attention_mask"].all()


def test_reference_nan_case(fe, ref):
    raw = ref["raw_0"].copy()
    missing = np.isnan(ref["nan_record500"])  # 40 samples of V2
    raw[missing] = np.nan
    out = fe(raw, sampling_rate=500)["input_values"][0]
    assert np.isfinite(out).all()
    np.testing.assert_allclose(out, ref["nan_input5s"], atol=TOL)
    # inf is a missing value too
    raw[missing] = np.inf
    np.testing.assert_allclose(fe(raw, sampling_rate=500)["input_values"][0], ref["nan_input5s"], atol=TOL)


def test_one_batch_of_mixed_rates_and_lengths(fe, ref):
    raws = [ref[f"raw_{i}"] for i in range(6)]
    rates = [int(ref[f"fs_{i}"]) for i in range(6)]
    out = fe(raws, sampling_rate=rates)
    assert out["input_values"].shape == (6, 6000) and set(out.keys()) == {"input_values", "attention_mask"}
    for i in range(6):
        np.testing.assert_allclose(out["input_values"][i], ref[f"input5s_{i}"], atol=TOL)


def test_files_and_records(fe, ref, data_dir):
    """Paths through read_ecg: PTB-XL 500 and 100 Hz (AVR spelling) and PTB at 1000 Hz with 15 leads."""
    root = data_dir.parent.parent
    paths = [root / str(ref[f"source_{i}"]) for i in (0, 3, 5)]
    out = fe([read_ecg(p) for p in paths])
    for row, i in enumerate((0, 3, 5)):
        np.testing.assert_allclose(out["input_values"][row], ref[f"input5s_{i}"], atol=TOL)
    record = read_ecg(paths[2])  # lower-case names, Frank vx/vy/vz dropped
    assert record.lead_names[-3:] == ["vx", "vy", "vz"]
    np.testing.assert_allclose(fe(record)["input_values"][0], ref["input5s_5"], atol=TOL)


def test_challenge_mat_matches_released(fe, data_dir):
    record = read_ecg(data_dir / "cinc2021" / "HR06000.mat")
    out = fe(record)["input_values"][0]
    np.testing.assert_allclose(out, released(record.signal, 500), atol=TOL)


def test_input_kinds_agree(fe, ref):
    raw, expected = ref["raw_0"], ref["input5s_0"]
    kinds = [
        fe(torch.from_numpy(raw), sampling_rate=500),
        fe(raw.astype(np.float64), sampling_rate=500),
        fe({"signal": raw, "sampling_rate": 500}),
        fe({"signal": raw[::-1], "sampling_rate": 500, "lead_names": list(STANDARD_LEADS)[::-1]}),
        fe(ECGRecord(raw, 500, list(STANDARD_LEADS))),
        fe(raw[None].repeat(2, axis=0), sampling_rate=500),  # (records, leads, samples)
        fe(raw.tolist(), sampling_rate=500),  # nested lists of numbers
    ]
    for out in kinds:
        np.testing.assert_allclose(out["input_values"][0], expected, atol=TOL)
    assert kinds[5]["input_values"].shape == (2, 6000)


def test_return_tensors_pt(fe, ref):
    out = fe([ref["raw_0"], ref["raw_3"]], sampling_rate=[500, 100], return_tensors="pt")
    assert isinstance(out["input_values"], torch.Tensor) and out["input_values"].dtype == torch.float32
    assert out["input_values"].shape == (2, 6000) and out["attention_mask"].shape == (2, 6000)
    assert set(out.keys()) == {"input_values", "attention_mask"}  # exactly the model's inputs


# ---------------------------------------------------------------------------------------------- leads


def test_lead_names_any_case_and_order(fe, ref):
    raw = ref["raw_0"]
    order = np.random.default_rng(0).permutation(12)
    spelled = ["I", "II", "III", "AVR", "avl", "aVF", "v1", "V2", "V3", "V4", "V5", "V6"]
    out = fe(raw[order], sampling_rate=500, lead_names=[spelled[k] for k in order])
    np.testing.assert_allclose(out["input_values"][0], ref["input5s_0"], atol=TOL)
    # extra leads are dropped
    extra = np.concatenate([raw, raw[:3] * 0.5])
    out = fe(extra, sampling_rate=500, lead_names=spelled + ["vx", "vy", "vz"])
    np.testing.assert_allclose(out["input_values"][0], ref["input5s_0"], atol=TOL)


def test_normalize_lead_name():
    assert normalize_lead_name("AVR") == "aVR" and normalize_lead_name(" lead_avl ") == "aVL"
    assert normalize_lead_name("MLII") == "II" and normalize_lead_name("v6") == "V6"
    assert normalize_lead_name("Lead I (Einthoven)") == "I" and normalize_lead_name("Lead aVF") == "aVF"
    assert normalize_lead_name("vx") is None


def test_missing_leads_mitbih(fe, data_dir):
    record = read_ecg(data_dir / "long" / "mitdb_100" / "100")  # MLII, V5 at 360 Hz, 30 min
    with pytest.raises(ValueError, match=r"lacks the leads \['I', 'III', 'aVR'.*missing_leads='zero'"):
        fe(record, missing_leads="raise")
    out = fe(record)  # the one default (hubert_ecg.leads.DEFAULT_MISSING_LEADS): zero-filled
    np.testing.assert_array_equal(out["input_values"], fe(record, missing_leads="zero")["input_values"])
    mask = np.zeros(12, dtype=bool)
    mask[[1, 10]] = True  # II (from MLII) and V5
    rows, present = map_leads(record.lead_names, 2, missing_leads="zero")
    np.testing.assert_array_equal(present, mask)
    assert rows[1] == 0 and rows[10] == 1 and (rows[~mask] == -1).all()
    values = out["input_values"][0].reshape(12, 500)
    assert np.isfinite(values).all()
    # absent leads are zero (the decimation filter only bleeds into the first/last samples next to a present lead)
    assert np.abs(values[5, 50:450]).max() < 1e-6 and np.abs(values[0, :450]).max() < 1e-6
    assert np.abs(values[1]).max() > 0.05 and np.abs(values[10]).max() > 0.05


def test_missing_leads_values_match_released(fe, data_dir):
    record = read_ecg(data_dir / "long" / "mitdb_100" / "100")
    short = ECGRecord(record.signal[:, : 360 * 12], 360, record.lead_names)  # 12 s keeps the test fast
    out = fe(short, missing_leads="zero")["input_values"][0]
    leads = np.zeros((12, 360 * 12))
    leads[1], leads[10] = short.signal
    n = int(leads.shape[1] * 500 / 360)
    taps = scipy.signal.firwin(151, [0.05, 47], pass_zero=False, fs=500)
    scaled = np.zeros((12, 2500))
    for k in (1, 10):
        x = scipy.signal.filtfilt(taps, 1.0, scipy.signal.resample(leads[k], n))
        scaled[k] = (2 * (x - x.min()) / (x.max() - x.min() + 1e-8) - 1)[:2500]
    np.testing.assert_allclose(out, scipy.signal.decimate(scaled.reshape(-1), 5), atol=TOL)


def test_ptb_missing_leads_error_names_them(fe, data_dir):
    record = read_ecg(data_dir / "long" / "ptbdb_s0010_re" / "s0010_re")
    subset = ECGRecord(record.signal[[0, 1, 12]], record.sampling_rate, ["i", "ii", "vx"])
    with pytest.raises(ValueError, match=r"lacks the leads \['III'"):
        fe(subset, missing_leads="raise")
    out = fe(subset)["input_values"][0].reshape(12, 500)
    assert map_leads(subset.lead_names, 3, missing_leads="zero")[1].tolist() == [True, True] + [False] * 10
    assert np.abs(out[3, 50:450]).max() < 1e-6 and np.abs(out[0]).max() > 0.05


# ---------------------------------------------------------------------------------------------- windows


def test_window_starts_cut_the_filtered_record(fe, ref):
    raw, record500 = ref["raw_5"], ref["record500_5"]  # 38.4 s at 1000 Hz: windows cut after whole-record filtering
    starts = [0.0, 2.5, 33.4]
    out = fe([ref["raw_0"], raw], sampling_rate=[500, 1000], window_starts=[[0.0, 2.5, 5.0], starts])
    assert out["input_values"].shape == (6, 6000)
    np.testing.assert_allclose(out["input_values"][0], ref["input5s_0"], atol=TOL)
    np.testing.assert_allclose(out["input_values"][3], ref["input5s_5"], atol=TOL)
    for row, start in zip((4, 5), starts[1:]):
        s = int(round(start * 500))
        expected = scipy.signal.decimate(record500[:, s : s + 2500].reshape(-1), 5)
        np.testing.assert_allclose(out["input_values"][row], expected, atol=TOL)
    with pytest.raises(ValueError, match=r"ecg\[1\]: \[36.0\] s lie outside \[0, 33.4\] s"):
        fe([ref["raw_0"], raw], sampling_rate=[500, 1000], window_starts=[[0.0], [36.0]])
    with pytest.raises(ValueError, match="one sequence of start times"):
        fe([ref["raw_0"], raw], sampling_rate=[500, 1000], window_starts=[0.0, 5.0, 1.0])


@pytest.mark.parametrize("rate", [500, 250])
def test_long_records_stream_with_the_same_numbers(fe, ref, monkeypatch, rate):
    """Records above STREAM_SAMPLES are filtered piece by piece (two passes); the numbers do not change."""
    raw = np.tile(ref["raw_0"], (1, 30))[:, : 30 * 5000 * rate // 500]  # 300 s
    raw[3, 12345:12400] = np.nan  # missing samples in a piece boundary's neighbourhood too
    raw[7, 131000:131200] = np.nan
    starts = [0.0, 3.3, 260.1, 262.0, 295.0]
    whole = fe(raw, sampling_rate=rate, window_starts=starts, pad_to_window=True)
    monkeypatch.setattr(processing, "STREAM_SAMPLES", 10_000)
    streamed = fe(raw, sampling_rate=rate, window_starts=starts, pad_to_window=True)
    np.testing.assert_allclose(streamed["input_values"], whole["input_values"], atol=2e-6)
    np.testing.assert_array_equal(streamed["attention_mask"], whole["attention_mask"])
    blocks = list(fe.iter_windows(raw, window_starts=starts, batch_windows=2, sampling_rate=rate, pad_to_window=True))
    assert [len(b["input_values"]) for b in blocks] == [2, 2, 1]
    np.testing.assert_allclose(np.concatenate([b["input_values"] for b in blocks]), whole["input_values"], atol=2e-6)


def test_short_record_needs_padding(fe, ref):
    raw = ref["raw_0"][:, :1500]  # 3 s
    with pytest.raises(ValueError, match="3 s, shorter than the 5 s window.*pad_to_window=True"):
        fe(raw, sampling_rate=500)
    out = fe(raw, sampling_rate=500, pad_to_window=True)
    mask = out["attention_mask"][0].reshape(12, 500)
    assert (mask[:, :300] == 1).all() and (mask[:, 300:] == 0).all()
    np.testing.assert_allclose(out["input_values"][0], released(raw, 500, slice(0, 1500)), atol=TOL)


# ---------------------------------------------------------------------------------------------- edge cases


def test_flat_lead_zero_record_and_inf(fe, ref):
    raw = ref["raw_0"].copy()
    raw[4] = 0.37  # flat lead: max == min
    out = fe(raw, sampling_rate=500)["input_values"][0].reshape(12, 500)
    assert np.isfinite(out).all()
    np.testing.assert_allclose(out[4, 50:450], -1.0 * 0.9943, atol=1e-2)  # -1 through the decimation filter
    np.testing.assert_allclose(out.reshape(-1), released(raw, 500), atol=TOL)
    zero = fe(np.zeros((12, 5000)), sampling_rate=500)["input_values"]
    assert np.isfinite(zero).all() and np.ptp(zero[0, 100:-100]) < 1e-5
    nan = fe(np.full((12, 5000), np.nan), sampling_rate=500)["input_values"]
    assert np.isfinite(nan).all() and np.abs(nan).max() == 0.0
    raw = ref["raw_0"].copy()
    raw[2, 10] = -np.inf
    assert np.isfinite(fe(raw, sampling_rate=500)["input_values"]).all()


@pytest.mark.parametrize(
    "ecg, kwargs, message",
    [
        (np.zeros(5000), {"sampling_rate": 500}, r"1 dimensions.*\(leads, samples\)"),
        (np.zeros((1, 2, 12, 5000)), {"sampling_rate": 500}, r"4 dimensions"),
        (np.array([["a"] * 5000] * 12), {"sampling_rate": 500}, r"dtype <U1.*real numbers"),
        (np.zeros((12, 5000), dtype=complex), {"sampling_rate": 500}, "complex"),
        (np.zeros((12, 0)), {"sampling_rate": 500}, "empty"),
        (np.zeros((12, 5000)), {}, "sampling_rate is required"),
        (np.zeros((12, 5000)), {"sampling_rate": -5}, "positive number of Hz"),
        (np.zeros((3, 5000)), {"sampling_rate": 500}, "3 leads but no lead_names"),
        (np.zeros((12, 5000)), {"sampling_rate": 500, "lead_names": ["I", "II"]}, "2 names but ecg has 12"),
        (np.zeros((5000, 12)), {"sampling_rate": 500, "lead_names": list(STANDARD_LEADS)}, "transposed"),
        (np.zeros((2, 5000)), {"sampling_rate": 500, "lead_names": ["II", "MLII"]}, "both map to II"),
        (np.zeros((2, 5000)), {"sampling_rate": 500, "lead_names": ["vx", "vy"], "missing_leads": "zero"}, "none of"),
        (np.zeros((12, 5000)), {"sampling_rate": 500, "window_starts": [-1.0]}, r"\[-1.0\] s lie outside"),
        (np.zeros((12, 5000)), {"sampling_rate": 500, "window_starts": [5.5]}, "pad_to_window=True allows"),
        (np.zeros((12, 5000)), {"sampling_rate": 500, "missing_leads": "drop"}, "missing_leads must be"),
        (np.zeros((12, 5000)), {"sampling_rate": 500, "return_tensors": "tf"}, "return_tensors must be"),
        (np.zeros((12, 5000)), {"sampling_rate": [500, 250]}, "2 entries for 1 ECGs"),
        ("not/a/file", {}, "file name.*hubert_ecg.read_ecg"),
        (object(), {"sampling_rate": 500}, "has type object"),
        ([], {"sampling_rate": 500}, "empty list"),
        (np.random.default_rng(0).standard_normal((12, 5000)) * 1e37, {"sampling_rate": 500}, "overflowed"),
        ({"signal": np.zeros((12, 5000))}, {}, "sampling_rate is required"),
        ({"sampling_rate": 500}, {}, "without a 'signal'"),
        (np.zeros((12, 5000)), {"sampling_rate": "fast"}, "sampling_rate must be a number"),
    ],
)
def test_bad_inputs(fe, ecg, kwargs, message):
    with pytest.raises(ValueError, match=message):
        fe(ecg, **kwargs)


def test_record_rate_conflict(fe, ref):
    with pytest.raises(ValueError, match="disagrees with the ECGRecord"):
        fe(ECGRecord(ref["raw_0"], 500, list(STANDARD_LEADS)), sampling_rate=250)


def test_constructor_validation():
    with pytest.raises(ValueError, match="integer multiple"):
        HuBERTECGFeatureExtractor(sampling_rate=100, target_sampling_rate=250)
    with pytest.raises(ValueError, match="lowcut < highcut"):
        HuBERTECGFeatureExtractor(highcut=300)
    with pytest.raises(ValueError, match="lead_order"):
        HuBERTECGFeatureExtractor(lead_order=["I", "I"])


# ---------------------------------------------------------------------------------------------- kernels, saving


def test_kernels_match_scipy():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((20, 3000)).cumsum(axis=1) + 50.0  # drifting, with an offset
    taps = scipy.signal.firwin(151, [0.05, 47], pass_zero=False, fs=500)
    expected = scipy.signal.filtfilt(taps, 1.0, x, axis=-1)
    expected -= x.mean(axis=-1, keepdims=True) * taps.sum() ** 2  # the constant the kernel leaves out
    filtered, lo, hi = _zero_phase_fir([x[:7], x[7:]], 500.0, 0.05, 47.0, dtype=np.float64)
    np.testing.assert_allclose(filtered, expected, atol=1e-9 * np.abs(expected).max())
    np.testing.assert_allclose(lo, expected.min(axis=-1), atol=1e-8)
    y = rng.uniform(-1, 1, (8, 30000))
    np.testing.assert_allclose(_decimate(y, 5), scipy.signal.decimate(y, 5, axis=-1), atol=5e-6)


def test_save_and_auto_load(tmp_path, ref):
    from transformers import AutoFeatureExtractor

    from hubert_ecg.configuration import HuBERTECGConfig

    AutoFeatureExtractor.register(HuBERTECGConfig, HuBERTECGFeatureExtractor, exist_ok=True)
    fe = HuBERTECGFeatureExtractor(window_seconds=5.0, padding_value=0.0)
    fe.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "preprocessor_config.json").read_text())
    assert saved["feature_extractor_type"] == "HuBERTECGFeatureExtractor"
    assert saved["sampling_rate"] == 100 and saved["target_sampling_rate"] == 500
    assert saved["lowcut"] == 0.05 and saved["highcut"] == 47.0 and saved["lead_order"] == list(STANDARD_LEADS)
    loaded = AutoFeatureExtractor.from_pretrained(tmp_path)
    assert isinstance(loaded, HuBERTECGFeatureExtractor)
    assert loaded.to_dict() == fe.to_dict()
    np.testing.assert_allclose(loaded(ref["raw_0"], sampling_rate=500)["input_values"][0], ref["input5s_0"], atol=TOL)
    assert fe.input_length == 6000
