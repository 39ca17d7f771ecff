"""hubert-ecg finetune: a few Trainer steps on real PTB-XL records with a tiny random model."""

import json
import re

import pytest
import torch
from huggingface_hub import ModelCard

from hubert_ecg.training import finetune
from hubert_ecg_cli import finetune as finetune_cli

TINY = json.dumps(
    {
        "hidden_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "intermediate_size": 64,
        "conv_dim": [32, 32, 32, 32, 32],
        "num_conv_pos_embeddings": 16,
        "num_conv_pos_embedding_groups": 4,
        "classifier_proj_size": 32,
    }
)
FAST = ["--max_steps", "2", "--eval_strategy", "steps", "--eval_steps", "2", "--save_strategy", "steps",
        "--save_steps", "2", "--per_device_train_batch_size", "4", "--use_cpu", "true", "--report_to", "none",
        "--disable_tqdm", "true"]


def test_release_defaults():
    _, _, training = finetune_cli.parse_args(["--output_dir", "x"])
    assert training.learning_rate == 1e-5
    assert (training.adam_beta1, training.adam_beta2, training.adam_epsilon) == (0.9, 0.98, 1e-9)
    assert training.weight_decay == 0.01 and training.warmup_steps == 0.08
    assert training.lr_scheduler_type == "linear" and training.metric_for_best_model == "macro_auroc"
    assert training.load_best_model_at_end and training.greater_is_better


def test_yaml_file_and_overrides(tmp_path, capsys):
    config = tmp_path / "ft.yaml"
    config.write_text("preset: small\nconfig_overrides: {hidden_size: 64}\nlearning_rate: 0.002\nlayerdrop: 0.05\n"
                      "num_train_epochs: 3\n")
    model_args, _, training = finetune_cli.parse_args([str(config), "--learning_rate", "0.003", "--output_dir", "o"])
    assert model_args.preset == "small" and json.loads(model_args.config_overrides) == {"hidden_size": 64}
    assert model_args.layerdrop == 0.05 and training.num_train_epochs == 3 and training.learning_rate == 0.003
    config.write_text("nonsense_field: 1\n")
    with pytest.raises(SystemExit) as exit_:  # a usage error: exit 2
        finetune_cli.parse_args([str(config)])
    assert exit_.value.code == 2 and "unknown fields" in capsys.readouterr().err


def test_finetune_ptbxl_end_to_end(tmp_path, data_dir, capsys):
    out = tmp_path / "model"
    argv = ["--ptbxl_dir", str(data_dir / "ptbxl"), "--preset", "small", "--config_overrides", TINY,
            "--max_train_records", "12", "--max_eval_records", "16", "--output_dir", str(out),
            "--freeze_feature_encoder", "true", "--train_last_n_layers", "1", "--layerdrop", "0.0", *FAST,
            "--max_steps", "4", "--eval_steps", "1", "--save_steps", "1", "--learning_rate", "0.01"]
    assert finetune_cli.main(argv) == 0
    captured = capsys.readouterr()
    # the start-up summary and the final line, through the package's logger (on stderr)
    for line in ("records read: train 12, validation 16", "labels (5): NORM, MI, STTC, CD, HYP",
                 "problem type: multi_label_classification", "initialisation: random initialisation (small preset",
                 "device: cpu, precision: fp32", f"saved to {out}: model.safetensors"):
        assert line in captured.err, line
    from hubert_ecg import HuBERTECGForSequenceClassification

    total = sum(p.numel() for p in HuBERTECGForSequenceClassification.from_pretrained(out).parameters())
    trainable = re.search(rf"trainable parameters: ([\d,]+) of {total:,}\n", captured.err)
    assert trainable and 0 < int(trainable.group(1).replace(",", "")) < total  # encoder and first layer frozen
    # the Trainer's log lines carry numbers, not strings
    logged = [json.loads(line) for line in captured.out.splitlines() if line.startswith("{")]
    assert any("loss" in entry for entry in logged)
    assert all(isinstance(v, (int, float)) for entry in logged for v in entry.values())
    # the final block and metrics.json are the best checkpoint's, labelled with its epoch and step
    state = json.loads(next(out.glob("checkpoint-*/trainer_state.json")).read_text())
    best = state["best_global_step"]
    best_entry = next(e for e in state["log_history"] if "eval_loss" in e and e["step"] == best)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["step"] == best and metrics["epoch"] == pytest.approx(best_entry["epoch"], abs=1e-4)
    assert metrics["eval_macro_auroc"] == best_entry["eval_macro_auroc"] and metrics["skipped"] == []
    assert f"final metrics: best checkpoint (epoch {best_entry['epoch']:g}, step {best} of 4)" in captured.out
    # transformers' rotation (save_total_limit 2) keeps the best and the last checkpoint
    kept = {p.name for p in out.glob("checkpoint-*")}
    assert {f"checkpoint-{best}", "checkpoint-4"} <= kept and len(kept) == 2
    if best != 4:
        assert f"checkpoints kept: checkpoint-{best} (best), checkpoint-4 (last)" in captured.err
    else:
        assert "checkpoint-4 (best, last)" in captured.err
    config = json.loads((out / "config.json").read_text())
    assert list(config["id2label"].values()) == ["NORM", "MI", "STTC", "CD", "HYP"]
    assert config["problem_type"] == "multi_label_classification" and len(config["pos_weight"]) == 5
    assert (out / "model.safetensors").is_file() and (out / "preprocessor_config.json").is_file()
    assert config["finetune_mask_time_prob"] == 0.0  # SpecAugment off from random initialisation
    card = ModelCard.load(out / "README.md")
    metrics = json.loads((out / "metrics.json").read_text())
    assert card.data.license == "apache-2.0" and card.data.base_model is None  # random init: the package's licence
    results = {(r.dataset_split, r.metric_type): r.metric_value for r in card.data.eval_results}
    assert results[("validation", "macro_auroc")] == pytest.approx(metrics["eval_macro_auroc"])
    assert "hubert-ecg finetune --ptbxl_dir" in card.text and "SpecAugment off" in card.text

    # the saved model reloads through the Auto classes and scores with the pipeline
    import hubert_ecg  # noqa: F401
    from transformers import pipeline

    clf = pipeline("ecg-classification", model=str(out))
    result = clf(str(data_dir / "ptbxl" / "records100" / "00000" / "00001_lr"))
    assert [r["label"] for r in result] and sorted(r["label"] for r in result) == sorted(config["id2label"].values())


def test_build_model_freezing():
    model_args = finetune_cli.ModelArguments(preset="small", config_overrides=TINY, train_last_n_layers=1,
                                         freeze_feature_encoder=True, final_dropout=0.2)
    model, fe, _, _ = finetune.build_model(model_args, ["a", "b", "c"], "single_label_classification", None,
                                           [1.0, 2.0, 3.0])
    assert model.config.num_labels == 3 and model.config.class_weight == [1.0, 2.0, 3.0]
    assert model.config.final_dropout == 0.2
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert any(name.startswith("hubert_ecg.encoder.layers.1.") for name in trainable)
    assert not any(name.startswith("hubert_ecg.encoder.layers.0.") for name in trainable)
    assert not any("feature_extractor" in name for name in trainable)
    assert {"classifier.weight", "classifier.bias"} <= trainable
    loss = model(torch.randn(2, 6000), labels=torch.tensor([0, 2])).loss
    assert torch.isfinite(loss)


def test_finetune_from_local_directory_single_label(tmp_path, data_dir):
    """Start from a saved directory (as from the hub) with a multi-class manifest: class-weighted cross-entropy."""
    from hubert_ecg import HuBERTECGConfig, HuBERTECGModel

    base = tmp_path / "base"
    HuBERTECGModel(HuBERTECGConfig.from_preset("small", **json.loads(TINY))).save_pretrained(base)
    folder = data_dir / "ptbxl" / "records100" / "00000"
    names = sorted(p.stem for p in folder.glob("*_lr.hea"))[:9]
    rows = "".join(f"{folder}/{name},{i % 3}\n" for i, name in enumerate(names))
    (tmp_path / "train.csv").write_text("filename,rhythm\n" + rows)
    (tmp_path / "val.csv").write_text("filename,rhythm\n" + rows)
    out = tmp_path / "out"
    argv = ["--model", str(base), "--train_csv", str(tmp_path / "train.csv"), "--validation_csv",
            str(tmp_path / "val.csv"), "--output_dir", str(out), *FAST]
    assert finetune_cli.main(argv) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["problem_type"] == "single_label_classification" and len(config["class_weight"]) == 3


def test_finetune_clear_errors(tmp_path, data_dir, capsys):
    base = ["--preset", "small", "--config_overrides", TINY, "--output_dir", str(tmp_path / "o"), *FAST]
    assert finetune_cli.main(["--train_csv", str(tmp_path / "absent.csv"), "--validation_csv", "v.csv", *base]) == 2
    assert "manifest CSV not found" in capsys.readouterr().err

    folder = data_dir / "ptbxl" / "records100" / "00000"
    (tmp_path / "t.csv").write_text(f"filename,A,B\n{folder}/00001_lr,1,0\n{folder}/00002_lr,0,1\n")
    assert finetune_cli.main(["--train_csv", str(tmp_path / "t.csv"), "--validation_csv", str(tmp_path / "t.csv"),
                          "--num_labels", "5", *base]) == 2
    err = capsys.readouterr().err
    assert "t.csv" in err and "num_labels=5" in err

    # an unusable record: skipped and listed, exit status 1 (as predict and evaluate); stops the run when asked
    (tmp_path / "bad.hea").write_text("garbage\n")
    (tmp_path / "b.csv").write_text(f"filename,A,B\n{folder}/00001_lr,1,0\n{tmp_path}/bad,0,1\n"
                                    f"{folder}/00002_lr,0,1\n")
    strict = ["--train_csv", str(tmp_path / "b.csv"), "--validation_csv", str(tmp_path / "t.csv"), *base]
    assert finetune_cli.main([*strict, "--skip_bad_records", "false"]) == 2
    err = capsys.readouterr().err
    assert "bad" in err and "cannot use record" in err
    assert finetune_cli.main(strict) == 1
    err = capsys.readouterr().err
    assert "records read: train 2 (1 skipped, listed at the end), validation 2" in err
    assert f"hubert-ecg finetune: skipped 1 record(s):\n  train: {tmp_path}/bad:" in err
    metrics = json.loads((tmp_path / "o" / "metrics.json").read_text())
    assert metrics["skipped_records"] == 1 and metrics["skipped"][0]["file"] == f"{tmp_path}/bad"
    assert (tmp_path / "o" / "model.safetensors").is_file()

    assert finetune_cli.main(["--ptbxl_dir", str(data_dir / "ptbxl"), "--output_dir", str(tmp_path / "p"), *FAST]) == 2
    assert "--model" in capsys.readouterr().err


def test_push_to_hub_is_the_trainers_push(tmp_path, data_dir, monkeypatch):
    """--push_to_hub: the Trainer creates the repository and uploads the output directory once at the end
    (hub_strategy "end"), with this package's card; against a mocked HfApi (no network)."""
    from huggingface_hub import HfApi

    calls = {"create": [], "upload": []}

    def create_repo(self, repo_id, **kwargs):
        calls["create"].append(repo_id)
        return type("Url", (), {"repo_id": repo_id})()

    def upload_folder(self, repo_id, folder_path, ignore_patterns=None, **kwargs):
        from pathlib import Path

        files = {p.name: p for p in Path(folder_path).iterdir()}
        calls["upload"].append((repo_id, sorted(files), ignore_patterns, ModelCard.load(files["README.md"])))
        return "commit"

    monkeypatch.setattr(HfApi, "create_repo", create_repo)
    monkeypatch.setattr(HfApi, "upload_folder", upload_folder)
    out = tmp_path / "m"
    argv = ["--ptbxl_dir", str(data_dir / "ptbxl"), "--preset", "small", "--config_overrides", TINY,
            "--max_train_records", "8", "--max_eval_records", "8", "--output_dir", str(out), "--push_to_hub", "true",
            "--hub_model_id", "me/tiny-ecg", "--model_license", "mit", *FAST]
    assert finetune_cli.main(argv) == 0
    assert calls["create"] == ["me/tiny-ecg"]
    (repo, files, ignore, card), = calls["upload"]  # one upload: hub_strategy "end"
    assert repo == "me/tiny-ecg"
    assert {"config.json", "model.safetensors", "preprocessor_config.json", "README.md", "metrics.json"} <= set(files)
    assert any(pattern.startswith("checkpoint") for pattern in ignore)
    assert card.data.license == "mit" and {r.metric_type for r in card.data.eval_results} >= {"macro_auroc"}


def test_finetuning_masking_setting(tmp_path):
    """SpecAugment in fine-tuning: off from a preset, kept from a checkpoint, set by --finetune_mask_time_prob."""
    from hubert_ecg import HuBERTECGConfig, HuBERTECGModel

    labels, problem = ["a", "b"], "multi_label_classification"
    model, *_ = finetune.build_model(finetune_cli.ModelArguments(preset="small", config_overrides=TINY), labels, problem,
                                     None, None)
    assert model.config.finetune_mask_time_prob == 0.0 and model.config.mask_time_prob == 0.33
    base = tmp_path / "base"
    config = HuBERTECGConfig.from_preset("small", **json.loads(TINY), finetune_mask_time_prob=0.2)
    HuBERTECGModel(config).save_pretrained(base)
    model, *_ = finetune.build_model(finetune_cli.ModelArguments(model=str(base)), labels, problem, None, None)
    assert model.config.finetune_mask_time_prob == 0.2
    args = finetune_cli.ModelArguments(model=str(base), finetune_mask_time_prob=0.0)
    model, *_ = finetune.build_model(args, labels, problem, None, None)
    assert model.config.finetune_mask_time_prob == 0.0
    args = finetune_cli.ModelArguments(preset="small", config_overrides=TINY, finetune_mask_time_prob=0.1,
                                   finetune_mask_time_length=3)
    model, *_ = finetune.build_model(args, labels, problem, None, None)
    assert (model.config.finetune_mask_time_prob, model.config.finetune_mask_time_length) == (0.1, 3)
    assert hasattr(model.hubert_ecg, "masked_spec_embed")


def test_build_model_from_an_original_pretraining_checkpoint(reference_dir, expected):
    """An original .pt is converted on the fly: the backbone reproduces the release's reference outputs."""
    model_args = finetune_cli.ModelArguments(model=str(reference_dir / "original_pretraining.pt"))
    model, _, _, _ = finetune.build_model(model_args, ["NORM", "MI"], "multi_label_classification", None, None)
    assert model.config.id2label == {0: "NORM", 1: "MI"}
    with torch.no_grad():
        hidden = model.eval().hubert_ecg(torch.from_numpy(expected["input_values_5s"])).last_hidden_state
    torch.testing.assert_close(hidden, torch.from_numpy(expected["last_hidden_state_5s"]), atol=1e-4, rtol=0)


def test_interrupted_finetuning_resumes_from_its_last_checkpoint(tmp_path, data_dir):
    """A run stopped after 2 steps continues from checkpoint-2 when the same command is run with more steps."""
    out = tmp_path / "model"
    base = ["--ptbxl_dir", str(data_dir / "ptbxl"), "--preset", "small", "--config_overrides", TINY,
            "--max_train_records", "8", "--max_eval_records", "8", "--output_dir", str(out),
            "--resume_from_checkpoint", "auto", *FAST]
    assert finetune_cli.main(base) == 0
    state_file = out / "checkpoint-2" / "trainer_state.json"
    state = json.loads(state_file.read_text())
    state["log_history"].append({"step": 2, "marker": "first run"})  # survives only if the second run resumes
    state_file.write_text(json.dumps(state))
    more = [*base[:-len(FAST)], *FAST[2:], "--max_steps", "4"]
    assert finetune_cli.main(more) == 0
    state = json.loads((out / "checkpoint-4" / "trainer_state.json").read_text())
    assert state["global_step"] == 4
    assert {"step": 2, "marker": "first run"} in state["log_history"]


def test_finetune_with_an_augmentations_block_from_yaml(tmp_path, data_dir, capsys):
    config = tmp_path / "aug.yaml"
    config.write_text("augmentations:\n  - {name: lead_mask, mask_prob: 0.4}\n"
                      "  - {name: gaussian_noise, snr_db: [20, 30], p: 0.5}\n")
    out = tmp_path / "model"
    argv = [str(config), "--ptbxl_dir", str(data_dir / "ptbxl"), "--preset", "small", "--config_overrides", TINY,
            "--max_train_records", "8", "--max_eval_records", "8", "--output_dir", str(out), *FAST,
            "--max_steps", "4"]  # two epochs of two batches
    assert finetune_cli.main(argv) == 0
    from hubert_ecg import HuBERTECGConfig

    assert HuBERTECGConfig.from_pretrained(out).lead_mask_prob == pytest.approx(0.4)
    # without augmentations the model is not lead-agnostic
    plain = tmp_path / "plain"
    assert finetune_cli.main([*argv[1:-2], "--output_dir", str(plain), "--max_steps", "1", "--augmentations", "none"]) == 0
    assert HuBERTECGConfig.from_pretrained(plain).lead_mask_prob == 0.0
    capsys.readouterr()
    # a bad entry stops the run at start-up, naming it
    assert finetune_cli.main([*argv[1:], "--augmentations", '[{"name": "lead_mask"}, {"name": "wobble"}]']) == 2
    err = capsys.readouterr().err
    assert "augmentations[1]" in err and "'wobble'" in err


@pytest.mark.slow  # ~3-5 s; CI runs the slow tests too
def test_finetune_on_pooled_ptbxl_folders_with_a_held_out_test_fold(tmp_path, data_dir):
    """The demo recipe's data (issue 14): ptbxl + ptbxl_extra as a YAML list, fold 8 validates, fold 9 is a test set
    the run never chooses anything on."""
    config = tmp_path / "pooled.yaml"
    config.write_text(f"ptbxl_dir: [{data_dir / 'ptbxl'}, {data_dir / 'ptbxl_extra'}]\n"
                      "ptbxl_folds: train=1-7,validation=8,test=9\n")
    out = tmp_path / "model"
    argv = [str(config), "--preset", "small", "--config_overrides", TINY, "--max_train_records", "8",
            "--max_eval_records", "8", "--output_dir", str(out), *FAST, "--max_steps", "1"]
    assert finetune_cli.main(argv) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["train_records"] == 8 and metrics["validation_records"] == 8
    assert metrics["test_records"] == 250  # every fold-9 record of the two folders, scored after training
    assert "test_macro_auroc" in metrics
    card = ModelCard.load(out / "README.md").text
    assert "strat_fold 1-7 for training" in card and "fold 8 for validation" in card
    assert "fold 9 as a held-out test set (250 records)" in card


def test_finetuning_a_calibrated_model_drops_its_calibration(tmp_path, data_dir):
    """The demo model carries a calibration and thresholds fitted to its logits; fine-tuning it (to other labels
    here) must not keep them, since the new head's logits are not the ones they were fitted on."""
    from pathlib import Path

    import hubert_ecg

    demo = json.loads((Path(hubert_ecg.demo_model_path()) / "config.json").read_text())
    assert demo["score_calibration"] and demo["label_thresholds"]
    folder = data_dir / "ptbxl" / "records100" / "00000"
    names = sorted(p.stem for p in folder.glob("*_lr.hea"))[:6]
    rows = "".join(f"{folder}/{name},{i % 3}\n" for i, name in enumerate(names))
    (tmp_path / "train.csv").write_text("filename,rhythm\n" + rows)
    out = tmp_path / "out"
    argv = ["--model", hubert_ecg.demo_model_path(), "--train_csv", str(tmp_path / "train.csv"),
            "--validation_csv", str(tmp_path / "train.csv"), "--output_dir", str(out), *FAST, "--max_steps", "1"]
    assert finetune_cli.main(argv) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["score_calibration"] is None and config["label_thresholds"] is None
    assert config["lead_mask_prob"] == 0.0  # and it was not trained lead-agnostic this time


@pytest.mark.slow  # ~3-5 s; CI runs the slow tests too
def test_the_same_seed_gives_the_same_model(tmp_path, data_dir):
    """A fine-tuning run from a preset repeats exactly: the random initialisation is seeded too (examples/
    train_demo.sh relies on it to reproduce the bundled demo model)."""
    from safetensors.torch import load_file

    def run(name, seed):
        out = tmp_path / name
        argv = ["--ptbxl_dir", str(data_dir / "ptbxl"), "--preset", "small", "--config_overrides", TINY,
                "--max_train_records", "8", "--max_eval_records", "4", "--output_dir", str(out), *FAST,
                "--max_steps", "1", "--seed", str(seed)]
        assert finetune_cli.main(argv) == 0
        return load_file(out / "model.safetensors")

    first, again, other = run("a", 7), run("b", 7), run("c", 8)
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert not all(torch.equal(first[k], other[k]) for k in first)


def _superclass_manifest(path, folder, folds, n):
    """The first ``n`` records of ``folds`` of a PTB-XL folder, with the superclass columns, as a CSV manifest."""
    import numpy as np
    import pandas as pd

    from hubert_ecg.training.data import read_ptbxl

    records = read_ptbxl(folder)
    index = np.flatnonzero(np.isin(records.folds, folds))[:n]
    frame = pd.DataFrame(records.labels[index].astype(int), columns=records.label_names)
    frame.insert(0, "filename", [records.paths[i] for i in index])
    frame.to_csv(path, index=False)
    return path


def _summary_trainer():
    """What the start-up summary reads of a Trainer: its model and arguments."""
    from types import SimpleNamespace

    import torch

    model = torch.nn.Linear(2, 2)
    return SimpleNamespace(model=model, args=SimpleNamespace(bf16=False, fp16=False, device=torch.device("cpu"),
                                                             output_dir="out"))


def test_training_sources_are_mixed_with_their_probabilities_and_scored_per_source(tmp_path, data_dir):
    """Two labelled sources (PTB-XL and the band-passed PTB-XL copy): the training rows follow the probabilities
    (interleave_datasets, all_exhausted), and the validation metrics come pooled and per source."""
    import numpy as np

    from hubert_ecg.training.metrics import make_compute_metrics

    a = _superclass_manifest(tmp_path / "a.csv", data_dir / "ptbxl", range(1, 9), 12)
    b = _superclass_manifest(tmp_path / "b.csv", data_dir / "ptbxl_extra", range(1, 9), 40)
    va = _superclass_manifest(tmp_path / "va.csv", data_dir / "ptbxl", [9], 10)
    vb = _superclass_manifest(tmp_path / "vb.csv", data_dir / "ptbxl_extra", [9], 10)
    data_args = finetune_cli.DataArguments(train_sources=[f"ptbxl={a}@0.5", f"extra={b}@0.5"],
                                       validation_sources=[f"ptbxl={va}", f"extra={vb}"])
    datasets, names, problem_type, _ = finetune.load_data(data_args, seed=1)
    sources = np.asarray(datasets["train"]["source"])
    # equal chances, all_exhausted: the draw ends once the 40 extra rows are all drawn; the 12 ptbxl rows repeat
    assert set(sources) == {"ptbxl", "extra"} and (sources == "extra").sum() >= 40
    assert abs((sources == "ptbxl").mean() - 0.5) < 0.15 and (sources == "ptbxl").sum() > 12
    # the summary and metrics.json count records, not draws: 12 + 40 records, more draws
    assert finetune._record_count(datasets["train"]) == 52 < len(datasets["train"])
    assert f"records read: train 52 ({len(datasets['train'])} draws per epoch, mixed)" in finetune._startup_summary(
        datasets, {split: [] for split in datasets}, names, problem_type, "x", _summary_trainer())
    first = finetune.load_data(finetune_cli.DataArguments(
        train_sources=[f"ptbxl={a}@0.5", f"extra={b}@0.5"], stopping_strategy="first_exhausted",
        validation_csv=str(va)), seed=1)[0]
    mixed = np.asarray(first["train"]["source"])
    assert (mixed == "ptbxl").sum() == 12 and (mixed == "extra").sum() < 40  # stops when ptbxl runs out
    assert "source" not in first["validation"].column_names
    assert list(datasets["validation"]["source"]) == ["ptbxl"] * 10 + ["extra"] * 10
    # per-source metrics are the pooled metrics of each source's records
    rng = np.random.default_rng(0)
    labels = np.asarray(datasets["validation"]["labels"])
    logits = rng.normal(size=labels.shape) + 2 * labels

    class Prediction:
        predictions, label_ids = logits, labels

    metrics = make_compute_metrics(problem_type, sources=list(datasets["validation"]["source"]))(Prediction)
    plain = make_compute_metrics(problem_type)
    for name, where in (("ptbxl", slice(0, 10)), ("extra", slice(10, 20))):
        class Part:
            predictions, label_ids = logits[where], labels[where]
        assert metrics[f"{name}_macro_auroc"] == plain(Part)["macro_auroc"]
    assert metrics["macro_auroc"] == plain(Prediction)["macro_auroc"]
    # end to end: the Trainer logs and saves them as eval_<source>_...
    out = tmp_path / "model"
    assert finetune_cli.main(["--train_sources", f"ptbxl={a}@0.7", f"extra={b}@0.3", "--validation_sources",
                          f"ptbxl={va}", f"extra={vb}", "--preset", "small", "--config_overrides", TINY,
                          "--output_dir", str(out), *FAST]) == 0
    saved = json.loads((out / "metrics.json").read_text())
    assert {"eval_macro_auroc", "eval_ptbxl_macro_auroc", "eval_extra_macro_auroc"} <= set(saved)
    # Trainer.evaluate with a dict of datasets: the pooled records, then each source's, one prefix (and log) each
    history = json.loads((out / "checkpoint-2" / "trainer_state.json").read_text())["log_history"]
    evaluations = [sorted({k.split("_")[1] for k in e if k.endswith("_loss")}) for e in history if e["step"] == 2
                   and any(k.startswith("eval_") for k in e)]
    assert evaluations == [["loss"], ["ptbxl"], ["extra"]]
    assert {"eval_ptbxl_loss", "eval_extra_loss"} <= set(saved)
    assert "`ptbxl` (`" in (out / "README.md").read_text() and "probability 0.70" in (out / "README.md").read_text()
    with pytest.raises(ValueError, match="exactly one data source"):
        finetune.load_data(finetune_cli.DataArguments(train_csv=str(a), train_sources=[str(b)], validation_csv=str(va)))
    with pytest.raises(ValueError, match="probability to every source or to none"):
        finetune.load_data(finetune_cli.DataArguments(train_sources=[f"{a}@1", str(b)], validation_csv=str(va)))


NOTE = "no GPU found"  # the one line of hubert_ecg.training.arguments.PrecisionOnAnyMachine


def test_bf16_on_a_machine_without_a_gpu_trains_on_the_cpu(tmp_path, data_dir, capsys, caplog):
    """`hubert-ecg finetune --bf16 true` without --use_cpu: on a machine without a GPU it trains on the CPU (bf16 where
    bf16 products are measured faster there, else fp32) and says so once, instead of transformers' "doesn't support
    bf16/gpu"."""
    from hubert_ecg.inference import LOWER_PRECISION_MIN_SPEEDUP, bf16_matmul_speedup
    from hubert_ecg.training.arguments import accelerator_available

    if accelerator_available():
        pytest.skip("a GPU is present: --bf16 goes to transformers unchanged")
    i = FAST.index("--use_cpu")
    fast = FAST[:i] + FAST[i + 2:]
    argv = ["--ptbxl_dir", str(data_dir / "ptbxl"), "--preset", "small", "--config_overrides", TINY,
            "--max_train_records", "8", "--max_eval_records", "8", "--output_dir", str(tmp_path / "m"), *fast,
            "--bf16", "true"]
    caplog.set_level("WARNING", logger="hubert_ecg")
    assert finetune_cli.main(argv) == 0
    notes = [r.getMessage() for r in caplog.records if r.getMessage().startswith(NOTE)]
    assert len(notes) == 1, notes
    precision = "bf16 mixed precision" if bf16_matmul_speedup() >= LOWER_PRECISION_MIN_SPEEDUP else "fp32"
    assert f"device: cpu, precision: {precision}" in capsys.readouterr().err
    assert (tmp_path / "m" / "model.safetensors").is_file()


def test_bf16_without_a_gpu_the_rule(monkeypatch, caplog):
    """The rule, both branches, on any machine: bf16 kept on a CPU where bf16 matrix products are measured faster,
    fp32 on one where they are not; nothing changed where an accelerator is present (transformers checks the flags
    itself)."""
    import hubert_ecg.inference
    from hubert_ecg.training import arguments

    monkeypatch.setattr(arguments, "accelerator_available", lambda: False)
    for speedup, has_bf16, precision in ((2.4, True, "bf16 mixed precision"), (0.73, False, "fp32")):
        monkeypatch.setattr(hubert_ecg.inference, "bf16_matmul_speedup", lambda: speedup)
        caplog.clear()
        _, _, training = finetune_cli.parse_args(["--output_dir", "x", "--bf16", "true"])
        assert training.use_cpu and training.bf16 is has_bf16 and training.mixed_precision == ("bf16" if has_bf16 else "no")
        [note] = [r.getMessage() for r in caplog.records]
        assert note.startswith(NOTE) and precision in note and f"measured {speedup:.2f}x fp32" in note
    caplog.clear()  # --use_cpu given on a CPU where bf16 is faster: nothing to say
    monkeypatch.setattr(hubert_ecg.inference, "bf16_matmul_speedup", lambda: 2.4)
    _, _, training = finetune_cli.parse_args(["--output_dir", "x", "--bf16", "true", "--use_cpu", "true"])
    assert training.bf16 and not caplog.records
    _, _, training = finetune_cli.parse_args(["--output_dir", "x"])  # no bf16: untouched
    assert not training.use_cpu and not caplog.records
    monkeypatch.setattr(arguments, "accelerator_available", lambda: True)  # a GPU machine: the flags as given
    if not __import__("torch").cuda.is_available():
        with pytest.raises(SystemExit):  # a usage error: exit 2
            finetune_cli.parse_args(["--output_dir", "x", "--bf16", "true"])


def test_the_commands_choices_are_the_packages():
    """The label sets and the bad-record rule that hubert_ecg_cli.finetune keeps (to answer --help and usage errors
    without the package) are the package's own."""
    from hubert_ecg.training import data

    assert finetune_cli.PTBXL_LABEL_SETS == data.PTBXL_LABEL_SETS
    assert finetune_cli.BAD_RECORDS_RULE == data.BAD_RECORDS_RULE


def test_the_old_model_name_or_path_still_works_with_a_note(tmp_path, capsys):
    """--model was --model_name_or_path (also as a key of the YAML file): still read, with one line saying so."""
    model_args, _, _ = finetune_cli.parse_args(["--model_name_or_path", "some/model", "--output_dir", "x"])
    assert model_args.model == "some/model"
    assert "hubert-ecg finetune: --model_name_or_path is deprecated" in capsys.readouterr().err
    config = tmp_path / "ft.yaml"
    config.write_text("model_name_or_path: other/model\nlearning_rate: 0.002\n")
    model_args, _, training = finetune_cli.parse_args([str(config), "--output_dir", "x"])
    assert model_args.model == "other/model" and training.learning_rate == 0.002
    err = capsys.readouterr().err
    assert err.count("model_name_or_path in ft.yaml is deprecated") == 1 and "use model" in err
    model_args, _, _ = finetune_cli.parse_args(["--model", "new/model", "--output_dir", "x"])
    assert model_args.model == "new/model" and "deprecated" not in capsys.readouterr().err


def test_own_fields_are_checked_before_torch():
    """A bad --label_set is a usage error answered before transformers' TrainingArguments (torch) are imported."""
    import subprocess
    import sys

    code = ("import sys\nfrom hubert_ecg_cli import main\ncode = main(['finetune', '--label_set', 'nope'])\n"
            "print('IMPORTED', [m for m in ('torch', 'hubert_ecg') if m in sys.modules], file=sys.stderr)\n"
            "sys.exit(code)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result.stderr
    assert "hubert-ecg finetune: error:" in result.stderr and "--label_set" in result.stderr
    assert "IMPORTED []" in result.stderr
