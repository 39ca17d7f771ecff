"""Calibrated scores and decision thresholds (issue 14): the fits recover known parameters, the metrics match hand
computations, and ``hubert-ecg calibrate`` on real records stores what the pipeline, ``predict`` and ``evaluate``
then use."""

import json
import shutil

import numpy as np
import pytest
from scipy.special import expit

import hubert_ecg
from hubert_ecg import HuBERTECGConfig
from hubert_ecg.modeling import scores_from_logits
from hubert_ecg.pipelines import load_pipeline
from hubert_ecg.training.calibration import fit_platt, fit_temperature, max_f1_thresholds
from hubert_ecg.training.metrics import classification_metrics, expected_calibration_error
from hubert_ecg_cli import main


def test_platt_recovers_the_generating_scale_and_bias():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 2, size=(40000, 2))
    truth = [(0.5, -1.0), (2.0, 0.7)]
    labels = np.stack([rng.random(len(logits)) < expit(a * logits[:, j] + b) for j, (a, b) in enumerate(truth)], 1)
    fit = fit_platt(logits, labels.astype(float))
    assert fit["method"] == "platt"
    np.testing.assert_allclose(fit["scale"], [a for a, _ in truth], atol=0.06)
    np.testing.assert_allclose(fit["bias"], [b for _, b in truth], atol=0.06)
    constant = fit_platt(logits[:, :1], np.zeros((len(logits), 1)))  # one class only: left as it is
    assert constant["scale"] == [1.0] and constant["bias"] == [0.0]


def test_platt_never_reverses_a_labels_ranking():
    """Scores that rank the records against their labels (a fitted slope <= 0) keep their order: the AUROC after
    calibration is the AUROC before; only the bias is fitted (the mean score moves to the base rate)."""
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(2)
    logits = rng.normal(0, 2, size=(4000, 1))
    labels = (rng.random(len(logits)) < expit(-1.5 * logits[:, 0] - 1.0)).astype(float)[:, None]
    fit = fit_platt(logits, labels)
    assert fit["scale"] == [1.0]
    calibrated = expit(logits[:, 0] + fit["bias"][0])
    assert roc_auc_score(labels[:, 0], calibrated) == roc_auc_score(labels[:, 0], logits[:, 0]) < 0.5
    assert abs(calibrated.mean() - labels.mean()) < 0.01  # the bias-only fit matches the base rate


def test_temperature_recovers_the_generating_temperature():
    rng = np.random.default_rng(1)
    logits = rng.normal(0, 3, size=(20000, 4))
    probabilities = np.exp(logits / 2.5) / np.exp(logits / 2.5).sum(1, keepdims=True)
    labels = np.array([rng.choice(4, p=p) for p in probabilities])
    fit = fit_temperature(logits, labels, "single_label_classification")
    assert fit == {"method": "temperature", "temperature": pytest.approx(2.5, rel=0.05)}


def test_max_f1_threshold_by_hand():
    scores = np.array([[0.9], [0.8], [0.6], [0.55], [0.3], [0.1]])
    labels = np.array([[1], [1], [0], [1], [0], [0]])
    # at 0.55: TP 3, FP 1, FN 0 -> F1 6/7; at 0.8: 2/2 of 3 -> F1 0.8; at 0.9: 2/3 * ... lower
    assert max_f1_thresholds(scores, labels, ["X"]) == {"X": 0.55}
    assert max_f1_thresholds(scores, np.zeros_like(labels), ["X"]) == {"X": 0.5}


def test_expected_calibration_error_and_brier_by_hand():
    scores = np.array([[0.05], [0.15], [0.95], [0.9]])
    labels = np.array([[0], [1], [1], [0]])
    # bins: [0, .1): gap 0 - 0.05; [.1, .2): 1 - 0.15; [.9, 1]: (1 + 0) - (0.95 + 0.9) -> |.| summed / 4
    expected = (0.05 + 0.85 + 0.85) / 4
    assert expected_calibration_error(labels, scores)[0] == pytest.approx(expected)
    metrics = classification_metrics(labels, scores, "multi_label_classification", np.array([0.5]))
    assert metrics["macro_ece"] == pytest.approx(expected)
    assert metrics["macro_brier"] == pytest.approx(np.mean((scores - labels) ** 2))


def test_scores_from_logits_applies_the_calibration():
    logits = np.array([[0.3, -1.2], [2.0, 0.5]])
    platt = {"method": "platt", "scale": [2.0, 0.5], "bias": [-1.0, 0.25]}
    np.testing.assert_allclose(scores_from_logits(logits, "multi_label_classification", platt),
                               expit(logits * [2.0, 0.5] + [-1.0, 0.25]))
    temperature = {"method": "temperature", "temperature": 2.0}
    softmax = np.exp(logits / 2) / np.exp(logits / 2).sum(1, keepdims=True)
    np.testing.assert_allclose(scores_from_logits(logits, "single_label_classification", temperature), softmax)
    with pytest.raises(ValueError, match="regression"):
        scores_from_logits(logits, "regression", temperature)
    with pytest.raises(ValueError, match="unknown score calibration method 'isotonic'"):
        scores_from_logits(logits, "multi_label_classification", {"method": "isotonic"})


def test_config_checks_calibration_and_thresholds(tmp_path):
    config = HuBERTECGConfig(num_labels=2, label_thresholds={"LABEL_1": 0.3},
                             score_calibration={"method": "temperature", "temperature": 1.5})
    assert HuBERTECGConfig.from_dict(config.to_dict()).label_thresholds == {"LABEL_1": 0.3}
    with pytest.raises(ValueError, match="one `scale` per label"):
        HuBERTECGConfig(num_labels=3, score_calibration={"method": "platt", "scale": [1.0], "bias": [0, 0, 0]})
    with pytest.raises(ValueError, match=r"names labels the model does not have: \['MI'\]"):
        HuBERTECGConfig(num_labels=2, label_thresholds={"MI": 0.3})
    # a new head (other labels) drops them, as it drops pos_weight
    config = HuBERTECGConfig(num_labels=5, label_thresholds={"LABEL_1": 0.3},
                             score_calibration={"method": "temperature", "temperature": 1.5})
    config.save_pretrained(tmp_path)
    assert HuBERTECGConfig.from_pretrained(tmp_path).score_calibration == {"method": "temperature", "temperature": 1.5}
    relabelled = HuBERTECGConfig.from_pretrained(tmp_path, num_labels=4)
    assert relabelled.label_thresholds is None and relabelled.score_calibration is None


@pytest.fixture(scope="module")
def ptbxl(data_dir):
    return data_dir / "ptbxl"


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory, ptbxl):
    """The demo model recalibrated on PTB-XL fold 9 of ../shared/data/ptbxl through the command."""
    out = tmp_path_factory.mktemp("calibrated") / "model"
    code = main(["calibrate", "--model", hubert_ecg.demo_model_path(), "--ptbxl_dir", str(ptbxl),
                 "--split", "validation", "--output_dir", str(out)])
    assert code == 0
    return out


def test_calibrate_command_fits_and_stores(calibrated, capsys):
    config = json.loads((calibrated / "config.json").read_text())
    assert config["score_calibration"]["method"] == "platt" and len(config["score_calibration"]["scale"]) == 5
    assert set(config["label_thresholds"]) == {"NORM", "MI", "STTC", "CD", "HYP"}
    report = json.loads((calibrated / "calibration.json").read_text())
    assert report["n_records"] > 60
    # in-sample, Platt scaling can only lower the log-loss; the Brier score and the ECE fall with it here
    assert report["after"]["macro_brier"] < report["before"]["macro_brier"]
    assert report["after"]["macro_ece"] < report["before"]["macro_ece"]


def test_pipeline_predict_and_evaluate_use_the_stored_calibration(calibrated, ptbxl, tmp_path, capsys):
    record = str(sorted((ptbxl / "records100").rglob("*.hea"))[0].with_suffix(""))
    config = json.loads((calibrated / "config.json").read_text())
    clf = load_pipeline(str(calibrated))
    predictions = clf(record, window="first")
    raw = clf(record, window="first", function_to_apply="none")
    logits = np.array([next(p["score"] for p in raw if p["label"] == clf.model.config.id2label[i]) for i in range(5)])
    expected = scores_from_logits(logits[None], "multi_label_classification", config["score_calibration"])[0]
    for p in predictions:
        j = clf.model.config.label2id[p["label"]]
        assert p["score"] == pytest.approx(expected[j], abs=1e-6)
        assert p["positive"] == (p["score"] >= config["label_thresholds"][p["label"]])
    assert all("positive" not in p for p in raw)

    assert main(["predict", record, "--model", str(calibrated), "--format", "csv"]) == 0
    header, row = capsys.readouterr().out.strip().splitlines()
    assert header.split(",")[2:5] == ["label_1", "score_1", "positive_1"]
    top = clf(record)[0]  # predict scores every window, as the pipeline's default
    assert row.split(",")[2:5] == [top["label"], f"{top['score']:.4f}", str(int(top["positive"]))]

    out = tmp_path / "eval"
    assert main(["evaluate", "--model", str(calibrated), "--ptbxl_dir", str(ptbxl), "--split", "validation",
                 "--n_bootstrap", "0", "--plot_roc", "false", "--output_dir", str(out)]) == 0
    rows = {r.split(",")[0]: r.split(",") for r in (out / "per_label.csv").read_text().splitlines()}
    column = rows["label"].index("threshold")
    for label, threshold in config["label_thresholds"].items():
        assert float(rows[label][column]) == pytest.approx(threshold)


def test_calibrate_errors(tmp_path, ptbxl, capsys):
    assert main(["calibrate", "--ptbxl_dir", str(ptbxl)]) == 2
    assert "--model is required" in capsys.readouterr().err
    model = tmp_path / "m"
    shutil.copytree(hubert_ecg.demo_model_path(), model)
    assert main(["calibrate", "--model", str(model), "--ptbxl_dir", str(ptbxl), "--method", "isotonic"]) == 2
    assert "--method must be auto, platt, temperature or none, got 'isotonic'" in capsys.readouterr().err
    assert main(["calibrate", "--model", str(model), "--ptbxl_dir", str(ptbxl), "--ptbxl_folds", "train=1-8"]) == 2
    assert "has no validation folds" in capsys.readouterr().err
