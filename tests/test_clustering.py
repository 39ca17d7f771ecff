"""k-means pretraining targets: MFCC features on the frame grid, the codebook, `hubert-ecg cluster`."""

import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import normalized_mutual_info_score

from hubert_ecg import HuBERTECGConfig, HuBERTECGForPreTraining
from hubert_ecg_cli import main as cli_main
from hubert_ecg.training.clustering import (
    KMeansCodebook,
    cluster_statistics,
    fit_kmeans,
    hidden_state_features,
    load_labels,
    mfcc_features,
)
from hubert_ecg.training.window_dataset import build_window_dataset, load_window_dataset

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


@pytest.mark.slow  # ~3-5 s; CI runs the slow tests too
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
    # the grid is the config's: a feature encoder with one stride-2 layer fewer gives twice the frames (hop 32)
    finer = HuBERTECGConfig(conv_dim=[32] * 4, conv_kernel=[10, 3, 3, 2], conv_stride=[4, 2, 2, 2])
    fine = mfcc_features(values, config=finer)
    assert fine.shape == (3, finer.num_frames(6000), 39) == (3, 186, 39)
    # frame k sees samples 32 k + 25 -/+ 64 (hop 32, receptive field 50): zeroing from sample 5500 on changes
    # the frames after k = 169 only (a hop of 64 would change every frame after 84)
    fine_changed = mfcc_features(changed, config=finer)
    np.testing.assert_allclose(fine_changed[:, :160, :13], fine[:, :160, :13], rtol=1e-4, atol=1e-4)
    assert np.abs(fine_changed[:, 175:, :13] - fine[:, 175:, :13]).max() > 1


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


def _separated_clusters(k=4, n=600, dim=3):
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(k, dim)) * 20
    truth = rng.integers(0, k, n)
    return (centres[truth] + rng.normal(size=(n, dim))).astype(np.float32), truth


def _same_partition(a, b):
    """True when two labelings split the points the same way (up to renaming the clusters)."""
    pairs = set(zip(np.asarray(a).tolist(), np.asarray(b).tolist()))
    return len(pairs) == len(set(np.asarray(a).tolist())) == len(set(np.asarray(b).tolist()))


def test_kmeans_without_faiss_falls_back_to_sklearn(monkeypatch):
    from hubert_ecg.training import clustering

    def no_faiss():
        raise ImportError("--backend faiss needs the faiss package: pip install 'hubert-ecg[faiss]'")

    monkeypatch.setattr(clustering, "_faiss", no_faiss)
    x, truth = _separated_clusters()
    auto = fit_kmeans(x, 4, backend="auto", seed=0, n_init=1)
    assert auto.info["backend"] == "sklearn" and _same_partition(auto.assign(x), truth)
    with pytest.raises(ImportError, match="hubert-ecg\\[faiss\\]"):
        fit_kmeans(x, 4, backend="faiss")


def test_faiss_and_sklearn_agree():
    pytest.importorskip("faiss")
    x, truth = _separated_clusters()
    with_faiss = fit_kmeans(x, 4, backend="faiss", seed=0, n_init=3)
    with_sklearn = fit_kmeans(x, 4, backend="sklearn", seed=0, n_init=3)
    assert with_faiss.info["backend"] == "faiss" and fit_kmeans(x, 4, backend="auto").info["backend"] == "faiss"
    assert _same_partition(with_faiss.assign(x), truth) and _same_partition(with_sklearn.assign(x), truth)
    # the same centroids, in some order
    order = [int(np.argmin(((with_sklearn.centroids - c) ** 2).sum(1))) for c in with_faiss.centroids]
    np.testing.assert_allclose(with_sklearn.centroids[order], with_faiss.centroids, atol=0.05)
    assert with_faiss.info["inertia_per_frame"] == pytest.approx(with_sklearn.info["inertia_per_frame"], rel=0.02)


def test_cluster_command_mfcc_then_hidden(windows_dir, tmp_path):
    first = tmp_path / "iter1"
    assert cli_main(["cluster", "--output_dir", str(first), "--windows_dir", str(windows_dir),
                     "--num_clusters", "8", "--batch_size", "5", "--kmeans_n_init", "1"]) == 0
    labels, info = load_labels(first)
    n = len(load_window_dataset(windows_dir))
    frames = HuBERTECGConfig().num_frames(6000)
    assert labels.shape == (n, frames) and labels.dtype == np.int16 and labels.max() < 8
    assert info["num_clusters"] == 8 and info["features"] == "mfcc"
    stats = json.loads((first / "cluster_stats.json").read_text())
    assert stats["frames"] == n * frames and sum(stats["cluster_sizes"]) == n * frames and stats["used_clusters"] >= 2
    assert not (first / "tmp").exists()

    # iteration 2: hidden states of a model's layer, compared with iteration 1
    model = HuBERTECGForPreTraining(HuBERTECGConfig.from_preset("small", vocab_sizes=[8], **TINY)).eval()
    model.save_pretrained(tmp_path / "model")
    yaml = tmp_path / "cluster.yaml"
    yaml.write_text(
        f"output_dir: {tmp_path / 'iter2'}\nwindows_dir: {windows_dir}\nfeatures: hidden\n"
        f"model: {tmp_path / 'model'}\nlayer: 1\nnum_clusters: 12\nkmeans_n_init: 1\n"
        f"compare_labels_dir: {first}\n"
    )
    assert cli_main(["cluster", str(yaml)]) == 0
    labels2, info2 = load_labels(tmp_path / "iter2")
    assert labels2.shape == (n, frames) and info2["layer"] == 1 and info2["features"] == "hidden"
    stats2 = json.loads((tmp_path / "iter2" / "cluster_stats.json").read_text())
    # the NMI compares the two iterations' labels of the same windows, row for row
    assert stats2["nmi_with_previous"] == pytest.approx(
        normalized_mutual_info_score(labels.reshape(-1), labels2.reshape(-1)), abs=1e-9)
    permuted = np.random.default_rng(0).permutation(labels2.reshape(-1))
    shuffled = normalized_mutual_info_score(labels.reshape(-1), permuted)
    assert stats2["nmi_with_previous"] > shuffled + 0.05
    # the labels are the nearest centroids of the layer's hidden states
    values = load_window_dataset(windows_dir).with_format("numpy")[:2]["input_values"]
    hidden = hidden_state_features(model, values, layer=1)
    assert hidden.shape == (2, 93, 32)
    np.testing.assert_array_equal(KMeansCodebook.load(tmp_path / "iter2").assign(hidden), labels2[:2])


def test_cluster_command_errors(tmp_path, capsys):
    assert cli_main(["cluster", "--output_dir", str(tmp_path / "o"), "--windows_dir", str(tmp_path / "w")]) == 2
    assert "pass --data" in capsys.readouterr().err
    assert cli_main(["cluster", "--output_dir", "o", "--windows_dir", "w", "--features", "hidden"]) == 2
    assert "--features hidden needs --model" in capsys.readouterr().err


def test_the_old_model_name_or_path_still_works_with_a_note(tmp_path, capsys):
    """--model was --model_name_or_path (also as a key of the YAML file): still read, with one line saying so."""
    from hubert_ecg_cli.arguments import parse
    from hubert_ecg_cli.cluster import PROG, ClusterArguments

    (args,) = parse(["--output_dir", "o", "--windows_dir", "w", "--features", "hidden", "--model_name_or_path", "m"],
                    (ClusterArguments,), PROG)
    assert args.model == "m"
    assert "hubert-ecg cluster: --model_name_or_path is deprecated" in capsys.readouterr().err
    config = tmp_path / "cluster.yaml"
    config.write_text("output_dir: o\nwindows_dir: w\nfeatures: hidden\nmodel_name_or_path: m2\n")
    (args,) = parse([str(config)], (ClusterArguments,), PROG)
    assert args.model == "m2"
    assert "model_name_or_path in cluster.yaml is deprecated" in capsys.readouterr().err
    example = Path(__file__).resolve().parents[1] / "examples" / "pretrain" / "cluster_iteration2.yaml"
    (args,) = parse([str(example)], (ClusterArguments,), PROG)  # the shipped example: the new key, no note
    assert args.model == "runs/hubert-ecg-small-it1" and "deprecated" not in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:  # a field's own check is a usage error
        parse(["--output_dir", "o", "--windows_dir", "w", "--stride_seconds", "0"], (ClusterArguments,), PROG)
    assert exit_.value.code == 2 and "--stride_seconds must be a positive" in capsys.readouterr().err
