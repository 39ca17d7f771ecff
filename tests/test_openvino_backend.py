"""Exported model directories run with OpenVINO (``backend="openvino"``, ``hubert-ecg predict --backend openvino``):
the bundled demo model on the bundled records, against PyTorch float32."""

import sys

import pytest

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")  # the export's check
pytest.importorskip("openvino")

import hubert_ecg  # noqa: E402
from hubert_ecg.demo import demo_records  # noqa: E402
from hubert_ecg.export import check_onnx  # noqa: E402
from hubert_ecg.onnx_backend import ONNXClassifier, resolve_backend  # noqa: E402
from hubert_ecg.pipelines import load_pipeline  # noqa: E402
from hubert_ecg_cli.predict import main as predict_main  # noqa: E402

RECORDS = demo_records()


@pytest.fixture(scope="module")
def pipelines(demo_onnx_dir):
    return load_pipeline(str(demo_onnx_dir), backend="openvino"), load_pipeline(None)


def test_logits_and_scores_match_pytorch_on_every_record(pipelines):
    ov_clf, torch_clf = pipelines
    assert isinstance(ov_clf.model, ONNXClassifier) and ov_clf.model.backend == "openvino"
    for ov_out, torch_out in zip(ov_clf(RECORDS, batch_size=4, function_to_apply="none"),
                                 torch_clf(RECORDS, batch_size=4, function_to_apply="none")):
        got, expected = {p["label"]: p["score"] for p in ov_out}, {p["label"]: p["score"] for p in torch_out}
        assert got.keys() == expected.keys() and max(abs(got[k] - expected[k]) for k in got) < 1e-4
    for ov_out, torch_out in zip(ov_clf(RECORDS), torch_clf(RECORDS)):
        assert [(p["label"], p.get("positive")) for p in ov_out] == [(p["label"], p.get("positive")) for p in torch_out]


@pytest.mark.slow  # several seconds each; the default run keeps the agreement and the table
def test_check_onnx_with_openvino_at_several_batch_sizes(demo_onnx_dir):
    model = hubert_ecg.HuBERTECGForSequenceClassification.from_pretrained(hubert_ecg.demo_model_path())
    diffs = check_onnx(demo_onnx_dir / "model.onnx", model, batch_sizes=(1, 5), backend="openvino")
    assert sorted(diffs) == [1, 5] and max(diffs.values()) < 1e-4


@pytest.mark.slow  # a whole predict run: 7 s
def test_predict_backend_openvino_table_identical(demo_onnx_dir, capsys):
    assert predict_main([*RECORDS, "--model", str(demo_onnx_dir), "--backend", "openvino"]) == 0
    from_openvino = capsys.readouterr().out
    assert predict_main([*RECORDS, "--backend", "torch"]) == 0
    assert from_openvino == capsys.readouterr().out and "NORM" in from_openvino


def test_backend_choice_and_its_errors(demo_onnx_dir, tmp_path, capsys, monkeypatch):
    assert resolve_backend(str(demo_onnx_dir)) == "onnxruntime"  # the default where both are installed
    assert resolve_backend(None) == resolve_backend(hubert_ecg.demo_model_path()) == "torch"
    # an exported runtime for a PyTorch model directory: names the model and says how to export it
    assert predict_main([RECORDS[0], "--model", str(hubert_ecg.demo_model_path()), "--backend", "openvino"]) == 2
    err = capsys.readouterr().err
    assert str(hubert_ecg.demo_model_path()) in err and "hubert-ecg export-onnx MODEL DIR" in err
    with pytest.raises(ValueError, match="not torch"):
        load_pipeline(str(demo_onnx_dir), backend="torch")
    with pytest.raises(ValueError, match="backend must be one of"):
        load_pipeline(str(demo_onnx_dir), backend="tensorrt")
    # a missing graph names the file
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"missing\.onnx: no such ONNX graph"):
        load_pipeline(str(tmp_path / "empty" / "missing.onnx"), backend="openvino")
    # OpenVINO not installed: the extra to install
    monkeypatch.setitem(sys.modules, "openvino", None)
    with pytest.raises(ValueError, match=r'pip install "hubert-ecg\[openvino\]"'):
        load_pipeline(str(demo_onnx_dir), backend="openvino")
    assert predict_main([RECORDS[0], "--model", str(demo_onnx_dir), "--backend", "openvino"]) == 2
    assert "hubert-ecg[openvino]" in capsys.readouterr().err


def test_no_runtime_installed_names_both_extras(demo_onnx_dir, monkeypatch):
    monkeypatch.setitem(sys.modules, "openvino", None)
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(ValueError, match=r"hubert-ecg\[onnx\].*hubert-ecg\[openvino\]"):
        load_pipeline(str(demo_onnx_dir))


@pytest.mark.slow  # several seconds each; the default run keeps the agreement and the table
def test_transformers_pipeline_takes_an_exported_directory(demo_onnx_dir, pipelines):
    from transformers import pipeline

    clf = pipeline("ecg-classification", model=str(demo_onnx_dir), model_kwargs={"backend": "openvino"})
    assert isinstance(clf.model, ONNXClassifier) and clf.model.backend == "openvino"
    assert clf(RECORDS[0]) == pipelines[0](RECORDS[0])
    with pytest.raises(ValueError, match="float32"):
        ONNXClassifier.from_pretrained(demo_onnx_dir, dtype="bfloat16")


@pytest.mark.slow  # several seconds each; the default run keeps the agreement and the table
def test_predict_output_dir_with_openvino(demo_onnx_dir, tmp_path):
    """The sharded writer (one process here) runs an exported model too, on the CPU whatever the launch's device."""
    out = tmp_path / "out"
    assert predict_main([*RECORDS, "--model", str(demo_onnx_dir), "--backend", "openvino", "--output-dir", str(out)]) == 0
    (csv_file,) = out.glob("predictions-*.csv")
    assert len(csv_file.read_text().strip().splitlines()) == 1 + len(RECORDS)
