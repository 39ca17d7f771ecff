"""Exported model directories run with onnxruntime through the pipeline and ``hubert-ecg predict``: the bundled demo
model on the bundled records, against PyTorch float32."""

import shutil

import pytest

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from hubert_ecg.demo import demo_records  # noqa: E402
from hubert_ecg.onnx_backend import ONNXClassifier  # noqa: E402
from hubert_ecg.pipelines import load_pipeline  # noqa: E402
from hubert_ecg_cli.predict import main as predict_main  # noqa: E402

RECORDS = demo_records()


@pytest.fixture(scope="module")
def pipelines(demo_onnx_dir):
    return load_pipeline(str(demo_onnx_dir)), load_pipeline(None)


def test_export_writes_a_model_directory(demo_onnx_dir, pipelines):
    assert {"model.onnx", "config.json", "preprocessor_config.json"} <= {p.name for p in demo_onnx_dir.iterdir()}
    onnx_clf, torch_clf = pipelines
    assert isinstance(onnx_clf.model, ONNXClassifier)
    for name in ("id2label", "problem_type", "score_calibration", "label_thresholds", "label_descriptions"):
        assert getattr(onnx_clf.model.config, name) == getattr(torch_clf.model.config, name), name
    saved, bundled = onnx_clf.feature_extractor.to_dict(), torch_clf.feature_extractor.to_dict()
    saved.pop("auto_map", None), bundled.pop("auto_map", None)  # save_pretrained adds the remote-code map
    assert saved == bundled


def test_logits_and_scores_match_pytorch_on_every_record(pipelines):
    assert len(RECORDS) == 6
    onnx_clf, torch_clf = pipelines
    # function_to_apply="none": the mean of the window logits of each record
    for onnx_out, torch_out in zip(onnx_clf(RECORDS, batch_size=4, function_to_apply="none"),
                                   torch_clf(RECORDS, batch_size=4, function_to_apply="none")):
        got, expected = {p["label"]: p["score"] for p in onnx_out}, {p["label"]: p["score"] for p in torch_out}
        assert got.keys() == expected.keys() and max(abs(got[k] - expected[k]) for k in got) < 1e-4
    # the model's own scores: calibrated, thresholded, same order
    for onnx_out, torch_out in zip(onnx_clf(RECORDS), torch_clf(RECORDS)):
        assert [(p["label"], p.get("positive")) for p in onnx_out] == [(p["label"], p.get("positive")) for p in torch_out]
        assert max(abs(p["score"] - q["score"]) for p, q in zip(onnx_out, torch_out)) < 1e-5


def test_predict_table_identical(demo_onnx_dir, capsys):
    assert predict_main([*RECORDS, "--model", str(demo_onnx_dir / "model.onnx")]) == 0
    from_file = capsys.readouterr().out
    assert predict_main([*RECORDS, "--model", str(demo_onnx_dir)]) == 0
    from_dir = capsys.readouterr().out
    assert predict_main([*RECORDS]) == 0
    from_torch = capsys.readouterr().out
    assert from_file == from_dir == from_torch and "NORM" in from_torch


def test_bare_onnx_without_config_is_a_clear_error(demo_onnx_dir, tmp_path, capsys):
    shutil.copy(demo_onnx_dir / "model.onnx", tmp_path / "bare.onnx")
    with pytest.raises(ValueError, match=r"no config\.json beside the graph"):
        load_pipeline(str(tmp_path / "bare.onnx"))
    assert predict_main([RECORDS[0], "--model", str(tmp_path / "bare.onnx")]) == 2
    err = capsys.readouterr().err
    assert "config.json" in err and "hubert-ecg export-onnx MODEL OUT_DIR" in err
    with pytest.raises(ValueError, match="CPU"):
        load_pipeline(str(demo_onnx_dir), device="cuda:0")


def test_a_record_shorter_than_the_window_is_one_skipped_record(demo_onnx_dir, tmp_path, capsys):
    """The graph takes no attention mask: a 3 s record (zero-padded to the 5 s window) is listed as not scored, with
    the reason, and the other records of the run are scored (exit 1, the package's bad-record rule)."""
    import numpy as np

    from hubert_ecg import read_ecg

    record = read_ecg(RECORDS[0])
    short = tmp_path / "short.npy"
    np.save(short, record.signal[:, : int(3 * record.sampling_rate)])
    argv = [RECORDS[1], str(short), "--sampling-rate", str(record.sampling_rate), "--model", str(demo_onnx_dir)]
    assert predict_main(argv) == 1
    captured = capsys.readouterr()
    assert RECORDS[1] in captured.out and "attention mask" in captured.out + captured.err
