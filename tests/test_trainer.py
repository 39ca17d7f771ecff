"""hubert_ecg.training.trainer: the one Trainer of fine-tuning and pretraining, its sampler and its checkpoints.

The epoch reaches the data only through the sampler's indices (DataLoader workers, persistent or not, see it); the
checkpoint to resume from is the last complete one, also after a kill -9 while a checkpoint was being written."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from hubert_ecg.training.trainer import (
    EpochShuffleSampler,
    checkpoints,
    is_complete_checkpoint,
    last_checkpoint,
    resolve_checkpoint,
)

REPO = Path(__file__).resolve().parents[1]
TINY = json.dumps({"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64,
                   "conv_dim": [32] * 5, "num_conv_pos_embeddings": 16, "num_conv_pos_embedding_groups": 4,
                   "classifier_proj_size": 32})
NOISE = '[{"name": "gaussian_noise", "snr_db": [20, 30], "p": 0.5}]'


def _checkpoint(folder: Path, step: int, state: str | None = None, weights: bool = True) -> Path:
    path = folder / f"checkpoint-{step}"
    path.mkdir(parents=True)
    if weights:
        (path / "model.safetensors").write_bytes(b"weights")
    if state is not None:
        (path / "trainer_state.json").write_text(state)
    return path


def test_the_one_resume_rule_takes_the_last_complete_checkpoint(tmp_path):
    out = tmp_path / "run"
    assert resolve_checkpoint("auto", out) is None and checkpoints(out) == []  # nothing yet: a fresh run
    _checkpoint(out, 2, json.dumps({"global_step": 2}))
    _checkpoint(out, 4, json.dumps({"global_step": 4}))
    _checkpoint(out, 6, None)  # killed before trainer_state.json
    _checkpoint(out, 8, '{"global_st')  # killed while writing it
    _checkpoint(out, 10, json.dumps({"global_step": 10}), weights=False)  # weights missing
    _checkpoint(out, 12, json.dumps({"global_step": 2}))  # a state of another step
    (out / "checkpoint-x").mkdir()
    assert [p.name for p in checkpoints(out)] == [f"checkpoint-{n}" for n in (2, 4, 6, 8, 10, 12)]
    assert [is_complete_checkpoint(p) for p in checkpoints(out)] == [True, True, False, False, False, False]
    assert last_checkpoint(out) == str(out / "checkpoint-4")
    assert resolve_checkpoint("auto", out) == str(out / "checkpoint-4")
    assert resolve_checkpoint(str(out / "checkpoint-2"), out) == str(out / "checkpoint-2")
    for fresh in (None, "none", "no", "false"):
        assert resolve_checkpoint(fresh, out) is None
    with pytest.raises(ValueError, match="not a complete checkpoint"):
        resolve_checkpoint(str(out / "checkpoint-8"), out)
    # pretraining's public name is the same rule
    from hubert_ecg.training.pretrain import last_checkpoint as pretraining_last

    assert pretraining_last is last_checkpoint


def _training_records(data_dir, n=6):
    """The first ``n`` PTB-XL records as fine-tuning's training dataset: random windows and noise, seed 5."""
    import numpy as np

    from hubert_ecg.processing import HuBERTECGFeatureExtractor
    from hubert_ecg.training import data
    from hubert_ecg.training.collators import parse_augmentations

    records = data.read_ptbxl(data_dir / "ptbxl")
    dataset = data.build_dataset(records.select(np.arange(len(records)) < n))
    transform = data.ECGTransform(HuBERTECGFeatureExtractor(), window="random", seed=5,
                                  augmentations=parse_augmentations(NOISE))
    return data.EpochRecords(dataset, transform)


def test_the_epoch_reaches_dataloader_workers_through_the_sampler(data_dir):
    """Two epochs through a DataLoader: the windows (and augmentations) of every record are those of (seed, epoch,
    record) with 0 workers, 2 workers and 2 persistent workers; the sampler's set_epoch is all that changes them."""
    dataset = _training_records(data_dir)
    n = len(dataset)

    def windows(**loader):
        sampler = EpochShuffleSampler(n, seed=3)
        batches = torch.utils.data.DataLoader(dataset, batch_size=4, sampler=sampler, **loader)
        seen = {}
        for epoch in range(2):
            sampler.set_epoch(epoch)
            rows = [index % n for index in sampler]  # the records of this epoch, in order
            values = torch.cat([batch["input_values"] for batch in batches])
            seen.update({(epoch, row): window for row, window in zip(rows, values)})
        return seen

    plain = windows(num_workers=0)
    assert sorted(plain) == [(e, r) for e in range(2) for r in range(n)]
    assert not any(torch.equal(plain[0, r], plain[1, r]) for r in range(n))  # a new window every epoch
    assert torch.equal(dataset[n + 2]["input_values"], plain[1, 2])  # item n + 2: epoch 1, record 2
    for loader in (dict(num_workers=2), dict(num_workers=2, persistent_workers=True)):
        other = windows(**loader)
        assert all(torch.equal(other[key], plain[key]) for key in plain), loader


def test_no_pinned_memory_on_the_cpu(data_dir, tmp_path):
    """On the CPU the Trainer's DataLoaders do not pin memory (torch would warn that it is unused on every one)."""
    import warnings

    from transformers import TrainingArguments

    from hubert_ecg import HuBERTECGConfig, HuBERTECGForSequenceClassification
    from hubert_ecg.training.trainer import HuBERTECGTrainer

    dataset = _training_records(data_dir)
    model = HuBERTECGForSequenceClassification(HuBERTECGConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                                                intermediate_size=64, num_labels=5))
    args = TrainingArguments(output_dir=str(tmp_path), per_device_train_batch_size=2, report_to=[])
    if args.device.type != "cpu":
        pytest.skip("an accelerator: pinned memory is kept")
    assert args.dataloader_pin_memory  # transformers' default without --use_cpu
    trainer = HuBERTECGTrainer(model=model, args=args, train_dataset=dataset, eval_dataset=dataset)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the warning torch gives for pin_memory without an accelerator
        next(iter(trainer.get_train_dataloader()))
        next(iter(trainer.get_eval_dataloader()))
    assert not trainer.args.dataloader_pin_memory


def _finetune_argv(data_dir, out, *extra):
    return ["--ptbxl_dir", str(data_dir / "ptbxl"), "--preset", "small", "--config_overrides", TINY,
            "--max_train_records", "12", "--max_eval_records", "8", "--output_dir", str(out),
            "--per_device_train_batch_size", "4", "--use_cpu", "true", "--report_to", "none", "--disable_tqdm", "true",
            "--logging_strategy", "steps", "--logging_steps", "1", "--learning_rate", "0.003", "--seed", "3",
            "--augmentations", NOISE, "--early_stopping_patience", "0", *extra]


def _losses(out):
    """``{step: loss}`` of the run's last checkpoint (its log history)."""
    last = checkpoints(out)[-1]
    history = json.loads((last / "trainer_state.json").read_text())["log_history"]
    return {e["step"]: e["loss"] for e in history if "loss" in e}


@pytest.mark.slow  # ~30 s: four short fine-tuning runs
def test_finetuning_with_dataloader_workers_gives_the_losses_without(tmp_path, data_dir):
    """Two epochs of fine-tuning with random windows and augmentations: 2 DataLoader workers give the losses of 0
    workers, and so do 2 persistent workers (the model's own randomness off: a persistent DataLoader draws its
    workers' base seed from torch's generator once, not every epoch, which shifts dropout)."""
    epochs = ["--num_train_epochs", "2", "--eval_strategy", "no", "--load_best_model_at_end", "false"]
    runs = {}

    def run(name, *extra):
        """In a process of its own (its DataLoader workers forked from it, not from this test process)."""
        env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(REPO))
        done = subprocess.run([sys.executable, "-m", "hubert_ecg_cli", "finetune",
                               *_finetune_argv(data_dir, tmp_path / name, *epochs, *extra)],
                              env=env, cwd=REPO, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
        runs[name] = _losses(tmp_path / name)

    for name, extra in (("0", []), ("2", ["--dataloader_num_workers", "2"])):
        run(name, *extra)
    assert sorted(runs["0"]) == list(range(1, 7))
    assert runs["2"] == runs["0"]
    still = ["--hidden_dropout", "0", "--attention_dropout", "0", "--activation_dropout", "0", "--final_dropout", "0",
             "--layerdrop", "0"]
    for name, extra in (("0still", []),
                        ("2persistent", ["--dataloader_num_workers", "2", "--dataloader_persistent_workers", "true"])):
        run(name, *still, *extra)
    assert runs["2persistent"] == runs["0still"]


# a fine-tuning run that stops, once checkpoint-4's weights and optimizer are written but not its random states and
# trainer_state.json, until it is killed
_KILLED_WHILE_SAVING = """
import sys, time
from pathlib import Path
import transformers
from hubert_ecg_cli import finetune

original = transformers.Trainer._save_rng_state

def stall(self, output_dir):
    if Path(output_dir).name == "checkpoint-4":
        (Path(output_dir).parent / "writing-checkpoint-4").touch()
        time.sleep(600)
    return original(self, output_dir)

transformers.Trainer._save_rng_state = stall
sys.exit(finetune.main(sys.argv[1:]))
"""


@pytest.mark.slow  # ~25 s: an uninterrupted run, a killed one and its resumption
def test_finetuning_killed_while_writing_a_checkpoint_resumes_from_the_last_complete_one(tmp_path, data_dir):
    from hubert_ecg_cli import finetune

    steps = ["--max_steps", "8", "--eval_strategy", "steps", "--eval_steps", "2", "--save_strategy", "steps",
             "--save_steps", "2", "--resume_from_checkpoint", "auto"]
    assert finetune.main(_finetune_argv(data_dir, tmp_path / "ref", *steps)) == 0
    reference = _losses(tmp_path / "ref")
    assert sorted(reference) == list(range(1, 9))

    out = tmp_path / "killed"
    argv = _finetune_argv(data_dir, out, *steps)
    script = tmp_path / "stall.py"
    script.write_text(_KILLED_WHILE_SAVING)
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    proc = subprocess.Popen([sys.executable, str(script), *argv], env=env, cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not (out / "writing-checkpoint-4").exists():
        assert time.time() < deadline and proc.poll() is None
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert (out / "checkpoint-4" / "model.safetensors").is_file()  # half written
    assert not is_complete_checkpoint(out / "checkpoint-4")
    assert resolve_checkpoint("auto", out) == str(out / "checkpoint-2")

    assert finetune.main(argv) == 0
    resumed = _losses(out)
    assert sorted(resumed) == list(range(1, 9))
    for step, loss in reference.items():
        assert resumed[step] == pytest.approx(loss, rel=1e-6, abs=1e-6), step
