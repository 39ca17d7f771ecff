"""Pretraining windows per second: ``hubert-ecg pretrain``'s Trainer path against a bare training loop.

Side by side in one process, small preset (``HuBERTECGConfig.from_preset("small", vocab_sizes=[100])``), on the
same batches of real 5 s windows (PTB-XL records from ``../shared/data``, random cluster labels, K = 100):

* ``bare loop``: ``HuBERTECGForPreTraining`` forward, backward, gradient clipping at 1.0 and an AdamW step on
  batches prepared in memory beforehand (no data loading, no logging);
* ``Trainer``: :func:`hubert_ecg.training.pretrain.build_trainer` + ``trainer.train()`` as ``hubert-ecg pretrain``
  runs it: memory-mapped windows and labels read by the DataLoader, masks drawn by the collator, the Trainer's
  optimizer, scheduler, clipping and bookkeeping (no evaluation, no checkpoint, logging every 1000 steps).

Every round runs both paths once (in alternating order); each run times ``--steps`` optimizer steps after
``--warmup`` untimed ones (from the end of the last warm-up step to the end of the last step). The table gives the
median over rounds and the Trainer's share of the bare loop's throughput (target: at least 90 %), per second of
wall-clock time and per CPU-second of the process (all threads; steadier than wall-clock time on a CPU that other
jobs share).

On a CPU the default is one thread (``--threads``): on a machine shared with other jobs, OpenMP threads that
spin-wait for a descheduled peer made two-thread figures swing by 2x from run to run in both paths (seen here:
0.6-1.4 windows/s at 2 threads against a steady 4.3 at 1). Absolute CPU figures are noisy; compare the ratio.
``--device cuda`` (with ``--bf16``) gives absolute GPU figures.

``--objectives`` compares instead the objectives of ``hubert-ecg pretrain`` (``hubert``, ``cmsc``, ``simclr``,
``hubert+cmsc``, ``hubert+simclr``) through the Trainer, side by side in one process on the same windows, with the
same number of windows through the model per step: ``--batch-size`` windows for ``hubert``, half as many samples
for the contrastive objectives (each gives two segments or views). The table gives the median seconds per optimizer
step and its ratio to ``hubert``; ``--tiny`` uses the tests' tiny architecture (hidden size 32, 2 layers) instead of
the small preset, where the objective's own work (collation, augmentations, loss) weighs most.

Usage: ``python benchmarks/pretrain.py [--steps 6] [--warmup 2] [--runs 3] [--batch-size 8] [--threads N]
[--device cpu|cuda] [--bf16] [--objectives [--tiny]]``
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from transformers import TrainerCallback  # noqa: E402
from transformers.trainer_callback import PrinterCallback  # noqa: E402
from transformers.utils import logging as hf_logging  # noqa: E402

from hubert_ecg import HuBERTECGConfig, HuBERTECGForPreTraining  # noqa: E402
from hubert_ecg.training.pretrain import PretrainArguments, build_trainer  # noqa: E402
from hubert_ecg.training.window_dataset import build_window_dataset  # noqa: E402

SHARED = Path(os.environ.get("HUBERT_ECG_SHARED", REPO.parent / "shared"))
VOCAB = 100


def _now() -> tuple[float, float]:
    """(wall-clock seconds, CPU seconds of this process, all threads)."""
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter(), time.process_time()


def _rates(times: list[tuple[float, float]], options) -> tuple[float, float]:
    """(windows per second, windows per CPU-second) over the timed steps."""
    windows = options.steps * options.batch_size
    start, end = times[options.warmup - 1], times[-1]
    return windows / (end[0] - start[0]), windows / (end[1] - start[1])


class _StepClock(TrainerCallback):
    """Wall and CPU time at the end of every optimizer step."""

    def __init__(self):
        self.times = []

    def on_step_end(self, args, state, control, **kwargs):
        self.times.append(_now())


def make_data(root: Path, windows_needed: int) -> tuple[Path, Path]:
    """A window dataset of real PTB-XL records and random labels (K = 100) in ``hubert-ecg cluster``'s format."""
    records = sorted((SHARED / "data" / "ptbxl" / "records100").rglob("*.hea"))[: (windows_needed + 1) // 2 + 1]
    if not records:
        sys.exit(f"no PTB-XL records under {SHARED / 'data'}; set HUBERT_ECG_SHARED")
    info = build_window_dataset([str(r) for r in records], root / "windows", show_progress=False)
    frames = HuBERTECGConfig().num_frames(6000)
    labels = np.random.default_rng(0).integers(0, VOCAB, size=(info.num_windows, frames)).astype(np.int16)
    (root / "labels").mkdir()
    np.save(root / "labels" / "labels.npy", labels)
    (root / "labels" / "labels.json").write_text(json.dumps(
        {"num_windows": info.num_windows, "num_frames": frames, "num_clusters": VOCAB, "features": "random"}))
    return root / "windows", root / "labels"


TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, conv_dim=[32] * 5,
            classifier_proj_size=16, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4, layerdrop=0.0)
OBJECTIVES = ("hubert", "cmsc", "simclr", "hubert+cmsc", "hubert+simclr")


def trainer_args(root: Path, windows: Path, labels: Path, steps: int, options, objective: str = "hubert",
                 batch_size: int | None = None) -> PretrainArguments:
    hubert = objective.startswith("hubert")
    return PretrainArguments(
        output_dir=str(root / "out"), windows_dir=str(windows), labels_dirs=[str(labels)] if hubert else [],
        objective=objective, preset="small", config_overrides=json.dumps(TINY) if options.tiny else None,
        validation_fraction=0.0, max_steps=steps, per_device_train_batch_size=batch_size or options.batch_size,
        logging_steps=1000, save_strategy="no", report_to="none", disable_tqdm=True, dataloader_pin_memory=False,
        resume_from_checkpoint="none", use_cpu=options.device == "cpu", bf16=options.bf16, seed=0,
    )


def run_objective(root, windows, labels, objective: str, options) -> float:
    """Median seconds per optimizer step of ``trainer.train()`` with ``objective`` over the timed steps."""
    samples = options.batch_size if objective == "hubert" else options.batch_size // 2
    trainer = build_trainer(trainer_args(root, windows, labels, options.warmup + options.steps, options, objective,
                                         samples))
    clock = _StepClock()
    trainer.add_callback(clock)
    trainer.remove_callback(PrinterCallback)
    trainer.train()
    walls = [t[0] for t in clock.times[options.warmup - 1:]]
    return statistics.median(np.diff(walls))


def compare_objectives(root, windows, labels, options) -> None:
    """Print the objectives' seconds per step side by side (see the module docstring)."""
    results = {name: [] for name in OBJECTIVES}
    for run in range(options.runs):
        order = OBJECTIVES[run % len(OBJECTIVES):] + OBJECTIVES[: run % len(OBJECTIVES)]  # rotate the order
        for name in order:
            results[name].append(run_objective(root, windows, labels, name, options))
    device = torch.cuda.get_device_name() if options.device == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    arch = "tiny (hidden 32, 2 layers)" if options.tiny else "small preset"
    print(f"\npretraining objectives, {arch}, {options.batch_size} windows through the model per step, "
          f"{'bf16' if options.bf16 else 'fp32'}, {device}; median of {options.runs} runs of {options.steps} steps")
    print("| objective | samples per step | s per step | of hubert | windows/s | s per step of each run |")
    print("|---|---|---|---|---|---|")
    base = statistics.median(results["hubert"])
    for name, values in results.items():
        step = statistics.median(values)
        samples = options.batch_size if name == "hubert" else options.batch_size // 2
        runs = ", ".join(f"{v:.3f}" for v in values)
        print(f"| {name} | {samples} | {step:.3f} | {step / base:.2f}x | {options.batch_size / step:.1f} | {runs} |")


def run_trainer(root, windows, labels, options) -> tuple[float, float]:
    """Windows per second and per CPU-second of ``trainer.train()`` over the timed steps."""
    trainer = build_trainer(trainer_args(root, windows, labels, options.warmup + options.steps, options))
    clock = _StepClock()
    trainer.add_callback(clock)
    trainer.remove_callback(PrinterCallback)  # no log lines in the table
    trainer.train()
    return _rates(clock.times, options)


def bare_batches(root, windows, labels, options) -> list[dict]:
    """The batches the Trainer sees, collated once and kept in memory (on the device)."""
    trainer = build_trainer(trainer_args(root, windows, labels, options.warmup + options.steps, options))
    batches = []
    for batch in trainer.get_train_dataloader():
        batches.append({k: v.to(options.device) for k, v in batch.items()})
        if len(batches) == options.warmup + options.steps:
            break
    return batches


def run_bare(batches, options) -> tuple[float, float]:
    """Windows per second and per CPU-second of forward, backward, clipping and AdamW on in-memory batches."""
    torch.manual_seed(0)
    model = HuBERTECGForPreTraining(HuBERTECGConfig.from_preset("small", vocab_sizes=[VOCAB])).to(options.device)
    model.train()
    # the Trainer's default optimizer (adamw_torch_fused with torch >= 2.8): the same kernel on both sides
    fused = {"fused": True} if options.fused else {}
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-5, betas=(0.9, 0.98), eps=1e-9, weight_decay=0.01, **fused)
    autocast = torch.autocast(options.device, dtype=torch.bfloat16, enabled=options.bf16)
    times = []
    for batch in batches:
        with autocast:
            loss = model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        times.append(_now())
    return _rates(times, options)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=6, help="timed optimizer steps per run")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    parser.add_argument("--runs", type=int, default=3, help="rounds (each runs both paths)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: 1 on a CPU)")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--bf16", action="store_true", help="bf16 mixed precision in both paths")
    parser.add_argument("--objectives", action="store_true", help="compare the pretraining objectives instead")
    parser.add_argument("--tiny", action="store_true", help="the tests' tiny architecture instead of the small one")
    options = parser.parse_args()
    if options.warmup < 1:
        parser.error("--warmup must be at least 1")
    if options.tiny and not options.objectives:
        parser.error("--tiny goes with --objectives (the bare loop builds the small preset)")
    if options.objectives and (options.batch_size < 2 or options.batch_size % 2):
        parser.error("--objectives needs an even --batch-size (contrastive samples are pairs of windows)")
    if options.threads or options.device == "cpu":
        torch.set_num_threads(options.threads or 1)
    hf_logging.set_verbosity_error()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        windows, labels = make_data(root, options.batch_size * (options.warmup + options.steps))
        if options.objectives:
            compare_objectives(root, windows, labels, options)
            return
        batches = bare_batches(root, windows, labels, options)
        options.fused = "fused" in str(trainer_args(root, windows, labels, 1, options).optim)
        results = {"bare loop": [], "Trainer": []}
        for run in range(options.runs):
            order = ["bare loop", "Trainer"] if run % 2 == 0 else ["Trainer", "bare loop"]
            for name in order:
                if name == "bare loop":
                    results[name].append(run_bare(batches, options))
                else:
                    results[name].append(run_trainer(root, windows, labels, options))

    bare = [statistics.median(v[i] for v in results["bare loop"]) for i in (0, 1)]
    device = torch.cuda.get_device_name() if options.device == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"\npretraining throughput, small preset (vocab 100), batch {options.batch_size}, "
          f"{'bf16' if options.bf16 else 'fp32'}, {device}; median of {options.runs} runs of {options.steps} steps")
    print("| path | windows/s | of the bare loop | windows per CPU-second | of the bare loop | windows/s of each run |")
    print("|---|---|---|---|---|---|")
    for name, values in results.items():
        wall, cpu = (statistics.median(v[i] for v in values) for i in (0, 1))
        runs = ", ".join(f"{v[0]:.2f}" for v in values)
        share = f"{100 * wall / bare[0]:.0f} % | {cpu:.2f} | {100 * cpu / bare[1]:.0f} %"
        print(f"| {name} | {wall:.2f} | {share} | {runs} |")


if __name__ == "__main__":
    main()
