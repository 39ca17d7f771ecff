"""Any lead subset (issue 11, items 3-4): the PhysioNet/CinC 2021 lead sets, the pipeline on records with fewer than
12 leads (zero-filled, one warning for a model trained without lead masking) and ``evaluate --lead_sets``."""

import csv
import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch

import hubert_ecg
from hubert_ecg import HuBERTECGConfig, read_ecg
from hubert_ecg.leads import LEAD_SETS, STANDARD_LEADS, lead_set, parse_lead_sets
from hubert_ecg.pipelines import load_pipeline
from hubert_ecg.training import evaluate
from hubert_ecg_cli import evaluate as evaluate_command
from hubert_ecg_cli.arguments import parse


def _evaluate_main(argv: list[str]) -> int:
    """``hubert-ecg evaluate ARGV``'s exit status, as the router returns it (a usage error: 2, not SystemExit)."""
    from hubert_ecg_cli import main

    return main(["evaluate", *argv])


DEMO_RECORDS = Path(hubert_ecg.__file__).parent / "demo" / "records"
WARNING = "not validated"


def test_lead_sets_are_the_challenge_sets():
    # the lead sets of the PhysioNet/CinC Challenge 2021 (Reyna et al.), as the docs cite them: checked against
    # that source once, here
    assert list(LEAD_SETS) == ["12", "6", "4", "3", "2", "1"]
    assert LEAD_SETS["12"] == STANDARD_LEADS
    assert LEAD_SETS["6"] == ("I", "II", "III", "aVR", "aVL", "aVF")
    assert LEAD_SETS["4"] == ("I", "II", "III", "V2")
    assert LEAD_SETS["3"] == ("I", "II", "V2")
    assert LEAD_SETS["2"] == ("I", "II") and LEAD_SETS["1"] == ("I",)
    assert lead_set(6) == LEAD_SETS["6"] and lead_set(["V2", "mlii", "AVR"]) == ("II", "aVR", "V2")
    assert parse_lead_sets("12, 6,2") == ["12", "6", "2"]
    with pytest.raises(ValueError, match="'5' is not a lead set"):
        parse_lead_sets("12,5,1")
    with pytest.raises(ValueError, match="'2' given twice"):
        parse_lead_sets("2,1,2")
    with pytest.raises(ValueError, match="'vx' is not a standard lead"):
        lead_set(["I", "vx"])
    with pytest.raises(ValueError, match="unknown lead set '7'"):
        lead_set("7")


def test_config_lead_mask_prob_is_a_validated_probability():
    assert HuBERTECGConfig(lead_mask_prob=0.5).lead_mask_prob == 0.5
    with pytest.raises(ValueError, match="lead_mask_prob"):
        HuBERTECGConfig(lead_mask_prob=1.5)


@pytest.fixture(scope="module")
def demo_record():
    return read_ecg(DEMO_RECORDS / "00008_hr")


def _warnings(caplog):
    return [r for r in caplog.records if r.levelno == logging.WARNING and WARNING in r.getMessage()]


def test_pipeline_scores_a_two_lead_holter_record_and_warns_once(data_dir, demo_record, caplog):
    mitdb = data_dir / "long" / "mitdb_100" / "100"
    if not mitdb.with_suffix(".hea").is_file():
        pytest.skip(f"{mitdb} not found")
    assert read_ecg(mitdb).lead_names == ["MLII", "V5"]
    clf = load_pipeline()
    clf.model.config.lead_mask_prob = 0.0  # as a model trained without lead masking (the released weights)
    with caplog.at_level(logging.WARNING):
        first = clf(str(mitdb), window="first", return_details=True)
        lead_i = clf({"signal": demo_record.signal[:1], "sampling_rate": 500, "lead_names": ["I"]},
                     return_details=True)
    assert first["error"] is None and first["windows"] == 1
    assert first["flags"] == ["missing leads I, III, aVR, aVL, aVF, V1, V2, V3, V4, V6: zero-filled"]
    assert lead_i["error"] is None and lead_i["windows"] == 2
    assert len(_warnings(caplog)) == 1  # once per pipeline, not once per record
    assert "lead_mask_prob" in _warnings(caplog)[0].getMessage()

    # a lead-I-only array is the full record with lead_set="1", and not the 12-lead scores
    full = {p["label"]: p["score"] for p in clf(str(DEMO_RECORDS / "00008_hr"))}
    only_i = {p["label"]: p["score"] for p in lead_i["predictions"]}
    via_set = {p["label"]: p["score"] for p in clf(str(DEMO_RECORDS / "00008_hr"), lead_set="1")}
    assert only_i == pytest.approx(via_set, abs=1e-6)
    assert max(abs(only_i[k] - full[k]) for k in full) > 0.01
    # lead_set="12" is the record as it is
    assert {p["label"]: p["score"] for p in clf(str(DEMO_RECORDS / "00008_hr"), lead_set="12")} == \
        pytest.approx(full, abs=1e-7)

    # a lead-agnostic model (lead_mask_prob > 0): no warning
    agnostic = load_pipeline()
    agnostic.model.config.lead_mask_prob = 0.5
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        again = agnostic(str(mitdb), window="first")
    assert not _warnings(caplog)
    assert again == first["predictions"]


def test_zeroed_leads_are_zero_in_the_model_input(demo_record):
    clf = load_pipeline()
    seen = []
    hook = clf.model.register_forward_pre_hook(lambda module, args, kwargs: seen.append(kwargs["input_values"]),
                                               with_kwargs=True)
    try:
        clf(str(DEMO_RECORDS / "00008_hr"), window="first", lead_set="3")
    finally:
        hook.remove()
    x = torch.cat(seen).reshape(-1, 12, clf.feature_extractor.input_length // 12)
    kept = [STANDARD_LEADS.index(lead) for lead in LEAD_SETS["3"]]
    # the leads outside the set are zero at 500 Hz; the 100 Hz input is the release's decimation of the 12 leads
    # concatenated, whose filter carries a kept lead's edge a few samples into the next lead: a zeroed lead with
    # zeroed neighbours is zero to float precision
    assert x[:, [3, 4, 9, 10]].abs().max() < 1e-6  # aVR, aVL, V4, V5
    assert torch.all(x[:, kept].abs().amax(dim=-1) > 0.5)  # scaled to [-1, 1]: the kept leads are signal
    # the model input is the feature extractor's for the record reduced to those leads, the others missing
    manual = clf.feature_extractor({"signal": demo_record.signal[kept], "sampling_rate": 500,
                                    "lead_names": list(LEAD_SETS["3"])}, missing_leads="zero",
                                   window_starts=[[0.0]])["input_values"]
    np.testing.assert_allclose(x[0].reshape(1, -1).numpy(), np.asarray(manual), atol=1e-6)
    full = clf.feature_extractor(demo_record.signal, sampling_rate=500, window_starts=[[0.0]])["input_values"]
    assert np.abs(np.asarray(full) - x[0].reshape(1, -1).numpy()).max() > 0.5  # not the 12-lead input


def test_evaluate_lead_sets_table_csv_and_plot(tmp_path, capsys):
    out = tmp_path / "eval"
    argv = ["--test_csv", str(DEMO_RECORDS / "labels.csv"), "--data_dir", str(DEMO_RECORDS), "--n_bootstrap", "20"]
    if not (DEMO_RECORDS / "labels.csv").is_file():
        pytest.skip("no labels.csv beside the demo records")
    plain = evaluate.evaluate(parse(argv, (evaluate_command.EvaluateArguments,), evaluate_command.PROG)[0])
    assert _evaluate_main(argv + ["--lead_sets", "12,6,1", "--output_dir", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "lead set" in printed
    summary = json.loads((out / "metrics.json").read_text())
    table = summary["lead_sets"]
    assert list(table) == ["12", "6", "1"]
    assert table["1"]["leads"] == ["I"] and table["6"]["leads"] == list(LEAD_SETS["6"])
    assert table["12"]["metrics"]["macro_auroc"] == pytest.approx(plain["metrics"]["macro_auroc"])
    assert table["12"]["metrics"]["macro_auprc"] == pytest.approx(plain["metrics"]["macro_auprc"])
    assert table["12"]["metrics"] == summary["metrics"]
    assert table["1"]["n_records"] == plain["n_records"]
    assert table["1"]["metrics"]["macro_auprc"] != pytest.approx(table["12"]["metrics"]["macro_auprc"])
    assert set(table["1"]["ci"]) >= {"macro_auroc", "macro_auprc"}
    with open(out / "lead_sets.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["lead_set"] for r in rows] == ["12", "6", "1"]
    assert float(rows[2]["macro_auprc"]) == pytest.approx(table["1"]["metrics"]["macro_auprc"], abs=1e-6)
    assert rows[2]["leads"] == "I" and float(rows[0]["macro_auroc_low"]) <= float(rows[0]["macro_auroc_high"])
    assert (out / "lead_sets.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    evaluate.plot_lead_sets({"a": table, "b": table}, tmp_path / "two.png")  # one line per model
    assert (tmp_path / "two.png").stat().st_size > 1000

    # the 1-lead scores are those of the pipeline on lead I alone
    scores, kept, _ = evaluate.score_records(*_demo(), [str(DEMO_RECORDS / "00010_hr")], lead_set="1")
    record = read_ecg(DEMO_RECORDS / "00010_hr")
    clf = load_pipeline()
    manual = clf({"signal": record.signal[:1], "sampling_rate": 500, "lead_names": ["I"]}, window="first")
    by_label = {p["label"]: p["score"] for p in manual}
    np.testing.assert_allclose(scores[0], [by_label[clf.model.config.id2label[i]] for i in range(scores.shape[1])],
                               atol=1e-6)

    assert _evaluate_main(argv + ["--lead_sets", "12,5"]) == 2
    assert "'5' is not a lead set" in capsys.readouterr().err


def test_evaluate_several_models_draws_one_line_each(tmp_path, capsys):
    if not (DEMO_RECORDS / "labels.csv").is_file():
        pytest.skip("no labels.csv beside the demo records")
    import shutil

    other = tmp_path / "models" / "demo_copy"
    shutil.copytree(hubert_ecg.demo_model_path(), other)
    out = tmp_path / "eval"
    argv = ["--test_csv", str(DEMO_RECORDS / "labels.csv"), "--data_dir", str(DEMO_RECORDS), "--n_bootstrap", "0",
            "--plot_roc", "false", "--lead_sets", "12,1", "--output_dir", str(out)]
    assert _evaluate_main(argv + ["--model", f"{hubert_ecg.demo_model_path()},{other}"]) == 0
    printed = capsys.readouterr().out
    assert "== model" in printed and "== demo_copy" in printed
    with open(out / "lead_sets.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["model"], r["lead_set"]) for r in rows] == [("model", "12"), ("model", "1"), ("demo_copy", "12"),
                                                           ("demo_copy", "1")]
    assert rows[0]["macro_auroc"] == rows[2]["macro_auroc"]  # the same weights on the same records
    for name in ("model", "demo_copy"):
        assert json.loads((out / name / "metrics.json").read_text())["lead_sets"]["1"]["leads"] == ["I"]
    assert (out / "lead_sets.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert _evaluate_main(argv + ["--model", f"{other},{other}"]) == 2
    assert "folder names must differ" in capsys.readouterr().err


def _demo():
    from transformers import AutoFeatureExtractor, AutoModelForSequenceClassification

    path = hubert_ecg.demo_model_path()
    return AutoModelForSequenceClassification.from_pretrained(path), AutoFeatureExtractor.from_pretrained(path)
