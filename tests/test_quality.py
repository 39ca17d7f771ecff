"""Signal quality and short records before scoring (hubert_ecg.windows), on real records with leads zeroed, clipped,
flattened, and cut short; and what the pipeline and `hubert-ecg predict` say about them."""

import csv
import json
import logging

import numpy as np
import pytest
import torch
import wfdb

import hubert_ecg
from hubert_ecg import HuBERTECGConfig, HuBERTECGFeatureExtractor, HuBERTECGForSequenceClassification, read_ecg
from hubert_ecg_cli.predict import main as predict_main
from hubert_ecg.windows import FLAT_PEAK_TO_PEAK_MV, MIN_DURATION, SATURATION_SECONDS, check_leads, record_windows

TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, conv_dim=[32] * 5,
            num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4, classifier_proj_size=32)
LABELS = ["NORM", "MI", "STTC", "CD", "HYP"]


@pytest.fixture(scope="module")
def fe():
    return HuBERTECGFeatureExtractor()


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny_quality")
    torch.manual_seed(0)
    config = HuBERTECGConfig.from_preset("small", **TINY, id2label=dict(enumerate(LABELS)),
                                         label2id={n: i for i, n in enumerate(LABELS)},
                                         problem_type="multi_label_classification")
    model = HuBERTECGForSequenceClassification(config)
    with torch.no_grad():
        model.classifier.weight.normal_(0, 1.0)
    model.save_pretrained(path)
    HuBERTECGFeatureExtractor().save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def clf(tiny_dir):
    from transformers import pipeline

    return pipeline("ecg-classification", model=str(tiny_dir))


@pytest.fixture(scope="module")
def record(data_dir):
    return read_ecg(data_dir / "ptbxl" / "records500" / "00000" / "00010_hr")  # 12 leads, 500 Hz, 10 s


def _write(record, signal, folder, name):
    """A WFDB record (format 16, 1 uV steps) of ``signal`` (leads, samples) in mV; returns its path."""
    wfdb.wrsamp(name, fs=record.sampling_rate, units=["mV"] * signal.shape[0], sig_name=record.lead_names,
                p_signal=np.ascontiguousarray(signal.T, dtype=np.float64), fmt=["16"] * signal.shape[0],
                adc_gain=[1000.0] * signal.shape[0], baseline=[0] * signal.shape[0], write_dir=str(folder))
    return str(folder / name)


def test_clean_real_records_have_no_flag(fe, data_dir):
    for path in sorted((data_dir / "ptbxl" / "records500" / "00000").glob("*.hea"))[:20]:
        plan = record_windows(str(path), fe, window="all")
        assert plan.flags == [] and plan.lead_mask.all() and not plan.short


def test_flat_leads_are_zero_filled_as_missing(fe, clf, record, tmp_path, caplog):
    signal = record.signal.copy()
    signal[6] = 0.0  # V1 recorded at 0 mV
    signal[8] = 0.37  # V3 a constant offset
    signal[10] = 0.37 + 0.01 * np.sin(np.arange(signal.shape[1]) / 50)  # V5 flattened: 0.02 mV peak-to-peak
    path = _write(record, signal, tmp_path, "flat3")
    with caplog.at_level(logging.WARNING):
        plan = record_windows(path, fe, window="all")
    assert plan.flat_leads == ["V1", "V3", "V5"] and plan.saturated_leads == []
    assert plan.lead_mask.tolist() == [True] * 6 + [False, True, False, True, False, True]
    assert plan.missing_leads == "zero" and plan.record.num_leads == 9
    assert f"{path}: flat leads V1, V3, V5 (peak-to-peak below {FLAT_PEAK_TO_PEAK_MV:g} mV)" in caplog.text
    # scored exactly as the record without those leads, zero-filled
    kept = [i for i in range(12) if i not in (6, 8, 10)]
    without = {"signal": record.signal[kept], "sampling_rate": 500.0,
               "lead_names": [record.lead_names[i] for i in kept]}
    got = clf(path, return_details=True)
    want = clf(without, missing_leads="zero")
    assert got["flags"] == plan.flags and got["windows"] == 2
    np.testing.assert_allclose([p["score"] for p in got["predictions"]], [p["score"] for p in want], atol=2e-5)
    assert [p["label"] for p in clf(path)] == [p["label"] for p in got["predictions"]]  # default: the plain list


def test_a_finding_is_logged_once_per_file_whatever_its_spelling(clf, record, tmp_path, caplog, monkeypatch):
    """Three spellings of one record in one call: three rows, each with its flags, and the finding logged once; a
    second call logs it again (once per call)."""
    signal = record.signal.copy()
    signal[6] = 0.0  # V1 flat
    path = _write(record, signal, tmp_path, "flat1")
    monkeypatch.chdir(tmp_path)
    spellings = [path, path + ".hea", "./flat1"]
    for _ in range(2):
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            details = clf.predict_details(spellings)
        assert [d["name"] for d in details] == spellings
        assert all(d["flags"] and "flat leads V1" in d["flags"][0] for d in details)
        assert caplog.text.count("flat leads V1") == 1


def test_real_record_with_flat_leads(fe, data_dir):
    # a CinC 2021 (Ningbo) record whose V2, V4 and V6 are 0 mV throughout
    plan = record_windows(str(data_dir / "cinc2021" / "JS20004"), fe)
    assert plan.flat_leads == ["V2", "V4", "V6"] and plan.lead_mask.sum() == 9


def test_all_flat_record_is_refused(clf, record, tmp_path, tiny_dir, capsys):
    path = _write(record, np.zeros_like(record.signal), tmp_path, "all_flat")  # every lead 0 mV, 10 s
    with pytest.raises(ValueError, match=rf"^{path}: every lead is flat .*nothing to score"):
        clf(path)
    assert predict_main([path, "--model", str(tiny_dir), "--format", "json"]) == 1
    (row,) = json.loads(capsys.readouterr().out)
    assert row["predictions"] is None and row["windows"] == 0 and row["error"].startswith("every lead is flat")


def test_saturated_leads_are_scored_and_reported(fe, clf, record, tmp_path, data_dir):
    signal = record.signal.copy()
    top = signal[1].max()
    signal[1, 2000:2300] = top  # lead II held at its maximum for 0.6 s: clipped
    path = _write(record, signal, tmp_path, "clipped")
    plan = record_windows(path, fe)
    assert plan.saturated_leads == ["II"] and plan.flat_leads == [] and plan.lead_mask.all()
    assert "saturated leads II" in plan.flags[0]
    assert clf(path, return_details=True)["predictions"] is not None
    # clipping shorter than SATURATION_SECONDS is not reported
    signal[1, 2000:2300] = record.signal[1, 2000:2300]
    signal[1, 2000 : 2000 + int(SATURATION_SECONDS * 500) - 5] = top
    assert record_windows(_write(record, signal, tmp_path, "brief"), fe).saturated_leads == []
    # a real CPSC2021 Holter excerpt whose lead II sits at the 10.2 mV rail for 0.8 s
    plan = record_windows(str(data_dir / "long" / "cpsc2021" / "data_8_3"), fe, window="all", missing_leads="zero")
    assert plan.saturated_leads == ["II"]


def test_check_leads_reads_lazy_records_piece_by_piece(record, tmp_path, monkeypatch):
    from hubert_ecg import io, windows

    signal = record.signal.copy()
    signal[3] = -0.2
    signal[7, 1000:1200] = signal[7].min()
    path = _write(record, signal, tmp_path, "lazy")
    monkeypatch.setattr(io, "LAZY_SAMPLES", 1000)
    monkeypatch.setattr(windows, "_QUALITY_PIECE", 700)
    lazy = io.read_ecg(path, lazy=True)
    assert isinstance(lazy.signal, io.LazySignal)
    quality = check_leads(lazy.signal, 500.0, np.arange(12))
    eager = check_leads(read_ecg(path).signal, 500.0, np.arange(12))
    np.testing.assert_array_equal(quality.flat, eager.flat)
    assert np.flatnonzero(quality.flat).tolist() == [3] and np.flatnonzero(quality.saturated).tolist() == [7]
    np.testing.assert_allclose(quality.peak_to_peak, eager.peak_to_peak)
    # the lazy record without its flat lead stays lazy, streamed piece by piece: the same windows as in memory
    from hubert_ecg import processing

    fe = HuBERTECGFeatureExtractor()
    in_memory = np.concatenate([b["input_values"] for b in record_windows(
        {"signal": signal, "sampling_rate": 500.0, "lead_names": record.lead_names}, fe, window="all",
        stride_seconds=1.0).features(fe)])
    monkeypatch.setattr(processing, "STREAM_SAMPLES", 1000)
    plan = record_windows(path, fe, window="all", stride_seconds=1.0)
    assert isinstance(plan.record.signal, io.LazySignal) and plan.record.num_leads == 11 and plan.flat_leads == ["aVR"]
    streamed = np.concatenate([b["input_values"] for b in plan.features(fe, batch_windows=2)])
    np.testing.assert_allclose(streamed, in_memory, atol=2e-6)


def test_short_records_padded_down_to_the_minimum(fe, clf, record, tmp_path, tiny_dir, capsys):
    three = _write(record, record.signal[:, :1500], tmp_path, "three_s")  # 3 s of a real record
    two = _write(record, record.signal[:, :1000], tmp_path, "two_s")
    plan = record_windows(three, fe, window="all")
    assert plan.short and plan.pad_to_window and len(plan) == 1 and plan.duration == 3.0
    assert plan.flags == ["short record: 3 s, zero-padded to the 5 s window"]
    (block,) = plan.features(fe)
    assert block["attention_mask"].reshape(12, 500)[:, :300].all() and not block["attention_mask"].reshape(12, 500)[:, 300:].any()
    got = clf(three, return_details=True)
    assert got["windows"] == 1 and got["flags"] == plan.flags
    with pytest.raises(ValueError, match=rf"^{two}: the record lasts 2 s, shorter than the minimum of {MIN_DURATION:g} s"):
        clf(two)
    assert clf(two, min_duration=1.5)  # the pipeline's min_duration, as the CLI's --min-duration

    assert predict_main([three, two, "--model", str(tiny_dir), "--format", "csv"]) == 1
    header, *rows = csv.reader(capsys.readouterr().out.splitlines())
    assert header == ["file", "windows", *[f"{k}_{r}" for r in range(1, 6) for k in ("label", "score")], "flags", "error"]
    assert rows[0][:2] == [three, "1"] and rows[0][-2:] == ["short record: 3 s, zero-padded to the 5 s window", ""]
    assert sorted(rows[0][2:12:2]) == sorted(LABELS)
    assert rows[1][:12] == [two, "0"] + [""] * 10 and rows[1][-1].startswith(
        "the record lasts 2 s, shorter than the minimum of 2.5 s")
    assert predict_main([three, two, "--model", str(tiny_dir), "--min-duration", "2"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[1].endswith("[short record: 3 s, zero-padded to the 5 s window]")
    assert table[2].endswith("[short record: 2 s, zero-padded to the 5 s window]")


def test_demo_model_no_longer_scores_a_flat_line(record, tmp_path, capsys):
    """The issue's case: a 10 s record with every lead at 0 mV was scored NORM 0.930; it is refused, exit 1."""
    path = _write(record, np.zeros_like(record.signal), tmp_path, "flatline")
    assert predict_main([path]) == 1
    captured = capsys.readouterr()
    assert "not scored: every lead is flat" in captured.out and "skipped 1 of 1" in captured.err
    assert hubert_ecg.demo_model_path()  # the default model was the one refused with
