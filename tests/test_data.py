"""hubert_ecg.training.data on the real PTB-XL records of ../shared/data."""

import numpy as np
import pytest

from hubert_ecg.processing import HuBERTECGFeatureExtractor
from hubert_ecg.training import data


@pytest.fixture(scope="module")
def ptbxl(data_dir):
    return data_dir / "ptbxl"


def test_read_ptbxl_superdiagnostic(ptbxl):
    records = data.read_ptbxl(ptbxl, "superdiagnostic", 100)
    assert records.label_names == ["NORM", "MI", "STTC", "CD", "HYP"]
    assert records.problem_type == "multi_label_classification"
    assert len(records) == 424  # 10 of the 434 shared records have no diagnostic statement
    assert records.labels.shape == (len(records), 5) and records.labels.dtype == np.float32
    assert records.labels.sum(axis=1).min() >= 1
    splits = data.split_by_fold(records)
    assert set(splits) == {"train", "validation"}  # no fold 10 in the shared copy
    assert set(splits["validation"].folds) == {9} and set(splits["train"].folds) <= set(range(1, 9))
    # 500 Hz: only fold 9 is shared
    hr = data.read_ptbxl(ptbxl, "superdiagnostic", 500)
    assert set(hr.folds) == {9} and all(p.endswith("_hr") for p in hr.paths)


@pytest.mark.parametrize("label_set", ["all", "diagnostic", "subdiagnostic", "form", "rhythm"])
def test_read_ptbxl_label_sets(ptbxl, label_set):
    records = data.read_ptbxl(ptbxl, label_set, 100)
    assert len(records.label_names) > 1 and records.labels.any(axis=0).sum() >= 2
    if label_set == "rhythm":
        assert "SR" in records.label_names and "NORM" not in records.label_names


def test_read_ptbxl_errors(tmp_path, ptbxl):
    with pytest.raises(ValueError, match="label_set"):
        data.read_ptbxl(ptbxl, "nonsense")
    with pytest.raises(ValueError, match="ptbxl_database.csv"):
        data.read_ptbxl(tmp_path)


def test_build_dataset_and_random_windows(ptbxl):
    records = data.read_ptbxl(ptbxl, "superdiagnostic", 100)
    records = records.select(np.arange(len(records)) < 6)
    dataset = data.build_dataset(records)
    assert dataset.features["signal"].shape == (12, 1000)
    row = dataset.with_format("numpy")[0]
    assert row["signal"].dtype == np.float32 and row["num_samples"] == 1000 and row["sampling_rate"] == 100
    assert data.label_info(dataset) == (["NORM", "MI", "STTC", "CD", "HYP"], "multi_label_classification")

    fe = HuBERTECGFeatureExtractor()
    train = data.with_preprocessing(dataset, fe, window="random", seed=0)
    first, second = train[:4], train[:4]
    assert first["input_values"].shape == (4, 6000) and first["labels"].shape == (4, 5)
    assert not np.allclose(first["input_values"].numpy(), second["input_values"].numpy())  # new windows
    evaluation = data.with_preprocessing(dataset, fe, window="first")
    expected = fe(row["signal"][:, :1000], sampling_rate=100.0)["input_values"][0]
    np.testing.assert_allclose(evaluation[0]["input_values"].numpy(), expected, atol=1e-6)


def _write(path, text):
    path.write_text(text)
    return path


def test_manifest_problem_types(tmp_path, data_dir):
    folder = data_dir / "ptbxl" / "records100" / "00000"
    multi = data.read_manifest(_write(tmp_path / "m.csv", "filename,age,sex,A,B\n00001_lr,56,M,1,0\n00002_lr,19,F,0,1\n"),
                               folder)
    assert multi.problem_type == "multi_label_classification" and multi.label_names == ["A", "B"]
    single = data.read_manifest(_write(tmp_path / "s.csv", "filename,label\n00001_lr,2\n00002_lr,0\n"), folder)
    assert single.problem_type == "single_label_classification" and single.labels.dtype == np.int64
    assert single.label_names == ["0", "1", "2"]
    regression = data.read_manifest(_write(tmp_path / "r.csv", "filename,age,qt\n00001_lr,56,0.41\n00002_lr,19,0.39\n"),
                                    folder)
    assert regression.problem_type == "regression" and regression.labels.shape == (2,)
    dataset = data.build_dataset(multi)
    assert len(dataset) == 2 and dataset[0]["labels"] == [1.0, 0.0]
    # reordered to the model's label names
    again = data.read_manifest(tmp_path / "m.csv", folder, label_names=["B", "A"])
    assert again.label_names == ["B", "A"] and again.labels[0].tolist() == [0.0, 1.0]


def test_manifest_errors(tmp_path, data_dir):
    folder = data_dir / "ptbxl" / "records100" / "00000"
    with pytest.raises(ValueError, match="not found"):
        data.read_manifest(tmp_path / "absent.csv")
    csv = _write(tmp_path / "m.csv", "filename,A,B\n00001_lr,1,0\n")
    with pytest.raises(ValueError, match=r"m\.csv.*num_labels=5"):
        data.read_manifest(csv, folder, num_labels=5)
    with pytest.raises(ValueError, match=r"m\.csv.*model has 3 labels"):
        data.read_manifest(csv, folder, label_names=["X", "Y", "Z"])
    with pytest.raises(ValueError, match=r"n\.csv.*needs a column named one of \('filename', 'path'"):
        data.read_manifest(_write(tmp_path / "n.csv", "name,A\nx,1\n"))
    # the path column of every manifest (hubert_ecg.io.PATH_COLUMNS), the rule of `predict` and `windows` too
    by_path = data.read_manifest(_write(tmp_path / "p.csv", "path,A,B\n00001_lr,1,0\n"), folder)
    assert by_path.paths == [str(folder / "00001_lr")] and by_path.label_names == ["A", "B"]
    with pytest.raises(ValueError, match="0 or 1"):
        data.read_manifest(_write(tmp_path / "b.csv", "filename,A,B\nx,2,0\n"))


def test_unreadable_record_raise_or_skip(tmp_path, data_dir):
    folder = data_dir / "ptbxl" / "records100" / "00000"
    (tmp_path / "broken.hea").write_text("this is not a header\n")
    csv = _write(tmp_path / "m.csv", f"filename,A,B\n{folder}/00001_lr,1,0\n{tmp_path}/broken,0,1\nmissing_lr,0,1\n")
    records = data.read_manifest(csv)
    with pytest.raises(ValueError, match="broken"):
        data.build_dataset(records)
    skipped = data.Skipped()
    dataset = data.build_dataset(records, on_error="skip", skipped=skipped)
    assert len(dataset) == 1 and len(skipped) == 2
    assert "broken" in skipped.report() and "missing_lr" in skipped.report()


def test_fine_tuning_takes_what_pretraining_takes(tmp_path, data_dir):
    """A 2-lead record (CPSC2021, 200 Hz): zero-filled by default, an error naming the leads with missing_leads="raise",
    giving the windows the pretraining window builder gives (same lead mapping, same preprocessing)."""
    from hubert_ecg.training.window_dataset import build_window_dataset, load_window_dataset

    folder = data_dir / "long" / "cpsc2021"
    name = sorted(p.stem for p in folder.glob("*.hea"))[0]
    csv = _write(tmp_path / "two.csv", f"filename,A,B\n{name},1,0\n")
    records = data.read_manifest(csv, folder)
    with pytest.raises(ValueError, match=rf"{name}.*lacks the leads \['III', 'aVR'"):
        data.build_dataset(records, missing_leads="raise")
    dataset = data.build_dataset(records)
    mask = np.asarray(dataset[0]["lead_mask"])
    assert mask.sum() == 2
    fe = HuBERTECGFeatureExtractor()
    first = data.with_preprocessing(dataset, fe, window="first")[0]["input_values"].numpy()
    build_window_dataset([str(folder / f"{name}.hea")], tmp_path / "windows", show_progress=False)
    pretraining = load_window_dataset(tmp_path / "windows").with_format("numpy")[0]
    np.testing.assert_array_equal(pretraining["lead_mask"], mask)
    np.testing.assert_allclose(first, pretraining["input_values"], atol=1e-6)


def test_classification_collator_windows(data_dir):
    """The fine-tuning collator: random aligned windows for training rows, the given window_start for evaluation
    rows, lead names in any order, the package's dataset layout (lead_mask, num_samples) giving the same inputs."""
    import torch

    from hubert_ecg import read_ecg
    from hubert_ecg.training.collators import DataCollatorForECGClassification

    fe = HuBERTECGFeatureExtractor()
    record = read_ecg(data_dir / "ptbxl" / "records100" / "00000" / "00001_lr")
    order = np.arange(12)[::-1]  # rows reversed, named accordingly
    row = {"signal": record.signal[order].tolist(), "sampling_rate": record.sampling_rate,
           "lead_names": [record.lead_names[i] for i in order], "labels": [1.0, 0.0]}
    expected = fe(record, window_starts=[2.5])["input_values"]
    batch = DataCollatorForECGClassification(fe)([{**row, "window_start": 2.5}])
    np.testing.assert_allclose(batch["input_values"].numpy(), expected, atol=1e-6)
    assert batch["labels"].dtype == torch.float32 and batch["labels"].shape == (1, 2)
    assert int(batch["attention_mask"].sum()) == 6000

    collator = DataCollatorForECGClassification(fe, seed=0)
    draws = [collator([row])["input_values"].numpy() for _ in range(4)]
    assert any(not np.allclose(draws[0], d) for d in draws[1:])  # a new window at every draw
    from hubert_ecg.windows import choose_window_starts  # the draws are the window rule's, from the seed

    first = choose_window_starts(1000, 100.0, fe, "random", pad_to_window=True, rng=np.random.default_rng(0))
    np.testing.assert_allclose(draws[0], fe(record, window_starts=first)["input_values"], atol=1e-6)

    # the layout of build_dataset: 12 standard rows, zero-padded, with lead_mask and num_samples; class index labels
    padded = np.zeros((12, 1500), dtype=np.float32)
    padded[:, :1000] = record.signal
    mask = np.ones(12, dtype=bool)
    stored = {"signal": padded, "num_samples": 1000, "lead_mask": mask, "sampling_rate": 100.0, "labels": 2,
              "window_start": 2.5}
    batch = DataCollatorForECGClassification(fe, window="first")([stored])
    np.testing.assert_allclose(batch["input_values"].numpy(), expected, atol=1e-6)
    assert batch["labels"].dtype == torch.int64
    with pytest.raises(ValueError, match="window"):
        DataCollatorForECGClassification(fe, window="middle")


def test_several_ptbxl_folders_and_fold_splits(data_dir):
    """ptbxl + ptbxl_extra pooled, split 1-7 / 8 / 9 so that fold 9 stays a clean test set (issue 14)."""
    from hubert_ecg.training.data import parse_fold_splits, read_ptbxl, split_by_fold

    one, extra = read_ptbxl(data_dir / "ptbxl"), read_ptbxl(data_dir / "ptbxl_extra")
    both = read_ptbxl(f"{data_dir / 'ptbxl'},{data_dir / 'ptbxl_extra'}")
    assert both.paths == one.paths + extra.paths and len(both) == len(one) + len(extra) > 2000
    np.testing.assert_array_equal(both.labels, np.concatenate([one.labels, extra.labels]))
    assert read_ptbxl([data_dir / "ptbxl", data_dir / "ptbxl_extra"]).paths == both.paths
    splits = parse_fold_splits("train=1-7, validation=8, test=9")
    assert splits == {"train": (1, 2, 3, 4, 5, 6, 7), "validation": (8,), "test": (9,)}
    parts = split_by_fold(both, splits)
    assert {name: set(part.folds) for name, part in parts.items()} == {
        "train": set(range(1, 8)), "validation": {8}, "test": {9}}
    assert sum(len(p) for p in parts.values()) == len(both)
    assert parse_fold_splits("train=1-6+8,validation=7")["train"] == (1, 2, 3, 4, 5, 6, 8)
    assert parse_fold_splits(None) == {"train": tuple(range(1, 9)), "validation": (9,), "test": (10,)}
    for spec, message in (("train=1-8", "no validation folds"), ("train=1-8,validation=8", "fold 8 is in both"),
                          ("train=1-7,holdout=9,validation=8", "unknown split 'holdout'"),
                          ("train=0-7,validation=8", "fold 0 of train is outside"), ("train", "expected split=folds")):
        with pytest.raises(ValueError, match=message):
            parse_fold_splits(spec)


def test_label_fraction_draws_a_seeded_subset_that_keeps_every_label(ptbxl):
    records = data.read_ptbxl(ptbxl, "superdiagnostic", 100)
    labels, kind = records.labels, records.problem_type
    # 1 % of 424 records is 4: too few for 5 labels, so records are added until each label has 2 positives and
    # 2 negatives; fewer added than 2 * 2 per label
    small = data.label_fraction(labels, kind, 0.01, seed=0)
    assert 4 < small.sum() <= 4 + 4 * 5
    assert (labels[small].sum(0) >= 2).all() and ((1 - labels[small]).sum(0) >= 2).all()
    np.testing.assert_array_equal(small, data.label_fraction(labels, kind, 0.01, seed=0))
    assert not np.array_equal(small, data.label_fraction(labels, kind, 0.01, seed=1))
    # a larger fraction has every label already: exactly round(0.25 * 424) records, a seeded permutation's head
    quarter = data.label_fraction(labels, kind, 0.25, seed=3)
    assert quarter.sum() == 106
    np.testing.assert_array_equal(np.flatnonzero(quarter), np.sort(np.random.default_rng(3).permutation(424)[:106]))
    assert data.label_fraction(labels, kind, 1.0).all()
    # single-label: every class keeps 2 records; regression: no guarantee, just the size
    classes = labels.argmax(1)
    assert (np.bincount(classes[data.label_fraction(classes, "single_label_classification", 0.01)]) >= 2).all()
    assert data.label_fraction(labels[:, 0], "regression", 0.1).sum() == 42
    for bad in (0, -0.1, 1.5):
        with pytest.raises(ValueError, match="fraction must lie in"):
            data.label_fraction(labels, kind, bad)


def test_signal_quality_is_checked_on_every_window_training_draws(tmp_path):
    """A training record's leads are judged over the whole record (every window the collator may draw), not its
    first 5 s: a lead flat in the first window only is kept; one flat everywhere is zero-filled and masked."""
    import wfdb

    from hubert_ecg.demo import demo_records
    from hubert_ecg.io import read_ecg

    record = read_ecg([r for r in demo_records() if "00010_hr" in r][0])
    signal = np.asarray(record.signal, dtype=np.float64).T.copy()  # (samples, leads) for wfdb
    rate = int(record.sampling_rate)
    v1, v2 = record.lead_names.index("V1"), record.lead_names.index("V2")
    signal[: 5 * rate, v1] = 0.0  # V1 flat in the first window only
    signal[:, v2] = 0.0  # V2 flat everywhere
    wfdb.wrsamp("edited", fs=rate, units=["mV"] * 12, sig_name=list(record.lead_names), p_signal=signal,
                fmt=["16"] * 12, adc_gain=[1000.0] * 12, baseline=[0] * 12, write_dir=str(tmp_path))
    records = data.LabelledRecords([str(tmp_path / "edited.hea")], np.ones((1, 1), dtype=np.float32), ["A"],
                                   "multi_label_classification")
    built = data.build_dataset(records)
    mask = dict(zip(data.STANDARD_LEADS, built[0]["lead_mask"]))
    assert mask["V1"] and not mask["V2"] and sum(mask.values()) == 11
    stored = np.asarray(built[0]["signal"])
    assert np.abs(stored[data.STANDARD_LEADS.index("V2")]).max() == 0  # zero-filled
    np.testing.assert_allclose(stored[data.STANDARD_LEADS.index("V1"), 5 * rate:],
                               signal[5 * rate:, v1], atol=1e-3)  # kept, as read (mV, 1 µV steps)
