"""Embeddings through an exported backbone (``export-onnx --task feature-extraction``): ``load_feature_pipeline`` and
``hubert-ecg embed --model DIR`` with onnxruntime and OpenVINO, against the PyTorch backbone in float32, on the
bundled records of the demo model."""

import importlib.util

import numpy as np
import pytest

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

import hubert_ecg  # noqa: E402
from hubert_ecg.demo import demo_records  # noqa: E402
from hubert_ecg.embeddings import load_feature_pipeline  # noqa: E402
from hubert_ecg.export import export_onnx  # noqa: E402
from hubert_ecg_cli.export_onnx import main as export_onnx_cli  # noqa: E402
from hubert_ecg.onnx_backend import ONNXFeatureModel  # noqa: E402
from hubert_ecg.pipelines import load_pipeline  # noqa: E402

RECORDS = demo_records()
BACKENDS = ["onnxruntime", pytest.param("openvino", marks=pytest.mark.skipif(
    importlib.util.find_spec("openvino") is None, reason="openvino is not installed"))]


@pytest.fixture(scope="module")
def backbone_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("onnx") / "demo-backbone"
    assert export_onnx_cli([str(hubert_ecg.demo_model_path()), str(out), "--task", "feature-extraction"]) == 0
    return out


@pytest.fixture(scope="module")
def torch_vectors():
    return load_feature_pipeline(None)(RECORDS, batch_size=4)


def test_the_backbone_graph(backbone_dir):
    import onnx

    graph = onnx.load(str(backbone_dir / "model.onnx")).graph
    assert [o.name for o in graph.output] == ["last_hidden_state"]
    dims = graph.output[0].type.tensor_type.shape.dim
    assert dims[0].dim_param == "batch" and [d.dim_value for d in dims[1:]] == [93, 128]  # demo: hidden_size 128


@pytest.mark.parametrize("backend", ["onnxruntime", pytest.param("openvino", marks=[*BACKENDS[1].marks, pytest.mark.slow])])
def test_embeddings_match_pytorch(backbone_dir, torch_vectors, backend):
    pipe = load_feature_pipeline(str(backbone_dir), backend=backend)
    assert isinstance(pipe.model, ONNXFeatureModel) and pipe.model.backend == backend
    got = pipe(RECORDS, batch_size=4)
    assert len(got) == len(torch_vectors) == 6
    assert max(float(np.abs(a - b).max()) for a, b in zip(got, torch_vectors)) < 1e-4
    last = pipe(RECORDS[0], layer=-1)  # the last layer is the graph's output; others are refused
    assert float(np.abs(last - torch_vectors[0]).max()) < 1e-4
    with pytest.raises(ValueError, match="last hidden state only"):
        pipe(RECORDS[0], layer=1)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.slow  # exports or runs a command: several seconds
def test_embed_command(backbone_dir, torch_vectors, backend, tmp_path, capsys):
    from hubert_ecg.training.probe import read_embeddings
    from hubert_ecg_cli.embed import main as embed_main

    out = tmp_path / "emb.parquet"
    assert embed_main([*RECORDS, "--model", str(backbone_dir), "--backend", backend, "--output", str(out)]) == 0
    embeddings = read_embeddings(out)
    assert embeddings.paths == RECORDS
    assert float(np.abs(embeddings.vectors - np.stack(torch_vectors)).max()) < 1e-4


def test_a_short_record_is_one_skipped_record(backbone_dir, tmp_path, capsys):
    """The graph takes no attention mask: a 3 s record (zero-padded to the 5 s window) is listed as not embedded,
    with the reason; the others are embedded (exit 1)."""
    from hubert_ecg import read_ecg
    from hubert_ecg.training.probe import read_embeddings
    from hubert_ecg_cli.embed import main as embed_main

    record = read_ecg(RECORDS[0])
    short = tmp_path / "short.npz"
    np.savez(short, signal=record.signal[:, : int(3 * record.sampling_rate)], sampling_rate=record.sampling_rate)
    out = tmp_path / "emb.parquet"
    assert embed_main([RECORDS[1], str(short), "--model", str(backbone_dir), "--output", str(out)]) == 1
    assert "attention mask" in capsys.readouterr().err
    assert read_embeddings(out).paths == [RECORDS[1]]


@pytest.mark.slow  # exports or runs a command: several seconds
def test_the_wrong_kind_of_graph_is_a_clear_error(backbone_dir, tmp_path):
    with pytest.raises(ValueError, match="last_hidden_state.*feature-extraction|gives embeddings"):
        load_pipeline(str(backbone_dir))
    classifier = tmp_path / "classifier"
    export_onnx(hubert_ecg.demo_model_path(), classifier, check=False)
    with pytest.raises(ValueError, match="--task feature-extraction"):
        load_feature_pipeline(str(classifier))
    with pytest.raises(ValueError, match="not torch"):
        load_feature_pipeline(str(backbone_dir), backend="torch")
    with pytest.raises(ValueError, match="not one"):  # a PyTorch model with an exported runtime
        load_feature_pipeline(None, backend="onnxruntime")


def test_transformers_pipeline_takes_an_exported_backbone(backbone_dir, torch_vectors):
    from transformers import pipeline

    embed = pipeline("ecg-feature-extraction", model=str(backbone_dir))
    assert isinstance(embed.model, ONNXFeatureModel) and embed.model.backend == "onnxruntime"
    assert float(np.abs(embed(RECORDS[0]) - torch_vectors[0]).max()) < 1e-4


@pytest.mark.slow  # exports or runs a command: several seconds
def test_a_pretraining_checkpoint_exports_its_backbone(tmp_path):
    """Any checkpoint without a classification head is exported as a backbone (``task`` None); a classification
    export of it is refused."""
    from hubert_ecg import HuBERTECGConfig, HuBERTECGForPreTraining

    config = HuBERTECGConfig.from_preset("small")
    config.num_hidden_layers = 1
    HuBERTECGForPreTraining(config).save_pretrained(tmp_path / "pretrained")
    report = export_onnx(tmp_path / "pretrained", tmp_path / "exported", check_batch_sizes=(2,))
    assert report["task"] == "feature-extraction" and report["output"] == "last_hidden_state"
    assert report["max_abs_diff"] < 1e-4 and report["num_labels"] is None
    assert isinstance(load_feature_pipeline(str(tmp_path / "exported")).model, ONNXFeatureModel)
    with pytest.raises(ValueError, match="HuBERTECGForSequenceClassification"):
        export_onnx(HuBERTECGForPreTraining(config), tmp_path / "x.onnx", task="sequence-classification")
