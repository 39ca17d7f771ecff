"""HuBERT pretraining on the Trainer with real records: the loss falls, two iterations then fine-tuning, the Hub
upload, a 2-process gloo run, kill -9 and resume with the same losses."""

import json
import os
import signal
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import transformers.trainer
from transformers.trainer_utils import EvalPrediction

from hubert_ecg import HuBERTECGConfig, HuBERTECGForPreTraining, HuBERTECGForSequenceClassification
from hubert_ecg_cli import main as cli_main
from hubert_ecg.training.clustering import KMeansCodebook, load_labels, mfcc_features
from hubert_ecg_cli.arguments import parse as parse_args
from hubert_ecg.training.pretrain import (
    EpochShuffleSampler,
    PretrainArguments,
    WindowLabelDataset,
    compute_masked_accuracy,
    split_by_record,
)
from hubert_ecg.training.window_dataset import build_window_dataset, load_window_dataset

REPO = Path(__file__).resolve().parents[1]
TINY = json.dumps(
    dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, conv_dim=[32] * 5,
         classifier_proj_size=16, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4, layerdrop=0.0)
)
RECORDS = ["ptbxl/records100/00000/00001_lr", "ptbxl/records100/00000/00002_lr", "ptbxl/records100/00000/00003_lr",
           "cinc2021/E07500", "long/cpsc2021/data_8_4"]
FRAMES = HuBERTECGConfig().num_frames(6000)


@pytest.fixture(scope="module")
def iteration1(data_dir, tmp_path_factory):
    """A window dataset of real records (16 windows; one unreadable file skipped) and MFCC k-means labels (K=8)."""
    root = tmp_path_factory.mktemp("pretrain")
    # the records and the broken file under one folder, so that record ids (and the hashed train/validation
    # split) do not depend on where ../shared and the temporary folder are
    data = root / "data"
    for record in RECORDS:
        for source in (data_dir / record).parent.glob((data_dir / record).name + ".*"):
            (data / record).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(source, (data / record).parent / source.name)
    broken = data / "broken.npy"
    broken.write_bytes(b"not an ECG")
    info = build_window_dataset([str(data / r) for r in RECORDS] + [str(broken)], root / "windows",
                                show_progress=False)
    assert info.num_windows == 16 and info.num_skipped == 1
    [skipped] = [json.loads(line) for line in (root / "windows" / "skipped.jsonl").read_text().splitlines()]
    assert skipped["path"].endswith("broken.npy")
    assert cli_main(["cluster", "--output_dir", str(root / "labels1"), "--windows_dir", str(root / "windows"),
                     "--num_clusters", "8", "--kmeans_n_init", "1"]) == 0
    return root


def _pretrain_args(root, out, labels="labels1", steps=6, **extra):
    args = ["--output_dir", str(out), "--windows_dir", str(root / "windows"), "--labels_dirs", str(root / labels),
            "--config_overrides", TINY, "--max_steps", str(steps), "--per_device_train_batch_size", "2",
            "--learning_rate", "1e-3", "--logging_steps", "1", "--save_steps", "2", "--eval_steps", "3",
            "--validation_fraction", "0.2", "--report_to", "none", "--seed", "7", "--dataloader_pin_memory", "false"]
    for key, value in extra.items():
        args += [f"--{key}", str(value)]
    return args


def _history(out):
    return [json.loads(line) for line in (Path(out) / "log_history.jsonl").read_text().splitlines() if line.strip()]


def _losses(out):
    return {e["step"]: e["loss"] for e in _history(out) if "loss" in e}


def _env():
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    env.pop("HF_HUB_ENABLE_HF_TRANSFER", None)
    return env


def _kill_after_checkpoint(args, out, step):
    """Run `hubert-ecg pretrain ARGS` in a one-thread subprocess and kill -9 it once ``checkpoint-{step}`` in ``out``
    is complete (its trainer_state.json written), before the final model."""
    proc = subprocess.Popen([sys.executable, "-m", "hubert_ecg_cli", "pretrain", *args], env=_env(), cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not (out / f"checkpoint-{step}" / "trainer_state.json").exists():
        assert time.time() < deadline and proc.poll() is None
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (out / "model.safetensors").exists()


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _launch_two_processes(script):
    """``accelerate launch`` of ``script`` on 2 CPU processes (gloo); asserts it exits 0 and returns the process."""
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
               "--num_cpu_threads_per_process", "1", "--main_process_port", str(_free_port()), str(script)]
    proc = subprocess.run(command, env=_env(), cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-5000:]
    return proc


class _FakeHub:
    """HfApi stand-in that records what the Trainer creates and uploads."""

    def __init__(self, uploads):
        self.uploads = uploads

    def create_repo(self, repo_id, token=None, private=None, exist_ok=False, **kwargs):
        return type("RepoUrl", (), {"repo_id": repo_id})()

    def upload_folder(self, repo_id, folder_path, ignore_patterns=None, **kwargs):
        files = {str(p.relative_to(folder_path)) for p in Path(folder_path).rglob("*") if p.is_file()}
        readme = (Path(folder_path) / "README.md").read_text()
        self.uploads.append((repo_id, files, list(ignore_patterns or []), readme))
        return "commit"


def test_split_keeps_records_together():
    ids = [f"r{i // 3}" for i in range(300)]
    train, val = split_by_record(ids, 0.2)
    assert len(train) + len(val) == 300 and 20 < len(val) < 100
    assert not {ids[i] for i in train} & {ids[i] for i in val}
    np.testing.assert_array_equal(split_by_record(ids, 0.2)[1], val)
    # adding records keeps the old assignments
    more = ids + [f"s{i}" for i in range(50)]
    np.testing.assert_array_equal(split_by_record(more, 0.2)[1][: len(val)], val)
    # a small dataset still gets the validation set it asks for
    assert [len(part) for part in split_by_record(["a", "b", "b"], 1e-6)] in ([1, 2], [2, 1])
    assert len(split_by_record(["a", "b", "b"], 0.0)[1]) == 0


def test_sampler_and_dataset_name_window_and_epoch(iteration1):
    windows = load_window_dataset(iteration1 / "windows")
    labels, _ = load_labels(iteration1 / "labels1")
    rows = np.array([3, 5, 7, 11])
    data = WindowLabelDataset(windows, [labels], rows)
    sampler = EpochShuffleSampler(len(data), seed=7)
    first = list(sampler)
    sampler.set_epoch(2)
    third = list(sampler)
    assert sorted(first) == [0, 1, 2, 3] and sorted(third) == [8, 9, 10, 11]
    sampler.set_epoch(0)
    assert list(sampler) == first  # the same order again (resume, other processes)
    item = data[9]  # epoch 2, position 1 -> row 5
    assert item["sample_index"] == 9 and item["labels"].shape == (1, FRAMES)
    np.testing.assert_array_equal(item["labels"][0], labels[5])
    np.testing.assert_array_equal(item["input_values"], windows.with_format("numpy")[5]["input_values"])


def test_masked_accuracy_metric():
    labels = np.array([[[1, 2, 3, -100]], [[0, 0, 1, 1]]])  # (2 windows, 1 codebook, 4 frames)
    predictions = np.array([[[1, 0, 3, 3], [1, 1, 0, 1]], [[0, 1, 1, 1], [0, 1, 1, 0]]])  # last row: the mask
    # masked valid frames: (0,0) right, (0,1) wrong, (1,1) wrong, (1,2) right -> 2/4; frame (0,3) is ignored
    # unmasked valid frames: (0,2) right, (1,0) right, (1,3) right -> 3/3
    result = compute_masked_accuracy(EvalPrediction(predictions=predictions, label_ids=labels))
    assert result == {"masked_accuracy": 0.5, "unmasked_accuracy": 1.0}


def test_loss_falls_two_iterations_then_fine_tuning(iteration1, tmp_path, monkeypatch):
    root = iteration1
    # iteration 1: fresh tiny model on MFCC targets (K = 8), evaluated before, during and after training
    assert cli_main(["pretrain", *_pretrain_args(root, tmp_path / "it1", steps=24, per_device_train_batch_size=4,
                                                 learning_rate=5e-4, eval_steps=12, save_steps=12,
                                                 eval_on_start="true")]) == 0
    results = json.loads((tmp_path / "it1" / "pretrain_results.json").read_text())
    assert results["step"] == 24 and results["vocab_sizes"] == [8] and results["validation_windows"] >= 1
    history = _history(tmp_path / "it1")
    losses = [e["loss"] for e in history if "loss" in e]
    evals = [(e["step"], e["eval_loss"]) for e in history if "eval_loss" in e]
    assert [e["step"] for e in history if "loss" in e] == list(range(1, 25))
    assert [step for step, _ in evals] == [0, 12, 24] and results["eval_loss"] == evals[-1][1]
    # the loss falls: on held-out records (below guessing the 8 clusters uniformly), and in training
    assert evals[-1][1] < min(evals[0][1] - 0.2, np.log(8)), evals
    assert np.mean(losses[-4:]) < np.mean(losses[:4]) - 0.5, losses
    assert {"model.safetensors", "preprocessor_config.json"} <= {p.name for p in (tmp_path / "it1").iterdir()}
    card = (tmp_path / "it1" / "README.md").read_text()  # the package's card: licence of a random init, results
    assert "license: apache-2.0" in card and f"{results['eval_masked_accuracy']:.4f}" in card

    # iteration 2: hidden states of layer 1 of iteration 1, new codebook of 10, continued backbone, pushed
    assert cli_main(["cluster", "--output_dir", str(root / "labels2"), "--windows_dir", str(root / "windows"),
                     "--features", "hidden", "--model", str(tmp_path / "it1"), "--layer", "1",
                     "--num_clusters", "10", "--kmeans_n_init", "1"]) == 0
    labels2, info2 = load_labels(root / "labels2")
    assert labels2.shape == (16, FRAMES) and info2["layer"] == 1
    uploads = []
    monkeypatch.setattr(transformers.trainer, "hf_api", lambda: _FakeHub(uploads))  # no network
    assert cli_main(["pretrain", *_pretrain_args(root, tmp_path / "it2", labels="labels2", steps=3,
                                                 model=tmp_path / "it1", learning_rate=0.0,
                                                 push_to_hub="true", hub_model_id="me/ecg-it2")]) == 0
    # the Trainer's push (hub_strategy "end"): one upload of the final model, card and feature extractor, no checkpoints
    [(repo_id, files, ignored, readme)] = uploads
    assert repo_id == "me/ecg-it2" and "checkpoint-*" in ignored
    assert {"model.safetensors", "config.json", "README.md", "preprocessor_config.json", "pretrain_results.json"} \
        <= files
    assert "hubert-ecg" in readme and "apache-2.0" in readme  # the package's card; trained from random init
    it1 = HuBERTECGForPreTraining.from_pretrained(tmp_path / "it1")
    it2 = HuBERTECGForPreTraining.from_pretrained(tmp_path / "it2")
    assert it2.config.vocab_sizes == [10] and it2.label_embedding[0].weight.shape[0] == 10
    # learning rate 0: the continued backbone is exactly iteration 1's
    for (name, a), b in zip(it1.hubert_ecg.state_dict().items(), it2.hubert_ecg.state_dict().values()):
        torch.testing.assert_close(a, b, msg=name)

    # the pretrained checkpoint loads into the classifier
    clf = HuBERTECGForSequenceClassification.from_pretrained(tmp_path / "it2", num_labels=5)
    torch.testing.assert_close(clf.hubert_ecg.encoder.layers[0].attention.q_proj.weight,
                               it2.hubert_ecg.encoder.layers[0].attention.q_proj.weight)
    values = torch.from_numpy(load_window_dataset(root / "windows").with_format("numpy")[:2]["input_values"])
    assert clf.eval()(values).logits.shape == (2, 5)


def test_help_and_the_example_configuration(capsys):
    assert cli_main(["pretrain", "--help"]) == 0
    assert "--labels_dirs" in capsys.readouterr().out
    example = str(REPO / "examples" / "pretrain" / "iteration1.yaml")
    (args,) = parse_args([example, "--use_cpu", "true"], (PretrainArguments,), "x")  # bf16 on a CPU: use_cpu
    assert args.labels_dirs == ["runs/labels-it1"] and args.bf16 and args.warmup_steps == 0.08
    assert args.eval_strategy == "steps" and args.eval_steps == 5000 and args.hub_strategy == "end"



def test_the_old_model_name_or_path_still_works_with_a_note(tmp_path, capsys):
    """--model was --model_name_or_path (also as a key of the YAML file): still read, with one line saying so."""
    from hubert_ecg_cli import pretrain as pretrain_cli

    common = ["--output_dir", str(tmp_path / "o"), "--windows_dir", "w", "--labels_dirs", "l", "--report_to", "none"]
    args = pretrain_cli.parse_args(["--model_name_or_path", "previous/model", *common])
    assert args.model == "previous/model"
    assert "hubert-ecg pretrain: --model_name_or_path is deprecated" in capsys.readouterr().err
    config = tmp_path / "it2.yaml"
    config.write_text("model_name_or_path: previous/model2\npreset: small\n")
    args = pretrain_cli.parse_args([str(config), *common])
    assert args.model == "previous/model2"
    assert capsys.readouterr().err.count("model_name_or_path in it2.yaml is deprecated") == 1


@pytest.mark.slow  # several seconds of training processes; CI runs the slow tests too
def test_a_shipped_bf16_configuration_runs_on_a_machine_without_a_gpu(iteration1, tmp_path):
    """examples/pretrain/cmsc.yaml (bf16: true) as shipped, without --use_cpu, on a tiny run: on a machine without a
    GPU `hubert-ecg pretrain` trains on the CPU (bf16 where bf16 products are measured faster, else fp32) with one line on stderr,
    instead of transformers' "Your setup doesn't support bf16/gpu"."""
    from hubert_ecg.inference import LOWER_PRECISION_MIN_SPEEDUP
    from hubert_ecg.training.arguments import accelerator_available

    if accelerator_available():
        pytest.skip("a GPU is present: --bf16 goes to transformers unchanged")
    out = tmp_path / "cmsc"
    overrides = json.dumps({**json.loads(TINY), "contrastive_projection_sizes": [32, 16]})
    args = [str(REPO / "examples" / "pretrain" / "cmsc.yaml"), "--data", str(iteration1 / "data"), "--windows_dir",
            str(iteration1 / "windows"), "--output_dir", str(out), "--config_overrides", overrides, "--max_steps", "2",
            "--per_device_train_batch_size", "4", "--per_device_eval_batch_size", "4", "--dataloader_num_workers", "0",
            "--validation_fraction", "0", "--logging_steps", "1", "--report_to", "none", "--disable_tqdm", "true",
            "--dataloader_pin_memory", "false"]
    proc = subprocess.run([sys.executable, "-m", "hubert_ecg_cli", "pretrain", *args], env=_env(), cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    notes = [line for line in proc.stderr.splitlines() if "no GPU found" in line]
    assert len(notes) == 1, proc.stderr[-3000:]
    # the child (one thread) measured for itself: its note gives the figure and follows the rule
    speedup = float(notes[0].split("measured ")[1].split("x fp32")[0])
    assert ("in bf16 mixed precision" if speedup >= LOWER_PRECISION_MIN_SPEEDUP else "in fp32") in notes[0]
    assert json.loads((out / "pretrain_results.json").read_text())["step"] == 2


def test_bad_arguments_exit_2(iteration1, tmp_path, capsys):
    assert cli_main(["pretrain", *_pretrain_args(iteration1, tmp_path / "x", config_overrides="{oops")]) == 2
    assert "--config_overrides is not valid JSON" in capsys.readouterr().err
    assert cli_main(["pretrain", "--output_dir", str(tmp_path / "x"), "--windows_dir", "w"]) == 2
    assert "--labels_dirs" in capsys.readouterr().err
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        assert cli_main(["pretrain", *_pretrain_args(iteration1, tmp_path / "x"), "--report_to", "tensorboard"]) == 2
        assert "pip install tensorboard" in capsys.readouterr().err


@pytest.mark.slow  # ~9 s: two training processes; CI runs the slow tests too
def test_two_process_gloo_run(iteration1, tmp_path):
    """`accelerate launch --multi_gpu --num_processes 2` on a CPU-only machine (gloo): sharded clustering (same
    labels as one process) and the Trainer under DDP."""
    root = iteration1
    script = tmp_path / "two_iterations.py"
    script.write_text(
        "import sys\nfrom hubert_ecg_cli import main\n"
        f"assert main(['cluster', '--output_dir', {str(tmp_path / 'labels')!r}, '--windows_dir', "
        f"{str(root / 'windows')!r}, '--num_clusters', '8', '--kmeans_n_init', '1']) == 0\n"
        f"sys.exit(main(['pretrain', *{_pretrain_args(root, tmp_path / 'ddp', steps=4)!r}]))\n"
    )
    _launch_two_processes(script)
    # clustering sharded over 2 processes: all windows' frames fitted, every row labelled in order
    labels, info = load_labels(tmp_path / "labels")
    codebook = KMeansCodebook.load(tmp_path / "labels")
    assert codebook.info["fit_frames"] == 16 * FRAMES and labels.shape == (16, FRAMES)
    values = load_window_dataset(root / "windows").with_format("numpy")[:]["input_values"]
    # (up to near-ties of zero-filled leads, whose distances differ in the last bits between batch shapes)
    assert (codebook.assign(mfcc_features(values)) == labels).mean() > 0.97
    results = json.loads((tmp_path / "ddp" / "pretrain_results.json").read_text())
    assert results["processes"] == 2 and results["effective_batch_size"] == 4 and results["step"] == 4
    assert sorted(_losses(tmp_path / "ddp")) == [1, 2, 3, 4]
    assert all(np.isfinite(v) for v in _losses(tmp_path / "ddp").values())
    HuBERTECGForSequenceClassification.from_pretrained(tmp_path / "ddp", num_labels=3)


@pytest.mark.slow  # several seconds of training processes; CI runs the slow tests too
def test_sigkill_and_resume_give_the_same_losses(iteration1, tmp_path):
    """A real kill -9 after a checkpoint, then the same command: the losses continue as if nothing happened, over
    several epochs (new masks each epoch), with gradient accumulation, with or without DataLoader workers, and with
    augmentations (lead masking and noise, seeded per window)."""
    root = iteration1
    chain = '[{"name": "lead_mask", "mask_prob": 0.5}, {"name": "gaussian_noise", "snr_db": [20, 30], "p": 0.5}]'
    extra = dict(steps=12, save_steps=4, gradient_accumulation_steps=2, augmentations=chain)
    assert cli_main(["pretrain", *_pretrain_args(root, tmp_path / "ref", **extra)]) == 0
    reference = _losses(tmp_path / "ref")
    assert sorted(reference) == list(range(1, 13))
    assert json.loads((tmp_path / "ref" / "pretrain_results.json").read_text())["step"] == 12
    out = tmp_path / "killed"
    # with DataLoader workers: each window's mask comes from (seed, sample index), not from a worker's random state
    args = _pretrain_args(root, out, **extra, dataloader_num_workers=2)
    _kill_after_checkpoint(args, out, 4)
    # resumed in a process of its own, as a user reruns the command: DataLoader workers are forked from it, not from
    # this test process with everything earlier tests loaded (forking that crashed it in a full slow run)
    done = subprocess.run([sys.executable, "-m", "hubert_ecg_cli", "pretrain", *args], env=_env(), cwd=REPO,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads((out / "pretrain_results.json").read_text())["resumed_from"].startswith(str(out / "checkpoint-"))
    resumed = _losses(out)
    assert sorted(resumed) == list(range(1, 13))
    epochs = {e["step"]: e["epoch"] for e in _history(out) if "loss" in e}
    assert epochs[12] > 2  # the run spans several epochs
    for step, loss in reference.items():
        assert resumed[step] == pytest.approx(loss, rel=1e-6, abs=1e-6), step


def test_pretrain_with_an_augmentations_block_from_yaml(iteration1, tmp_path, capsys):
    config = tmp_path / "aug.yaml"
    config.write_text("augmentations:\n  - {name: lead_mask, mask_prob: 0.5}\n"
                      "  - {name: gaussian_noise, snr_db: [20, 30], p: 0.5}\n")
    out = tmp_path / "aug"
    assert cli_main(["pretrain", str(config), *_pretrain_args(iteration1, out, steps=2)]) == 0
    assert HuBERTECGConfig.from_pretrained(out).lead_mask_prob == 0.5
    assert _losses(out) and all(np.isfinite(list(_losses(out).values())))
    bad = '[{"name": "lead_mask", "mask_prob": 1.5}]'
    assert cli_main(["pretrain", *_pretrain_args(iteration1, tmp_path / "x", augmentations=bad)]) == 2
    err = capsys.readouterr().err
    assert "augmentations[0]" in err and "mask_prob" in err


def test_pretraining_evaluation_batches_are_not_augmented(iteration1, tmp_path):
    from hubert_ecg.training.pretrain import build_trainer

    argv = _pretrain_args(iteration1, tmp_path / "o", augmentations='[{"name": "lead_mask", "mask_prob": 0.5}]')
    (args,) = parse_args(argv, (PretrainArguments,), "x")
    trainer = build_trainer(args)
    assert trainer.data_collator.augmentations is not None and trainer.model.config.lead_mask_prob == 0.5
    rows = [trainer.eval_dataset[i] for i in range(len(trainer.eval_dataset))]
    plain = torch.from_numpy(np.stack([np.asarray(r["input_values"], dtype=np.float32) for r in rows]))
    evaluated = torch.cat([batch["input_values"] for batch in trainer.get_eval_dataloader()])
    assert torch.equal(evaluated, plain)
    augmented = trainer.data_collator(rows)["input_values"]
    assert not torch.equal(augmented, plain)
    assert trainer.data_collator.augmentations is not None  # the training collator keeps its chain


def _contrastive_args(out, objective, steps, batch, **extra):
    args = ["--objective", objective, "--output_dir", str(out), "--config_overrides", TINY, "--max_steps", str(steps),
            "--per_device_train_batch_size", str(batch), "--learning_rate", "1e-3", "--warmup_steps", "0",
            "--logging_steps", "1", "--save_steps", "100", "--validation_fraction", "0", "--report_to", "none",
            "--seed", "7", "--dataloader_pin_memory", "false"]
    for key, value in extra.items():
        args += [f"--{key}", str(value)]
    return args


def test_contrastive_losses_fall_on_real_records(iteration1, tmp_path):
    """cmsc straight on records (--data: the windows are built on the first call) and simclr on those windows,
    tiny model, every window in every batch: the losses fall, and the checkpoints load into the classifier."""
    root = iteration1
    out = tmp_path / "cmsc"
    assert cli_main(["pretrain", *_contrastive_args(out, "cmsc", 10, 8, data=root / "data")]) == 0
    assert load_window_dataset(out / "windows").num_rows == 16  # built from the records, as `cluster` does
    results = json.loads((out / "pretrain_results.json").read_text())
    # 8 pairs of adjacent windows: one per 10 s record (4), four from the long record
    assert results["objective"] == "cmsc" and results["train_windows"] == 16 and results["vocab_sizes"] == []
    history = _history(out)
    losses = [e["loss"] for e in history if "loss" in e]
    assert [e["cmsc_loss"] for e in history if "loss" in e] == losses
    # below the first steps' loss, and near CMSC's floor here: the 4 pairs of the long record are each other's
    # positives, so at best each of them gets 1/4 of its row (log 4 = 1.39)
    assert losses[-1] < 0.6 * losses[0] and losses[-1] < 1.5, losses
    model = HuBERTECGForPreTraining.from_pretrained(out)
    assert model.config.contrastive_projection_sizes == [256, 128] and model.config.vocab_sizes == []
    assert model.contrastive_head is not None and len(model.final_proj) == 0
    clf = HuBERTECGForSequenceClassification.from_pretrained(out, num_labels=3)
    torch.testing.assert_close(clf.hubert_ecg.encoder.layers[0].attention.q_proj.weight,
                               model.hubert_ecg.encoder.layers[0].attention.q_proj.weight)
    assert "CMSC" in (out / "README.md").read_text()

    # SimCLR: fresh augmented views at every step make its training losses noisy; its loss on fixed views of the
    # 16 windows (evaluation views are seeded by sample_index, hence the same before and after) falls
    from hubert_ecg.training.pretrain import build_trainer

    out = tmp_path / "simclr"
    overrides = json.dumps({**json.loads(TINY), "contrastive_projection_sizes": [32, 16]})
    (args,) = parse_args(_contrastive_args(out, "simclr", 10, 8, windows_dir=root / "windows",
                                           config_overrides=overrides, per_device_eval_batch_size=16),
                         (PretrainArguments,), "x")
    trainer = build_trainer(args)
    before = trainer.evaluate(trainer.train_dataset)["eval_loss"]
    trainer.train()
    after = trainer.evaluate(trainer.train_dataset)["eval_loss"]
    assert after < before - 0.3, (before, after)
    assert [e["simclr_loss"] for e in trainer.state.log_history if "loss" in e] == [
        e["loss"] for e in trainer.state.log_history if "loss" in e]
    trainer.save_model()
    model = HuBERTECGForPreTraining.from_pretrained(out)
    assert model.config.contrastive_projection_sizes == [32, 16] and model.config.lead_mask_prob == 0.0
    HuBERTECGForSequenceClassification.from_pretrained(out, num_labels=2)


def test_contrastive_arguments(iteration1, tmp_path, capsys):
    root = iteration1
    assert cli_main(["pretrain", *_contrastive_args(tmp_path / "x", "cmsc", 1, 2, windows_dir=root / "windows",
                                                    labels_dirs=root / "labels1")]) == 2
    assert "uses no cluster labels" in capsys.readouterr().err
    assert cli_main(["pretrain", *_contrastive_args(tmp_path / "x", "byol", 1, 2, windows_dir=root / "windows")]) == 2
    assert "--objective must be one of hubert, cmsc, simclr, hubert+cmsc, hubert+simclr" in capsys.readouterr().err
    assert cli_main(["pretrain", *_contrastive_args(tmp_path / "x", "simclr", 1, 2, windows_dir=root / "windows",
                                                    augmentations="none")]) == 2
    assert "needs --augmentations" in capsys.readouterr().err
    assert cli_main(["pretrain", *_contrastive_args(tmp_path / "x", "cmsc", 1, 2, windows_dir=tmp_path / "nowhere")]) == 2
    assert "pass --data" in capsys.readouterr().err
    (args,) = parse_args(["--output_dir", str(tmp_path / "o"), "--objective", "cmsc", "--data", "d"],
                         (PretrainArguments,), "x")
    assert args.windows_dir == str(tmp_path / "o" / "windows")
    example = REPO / "examples" / "pretrain" / "cmsc.yaml"
    (args,) = parse_args([str(example), "--use_cpu", "true"], (PretrainArguments,), "x")
    assert args.objective == "cmsc" and args.data and not args.labels_dirs


@pytest.mark.slow  # ~9 s: two training processes; CI runs the slow tests too
def test_two_process_contrastive_run(iteration1, tmp_path):
    """2 gloo processes (`accelerate launch`): (1) with 3 samples per process, the gathered CMSC / NT-Xent loss of
    every process equals the single-process loss of the 6 samples, and each process's rows get the gradient of
    every process's loss (2 x the single-process gradient; DDP's average then is the single-process one);
    (2) `pretrain --objective hubert+cmsc` under DDP."""
    root = iteration1
    script = tmp_path / "contrastive.py"
    script.write_text(
        "import json, sys, torch\nimport torch.distributed as dist\nfrom accelerate import PartialState\n"
        "from hubert_ecg_cli import main\nfrom hubert_ecg.training.objectives import contrastive_loss\n"
        "state = PartialState(cpu=True)\nrank = state.process_index\nout = {}\n"
        "for kind in ('cmsc', 'simclr'):\n"
        "    torch.manual_seed(0)\n"
        "    first, second = torch.randn(6, 8), torch.randn(6, 8)\n"
        "    groups = torch.tensor([0, 1, 1, 2, 3, 4])\n"
        "    mine = slice(3 * rank, 3 * rank + 3)\n"
        "    local = torch.cat([first[mine], second[mine]]).requires_grad_(True)\n"
        "    loss = contrastive_loss(kind, local, groups[mine], temperature=0.1)\n"
        "    loss.backward()\n"
        "    out[kind] = {'loss': loss.item(), 'grad': local.grad.tolist()}\n"
        f"open({str(tmp_path)!r} + f'/gather-{{rank}}.json', 'w').write(json.dumps(out))\n"
        f"sys.exit(main(['pretrain', *{_pretrain_args(root, tmp_path / 'ddp', steps=3, objective='hubert+cmsc', contrastive_weight=0.5)!r}]))\n"
    )
    _launch_two_processes(script)

    from hubert_ecg.training.objectives import contrastive_loss

    for kind in ("cmsc", "simclr"):
        torch.manual_seed(0)
        first, second = torch.randn(6, 8), torch.randn(6, 8)
        both = torch.cat([first, second]).requires_grad_(True)
        single = contrastive_loss(kind, both, torch.tensor([0, 1, 1, 2, 3, 4]), temperature=0.1, gather=False)
        single.backward()
        for rank in range(2):
            seen = json.loads((tmp_path / f"gather-{rank}.json").read_text())[kind]
            assert seen["loss"] == pytest.approx(single.item(), rel=1e-6)
            rows = [3 * rank + i for i in range(3)] + [6 + 3 * rank + i for i in range(3)]
            torch.testing.assert_close(torch.tensor(seen["grad"]), 2 * both.grad[rows], rtol=1e-5, atol=1e-7)

    results = json.loads((tmp_path / "ddp" / "pretrain_results.json").read_text())
    assert results["objective"] == "hubert+cmsc" and results["processes"] == 2 and results["step"] == 3
    history = [e for e in _history(tmp_path / "ddp") if "loss" in e]
    assert [e["step"] for e in history] == [1, 2, 3]
    for entry in history:  # the parts, averaged over the processes like the loss: hubert + 0.5 * cmsc
        assert entry["loss"] == pytest.approx(entry["hubert_loss"] + 0.5 * entry["cmsc_loss"], rel=1e-5)
    model = HuBERTECGForPreTraining.from_pretrained(tmp_path / "ddp")
    assert model.config.vocab_sizes == [8] and model.contrastive_head is not None
    HuBERTECGForSequenceClassification.from_pretrained(tmp_path / "ddp", num_labels=3)
