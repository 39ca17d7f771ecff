"""ECGClassificationPipeline and hubert-ecg predict on real records."""

import json

import numpy as np
import pytest
import torch

import hubert_ecg
from hubert_ecg import HuBERTECGConfig, HuBERTECGFeatureExtractor, HuBERTECGForSequenceClassification, read_ecg
from hubert_ecg.pipelines import ECGClassificationPipeline, predict_main

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
    features = clf.feature_extractor(record, window="all", return_tensors="pt")
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


def test_pipeline_input_kinds_and_batching(clf, records):
    record = read_ecg(records[0])
    by_path = clf(records[0])
    as_dict = clf({"signal": record.signal, "sampling_rate": record.sampling_rate, "lead_names": record.lead_names})
    by_record = clf(record)
    for other in (as_dict, by_record):
        assert [r["label"] for r in other] == [r["label"] for r in by_path]
        np.testing.assert_allclose([r["score"] for r in other], [r["score"] for r in by_path], rtol=1e-5)
    batched = clf(records + [record], batch_size=2)
    assert len(batched) == 3
    np.testing.assert_allclose([r["score"] for r in batched[0]], [r["score"] for r in by_path], rtol=1e-5)
    assert clf(records, batch_size=2, top_k=2)[1] == clf(records[1], top_k=2)
    assert len(clf(records[0], top_k=None)) == 5 and len(clf(records[0], top_k=1)) == 1


def test_pipeline_long_record_any_rate(clf, data_dir):
    # PTB Diagnostic record: 1000 Hz, 38.4 s, 12 standard + 3 Frank leads -> 7 windows
    path = data_dir / "long" / "ptbdb_s0010_re" / "s0010_re"
    if not path.with_suffix(".hea").exists():
        pytest.skip("long record not available")
    result = clf(str(path))
    assert len(result) == 5 and all(0 <= r["score"] <= 1 for r in result)


def test_pipeline_errors(clf, records):
    record = read_ecg(records[0])
    with pytest.raises(ValueError, match="shorter than"):
        clf({"signal": record.signal[:, :1000], "sampling_rate": 500.0})  # 2 s
    with pytest.raises(ValueError, match="not found"):
        clf("no/such/record")
    with pytest.raises(ValueError, match="top_k"):
        clf(records[0], top_k=0)


def test_single_label_softmax(tmp_path, records):
    from transformers import pipeline

    _save_tiny(tmp_path, "single_label_classification", ["a", "b", "c"])
    result = pipeline("ecg-classification", model=str(tmp_path))(records[0])
    assert abs(sum(r["score"] for r in result) - 1.0) < 1e-6


def test_predict_cli_formats_and_skips(tiny_dir, records, tmp_path, capsys):
    (tmp_path / "broken.hea").write_text("not a header\n")
    files = records + [str(tmp_path / "broken"), str(tmp_path / "missing")]
    assert predict_main([*files, "--model", str(tiny_dir), "--format", "json", "--top-k", "3"]) == 0
    captured = capsys.readouterr()
    out = json.loads(captured.out)
    assert [o["file"] for o in out] == records and all(len(o["predictions"]) == 3 for o in out)
    assert "skipped 2 of 4" in captured.err and "broken" in captured.err and "missing" in captured.err

    assert predict_main([records[0], "--model", str(tiny_dir), "--format", "csv"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "file,rank,label,score" and len(lines) == 6

    assert predict_main([records[0], "--model", str(tiny_dir)]) == 0
    assert capsys.readouterr().out.startswith("file")

    assert predict_main([str(tmp_path / "missing"), "--model", str(tiny_dir)]) == 2
    assert "no file could be scored" in capsys.readouterr().err
    assert predict_main([records[0], "--model", str(tmp_path / "no_model_here")]) == 2
    assert "cannot load the model" in capsys.readouterr().err


def test_predict_cli_with_demo_model(capsys):
    try:
        hubert_ecg.demo_model_path()
    except ValueError:
        pytest.skip("demo model not trained yet")
    from hubert_ecg.demo import demo_records

    assert predict_main(demo_records()) == 0
    captured = capsys.readouterr()
    assert "demo model" in captured.err and "not a clinical tool" in captured.err
    assert len(captured.out.splitlines()) == 1 + len(demo_records())


def test_cli_router_predict(tiny_dir, records, capsys):
    from hubert_ecg.cli import main

    assert main(["predict", records[0], "--model", str(tiny_dir), "--top-k", "1"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 2
