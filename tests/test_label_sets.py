"""hubert_ecg.label_sets: the Cardio-Learning label set against the shared sources, and its descriptions shown by
the pipeline and hubert-ecg predict."""

import csv
import json

import numpy as np
import pytest
import torch

from hubert_ecg.label_sets import LABEL_SET_NAMES, LabelSet, load_label_set


@pytest.fixture(scope="module")
def cardio():
    return load_label_set("cardio-learning")


def test_codes_are_the_shared_order(cardio, data_dir):
    shared = json.loads((data_dir / "label_maps" / "cardio_learning_labels.json").read_text())["labels"]
    assert isinstance(cardio, LabelSet) and cardio.name == "cardio-learning" and LABEL_SET_NAMES == ("cardio-learning",)
    assert cardio.labels == tuple(shared) and len(cardio.labels) == 164
    assert cardio.id2label() == dict(enumerate(shared))
    for code in cardio.labels:
        assert cardio.descriptions[code].strip() and cardio.sources[code].strip()
    assert set(cardio.descriptions) == set(cardio.sources) == set(cardio.labels)


def test_descriptions_follow_their_sources(cardio, data_dir):
    with open(data_dir / "ptbxl" / "scp_statements.csv", newline="") as handle:
        statements = {row[""]: row["description"] for row in csv.DictReader(handle)}
    snomed = {}
    for table in ("dx_mapping_scored.csv", "dx_mapping_unscored.csv"):
        with open(data_dir / "label_maps" / table, newline="") as handle:
            snomed.update({row["Abbreviation"].upper(): row for row in csv.DictReader(handle)})
    ptbxl = [c for c in cardio.labels if c in statements]
    assert len(ptbxl) == 57
    for code in ptbxl:  # every PTB-XL statement of the set, verbatim
        assert cardio.descriptions[code] == statements[code] and cardio.sources[code] == "PTB-XL scp_statements.csv"
    assert cardio.descriptions["IRBBB"] == "incomplete right bundle branch block"
    assert cardio.descriptions["STE_"] == "non-specific ST elevation"  # a PTB-XL "_" statement
    assert cardio.descriptions["NST_"] == statements["NST_"] == "non-specific ST changes"
    assert cardio.descriptions["AF"] == snomed["AF"]["Dx"] == "atrial fibrillation"
    assert "dx_mapping_scored.csv" in cardio.sources["AF"]
    assert cardio.descriptions["CRBBB|RBBB"] == ("complete right bundle branch block (CRBBB) or right bundle branch "
                                                 "block (RBBB)")
    assert cardio.sources["-ROT"].endswith("via its synonym CCR")
    assert cardio.descriptions["HYP"].startswith("hypertrophy (PTB-XL diagnostic class")
    inferred = [c for c in cardio.labels if cardio.sources[c] == "standard meaning (inferred from the code)"]
    assert len(inferred) == 8  # said, not hidden
    # the SNOMED CT codes in the package file are the challenge tables'
    from importlib import resources

    entries = json.loads(resources.files("hubert_ecg").joinpath("label_maps", "cardio_learning.json").read_text())
    by_code = {e["code"]: e for e in entries["labels"]}
    assert by_code["IRBBB"]["snomed_ct"] == [snomed["IRBBB"]["SNOMEDCTCode"]] == ["713426002"]
    assert "snomed_ct" not in by_code["AMI"] and "acute" in by_code["AMI"]["note"]  # PTB-XL's AMI is anterior MI
    assert "Edoar-do/HuBERT-ECG" in entries["provenance"]["codes"]
    assert any("CC BY 4.0" in text for text in entries["provenance"]["descriptions"])


def test_generated_file_is_reproducible(tmp_path, data_dir):
    """examples/make_label_maps.py rebuilds the committed JSON from ../shared byte for byte."""
    import importlib.util
    from importlib import resources
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "examples" / "make_label_maps.py"
    spec = importlib.util.spec_from_file_location("make_label_maps", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(["--shared", str(data_dir), "--output", str(tmp_path / "out.json")]) == 0
    committed = resources.files("hubert_ecg").joinpath("label_maps", "cardio_learning.json").read_text()
    assert (tmp_path / "out.json").read_text() == committed


def test_unknown_name():
    with pytest.raises(ValueError, match=r"load_label_set: unknown name 'ptbxl'.*cardio-learning"):
        load_label_set("ptbxl")


def test_descriptions_in_pipeline_and_predict(cardio, data_dir, tmp_path, capsys):
    """A 164-label classifier whose config carries the descriptions: the pipeline's dicts have them, predict's table
    shows the highest labels with theirs (one line each), csv and json include them."""
    from transformers import pipeline

    from hubert_ecg import HuBERTECGConfig, HuBERTECGFeatureExtractor, HuBERTECGForSequenceClassification
    from hubert_ecg_cli.predict import TABLE_TOP_K
    from hubert_ecg_cli.predict import main as predict_main

    torch.manual_seed(0)
    config = HuBERTECGConfig.from_preset(
        "small", hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
        conv_dim=[32] * 5, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4, classifier_proj_size=32,
        id2label=cardio.id2label(), label2id={c: i for i, c in cardio.id2label().items()},
        problem_type="multi_label_classification")
    config.label_descriptions = dict(cardio.descriptions)
    model = HuBERTECGForSequenceClassification(config)
    with torch.no_grad():
        model.classifier.weight.normal_(0, 1.0)
    model.save_pretrained(tmp_path)
    HuBERTECGFeatureExtractor().save_pretrained(tmp_path)
    record = str(data_dir / "ptbxl" / "records500" / "00000" / "00010_hr")

    result = pipeline("ecg-classification", model=str(tmp_path))(record)
    assert len(result) == 164
    assert all(r["description"] == cardio.descriptions[r["label"]] for r in result)

    assert predict_main([record, "--model", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = lines[1:1 + TABLE_TOP_K]
    for row, expected in zip(rows, result):
        assert f"{expected['label']} " in row and f"{expected['score']:.3f}" in row
        assert row.rstrip().endswith(expected["description"])
    assert rows[0].startswith(record) and lines[1 + TABLE_TOP_K].startswith("showing the 5 highest labels")

    assert predict_main([record, "--model", str(tmp_path), "--format", "json", "--top-k", "3"]) == 0
    out = json.loads(capsys.readouterr().out)[0]["predictions"]
    assert [p["description"] for p in out] == [r["description"] for r in result[:3]]
    assert predict_main([record, "--model", str(tmp_path), "--format", "csv", "--top-k", "2"]) == 0
    header, row = list(csv.reader(capsys.readouterr().out.splitlines()))
    assert header[2:8] == ["label_1", "description_1", "score_1", "label_2", "description_2", "score_2"]
    assert row[3] == result[0]["description"]
    np.testing.assert_allclose(float(row[4]), result[0]["score"], atol=1e-4)
