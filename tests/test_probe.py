"""``hubert-ecg embed``, ``probe`` and ``plot-embeddings`` on real PTB-XL records embedded by the demo model."""

import json
import sys

import numpy as np
import pandas as pd
import pytest

from hubert_ecg.training.probe import Embeddings, fit_probe, linear_probe, read_embeddings, write_embeddings
from hubert_ecg_cli import main

N_TRAIN, N_EVAL = 100, 50  # first 5 s window of each: ~150 forward windows through the demo model


@pytest.fixture(scope="module")
def embedded(data_dir, tmp_path_factory):
    """Manifests of PTB-XL superclasses (a subset of folds 1-8 to train, fold 9 to evaluate) and their
    embeddings by the demo model, written by ``hubert-ecg embed``."""
    from hubert_ecg.training.data import read_ptbxl

    out = tmp_path_factory.mktemp("embed")
    records = read_ptbxl(data_dir / "ptbxl")
    files = {}
    for name, folds, n in (("train", range(1, 9), N_TRAIN), ("eval", [9], N_EVAL)):
        index = np.flatnonzero(np.isin(records.folds, list(folds)))[:n]
        frame = pd.DataFrame(records.labels[index], columns=records.label_names)
        frame.insert(0, "filename", [records.paths[i] for i in index])
        frame.to_csv(out / f"{name}.csv", index=False)
        assert main(["embed", str(out / f"{name}.csv"), "--output", str(out / f"{name}.parquet"), "--window", "first",
                     "--source", "ptbxl", "--batch_size", "32"]) == 0
        files[name] = out / f"{name}.parquet"
    files["dir"] = out
    return files


def test_embed_writes_one_row_per_record_with_labels_and_the_pipelines_vector(embedded, data_dir):
    import hubert_ecg
    from transformers import pipeline

    emb = read_embeddings(embedded["train"])
    manifest = pd.read_csv(embedded["dir"] / "train.csv")
    assert len(emb) == N_TRAIN and emb.paths == list(manifest["filename"])
    assert emb.sources == ["ptbxl"] * N_TRAIN and (emb.windows == 1).all()
    assert emb.label_names == ["NORM", "MI", "STTC", "CD", "HYP"]
    assert emb.problem_type == "multi_label_classification"
    np.testing.assert_array_equal(emb.labels, manifest[emb.label_names].to_numpy(np.float32))
    assert emb.vectors.shape == (N_TRAIN, 128) and emb.vectors.dtype == np.float32
    assert emb.metadata["layer"] is None and emb.metadata["window"] == "first"
    pipe = pipeline("ecg-feature-extraction", model=hubert_ecg.demo_model_path())
    for i in (0, 57):
        np.testing.assert_allclose(emb.vectors[i], pipe(emb.paths[i], window="first"), atol=1e-5)


def test_embed_skips_and_lists_bad_records_and_takes_directories_and_layers(data_dir, tmp_path, capsys):
    folder = data_dir / "cinc2021"
    records = sorted(p for p in folder.glob("E075*.hea"))[:2]
    for p in records:  # a directory of two challenge records
        for suffix in (".hea", ".mat"):
            (tmp_path / "dir").mkdir(exist_ok=True)
            (tmp_path / "dir" / (p.stem + suffix)).write_bytes(p.with_suffix(suffix).read_bytes())
    (tmp_path / "broken.npy").write_bytes(b"not an array")
    output = tmp_path / "emb.parquet"
    code = main(["embed", str(tmp_path / "dir"), str(tmp_path / "broken.npy"), "--layer", "1", "--output",
                 str(output)])
    err = capsys.readouterr().err
    assert code == 1 and "skipped 1 of 3" in err and "broken.npy" in err
    emb = read_embeddings(output)
    assert len(emb) == 2 and emb.problem_type is None and emb.labels is None
    assert emb.sources == [str(tmp_path / "dir")] * 2 and emb.metadata["layer"] == 1
    # nothing embeddable: listed, exit 1 (the one bad-record rule), nothing written
    assert main(["embed", str(tmp_path / "broken.npy"), "--output", str(tmp_path / "none.parquet")]) == 1
    assert "no record could be embedded (nothing written)" in capsys.readouterr().err
    assert not (tmp_path / "none.parquet").exists()
    assert main(["embed", str(tmp_path / "dir"), "--layer", "9", "--output", str(tmp_path / "x.parquet")]) == 2
    assert "layer must be an integer" in capsys.readouterr().err


def test_probe_on_demo_embeddings_beats_chance_on_fold_9(embedded, tmp_path, capsys):
    out = tmp_path / "probe.json"
    code = main(["probe", "--embeddings", str(embedded["train"]), "--eval", str(embedded["eval"]),
                 "--Cs", "0.01,0.1,1,10", "--folds", "3", "--n_bootstrap", "100", "--output", str(out)])
    printed = capsys.readouterr().out
    assert code == 0 and "macro_auroc" in printed and "NORM" in printed
    summary = json.loads(out.read_text())
    assert summary["n_train"] == N_TRAIN and summary["n_records"] == N_EVAL
    low, high = summary["ci"]["macro_auroc"]
    assert summary["metrics"]["macro_auroc"] > 0.7 and low > 0.5 and low < summary["metrics"]["macro_auroc"] < high
    assert set(summary["C"]) == {"NORM", "MI", "STTC", "CD", "HYP"}
    assert set(summary["C"].values()) <= {0.01, 0.1, 1.0, 10.0}


def test_probe_reports_the_packages_metrics_and_bootstrap(embedded):
    """The probe's numbers are those of training.metrics on its own scores (no second implementation)."""
    from hubert_ecg.training.metrics import bootstrap_ci, classification_metrics

    train, evaluation = read_embeddings(embedded["train"]), read_embeddings(embedded["eval"])
    result = linear_probe(train, evaluation, Cs=(0.01, 1.0), folds=3, n_bootstrap=30, seed=3)
    assert result["metrics"] == classification_metrics(evaluation.labels, result["scores"])
    ci = bootstrap_ci(evaluation.labels, result["scores"], classification_metrics, 30, 0.95, 3)
    assert result["ci"]["macro_auroc"] == ci["macro_auroc"]
    assert set(result["C"].values()) <= {0.01, 1.0}
    two = read_embeddings(embedded["train"], ["NORM", "CD"])
    assert two.problem_type == "multi_label_classification" and two.label_names == ["NORM", "CD"]
    np.testing.assert_array_equal(two.labels, train.labels[:, [0, 3]])


def test_a_label_without_enough_positives_is_predicted_at_its_prevalence(embedded):
    train = read_embeddings(embedded["train"])
    labels = train.labels.copy()
    labels[:, 4] = 0
    labels[0, 4] = 1  # a single positive HYP record: nothing to cross-validate
    train.labels = labels
    predict = fit_probe(train, Cs=(1.0,), folds=3)
    scores = predict(train.vectors[:5])
    assert predict.C["HYP"] is None and predict.C["NORM"] == 1.0
    np.testing.assert_allclose(scores[:, 4], 1 / len(labels))
    assert 0 < scores[:, 0].min() and scores[:, 0].max() < 1 and scores[:, 0].std() > 0


def test_probe_refuses_mismatched_or_missing_labels(embedded, tmp_path, capsys):
    emb = read_embeddings(embedded["eval"])
    other = Embeddings(emb.paths, emb.sources, emb.vectors, emb.windows, emb.labels[:, :3], emb.label_names[:3],
                       emb.problem_type)
    write_embeddings(tmp_path / "three.parquet", other)
    unlabelled = Embeddings(emb.paths, emb.sources, emb.vectors)
    write_embeddings(tmp_path / "none.parquet", unlabelled)
    assert main(["probe", "--embeddings", str(embedded["train"]), "--eval", str(tmp_path / "three.parquet")]) == 2
    assert "labels" in capsys.readouterr().err
    assert main(["probe", "--embeddings", str(tmp_path / "none.parquet"), "--eval", str(embedded["eval"])]) == 2
    assert "no label columns" in capsys.readouterr().err
    assert main(["probe", "--embeddings", str(tmp_path / "missing.parquet"), "--eval", str(embedded["eval"])]) == 2
    assert "not found" in capsys.readouterr().err


def test_parquet_round_trip_single_label_and_foreign_files(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    vectors = np.random.default_rng(0).normal(size=(4, 3)).astype(np.float32)
    emb = Embeddings(["a", "b", "c", "d"], ["s1", "s1", "s2", "s2"], vectors, np.array([1, 2, 1, 1]),
                     np.array([0, 2, -1, 1]), ["afib", "normal", "other"], "single_label_classification",
                     {"model": "m", "layer": 2})
    write_embeddings(tmp_path / "e.parquet", emb)
    back = read_embeddings(tmp_path / "e.parquet")
    np.testing.assert_array_equal(back.vectors, vectors)
    np.testing.assert_array_equal(back.labels, [0, 2, -1, 1])
    assert back.label_names == ["afib", "normal", "other"] and back.labelled().tolist() == [True, True, False, True]
    assert back.metadata["model"] == "m" and back.sources == emb.sources
    # a Parquet file written elsewhere: list column, numeric label columns, no metadata
    table = pa.table({"path": ["a", "b", "c"], "embedding": [[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]],
                      "x": [0.0, 1.0, 1.0], "y": [1.0, 0.0, 1.0]})
    pq.write_table(table, tmp_path / "foreign.parquet")
    foreign = read_embeddings(tmp_path / "foreign.parquet")
    assert foreign.problem_type == "multi_label_classification" and foreign.label_names == ["x", "y"]
    np.testing.assert_array_equal(foreign.vectors, [[1, 2], [3, 4], [5, 6]])
    with pytest.raises(ValueError, match="no 'embedding' column"):
        pq.write_table(pa.table({"path": ["a"]}), tmp_path / "bad.parquet")
        read_embeddings(tmp_path / "bad.parquet")


def test_plot_embeddings_writes_a_png_coloured_by_label_and_source(embedded, tmp_path, capsys):
    from hubert_ecg.training.probe import plot_embeddings

    out = tmp_path / "emb.png"
    assert main(["plot-embeddings", str(embedded["train"]), "--color_by", "label", "--output", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10_000
    assert "NORM" in capsys.readouterr().out
    legend = plot_embeddings(embedded["eval"], tmp_path / "source.png", color_by="source")
    assert legend == {"ptbxl": N_EVAL}
    legend = plot_embeddings(embedded["train"], tmp_path / "norm.png", color_by="NORM")
    emb = read_embeddings(embedded["train"])
    assert legend == {"0.0": int((emb.labels[:, 0] == 0).sum()), "1.0": int(emb.labels[:, 0].sum())}
    legend = plot_embeddings(embedded["train"], tmp_path / "label.png", color_by="label")
    combos = ["+".join(n for n, v in zip(emb.label_names, row) if v) or "none" for row in emb.labels]
    top = sorted(set(combos), key=lambda c: -combos.count(c))[:10]
    assert set(legend) - {"other"} == set(top) and sum(legend.values()) == N_TRAIN
    assert main(["plot-embeddings", str(embedded["train"]), "--color_by", "nope", "--output", str(out)]) == 2
    assert "--color-by must be" in capsys.readouterr().err


def test_umap_without_umap_learn_says_which_extra(embedded, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "umap", None)  # import umap -> ImportError
    assert main(["plot-embeddings", str(embedded["train"]), "--method", "umap", "--output", str(tmp_path / "u.png")]) == 2
    assert 'pip install "hubert-ecg[umap]"' in capsys.readouterr().err


@pytest.mark.slow
def test_umap_plot(embedded, tmp_path):
    """UMAP compiles numba code on its first call (about a minute)."""
    pytest.importorskip("umap")
    from hubert_ecg.training.probe import plot_embeddings

    legend = plot_embeddings(embedded["train"], tmp_path / "umap.png", color_by="label", method="umap")
    assert sum(legend.values()) == N_TRAIN and (tmp_path / "umap.png").stat().st_size > 10_000


def test_single_label_probe_gives_class_probabilities(embedded):
    """Classes from the superclasses (NORM, MI, STTC, CD, HYP: the first one a record has): one multinomial
    regression; its scores are probabilities over the classes."""
    def single(path):
        emb = read_embeddings(path)
        classes = emb.labels.argmax(axis=1).astype(np.int64)
        return Embeddings(emb.paths, emb.sources, emb.vectors, emb.windows, classes, emb.label_names,
                          "single_label_classification")

    train, evaluation = single(embedded["train"]), single(embedded["eval"])
    result = linear_probe(train, evaluation, Cs=(0.01, 1.0), folds=3, n_bootstrap=0)
    np.testing.assert_allclose(result["scores"].sum(axis=1), 1.0, atol=1e-9)
    assert result["scores"].shape == (N_EVAL, 5) and result["ci"] == {}
    assert result["metrics"]["macro_auroc"] > 0.6 and 0 <= result["metrics"]["accuracy"] <= 1


def test_train_fraction_probes_the_records_finetune_trains_on(embedded, tmp_path, capsys):
    """--train_fraction in probe and in finetune draw the same records from one manifest."""
    from hubert_ecg.training.finetune import load_data
    from hubert_ecg_cli.finetune import DataArguments
    from hubert_ecg.training.probe import subset_embeddings

    train = read_embeddings(embedded["train"])
    subset = subset_embeddings(train, 0.1, seed=4)
    assert 10 <= len(subset) < N_TRAIN and (subset.labels.sum(0) >= 2).all()
    args = DataArguments(train_csv=str(embedded["dir"] / "train.csv"), validation_csv=str(embedded["dir"] / "eval.csv"),
                         train_fraction=0.1, max_eval_records=2)
    datasets = load_data(args, seed=4)[0]
    assert subset.paths == list(datasets["train"]["record_name"])
    out = tmp_path / "probe.json"
    assert main(["probe", "--embeddings", str(embedded["train"]), "--eval", str(embedded["eval"]), "--Cs", "0.1,1",
                 "--folds", "2", "--n_bootstrap", "0", "--train_fraction", "0.1", "--seed", "4",
                 "--output", str(out)]) == 0
    summary = json.loads(out.read_text())
    assert summary["n_train"] == len(subset) and summary["train_fraction"] == 0.1 and summary["seed"] == 4
    assert main(["probe", "--embeddings", str(embedded["train"]), "--eval", str(embedded["eval"]),
                 "--train_fraction", "0"]) == 2
    assert "--train_fraction must lie in (0, 1], got 0.0" in capsys.readouterr().err


def test_the_commands_choices_are_the_packages():
    """The values plot-embeddings keeps to answer usage errors without the package are the package's own."""
    from hubert_ecg.training import probe
    from hubert_ecg_cli import plot_embeddings

    assert plot_embeddings.METHODS == probe.PROJECTIONS
    assert plot_embeddings.MAX_GROUPS == probe.MAX_GROUPS


def test_embed_usage_errors_and_the_deprecated_stride(tmp_path, capsys):
    """--output or --output_dir, one of them: a usage error otherwise (exit 2); --stride still works, with a note,
    and is written as stride_seconds; --source given twice is one list; --sampling_rate and --lead_names reach the
    reader of .npy records."""
    from hubert_ecg.demo import demo_records

    record = [r for r in demo_records() if r.endswith("00010_hr")][0]
    assert main(["embed", record]) == 2
    assert "give one of --output FILE or --output_dir OUT" in capsys.readouterr().err
    assert main(["embed", record, "--output", str(tmp_path / "a.parquet"), "--output_dir", str(tmp_path)]) == 2
    capsys.readouterr()
    out = tmp_path / "stride.parquet"
    assert main(["embed", record, record, "--stride", "2.5", "--source", "a", "--source", "b", "--output",
                 str(out)]) == 0
    err = capsys.readouterr().err
    assert "hubert-ecg embed: --stride is deprecated" in err and "use --stride_seconds" in err
    emb = read_embeddings(out)
    assert emb.metadata["stride_seconds"] == 2.5 and emb.sources == ["a", "b"]
    assert (emb.windows == 3).all()  # 10 s at a 2.5 s stride: windows starting at 0, 2.5 and 5 s
    from hubert_ecg import read_ecg

    np.save(tmp_path / "two.npy", read_ecg(record).signal[:2].astype(np.float32))  # leads I and II
    npy = tmp_path / "npy.parquet"
    assert main(["embed", str(tmp_path / "two.npy"), "--sampling_rate", "500", "--lead_names", "I,II",
                 "--missing_leads", "raise", "--output", str(npy)]) == 1
    assert "two.npy" in capsys.readouterr().err  # raise: the lacking leads skip the record
    assert main(["embed", str(tmp_path / "two.npy"), "--sampling_rate", "500", "--lead_names", "I,II",
                 "--output", str(npy)]) == 0
    assert len(read_embeddings(npy)) == 1


def test_plot_embeddings_takes_the_deprecated_out(embedded, tmp_path, capsys):
    out = tmp_path / "old.png"
    assert main(["plot-embeddings", str(embedded["eval"]), "--color-by", "source", "--out", str(out)]) == 0
    assert "hubert-ecg plot-embeddings: --out is deprecated" in capsys.readouterr().err
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["plot-embeddings", str(embedded["eval"])]) == 2  # --output is required
    assert "--output" in capsys.readouterr().err
