"""``export-onnx --quantize int8``: a dynamically quantized copy beside the float32 graph, whose scores on the bundled
records are within 0.02 of PyTorch float32 with onnxruntime and OpenVINO."""

import importlib.util

import pytest

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

import hubert_ecg  # noqa: E402
from hubert_ecg.demo import demo_records  # noqa: E402
from hubert_ecg.export import INT8_SCORE_ATOL, export_onnx  # noqa: E402
from hubert_ecg_cli.export_onnx import main as export_onnx_cli  # noqa: E402
from hubert_ecg.pipelines import load_pipeline  # noqa: E402

RECORDS = demo_records()
BACKENDS = ["onnxruntime", pytest.param("openvino", marks=[pytest.mark.skipif(
    importlib.util.find_spec("openvino") is None, reason="openvino is not installed"),
    pytest.mark.slow])]  # ~15 s here: OpenVINO compiles the int8 graph's integer kernels


@pytest.fixture(scope="module")
def int8_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("onnx") / "demo-onnx"
    assert export_onnx_cli([str(hubert_ecg.demo_model_path()), str(out), "--quantize", "int8"]) == 0
    return out


@pytest.fixture(scope="module")
def torch_scores():
    return [{p["label"]: p["score"] for p in out} for out in load_pipeline(None)(RECORDS)]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.slow  # quantizes a graph: several seconds
def test_int8_scores_within_0_02(int8_dir, torch_scores, backend):
    assert {"model.onnx", "model_int8.onnx"} <= {p.name for p in int8_dir.iterdir()}
    assert (int8_dir / "model_int8.onnx").stat().st_size < (int8_dir / "model.onnx").stat().st_size
    clf = load_pipeline(str(int8_dir / "model_int8.onnx"), backend=backend)
    for out, expected in zip(clf(RECORDS), torch_scores):
        got = {p["label"]: p["score"] for p in out}
        assert got.keys() == expected.keys()
        assert max(abs(got[k] - expected[k]) for k in got) < INT8_SCORE_ATOL


@pytest.mark.slow  # quantizes a graph: 4 s
def test_quantize_argument(tmp_path):
    with pytest.raises(ValueError, match="quantize must be None or 'int8'"):
        export_onnx(hubert_ecg.demo_model_path(), tmp_path / "m.onnx", quantize="int4")
    report = export_onnx(hubert_ecg.demo_model_path(), tmp_path / "m.onnx", quantize="int8", check=False)
    assert report["int8_path"] == str(tmp_path / "m_int8.onnx") and report["int8_max_abs_diff"] is None
