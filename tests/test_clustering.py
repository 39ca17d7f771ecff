"""k-means pretraining targets: MFCC features on the frame grid, the codebook, `hubert-ecg cluster`."""

import json

import numpy as np
import pytest

from hubert_ecg import HuBERTECGConfig, HuBERTECGForPreTraining
from hubert_ecg.cli import main as cli_main
from hubert_ecg.training.clustering import (
    KMeansCodebook,
    cluster_statistics,
    fit_kmeans,
    hidden_state_features,
    load_labels,
    mfcc_features,
)
from hubert_ecg.training.windows import build_window_dataset, load_window_dataset

TINY = dict(
    hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, conv_dim=[32] * 5,
    classifier_proj_size=16, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4, layerdrop=0.0,
)
RECORDS = ["ptbxl/records100/00000/00001_lr", "ptbxl/records100/00000/00002_lr", "cinc2021/E07500",
           "long/cpsc2021/data_8_4"]


@pytest.fixture(scope="module")
def windows_dir(data_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("windows")
    build_window_dataset([str(data_dir / r) for r in RECORDS], out, show_progress=False)
    return out


def test_mfcc_features_on_the_frame_grid(windows_dir):
    values = load_window_dataset(windows_dir).with_format("numpy")[:3]["input_values"]
    features = mfcc_features(values)
    assert features.shape == (3, 93, 39) and features.dtype == np.float32 and np.isfinite(features).all()
    assert HuBERTECGConfig().num_frames(6000) == 93
    # frame t depends on the samples around 64 t: changing the end of the window leaves the first frames alone
    changed = values.copy()
    changed[:, -500:] = 0
    np.testing.assert_allclose(mfcc_features(changed)[:, :10, :13], features[:, :10, :13], rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="windows, samples"):
        mfcc_features(values[0])


def test_codebook_fit_assign_save_load(tmp_path):
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(4, 5)) * 10
    x = (centres[rng.integers(0, 4, 400)] + rng.normal(size=(400, 5))).astype(np.float32)
    codebook = fit_kmeans(x, 4, seed=0, n_init=1)
    labels = codebook.assign(x)
    assert labels.shape == (400,) and len(np.unique(labels)) == 4
    assert codebook.info["inertia_per_frame"] < 10
    codebook.save(tmp_path)
    loaded = KMeansCodebook.load(tmp_path)
    np.testing.assert_array_equal(loaded.assign(x.reshape(20, 20, 5)).reshape(-1), labels)
    with pytest.raises(ValueError, match="at least as many frames"):
        fit_kmeans(x[:3], 4)
    with pytest.raises(ValueError, match="dimension"):
        loaded.assign(x[:, :3])
    stats = cluster_statistics(labels, 6)
    assert stats["used_clusters"] == 4 and stats["frames"] == 400 and 3.5 < stats["perplexity"] <= 4


def test_faiss_backend_needs_faiss():
    try:
        import faiss  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="hubert-ecg\\[faiss\\]"):
            fit_kmeans(np.zeros((10, 2), np.float32), 2, backend="faiss")
    else:
        codebook = fit_kmeans(np.random.default_rng(0).normal(size=(200, 3)).astype(np.float32), 3, backend="faiss")
        assert codebook.centroids.shape == (3, 3)


def test_cluster_command_mfcc_then_hidden(windows_dir, tmp_path):
    first = tmp_path / "iter1"
    assert cli_main(["cluster", "--output_dir", str(first), "--windows_dir", str(windows_dir),
                     "--num_clusters", "8", "--batch_size", "5", "--kmeans_n_init", "1"]) == 0
    labels, info = load_labels(first)
    n = len(load_window_dataset(windows_dir))
    assert labels.shape == (n, 93) and labels.dtype == np.int16 and labels.max() < 8
    assert info["num_clusters"] == 8 and info["features"] == "mfcc"
    stats = json.loads((first / "cluster_stats.json").read_text())
    assert stats["frames"] == n * 93 and sum(stats["cluster_sizes"]) == n * 93 and stats["used_clusters"] >= 2
    assert not (first / "tmp").exists()

    # iteration 2: hidden states of a model's layer, compared with iteration 1
    model = HuBERTECGForPreTraining(HuBERTECGConfig.from_preset("small", vocab_sizes=[8], **TINY)).eval()
    model.save_pretrained(tmp_path / "model")
    yaml = tmp_path / "cluster.yaml"
    yaml.write_text(
        f"output_dir: {tmp_path / 'iter2'}\nwindows_dir: {windows_dir}\nfeatures: hidden\n"
        f"model_name_or_path: {tmp_path / 'model'}\nlayer: 1\nnum_clusters: 12\nkmeans_n_init: 1\n"
        f"compare_labels_dir: {first}\n"
    )
    assert cli_main(["cluster", str(yaml)]) == 0
    labels2, info2 = load_labels(tmp_path / "iter2")
    assert labels2.shape == (n, 93) and info2["layer"] == 1 and info2["features"] == "hidden"
    stats2 = json.loads((tmp_path / "iter2" / "cluster_stats.json").read_text())
    assert 0.0 <= stats2["nmi_with_previous"] <= 1.0
    # the labels are the nearest centroids of the layer's hidden states
    values = load_window_dataset(windows_dir).with_format("numpy")[:2]["input_values"]
    hidden = hidden_state_features(model, values, layer=1)
    assert hidden.shape == (2, 93, 32)
    np.testing.assert_array_equal(KMeansCodebook.load(tmp_path / "iter2").assign(hidden), labels2[:2])


def test_cluster_command_errors(tmp_path, capsys):
    assert cli_main(["cluster", "--output_dir", str(tmp_path / "o"), "--windows_dir", str(tmp_path / "w")]) == 2
    assert "pass --data" in capsys.readouterr().err
    assert cli_main(["cluster", "--output_dir", "o", "--windows_dir", "w", "--features", "hidden"]) == 2
    assert "--model_name_or_path" in capsys.readouterr().err
