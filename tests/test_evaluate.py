"""hubert-ecg evaluate and the metrics, on real PTB-XL records."""

import json

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score, roc_auc_score

from hubert_ecg import HuBERTECGConfig, HuBERTECGFeatureExtractor, HuBERTECGForSequenceClassification
from hubert_ecg.training import evaluate, metrics
from hubert_ecg_cli import evaluate as evaluate_command
from hubert_ecg_cli.arguments import parse


def _evaluate_main(argv: list[str]) -> int:
    """``hubert-ecg evaluate ARGV``'s exit status, as the router returns it (a usage error: 2, not SystemExit)."""
    from hubert_ecg_cli import main

    return main(["evaluate", *argv])


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
    assert _evaluate_main([*argv, "--skip_bad_records", "false"]) == 2  # the rule of predict and finetune
    assert "missing_hr" in capsys.readouterr().err
    assert _evaluate_main(argv) == 1  # finished with the rest, the skipped one listed
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
    args = evaluate_command.EvaluateArguments(model=str(tiny_dir), test_csv=str(csv), data_dir=str(folder),
                                              n_bootstrap=0)
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
    assert _evaluate_main(argv) == 0
    assert "72 records scored" in capsys.readouterr().out
    assert _evaluate_main(argv[:4] + ["--split", "test"]) == 2
    assert "no records" in capsys.readouterr().err
    assert _evaluate_main(argv[:4] + ["--label_set", "rhythm"]) == 2
    assert "--label_set" in capsys.readouterr().err


def test_evaluate_clear_errors(tiny_dir, manifest, tmp_path, capsys):
    csv, folder = manifest
    assert _evaluate_main(["--model", str(tiny_dir), "--test_csv", str(tmp_path / "absent.csv")]) == 2
    assert "manifest CSV not found" in capsys.readouterr().err
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("filename,A,B\n00010_hr,1,0\n")
    assert _evaluate_main(["--model", str(tiny_dir), "--test_csv", str(wrong), "--data_dir", str(folder)]) == 2
    err = capsys.readouterr().err
    assert "wrong.csv" in err and "5 labels" in err
    (tmp_path / "bad.hea").write_text("garbage\n")
    allbad = tmp_path / "allbad.csv"
    allbad.write_text(f"filename,NORM,MI,STTC,CD,HYP\n{tmp_path}/bad,1,0,0,0,0\n")
    # nothing scorable: the records listed, exit 1 (the one bad-record rule, as predict, embed and measure)
    assert _evaluate_main(["--model", str(tiny_dir), "--test_csv", str(allbad)]) == 1
    err = capsys.readouterr().err
    assert "skipped 1 of 1 record(s)" in err and f"{tmp_path}/bad" in err and "no record could be scored" in err
    assert _evaluate_main(["--model", str(tmp_path / "nope"), "--test_csv", str(csv)]) == 2
    assert "cannot load the model" in capsys.readouterr().err


RECORDS = ["00010_hr", "00008_hr", "00026_hr", "00030_hr", "00195_hr", "00223_hr", "00047_hr", "00041_hr"]


def _tiny(path, problem_type, labels):
    torch.manual_seed(1)
    config = HuBERTECGConfig.from_preset("small", **TINY, id2label=dict(enumerate(labels)),
                                         label2id={n: i for i, n in enumerate(labels)}, problem_type=problem_type)
    model = HuBERTECGForSequenceClassification(config)
    with torch.no_grad():
        model.classifier.weight.normal_(0, 1.0)  # spread the outputs
    model.save_pretrained(path)  # no preprocessor_config.json: the default feature extractor (as released)
    return model.eval()


def _first_window_logits(model, folder):
    from hubert_ecg import read_ecg

    fe = HuBERTECGFeatureExtractor()
    with torch.no_grad():
        return np.concatenate([model(input_values=fe(read_ecg(folder / r), return_tensors="pt")["input_values"])
                               .logits.double().numpy() for r in RECORDS])


def _bootstrap(y, s, metric, n, seed=0, confidence=0.95):
    """The percentile bootstrap, written out: the records drawn as metrics.bootstrap_ci draws them."""
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(n):
        index = rng.integers(0, len(s), len(s))
        values.append(metric(y[index], s[index]))
    values = np.asarray(values)
    values = values[np.isfinite(values)]
    return np.quantile(values, (1 - confidence) / 2), np.quantile(values, (1 + confidence) / 2)


def test_evaluate_single_label(tmp_path, data_dir, capsys):
    """Multi-class: accuracy, macro F1 of the argmax and one-vs-rest macro AUROC equal scikit-learn's on the softmax
    of the model called directly, each with its bootstrap CI; labels as class indices or class names."""
    from sklearn.metrics import accuracy_score, f1_score

    folder = data_dir / "ptbxl" / "records500" / "00000"
    classes = ["AF", "SR", "STACH"]
    model = _tiny(tmp_path / "model", "single_label_classification", classes)
    y = np.array([0, 1, 2, 0, 1, 2, 1, 1])
    (tmp_path / "idx.csv").write_text("filename,age,sex,rhythm\n" + "".join(
        f"{r},50,M,{c}\n" for r, c in zip(RECORDS, y)))
    (tmp_path / "names.csv").write_text("filename,rhythm\n" + "".join(
        f"{r},{classes[c]}\n" for r, c in zip(RECORDS, y)))
    out = tmp_path / "eval"
    argv = ["--model", str(tmp_path / "model"), "--data_dir", str(folder), "--n_bootstrap", "40",
            "--plot_roc", "false"]
    assert _evaluate_main([*argv, "--test_csv", str(tmp_path / "idx.csv"), "--output_dir", str(out)]) == 0
    report = capsys.readouterr().out
    assert "accuracy" in report and "argmax" in report
    summary = json.loads((out / "metrics.json").read_text())
    logits = _first_window_logits(model, folder)
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    m = summary["metrics"]
    assert m["accuracy"] == pytest.approx(accuracy_score(y, probs.argmax(1)))
    assert m["macro_f1"] == pytest.approx(f1_score(y, probs.argmax(1), average="macro"))
    assert m["macro_auroc"] == pytest.approx(roc_auc_score(y, probs, multi_class="ovr", average="macro"), abs=1e-6)
    for name in ("accuracy", "macro_f1", "macro_auroc"):
        low, high = summary["ci"][name]
        assert low <= high
    low, high = _bootstrap(y, probs, lambda a, b: accuracy_score(a, b.argmax(1)), 40)
    assert summary["ci"]["accuracy"] == pytest.approx([low, high])
    by_name = evaluate.evaluate(evaluate_command.EvaluateArguments(
        model=str(tmp_path / "model"), test_csv=str(tmp_path / "names.csv"), data_dir=str(folder), n_bootstrap=0))
    assert by_name["metrics"] == pytest.approx(m)
    assert _evaluate_main([*argv, "--test_csv", str(tmp_path / "idx.csv"), "--tta_windows", "2",
                          "--tta_aggregation", "max"]) == 2
    assert "single-label" in capsys.readouterr().err


def test_evaluate_regression(tmp_path, data_dir, capsys):
    """Regression: MAE, RMSE, R2 and Pearson r per output and their mean over the outputs, equal to scikit-learn's
    and scipy's on the model called directly, each with its bootstrap CI; targets from the columns named as the
    outputs, whatever else the manifest holds."""
    from scipy.stats import pearsonr
    from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

    folder = data_dir / "ptbxl" / "records500" / "00000"
    outputs = ["QTc_ms", "HR_bpm"]
    model = _tiny(tmp_path / "model", "regression", outputs)
    logits = _first_window_logits(model, folder)
    rng = np.random.default_rng(3)
    targets = logits * rng.uniform(0.5, 1.5, logits.shape) + rng.normal(0, 0.3, logits.shape)
    ages = np.array([31.0, 45.0, 52.0, 60.0, 67.0, 70.0, 75.0, 82.0])
    (tmp_path / "targets.csv").write_text("filename,age,sex,HR_bpm,QTc_ms,other\n" + "".join(
        f"{r},{a},F,{float(t[1])!r},{float(t[0])!r},7\n" for r, a, t in zip(RECORDS, ages, targets)))
    out = tmp_path / "eval"
    argv = ["--model", str(tmp_path / "model"), "--test_csv", str(tmp_path / "targets.csv"), "--data_dir",
            str(folder), "--n_bootstrap", "50", "--output_dir", str(out), "--save_probabilities", "true"]
    assert _evaluate_main(argv) == 0
    report = capsys.readouterr().out
    assert "Pearson r" in report and "QTc_ms" in report and "auroc" not in report.lower()
    summary = json.loads((out / "metrics.json").read_text())
    expected = {}
    for j, name in enumerate(outputs):
        t, p = targets[:, j], logits[:, j]
        expected[name] = {"mae": mean_absolute_error(t, p), "rmse": np.sqrt(mean_squared_error(t, p)),
                          "r2": r2_score(t, p), "pearson_r": pearsonr(t, p)[0]}
    import csv

    rows = {row["label"]: row for row in csv.DictReader((out / "per_label.csv").open())}
    for name in outputs:
        for key, value in expected[name].items():
            assert float(rows[name][key]) == pytest.approx(value, rel=1e-5), (name, key)
            assert float(rows[name][f"{key}_low"]) <= float(rows[name][f"{key}_high"])
    for key in ("mae", "rmse", "r2", "pearson_r"):
        assert summary["metrics"][key] == pytest.approx(np.mean([expected[n][key] for n in outputs]), rel=1e-5)
        assert summary["ci"][key][0] <= summary["metrics"][key] <= summary["ci"][key][1] or key == "r2"
    low, high = _bootstrap(targets[:, 0], logits[:, 0], lambda t, p: np.abs(t - p).mean(), 50)
    assert [float(rows["QTc_ms"]["mae_low"]), float(rows["QTc_ms"]["mae_high"])] == pytest.approx([low, high],
                                                                                                   rel=1e-5)
    header = (out / "probabilities.csv").read_text().splitlines()[0]
    assert header == "file,pred_QTc_ms,pred_HR_bpm,y_QTc_ms,y_HR_bpm"
    assert not (out / "roc_curves.png").exists()

    # one output named age: the manifest's age column is its target
    age = _tiny(tmp_path / "age", "regression", ["age"])
    result = evaluate.evaluate(evaluate_command.EvaluateArguments(
        model=str(tmp_path / "age"), test_csv=str(tmp_path / "targets.csv"), data_dir=str(folder), n_bootstrap=0))
    p = _first_window_logits(age, folder)[:, 0]
    assert result["metrics"]["mae"] == pytest.approx(mean_absolute_error(ages, p), rel=1e-5)
    assert result["per_label"][0]["pearson_r"] == pytest.approx(pearsonr(ages, p)[0], rel=1e-5)
    assert _evaluate_main(["--model", str(tmp_path / "age"), "--ptbxl_dir", str(data_dir / "ptbxl")]) == 2
    assert "--test_csv" in capsys.readouterr().err


def test_evaluate_without_a_model_says_it_uses_the_demo_model(manifest, capsys):
    csv, folder = manifest
    assert _evaluate_main(["--test_csv", str(csv), "--data_dir", str(folder), "--n_bootstrap", "0",
                                  "--plot_roc", "false"]) == 0
    captured = capsys.readouterr()
    assert "using the bundled demo model" in captured.err and "8 records scored" in captured.out


def test_plot_roc_without_an_output_dir_is_refused_not_ignored(manifest, capsys):
    csv, folder = manifest
    assert _evaluate_main(["--test_csv", str(csv), "--data_dir", str(folder), "--plot_roc", "true"]) == 2
    assert "--plot_roc writes roc_curves.png into --output_dir" in capsys.readouterr().err


def test_evaluate_every_window_with_a_stride(tiny_dir, manifest, tmp_path):
    """``--tta_windows all --stride_seconds 2.5``: every 5 s window of a record 2.5 s apart (3 of a 10 s PTB-XL
    record), their probabilities averaged."""
    csv, folder = manifest
    out = tmp_path / "eval"
    argv = ["--model", str(tiny_dir), "--test_csv", str(csv), "--data_dir", str(folder), "--output_dir", str(out),
            "--n_bootstrap", "0", "--tta_windows", "all", "--stride_seconds", "2.5", "--save_probabilities", "true"]
    assert _evaluate_main(argv) == 0
    from hubert_ecg import read_ecg

    model = HuBERTECGForSequenceClassification.from_pretrained(tiny_dir).eval()
    fe = HuBERTECGFeatureExtractor()
    rows = [line.split(",") for line in (out / "probabilities.csv").read_text().splitlines()[1:]]
    assert len(rows) == 8
    for row in rows:
        record = read_ecg(row[0])
        starts = [0.0, 2.5, 5.0]  # seconds: a 10 s record
        assert record.signal.shape[1] == 10 * record.sampling_rate
        with torch.no_grad():
            logits = model(input_values=fe(record, window_starts=starts, return_tensors="pt")["input_values"]).logits
        np.testing.assert_allclose([float(v) for v in row[1:6]], torch.sigmoid(logits).mean(0).numpy(), atol=2e-6)


def test_evaluate_command_checks_its_arguments_before_the_package(capsys):
    """The field checks of `hubert-ecg evaluate` are usage errors (exit 2, the usage and one error line), and the
    texts the command mirrors are the package's."""
    from hubert_ecg.leads import DEFAULT_MISSING_LEADS
    from hubert_ecg.training import data
    from hubert_ecg_cli import calibrate as calibrate_command
    from hubert_ecg_cli import main

    assert evaluate_command.BAD_RECORDS_RULE == data.BAD_RECORDS_RULE
    assert evaluate_command.EvaluateArguments().missing_leads == DEFAULT_MISSING_LEADS
    assert calibrate_command.CalibrateArguments().missing_leads == DEFAULT_MISSING_LEADS
    for argv, message in ((["--batch_size", "0"], "--batch_size must be a positive integer"),
                          (["--tta_windows", "-1"], "--tta_windows must be 0, a positive number of windows or 'all'"),
                          (["--tta_windows", "3", "--stride_seconds", "2.5"], "--stride_seconds spaces the windows"),
                          (["--tta_windows", "all", "--stride_seconds", "0"], "--stride_seconds must be a positive number"),
                          (["--missing_leads", "drop"], "--missing_leads"),
                          (["--tta_aggregation", "median"], "--tta_aggregation")):
        assert main(["evaluate", *argv]) == 2
        err = capsys.readouterr().err
        assert "hubert-ecg evaluate: error: " in err and message in err
    for spelling in ("--batch_size", "--batch-size"):  # both spellings, as every command
        assert evaluate_command.EvaluateArguments(batch_size=8).batch_size == 8
        (args,) = parse([spelling, "8"], (evaluate_command.EvaluateArguments,), evaluate_command.PROG)
        assert args.batch_size == 8
