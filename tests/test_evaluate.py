"""hubert-ecg evaluate and the metrics, on real PTB-XL records."""

import json

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score, roc_auc_score

from hubert_ecg import HuBERTECGConfig, HuBERTECGFeatureExtractor, HuBERTECGForSequenceClassification
from hubert_ecg.training import evaluate, metrics

TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, conv_dim=[32] * 5,
            num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4, classifier_proj_size=32)
LABELS = ["NORM", "MI", "STTC", "CD", "HYP"]


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny_eval")
    torch.manual_seed(0)
    config = HuBERTECGConfig.from_preset("small", **TINY, id2label=dict(enumerate(LABELS)),
                                         label2id={n: i for i, n in enumerate(LABELS)},
                                         problem_type="multi_label_classification")
    HuBERTECGForSequenceClassification(config).save_pretrained(path)
    HuBERTECGFeatureExtractor().save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def manifest(tmp_path_factory, data_dir):
    folder = data_dir / "ptbxl" / "records500" / "00000"
    path = tmp_path_factory.mktemp("manifest") / "labels.csv"
    rows = [("00010_hr", "1,0,0,0,0"), ("00008_hr", "0,1,0,0,0"), ("00026_hr", "0,0,1,0,0"), ("00030_hr", "0,0,0,0,1"),
            ("00195_hr", "0,0,0,1,0"), ("00223_hr", "0,1,1,0,1"), ("00047_hr", "1,0,0,0,0"), ("00041_hr", "0,0,0,1,0")]
    path.write_text("filename,age,sex,NORM,MI,STTC,CD,HYP\n" + "".join(f"{f},50,M,{y}\n" for f, y in rows))
    return path, folder


def test_classification_metrics_match_sklearn():
    rng = np.random.default_rng(0)
    y = (rng.random((60, 4)) < 0.3).astype(float)
    s = np.clip(y * 0.3 + rng.random((60, 4)) * 0.7, 0, 1)
    out = metrics.classification_metrics(y, s, threshold=0.5)
    assert out["macro_auroc"] == pytest.approx(roc_auc_score(y, s, average="macro"))
    assert out["micro_auroc"] == pytest.approx(roc_auc_score(y, s, average="micro"))
    assert out["macro_auprc"] == pytest.approx(average_precision_score(y, s, average="macro"))
    assert out["n_labels_evaluated"] == 4
    y[:, 0] = 0  # a label without positives is left out of the macro average
    out = metrics.classification_metrics(y, s)
    assert out["n_labels_evaluated"] == 3
    assert out["macro_auroc"] == pytest.approx(roc_auc_score(y[:, 1:], s[:, 1:], average="macro"))
    ci = metrics.bootstrap_ci(y, s, metrics.classification_metrics, n_resamples=50)
    assert ci["macro_auroc"][0] <= out["macro_auroc"] <= ci["macro_auroc"][1]
    single = metrics.classification_metrics(np.array([0, 1, 2, 1]), metrics.scores_from_logits(np.eye(3)[[0, 1, 2, 0]] * 3, "single_label_classification"),
                                            "single_label_classification")
    assert single["accuracy"] == 0.75


def test_evaluate_manifest_with_tta_and_outputs(tiny_dir, manifest, tmp_path, capsys):
    csv, folder = manifest
    bad = tmp_path / "with_bad.csv"
    bad.write_text(csv.read_text() + "missing_hr,50,M,1,0,0,0,0\n")
    out = tmp_path / "eval"
    argv = ["--model", str(tiny_dir), "--test_csv", str(bad), "--data_dir", str(folder), "--output_dir", str(out),
            "--n_bootstrap", "30", "--tta_windows", "3", "--tta_aggregation", "max", "--save_probabilities", "true"]
    assert evaluate.main([*argv, "--skip_bad_records", "false"]) == 2  # the rule of predict and finetune
    assert "missing_hr" in capsys.readouterr().err
    assert evaluate.main(argv) == 1  # finished with the rest, the skipped one listed
    captured = capsys.readouterr()
    assert "8 records scored" in captured.out and "macro_auroc" in captured.out
    assert "skipped 1 record" in captured.err and "missing_hr" in captured.err
    summary = json.loads((out / "metrics.json").read_text())
    assert summary["n_records"] == 8 and len(summary["skipped"]) == 1
    # the probabilities are 3 random windows per record (drawn in record order from the seed), max-aggregated
    from hubert_ecg import read_ecg
    from hubert_ecg.windows import choose_window_starts

    model = HuBERTECGForSequenceClassification.from_pretrained(tiny_dir).eval()
    fe = HuBERTECGFeatureExtractor()
    rng = np.random.default_rng(0)
    rows = [line.split(",") for line in (out / "probabilities.csv").read_text().splitlines()[1:]]
    assert len(rows) == 8
    for row in rows:
        record = read_ecg(row[0])
        starts = choose_window_starts(record.signal.shape[1], record.sampling_rate, fe, "random", num_windows=3, rng=rng)
        with torch.no_grad():
            logits = model(input_values=fe(record, window_starts=starts, return_tensors="pt")["input_values"]).logits
        np.testing.assert_allclose([float(v) for v in row[1:6]], torch.sigmoid(logits).max(0).values.numpy(), atol=2e-6)
    # and the metrics are sklearn's on those probabilities
    probs = np.array([[float(v) for v in row[1:6]] for row in rows])
    labels = np.array([[float(v) for v in row[6:11]] for row in rows])
    present = (labels.sum(0) > 0) & (labels.sum(0) < len(labels))
    assert summary["metrics"]["macro_auroc"] == pytest.approx(
        roc_auc_score(labels[:, present], probs[:, present], average="macro"), abs=1e-5)
    assert (out / "roc_curves.png").stat().st_size > 1000
    per_label = (out / "per_label.csv").read_text().splitlines()
    assert per_label[0].startswith("label,positives,auroc") and len(per_label) == 6
    probabilities = (out / "probabilities.csv").read_text().splitlines()
    assert len(probabilities) == 9 and probabilities[0].startswith("file,p_NORM")


def test_evaluate_first_window_equals_model(tiny_dir, manifest):
    csv, folder = manifest
    args = evaluate.EvaluateArguments(model=str(tiny_dir), test_csv=str(csv), data_dir=str(folder), n_bootstrap=0)
    result = evaluate.evaluate(args)
    model = HuBERTECGForSequenceClassification.from_pretrained(tiny_dir).eval()
    fe = HuBERTECGFeatureExtractor()
    scores, kept, _ = evaluate.score_records(model, fe, [str(folder / "00010_hr")])
    from hubert_ecg import read_ecg

    with torch.no_grad():
        logits = model(input_values=fe(read_ecg(folder / "00010_hr"), return_tensors="pt")["input_values"]).logits
    np.testing.assert_allclose(scores[0], torch.sigmoid(logits)[0].numpy(), rtol=1e-5)
    assert result["n_records"] == 8 and result["ci"] == {}


def test_evaluate_ptbxl_split(tiny_dir, data_dir, tmp_path, capsys):
    argv = ["--model", str(tiny_dir), "--ptbxl_dir", str(data_dir / "ptbxl"), "--split", "validation",
            "--n_bootstrap", "20", "--plot_roc", "false"]
    assert evaluate.main(argv) == 0
    assert "72 records scored" in capsys.readouterr().out
    assert evaluate.main(argv[:4] + ["--split", "test"]) == 2
    assert "no records" in capsys.readouterr().err
    assert evaluate.main(argv[:4] + ["--label_set", "rhythm"]) == 2
    assert "--label_set" in capsys.readouterr().err


def test_evaluate_clear_errors(tiny_dir, manifest, tmp_path, capsys):
    csv, folder = manifest
    assert evaluate.main(["--model", str(tiny_dir), "--test_csv", str(tmp_path / "absent.csv")]) == 2
    assert "manifest CSV not found" in capsys.readouterr().err
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("filename,A,B\n00010_hr,1,0\n")
    assert evaluate.main(["--model", str(tiny_dir), "--test_csv", str(wrong), "--data_dir", str(folder)]) == 2
    err = capsys.readouterr().err
    assert "wrong.csv" in err and "5 labels" in err
    (tmp_path / "bad.hea").write_text("garbage\n")
    allbad = tmp_path / "allbad.csv"
    allbad.write_text(f"filename,NORM,MI,STTC,CD,HYP\n{tmp_path}/bad,1,0,0,0,0\n")
    assert evaluate.main(["--model", str(tiny_dir), "--test_csv", str(allbad)]) == 2
    assert "none of the 1 records could be scored" in capsys.readouterr().err
    assert evaluate.main(["--model", str(tmp_path / "nope"), "--test_csv", str(csv)]) == 2
    assert "cannot load the model" in capsys.readouterr().err
