"""ECGClassificationPipeline and hubert-ecg predict on real records."""

import json

import numpy as np
import pytest
import torch

import hubert_ecg
from hubert_ecg import HuBERTECGConfig, HuBERTECGFeatureExtractor, HuBERTECGForSequenceClassification, read_ecg
from hubert_ecg.pipelines import ECGClassificationPipeline
from hubert_ecg_cli.predict import main as predict_main
from hubert_ecg.windows import choose_window_starts

TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, conv_dim=[32] * 5,
            num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4, classifier_proj_size=32)
LABELS = ["NORM", "MI", "STTC", "CD", "HYP"]


def _save_tiny(path, problem_type="multi_label_classification", labels=LABELS):
    torch.manual_seed(0)
    config = HuBERTECGConfig.from_preset(
        "small", **TINY, id2label=dict(enumerate(labels)), label2id={n: i for i, n in enumerate(labels)},
        problem_type=problem_type,
    )
    model = HuBERTECGForSequenceClassification(config)
    with torch.no_grad():
        model.classifier.weight.normal_(0, 1.0)  # spread the scores
    model.save_pretrained(path)
    HuBERTECGFeatureExtractor().save_pretrained(path)
    return model.eval()


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny")
    _save_tiny(path)
    return path


@pytest.fixture(scope="module")
def clf(tiny_dir):
    from transformers import pipeline

    return pipeline("ecg-classification", model=str(tiny_dir))


@pytest.fixture(scope="module")
def records(data_dir):
    folder = data_dir / "ptbxl" / "records500" / "00000"
    return [str(folder / "00010_hr"), str(folder / "00008_hr")]


def test_pipeline_is_registered(clf):
    assert isinstance(clf, ECGClassificationPipeline)
    assert isinstance(clf.feature_extractor, HuBERTECGFeatureExtractor)  # loaded via AutoFeatureExtractor


def test_pipeline_equals_model_called_directly(clf, records):
    record = read_ecg(records[0])
    features = clf.feature_extractor(record, window_starts=[0.0, 5.0], return_tensors="pt")
    assert features["input_values"].shape == (2, 6000)  # 10 s -> two 5 s windows
    with torch.no_grad():
        logits = clf.model(input_values=features["input_values"]).logits
    expected = torch.sigmoid(logits).mean(dim=0).numpy()
    result = clf(records[0])
    assert [r["label"] for r in result] == [LABELS[i] for i in np.argsort(-expected, kind="stable")]
    np.testing.assert_allclose([r["score"] for r in result], np.sort(expected)[::-1], rtol=1e-5, atol=1e-6)
    scores = [r["score"] for r in result]
    assert scores == sorted(scores, reverse=True)
    maxed = {r["label"]: r["score"] for r in clf(records[0], aggregation="max")}
    np.testing.assert_allclose([maxed[n] for n in LABELS], torch.sigmoid(logits).max(dim=0).values.numpy(), rtol=1e-5)


def _by_hand(clf, record, starts, aggregation="mean"):
    """Scores of ``record`` computed without the pipeline: feature extractor, model, sigmoid, aggregation."""
    features = clf.feature_extractor(record, window_starts=starts, return_tensors="pt")
    with torch.no_grad():
        probs = torch.sigmoid(clf.model(input_values=features["input_values"]).logits).numpy()
    return probs.max(axis=0) if aggregation == "max" else probs.mean(axis=0)


def _as_vector(result):
    return np.array([{r["label"]: r["score"] for r in result}[n] for n in LABELS])


class _Counting:
    """Wraps the pipeline's model to record the batch size of every forward pass."""

    def __init__(self, clf):
        self.clf, self.sizes, self.forward = clf, [], clf.model.forward

    def __enter__(self):
        def forward(*args, **kwargs):
            self.sizes.append(kwargs["input_values"].shape[0])
            return self.forward(*args, **kwargs)

        self.clf.model.forward = forward
        return self.sizes

    def __exit__(self, *exc):
        del self.clf.model.forward


def test_pipeline_input_kinds_and_batching(clf, records):
    record = read_ecg(records[0])
    by_path = clf(records[0])
    as_dict = clf({"signal": record.signal, "sampling_rate": record.sampling_rate, "lead_names": record.lead_names})
    by_record = clf(record)
    for other in (as_dict, by_record):
        assert [r["label"] for r in other] == [r["label"] for r in by_path]
        np.testing.assert_allclose([r["score"] for r in other], [r["score"] for r in by_path], rtol=1e-5)
    top2 = clf(records, batch_size=2, top_k=2)[1]
    assert [r["label"] for r in top2] == [r["label"] for r in clf(records[1], top_k=2)]
    assert len(clf(records[0], top_k=None)) == 5 and len(clf(records[0], top_k=1)) == 1


def test_batching_windows_across_records_gives_the_same_scores(clf, records, data_dir):
    long = str(data_dir / "long" / "ptbdb_s0010_re" / "s0010_re")  # 38.4 s: 7 windows
    inputs = [records[0], long, records[1]]  # 2 + 7 + 2 = 11 windows
    one_by_one = [clf(x) for x in inputs]
    with _Counting(clf) as sizes:
        batched = clf(inputs, batch_size=4)
    assert sizes == [4, 4, 3]  # batch_size counts windows, across record boundaries
    for a, b in zip(one_by_one, batched):
        np.testing.assert_allclose(_as_vector(b), _as_vector(a), rtol=1e-5, atol=1e-6)


def test_generator_and_datasets_inputs(clf, records):
    from datasets import Dataset
    from transformers.pipelines.pt_utils import KeyDataset

    expected = [_as_vector(clf(r)) for r in records]
    from_generator = list(clf((r for r in records), batch_size=3))
    signals = [read_ecg(r) for r in records]
    dataset = Dataset.from_dict({"signal": [r.signal for r in signals], "sampling_rate": [500.0, 500.0],
                                 "path": records})
    from_dataset = list(clf(dataset, batch_size=3))
    from_key_dataset = list(clf(KeyDataset(dataset, "path"), batch_size=3, num_workers=1))
    for outputs in (from_generator, from_dataset, from_key_dataset):
        assert len(outputs) == 2
        for got, want in zip(outputs, expected):
            np.testing.assert_allclose(_as_vector(got), want, rtol=1e-5, atol=1e-6)


def test_pipeline_long_record_windows_and_aggregate(clf, data_dir):
    # PTB Diagnostic record: 1000 Hz, 38.4 s, 12 standard + 3 Frank leads -> 7 windows of 5 s (the last 3.4 s left)
    path = data_dir / "long" / "ptbdb_s0010_re" / "s0010_re"
    record = read_ecg(path)
    starts = choose_window_starts(record.signal.shape[1], record.sampling_rate, clf.feature_extractor, "all")
    np.testing.assert_allclose(starts, np.arange(7) * 5.0)
    for aggregation in ("mean", "max"):
        with _Counting(clf) as sizes:
            result = clf(str(path), aggregation=aggregation, batch_size=3)
        assert sum(sizes) == 7 and sizes == [3, 3, 1]
        np.testing.assert_allclose(_as_vector(result), _by_hand(clf, record, starts, aggregation), rtol=1e-5)
    # overlapping windows: stride 2.5 s -> 14 windows
    with _Counting(clf) as sizes:
        result = clf(str(path), stride_seconds=2.5, batch_size=64)
    assert sizes == [14]
    np.testing.assert_allclose(_as_vector(result), _by_hand(clf, record, np.arange(14) * 2.5), rtol=1e-5)


def test_pipeline_bf16_dtype(tiny_dir, records):
    from transformers import pipeline

    clf16 = pipeline("ecg-classification", model=str(tiny_dir), dtype=torch.bfloat16)
    assert clf16.model.dtype == torch.bfloat16
    clf32 = pipeline("ecg-classification", model=str(tiny_dir))
    np.testing.assert_allclose(_as_vector(clf16(records[0])), _as_vector(clf32(records[0])), atol=0.02)


def test_pipeline_errors(clf, records):
    record = read_ecg(records[0])
    with pytest.raises(ValueError, match="shorter than"):
        clf({"signal": record.signal[:, :1000], "sampling_rate": 500.0})  # 2 s
    with pytest.raises(ValueError, match="not found"):
        clf("no/such/record")
    with pytest.raises(ValueError, match="top_k"):
        clf(records[0], top_k=0)
    with pytest.raises(ValueError, match=r"lacks the leads \['III',"):  # explicit: missing leads are an error
        clf({"signal": record.signal[:2], "sampling_rate": 500.0, "lead_names": ["I", "II"]}, missing_leads="raise")


def test_single_label_softmax(tmp_path, records):
    from transformers import pipeline

    _save_tiny(tmp_path, "single_label_classification", ["a", "b", "c"])
    result = pipeline("ecg-classification", model=str(tmp_path))(records[0])
    assert abs(sum(r["score"] for r in result) - 1.0) < 1e-6


def test_predict_cli_formats_and_skips(tiny_dir, records, tmp_path, capsys):
    """Good and bad files mixed: exit 1, one row per input in csv and json (the error of the skipped ones, the
    windows of the scored ones), the good scores undisturbed."""
    import csv

    (tmp_path / "broken.hea").write_text("not a header\n")
    files = [records[0], str(tmp_path / "broken"), records[1], str(tmp_path / "missing")]
    assert predict_main([*files, "--model", str(tiny_dir), "--format", "json", "--top-k", "3"]) == 1
    captured = capsys.readouterr()
    out = json.loads(captured.out)
    assert [o["file"] for o in out] == files
    assert [o["windows"] for o in out] == [2, 0, 2, 0] and [o["flags"] for o in out] == [[]] * 4
    assert out[0]["error"] is None and out[2]["error"] is None and len(out[0]["predictions"]) == 3
    assert out[1]["predictions"] is None and out[1]["error"].startswith("cannot read the WFDB header")
    assert out[3]["error"].startswith("ECG file not found")
    assert "skipped 2 of 4" in captured.err and "broken" in captured.err and "missing" in captured.err
    clf = hubert_ecg.pipelines.load_pipeline(str(tiny_dir))
    for o in (out[0], out[2]):  # the scores of the good files are not disturbed by the bad ones
        alone = clf(o["file"], top_k=3)
        assert [p["label"] for p in o["predictions"]] == [p["label"] for p in alone]
        np.testing.assert_allclose([p["score"] for p in o["predictions"]], [p["score"] for p in alone], rtol=1e-5)
    # a bad file between good ones in one batch of windows
    results, skipped = clf.predict_files([records[0], str(tmp_path / "missing"), records[1]], batch_size=5)
    assert [name for name, _ in results] == records and [name for name, _ in skipped] == [str(tmp_path / "missing")]
    assert "not found" in skipped[0][1]

    assert predict_main([*files, "--model", str(tiny_dir), "--format", "csv"]) == 1
    header, *rows = csv.reader(capsys.readouterr().out.splitlines())
    assert header[:4] == ["file", "windows", "label_1", "score_1"] and header[-2:] == ["flags", "error"]
    assert [r[0] for r in rows] == files and [r[1] for r in rows] == ["2", "0", "2", "0"]
    assert rows[0][-1] == "" and rows[1][-1].startswith("cannot read the WFDB header") and rows[1][2] == ""

    assert predict_main([records[0], "--model", str(tiny_dir)]) == 0
    assert capsys.readouterr().out.startswith("file")
    assert predict_main([records[0], str(tmp_path / "missing"), "--model", str(tiny_dir)]) == 1
    table = capsys.readouterr().out.splitlines()
    assert table[2].split() == [str(tmp_path / "missing"), "not", "scored:", "ECG", "file", "not", "found:",
                                *table[2].split()[7:]]

    assert predict_main([str(tmp_path / "missing"), "--model", str(tiny_dir)]) == 1
    assert "no input could be scored" in capsys.readouterr().err
    assert predict_main([records[0], "--model", str(tmp_path / "no_model_here")]) == 2
    assert "cannot load the model" in capsys.readouterr().err


def test_predict_cli_directories_manifests_and_arrays(tiny_dir, records, data_dir, tmp_path, capsys):
    import shutil

    folder = tmp_path / "folder"
    (folder / "sub").mkdir(parents=True)
    for record, where in zip(records, (folder, folder / "sub")):
        for suffix in (".hea", ".dat"):
            shutil.copy(record + suffix, where)
    record = read_ecg(records[0])
    np.save(tmp_path / "x.npy", record.signal)
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("filename,label\n" + f"{records[1]},1\nx.npy,0\n")  # relative paths: from the manifest
    assert predict_main([str(folder), str(manifest), "--model", str(tiny_dir), "--format", "json",
                         "--sampling-rate", "500"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [o["file"] for o in out] == [str(folder / "00010_hr.hea"), str(folder / "sub" / "00008_hr.hea"),
                                        records[1], str(tmp_path / "x.npy")]
    assert all(o["error"] is None and o["windows"] == 2 for o in out)
    np.testing.assert_allclose([p["score"] for p in out[3]["predictions"]],
                               [p["score"] for p in out[0]["predictions"]], rtol=1e-5)  # the same ECG as .npy

    # a .npy without --sampling_rate: its row says which flag to pass; with 3 leads, --lead_names
    np.save(tmp_path / "three.npy", record.signal[[0, 1, 6]])
    assert predict_main([str(tmp_path / "x.npy"), str(tmp_path / "three.npy"), "--model", str(tiny_dir),
                         "--format", "json"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert "--sampling_rate" in out[0]["error"] and out[1]["error"] is not None
    assert predict_main([str(tmp_path / "three.npy"), "--model", str(tiny_dir), "--format", "json",
                         "--sampling-rate", "500", "--lead-names", "I,II,V1"]) == 0  # 9 leads zero-filled
    row = json.loads(capsys.readouterr().out)[0]
    assert row["error"] is None and row["windows"] == 2
    assert row["flags"] == ["missing leads III, aVR, aVL, aVF, V2, V3, V4, V5, V6: zero-filled"]
    empty = tmp_path / "empty_dir"
    empty.mkdir()
    assert predict_main([str(empty), records[0], "--model", str(tiny_dir), "--format", "json"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert out[0]["error"].startswith("no ECG record under the directory") and out[1]["error"] is None


def test_predict_cli_usage_errors_exit_2(tiny_dir, records, tmp_path, capsys):
    (tmp_path / "bad.csv").write_text("label\n1\n")
    assert predict_main([str(tmp_path / "bad.csv"), "--model", str(tiny_dir)]) == 2
    assert "cannot read the manifest" in capsys.readouterr().err
    (tmp_path / "model.onnx").write_bytes(b"onnx")
    assert predict_main([records[0], "--model", str(tmp_path / "model.onnx")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no config.json beside the graph" in err[0]  # tests/test_onnx_backend.py: real graphs
    for bad in (["--top-k", "0"], ["--min-duration", "-1"], ["--format", "xml"]):
        with pytest.raises(SystemExit) as exit_info:
            predict_main([records[0], "--model", str(tiny_dir), *bad])
        assert exit_info.value.code == 2


def test_predict_cli_with_demo_model_prints_the_readme_table(capsys):
    """The README's first command: its table of predictions for the bundled records, figure by figure."""
    import re
    from pathlib import Path

    try:
        hubert_ecg.demo_model_path()
    except ValueError:
        pytest.skip("demo model not trained yet")
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    block = re.search(r"```\n(file +predictions \(score\)\n.*?)\n```", readme, re.S).group(1)
    expected = [line for line in block.splitlines() if line.startswith("hubert_ecg/demo/records/")]
    assert len(expected) == 6
    files = [line.split()[0] for line in expected]
    root = Path(hubert_ecg.__file__).resolve().parents[1]
    assert predict_main([str(root / f) for f in files]) == 0
    captured = capsys.readouterr()
    assert "demo model" in captured.err and "not a clinical tool" in captured.err
    rows = captured.out.splitlines()[1:]
    footer = [line for line in block.splitlines() if line.startswith("* ")]  # the thresholds' mark, if any
    assert rows[len(expected):] == footer
    assert [row.split()[1:] for row in rows[:len(expected)]] == [line.split()[1:] for line in expected]


def test_cli_router_predict(tiny_dir, records, capsys):
    from hubert_ecg_cli import main

    assert main(["predict", records[0], "--model", str(tiny_dir), "--top-k", "1"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 2


def test_long_record_path_lazy_and_streamed_gives_the_same_scores(clf, records, tmp_path, monkeypatch):
    """The long-record path (file read piece by piece, record filtered in two passes) on a record made short enough
    to test: the same scores as the in-memory path."""
    import wfdb

    from hubert_ecg import io, processing

    record = read_ecg(records[0])
    wfdb.wrsamp("rec", fs=500, units=["mV"] * 12, sig_name=record.lead_names, fmt=["16"] * 12,
                p_signal=np.ascontiguousarray(record.signal.T, dtype=np.float64), adc_gain=[1000.0] * 12,
                baseline=[0] * 12, write_dir=str(tmp_path))
    path = str(tmp_path / "rec")
    eager = clf(path, stride_seconds=1.0)
    monkeypatch.setattr(io, "LAZY_SAMPLES", 1000)
    monkeypatch.setattr(processing, "STREAM_SAMPLES", 1000)
    assert isinstance(io.read_ecg(path, lazy=True).signal, io.LazySignal)
    streamed = clf(path, stride_seconds=1.0, batch_size=4)
    np.testing.assert_allclose(_as_vector(streamed), _as_vector(eager), rtol=1e-5, atol=1e-6)


def test_model_directory_without_preprocessor_config(tmp_path, records, caplog, capsys):
    """The authors' checkpoints often ship without preprocessor_config.json: pipeline(), predict, evaluate and the
    embeddings pipeline fall back to HuBERTECGFeatureExtractor() (the released preprocessing), said once at info
    level; the scores equal those of the same model saved with the default feature extractor."""
    import logging
    import shutil

    from transformers import pipeline

    from hubert_ecg.pipelines import load_feature_extractor

    with_fe, without = tmp_path / "with", tmp_path / "without"
    _save_tiny(with_fe)
    shutil.copytree(with_fe, without)
    (without / "preprocessor_config.json").unlink()
    caplog.set_level(logging.INFO, logger="hubert_ecg.pipelines")
    clf = pipeline("ecg-classification", model=str(without))
    assert isinstance(clf.feature_extractor, HuBERTECGFeatureExtractor)
    assert clf.feature_extractor.to_dict() == HuBERTECGFeatureExtractor().to_dict()
    notes = [r.getMessage() for r in caplog.records if "preprocessor_config.json" in r.getMessage()]
    assert len(notes) == 1 and str(without) in notes[0] and caplog.records[-1].levelno == logging.INFO
    reference = pipeline("ecg-classification", model=str(with_fe))
    assert clf(records[0]) == reference(records[0])
    load_feature_extractor(str(without))  # once per source
    assert len([r for r in caplog.records if "preprocessor_config.json" in r.getMessage()]) == 1

    assert predict_main([records[0], "--model", str(without), "--format", "json"]) == 0
    predicted, expected = json.loads(capsys.readouterr().out)[0]["predictions"], reference(records[0])
    assert [p["label"] for p in predicted] == [p["label"] for p in expected]  # batched: equal to float32 rounding
    np.testing.assert_allclose([p["score"] for p in predicted], [p["score"] for p in expected], rtol=1e-5)
    embed = pipeline("ecg-feature-extraction", model=str(without))
    assert isinstance(embed.feature_extractor, HuBERTECGFeatureExtractor)

    # a model that is not HuBERT-ECG, or a preprocessor_config.json that cannot be read, is still an error
    (without / "preprocessor_config.json").write_text("{not json")
    with pytest.raises(OSError):
        load_feature_extractor(str(without))
    with pytest.raises(ValueError, match="cannot load the model"):
        hubert_ecg.pipelines.load_pipeline(str(without))
    other = tmp_path / "other"
    other.mkdir()
    (other / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(OSError):
        load_feature_extractor(str(other))


def _logits_by_hand(model, record, starts):
    """The model's logits ``(windows, labels)`` for ``record`` computed without the pipeline."""
    features = HuBERTECGFeatureExtractor()(read_ecg(record), window_starts=starts, return_tensors="pt")
    with torch.no_grad():
        return model(input_values=features["input_values"]).logits.double().numpy()


def test_aggregate_windows_per_problem_type():
    from hubert_ecg.modeling import scores_from_logits
    from hubert_ecg.pipelines import aggregate_windows

    logits = np.array([[2.0, -1.0, 0.5], [-0.5, 1.5, 0.0], [0.3, 0.2, 0.1]])
    probabilities = aggregate_windows(scores_from_logits(logits, "single_label_classification"), "mean",
                                      "single_label_classification")
    assert probabilities.sum() == pytest.approx(1.0)
    softmax = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(probabilities, softmax.mean(axis=0))
    with pytest.raises(ValueError, match="single-label"):
        aggregate_windows(softmax, "max", "single_label_classification")
    np.testing.assert_allclose(aggregate_windows(logits, "mean", "regression"), logits.mean(axis=0))
    np.testing.assert_allclose(aggregate_windows(logits, "max", "regression"), logits.max(axis=0))
    sigmoid = 1 / (1 + np.exp(-logits))
    np.testing.assert_allclose(aggregate_windows(sigmoid, "max", "multi_label_classification"), sigmoid.max(axis=0))


def test_single_label_end_to_end(tmp_path, records, capsys):
    """Multi-class: softmax probabilities that sum to 1 and exactly one class per record, the argmax of the
    window-mean probabilities, in the pipeline and in predict's table, csv and json."""
    import csv

    from transformers import pipeline

    classes = ["AF", "SR", "STACH", "SBRAD"]
    model = _save_tiny(tmp_path, "single_label_classification", classes)
    model.config.label_thresholds = {"AF": 0.01}  # a threshold does not apply to a multi-class model
    model.config.save_pretrained(tmp_path)
    clf = pipeline("ecg-classification", model=str(tmp_path))
    for record in records:
        logits = _logits_by_hand(model, record, [0.0, 5.0])
        expected = (np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)).mean(axis=0)
        result = clf(record)
        assert sum(r["score"] for r in result) == pytest.approx(1.0, abs=1e-6)
        np.testing.assert_allclose([r["score"] for r in result], np.sort(expected)[::-1], rtol=1e-5)
        assert [r["positive"] for r in result] == [True, False, False, False]
        assert result[0]["label"] == classes[int(np.argmax(expected))]
    assert sum(p["positive"] for p in clf(records[0], top_k=2)) == 1
    assert "positive" not in clf(records[0], function_to_apply="softmax")[0]  # explicit: scores only
    with pytest.raises(ValueError, match="single-label"):
        clf(records[0], aggregation="max")

    assert predict_main([*records, "--model", str(tmp_path), "--format", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [sum(p["positive"] for p in o["predictions"]) for o in out] == [1, 1]
    assert [o["predictions"][0]["label"] for o in out] == [clf(r)[0]["label"] for r in records]
    assert predict_main([*records, "--model", str(tmp_path), "--format", "csv"]) == 0
    header, *rows = csv.reader(capsys.readouterr().out.splitlines())
    positives = [i for i, name in enumerate(header) if name.startswith("positive_")]
    assert len(positives) == 4 and [sum(int(row[i]) for i in positives) for row in rows] == [1, 1]
    assert predict_main([*records, "--model", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.count("*") for line in lines[1:3]] == [1, 1] and lines[-1].startswith("* the predicted class")
    assert lines[1].split()[1:3] == [out[0]["predictions"][0]["label"], f"{out[0]['predictions'][0]['score']:.3f}*"]
    assert predict_main([records[0], "--model", str(tmp_path), "--aggregation", "max"]) == 2
    assert "single-label" in capsys.readouterr().err


def test_regression_end_to_end(tmp_path, records, capsys):
    """Regression: one value per output, named by id2label, in output order, equal to the model's outputs averaged
    over the windows; no score, threshold, calibration or * flag; printed as numbers."""
    import csv

    from transformers import pipeline

    outputs = ["QTc_ms", "HR_bpm"]
    model = _save_tiny(tmp_path / "two", "regression", outputs)
    clf = pipeline("ecg-classification", model=str(tmp_path / "two"))
    expected = {r: _logits_by_hand(model, r, [0.0, 5.0]) for r in records}
    for record in records:
        result = clf(record, top_k=1)  # top_k does not apply: every output, in order
        assert [r["label"] for r in result] == outputs and all(set(r) == {"label", "value"} for r in result)
        np.testing.assert_allclose([r["value"] for r in result], expected[record].mean(axis=0), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose([r["value"] for r in clf(record, aggregation="max")],
                                   expected[record].max(axis=0), rtol=1e-5, atol=1e-6)

    assert predict_main([*records, "--model", str(tmp_path / "two"), "--format", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    for o, record in zip(out, records):
        assert [p["label"] for p in o["predictions"]] == outputs
        np.testing.assert_allclose([p["value"] for p in o["predictions"]], expected[record].mean(axis=0), rtol=1e-5,
                                   atol=1e-6)
    assert predict_main([*records, "--model", str(tmp_path / "two"), "--format", "csv"]) == 0
    header, *rows = csv.reader(capsys.readouterr().out.splitlines())
    assert header == ["file", "windows", *outputs, "flags", "error"]
    for row, o in zip(rows, out):
        np.testing.assert_allclose([float(v) for v in row[2:4]], [p["value"] for p in o["predictions"]], rtol=1e-12)
    assert predict_main([*records, "--model", str(tmp_path / "two")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["file", "outputs", "(value)"] and len(lines) == 3 and "*" not in "".join(lines)
    for line, o in zip(lines[1:], out):
        cells = line.split()[1:]
        assert cells[0::2] == outputs  # output order, not sorted by value
        np.testing.assert_allclose([float(c) for c in cells[1::2]], [p["value"] for p in o["predictions"]], rtol=1e-4)

    age = _save_tiny(tmp_path / "age", "regression", ["age"])
    result = pipeline("ecg-classification", model=str(tmp_path / "age"))(records[0])
    assert [r["label"] for r in result] == ["age"]
    assert result[0]["value"] == pytest.approx(float(_logits_by_hand(age, records[0], [0.0, 5.0]).mean()), rel=1e-5)
