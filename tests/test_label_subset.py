"""Evaluating and calibrating a multi-label model on a manifest that labels some of its outputs (e.g. 5 of the 164
Cardio-Learning outputs), on real PTB-XL records (``../shared/data/ptbxl/records100``) with their own SCP labels
and a tiny random-weight classifier of 8 outputs, 3 of them labelled."""

import ast
import csv
import json

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.special import expit

from hubert_ecg import HuBERTECGConfig, HuBERTECGForSequenceClassification
from hubert_ecg.pipelines import load_pipeline
from hubert_ecg.training import calibration, data, evaluate
from hubert_ecg_cli import calibrate as calibrate_command
from hubert_ecg_cli import evaluate as evaluate_command
from hubert_ecg_cli import main

TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, conv_dim=[32] * 5,
            num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4, classifier_proj_size=32)
# the model's outputs; the subset manifest labels NORM, SR, AFLT (outputs 1, 3, 6), its columns in another order
OUTPUTS = ["AF", "NORM", "IRBBB", "SR", "LVH", "1AVB", "AFLT", "PVC"]
LABELLED = ["NORM", "SR", "AFLT"]
SCP = {"AF": "AFIB"}  # the PTB-XL SCP code of an output, where it differs
N_RECORDS = 40


@pytest.fixture(scope="module")
def setup(tmp_path_factory, data_dir):
    """The tiny model (saved without a preprocessor_config.json: the default feature extractor), the full manifest
    (8 label columns) and the subset manifest (3 of them, reordered, with age and sex)."""
    root = tmp_path_factory.mktemp("subset")
    torch.manual_seed(2)
    config = HuBERTECGConfig.from_preset("small", **TINY, id2label=dict(enumerate(OUTPUTS)),
                                         label2id={n: i for i, n in enumerate(OUTPUTS)},
                                         problem_type="multi_label_classification")
    model = HuBERTECGForSequenceClassification(config)
    with torch.no_grad():
        model.classifier.weight.normal_(0, 1.0)  # spread the outputs
    model.save_pretrained(root / "model")
    ptbxl = data_dir / "ptbxl"
    meta = pd.read_csv(ptbxl / "ptbxl_database.csv").head(N_RECORDS)
    codes = [ast.literal_eval(s) for s in meta["scp_codes"]]
    y = {name: [int(SCP.get(name, name) in c) for c in codes] for name in OUTPUTS}
    assert all(0 < sum(y[name]) < N_RECORDS for name in LABELLED)  # both classes present
    files = list(meta["filename_lr"])
    (root / "full.csv").write_text("filename," + ",".join(OUTPUTS) + "\n" + "".join(
        f"{f}," + ",".join(str(y[n][i]) for n in OUTPUTS) + "\n" for i, f in enumerate(files)))
    order = ["AFLT", "NORM", "SR"]
    (root / "subset.csv").write_text("filename,age,sex," + ",".join(order) + "\n" + "".join(
        f"{f},{a:g},{s}," + ",".join(str(y[n][i]) for n in order) + "\n"
        for i, (f, a, s) in enumerate(zip(files, meta["age"], meta["sex"]))))
    return {"root": root, "model": root / "model", "full": root / "full.csv", "subset": root / "subset.csv",
            "data_dir": ptbxl, "y": y}


def test_read_manifest_takes_a_named_subset(setup, tmp_path):
    records = data.read_manifest(setup["subset"], setup["data_dir"], num_labels=len(OUTPUTS), label_names=OUTPUTS,
                                 problem_type="multi_label_classification", allow_subset=True)
    assert records.label_names == LABELLED and records.label_indices == [1, 3, 6]  # the model's order
    np.testing.assert_array_equal(records.labels, np.array([setup["y"][n] for n in LABELLED]).T)
    assert records.select(np.arange(N_RECORDS) < 5).label_indices == [1, 3, 6]
    one = tmp_path / "one.csv"  # a single 0/1 column of a multi-label model: still multi-label, not class indices
    one.write_text("filename,SR\n" + "".join(f"{f},{v}\n" for f, v in zip(records.paths, setup["y"]["SR"])))
    single = data.read_manifest(one, label_names=OUTPUTS, allow_subset=True)
    assert single.problem_type == "multi_label_classification" and single.label_indices == [3]
    assert single.labels.shape == (N_RECORDS, 1)
    full = data.read_manifest(setup["full"], setup["data_dir"], label_names=OUTPUTS, allow_subset=True)
    assert full.label_names == OUTPUTS and full.label_indices is None
    # fine-tuning reads without allow_subset: every output needs a label
    with pytest.raises(ValueError, match=r"subset\.csv.*3 label column.*8 labels"):
        data.read_manifest(setup["subset"], setup["data_dir"], label_names=OUTPUTS)


def test_an_unknown_label_column_is_named(setup, tmp_path, capsys):
    bad = tmp_path / "typo.csv"
    text = setup["subset"].read_text().splitlines()
    bad.write_text("\n".join([text[0].replace("AFLT", "AFL")] + text[1:]) + "\n")
    with pytest.raises(ValueError, match=r"typo\.csv.*\['AFL'\] are not labels of the model; the model has 8 labels "
                                         r"\(AF, NORM, IRBBB, SR, LVH, 1AVB, AFLT, PVC\)"):
        data.read_manifest(bad, setup["data_dir"], label_names=OUTPUTS, allow_subset=True)
    for command in ("evaluate", "calibrate"):
        assert main([command, "--model", str(setup["model"]), "--test_csv", str(bad), "--data_dir",
                     str(setup["data_dir"])]) == 2
        err = capsys.readouterr().err
        assert "['AFL']" in err and "NORM" in err, err


@pytest.fixture(scope="module")
def evaluated(setup):
    out = {}
    for name in ("full", "subset"):
        args = evaluate_command.EvaluateArguments(model=str(setup["model"]), test_csv=str(setup[name]),
                                                  data_dir=str(setup["data_dir"]), n_bootstrap=20, plot_roc=False,
                                                  save_probabilities=True,
                                                  output_dir=str(setup["root"] / f"eval_{name}"))
        out[name] = evaluate.evaluate(args)
    return out


def test_evaluate_subset_equals_the_full_manifest_on_those_outputs(setup, evaluated):
    from sklearn.metrics import roc_auc_score

    full, subset = evaluated["full"], evaluated["subset"]
    assert subset["outputs"] == {"evaluated": 3, "of": 8, "labels": LABELLED}
    assert full["outputs"] == {"evaluated": 8, "of": 8, "labels": None}
    assert subset["n_records"] == full["n_records"] == N_RECORDS
    rows = {r["label"]: r for r in full["per_label"]}
    assert [r["label"] for r in subset["per_label"]] == LABELLED
    for row in subset["per_label"]:
        assert row == pytest.approx(rows[row["label"]], nan_ok=True)
    table = {}
    for name in ("full", "subset"):
        with open(setup["root"] / f"eval_{name}" / "probabilities.csv") as handle:
            table[name] = list(csv.DictReader(handle))
    assert list(table["subset"][0]) == ["file"] + [f"p_{n}" for n in LABELLED] + [f"y_{n}" for n in LABELLED]
    for a, b in zip(table["full"], table["subset"]):
        assert all(a[f"p_{n}"] == b[f"p_{n}"] and a[f"y_{n}"] == b[f"y_{n}"] for n in LABELLED)
    p = np.array([[float(r[f"p_{n}"]) for n in LABELLED] for r in table["subset"]])
    y = np.array([setup["y"][n] for n in LABELLED]).T
    assert subset["metrics"]["macro_auroc"] == pytest.approx(roc_auc_score(y, p, average="macro"), abs=1e-5)
    assert subset["metrics"]["n_labels_evaluated"] == 3
    assert set(subset["ci"]) == set(full["ci"])
    summary = json.loads((setup["root"] / "eval_subset" / "metrics.json").read_text())
    assert summary["outputs"] == {"evaluated": 3, "of": 8, "labels": LABELLED}


@pytest.fixture(scope="module")
def calibrated(setup):
    out = {}
    for name in ("full", "subset"):
        args = calibrate_command.CalibrateArguments(model=str(setup["model"]), test_csv=str(setup[name]),
                                                    data_dir=str(setup["data_dir"]),
                                                    output_dir=str(setup["root"] / f"cal_{name}"))
        out[name] = calibration.calibrate(args)
    return out


def test_calibrate_subset_fits_the_labelled_outputs_only(setup, calibrated):
    full, subset = calibrated["full"], calibrated["subset"]
    platt = subset["calibration"]
    assert platt["method"] == "platt" and len(platt["scale"]) == len(platt["bias"]) == 8
    for i, name in enumerate(OUTPUTS):
        if name in LABELLED:  # the fit of the full manifest, for the same logits and labels
            assert platt["scale"][i] == pytest.approx(full["calibration"]["scale"][i], rel=1e-6)
            assert platt["bias"][i] == pytest.approx(full["calibration"]["bias"][i], rel=1e-6, abs=1e-9)
            assert (platt["scale"][i], platt["bias"][i]) != (1.0, 0.0)  # fitted (a slope <= 0 keeps scale 1)
        else:  # exactly the identity: the score unchanged
            assert platt["scale"][i] == 1.0 and platt["bias"][i] == 0.0
    assert list(subset["thresholds"]) == LABELLED
    assert subset["thresholds"] == pytest.approx({n: full["thresholds"][n] for n in LABELLED})
    assert subset["outputs"] == {"fitted": 3, "of": 8, "labels": LABELLED}
    config = json.loads((setup["root"] / "cal_subset" / "config.json").read_text())
    assert config["score_calibration"] == platt and config["label_thresholds"] == subset["thresholds"]


def test_a_label_without_threshold_is_scored_not_decided(setup, calibrated, capsys):
    """The pipeline gives every output its (calibrated) score; ``positive`` only for outputs with a threshold;
    predict's csv leaves the cell empty and its table never marks them."""
    record = str(setup["data_dir"] / "records100" / "00000" / "00001_lr")
    clf = load_pipeline(str(setup["root"] / "cal_subset"))
    predictions = {p["label"]: p for p in clf(record, window="first")}
    raw = {p["label"]: p["score"] for p in clf(record, window="first", function_to_apply="none")}
    config = clf.model.config
    for i, name in enumerate(OUTPUTS):
        a, b = config.score_calibration["scale"][i], config.score_calibration["bias"][i]
        assert predictions[name]["score"] == pytest.approx(expit(a * raw[name] + b), abs=1e-6)
        if name in LABELLED:
            assert predictions[name]["positive"] == (predictions[name]["score"] >= config.label_thresholds[name])
        else:
            assert "positive" not in predictions[name]
    assert main(["predict", record, "--model", str(setup["root"] / "cal_subset"), "--format", "csv"]) == 0
    header, row = capsys.readouterr().out.strip().splitlines()
    cells = dict(zip(header.split(","), row.split(",")))
    for rank in range(1, 9):
        label, positive = cells[f"label_{rank}"], cells[f"positive_{rank}"]
        assert positive == ("" if label not in LABELLED else str(int(predictions[label]["positive"])))
    assert main(["predict", record, "--model", str(setup["root"] / "cal_subset")]) == 0
    assert "labels without a threshold are never marked" in capsys.readouterr().out


def test_temperature_scaling_refuses_a_subset(setup, tmp_path, capsys):
    argv = ["calibrate", "--model", str(setup["model"]), "--test_csv", str(setup["subset"]), "--data_dir",
            str(setup["data_dir"]), "--output_dir", str(tmp_path / "m"), "--method", "temperature"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "--method temperature" in err and "3 of them" in err and "--method platt" in err


def test_cli_on_a_subset_manifest(setup, tmp_path, capsys):
    common = ["--model", str(setup["model"]), "--test_csv", str(setup["subset"]), "--data_dir",
              str(setup["data_dir"])]
    assert main(["evaluate", *common, "--n_bootstrap", "0", "--lead_sets", "12,1", "--output_dir",
                 str(tmp_path / "eval")]) == 0
    out = capsys.readouterr().out
    assert "3 of 8 outputs labelled in the manifest, evaluated: NORM, SR, AFLT" in out
    assert (tmp_path / "eval" / "roc_curves.png").stat().st_size > 1000
    lead_sets = json.loads((tmp_path / "eval" / "metrics.json").read_text())["lead_sets"]
    assert lead_sets["1"]["n_records"] == N_RECORDS and lead_sets["1"]["metrics"]["n_labels_evaluated"] == 3
    assert main(["calibrate", *common, "--output_dir", str(tmp_path / "m")]) == 0
    out = capsys.readouterr().out
    assert "3 of 8 outputs labelled in the manifest, fitted: NORM, SR, AFLT" in out
    assert "scale 1, bias 0" in out
