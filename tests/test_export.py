"""ONNX export of the classifier: dynamic batch, onnxruntime against PyTorch (< 1e-4), CLI, optional deps."""

import sys

import numpy as np
import pytest

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

import onnx  # noqa: E402
import onnxruntime as ort  # noqa: E402

from hubert_ecg import HuBERTECGForSequenceClassification  # noqa: E402
from hubert_ecg.export import export_onnx  # noqa: E402
from hubert_ecg_cli.export_onnx import main as export_onnx_cli  # noqa: E402


@pytest.fixture(scope="module")
def exported(finetuned_dir, tmp_path_factory):
    path = tmp_path_factory.mktemp("onnx") / "classifier.onnx"
    return export_onnx(finetuned_dir, path), path


def test_export_matches_pytorch_and_reference(exported, reference_dir):
    report, path = exported
    assert report["max_abs_diff"] < 1e-4 and report["checked_batch_sizes"] == [1, 3]
    expected = np.load(reference_dir / "expected_outputs.npz")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    inputs = expected["input_values_5s"].astype(np.float32)  # batch 6: not a traced size
    logits = session.run(["logits"], {"input_values": inputs})[0]
    assert logits.shape == expected["classifier_logits_5s"].shape
    assert np.abs(logits - expected["classifier_logits_5s"]).max() < 1e-4


def test_batch_dimension_is_dynamic(exported):
    _, path = exported
    graph = onnx.load(str(path)).graph
    for value in (graph.input[0], graph.output[0]):
        dims = value.type.tensor_type.shape.dim
        assert dims[0].dim_param == "batch"
    assert [d.dim_value for d in graph.input[0].type.tensor_type.shape.dim][1] == 6000


@pytest.mark.slow  # ~4 s: an export with its check
def test_export_from_model_object_leaves_it_unchanged(finetuned_dir, tmp_path):
    model = HuBERTECGForSequenceClassification.from_pretrained(finetuned_dir)  # SDPA
    implementation = model.config._attn_implementation
    report = export_onnx(model, tmp_path / "m.onnx", check_batch_sizes=(2, 5))
    assert report["max_abs_diff"] < 1e-4
    assert model.config._attn_implementation == implementation


@pytest.mark.slow  # ~3-5 s; CI runs the slow tests too
def test_cli(finetuned_dir, tmp_path, capsys, reference_dir):
    assert export_onnx_cli([str(finetuned_dir), str(tmp_path / "cli.onnx")]) == 0
    assert "max |logit diff|" in capsys.readouterr().out
    assert (tmp_path / "cli.onnx").is_file()
    assert export_onnx_cli([str(reference_dir / "original_finetuned.pt"), str(tmp_path / "x.onnx")]) == 2
    assert "convert it first" in capsys.readouterr().err
    assert export_onnx_cli([str(tmp_path / "missing"), str(tmp_path / "y.onnx")]) == 2
    assert "no such directory" in capsys.readouterr().err


def test_bad_arguments(finetuned_dir, tmp_path):
    with pytest.raises(ValueError, match="model_or_path"):
        export_onnx(object(), tmp_path / "z.onnx")
    with pytest.raises(ValueError, match="samples"):
        export_onnx(finetuned_dir, tmp_path / "z.onnx", samples=10)


def test_missing_optional_dependency_names_the_extra(finetuned_dir, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails as if not installed
    with pytest.raises(ImportError, match=r'pip install "hubert-ecg\[onnx\]"'):
        export_onnx(finetuned_dir, tmp_path / "m.onnx")
    assert export_onnx_cli([str(finetuned_dir), str(tmp_path / "m.onnx")]) == 2


def test_the_commands_choices_are_the_packages():
    """The values export-onnx keeps to answer usage errors without the package are the package's own."""
    from hubert_ecg import export
    from hubert_ecg_cli import export_onnx as command

    assert command.TASKS == tuple(export.TASKS)
    assert (command.DEFAULT_OPSET, command.INT8_SCORE_ATOL) == (export.DEFAULT_OPSET, export.INT8_SCORE_ATOL)


# the dash spelling is the dialect's (tests/test_cli.py checks it for every command): the second export runs in CI
@pytest.mark.parametrize("spelling", ["--no_check", pytest.param("--no-check", marks=pytest.mark.slow)])
def test_cli_without_the_check(finetuned_dir, tmp_path, capsys, spelling):
    """--check is a switch that defaults to on; both spellings of its complement skip the onnxruntime check."""
    assert export_onnx_cli([str(finetuned_dir), str(tmp_path / "unchecked.onnx"), spelling]) == 0
    out = capsys.readouterr().out
    assert "unchecked.onnx" in out and "max |logit diff|" not in out
    with pytest.raises(SystemExit) as exit_:  # a usage error
        export_onnx_cli([str(finetuned_dir), str(tmp_path / "z.onnx"), "--task", "nope"])
    assert exit_.value.code == 2
    assert "hubert-ecg export-onnx: error:" in capsys.readouterr().err
