"""hubert_ecg.windows: reading records, mapping leads and choosing windows, on real records."""

import numpy as np
import pytest

from hubert_ecg import read_ecg
from hubert_ecg.processing import HuBERTECGFeatureExtractor
from hubert_ecg.windows import choose_window_starts, load_record, record_windows


@pytest.fixture(scope="module")
def fe():
    return HuBERTECGFeatureExtractor()


def test_window_rules(fe):
    # 38.4 s at 1000 Hz = 19200 samples at 500 Hz
    assert choose_window_starts(38400, 1000, fe).tolist() == [0.0]
    np.testing.assert_allclose(choose_window_starts(38400, 1000, fe, "all"), np.arange(7) * 5.0)
    np.testing.assert_allclose(choose_window_starts(38400, 1000, fe, "all", stride_seconds=2.5), np.arange(14) * 2.5)
    # with padding, a last window covers the remainder 35-38.4 s
    np.testing.assert_allclose(choose_window_starts(38400, 1000, fe, "all", pad_to_window=True), np.arange(8) * 5.0)
    random = choose_window_starts(38400, 1000, fe, "random", num_windows=50, rng=3)
    np.testing.assert_array_equal(random, choose_window_starts(38400, 1000, fe, "random", num_windows=50, rng=3))
    assert random.min() >= 0 and random.max() <= 33.4 and len(set(random.tolist())) > 40
    np.testing.assert_allclose(random * 500, np.round(random * 500), atol=1e-6)  # whole samples at 500 Hz
    with pytest.raises(ValueError, match="shorter than the 5 s window; pass pad_to_window=True"):
        choose_window_starts(1000, 500, fe)
    assert choose_window_starts(1000, 500, fe, "all", pad_to_window=True).tolist() == [0.0]
    with pytest.raises(ValueError, match="window must be one of"):
        choose_window_starts(38400, 1000, fe, "middle")


def test_two_lead_record_as_pretraining_takes_it(fe, data_dir):
    path = data_dir / "long" / "mitdb_100" / "100"  # MLII, V5 at 360 Hz, 30 min
    with pytest.raises(ValueError, match=r"^.*100: the record lacks the leads \['I', 'III'.*missing_leads='zero'"):
        record_windows(str(path), fe, window="all", missing_leads="raise")
    plan = record_windows(str(path), fe, window="all")  # the default: zero-filled
    assert plan.name == str(path) and len(plan) == 361 and plan.lead_mask.sum() == 2  # 1805.6 s
    assert plan.lead_mask[1] and plan.lead_mask[10]  # II (from MLII) and V5
    blocks = list(plan.features(fe, batch_windows=100))
    assert [len(b["input_values"]) for b in blocks] == [100, 100, 100, 61]
    first = fe(plan.record, window_starts=plan.window_starts[:3], missing_leads="zero")["input_values"]
    np.testing.assert_allclose(blocks[0]["input_values"][:3], first, atol=2e-6)


def test_inputs_and_errors_name_the_record(fe, data_dir, tmp_path):
    path = data_dir / "ptbxl" / "records500" / "00000" / "00010_hr"
    record = read_ecg(path)
    assert load_record(str(path)).signal.shape == record.signal.shape
    assert load_record(record) is record
    from_dict = load_record({"signal": record.signal, "sampling_rate": 500})
    assert from_dict.lead_names[3] == "aVR"
    with pytest.raises(ValueError, match="sampling_rate is required"):
        load_record(record.signal)
    with pytest.raises(ValueError, match="2 leads needs lead_names"):
        load_record(record.signal[:2], sampling_rate=500)
    with pytest.raises(ValueError, match=r"^.*nothing_here.*not found"):
        record_windows(str(tmp_path / "nothing_here"), fe)
    short = {"signal": record.signal[:, :1000], "sampling_rate": 500, "record_name": "short_one"}
    with pytest.raises(ValueError, match=r"^short_one: the record lasts 2 s, shorter than the minimum of 2.5 s"):
        record_windows(short, fe)
    with pytest.raises(ValueError, match="^short_one: the record lasts 2 s, shorter than the 5 s window"):
        record_windows(short, fe, min_duration=None)  # the window rule alone
    assert len(record_windows(short, fe, min_duration=None, pad_to_window=True)) == 1
