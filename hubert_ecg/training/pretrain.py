"""``hubert-ecg pretrain``: HuBERT masked-prediction pretraining of HuBERT-ECG with accelerate.

One HuBERT iteration (Hsu et al. 2021; HuBERT-ECG, medRxiv doi 10.1101/2024.11.14.24317328): the model sees
5 s windows (``input_values`` (batch, 6000) from :mod:`hubert_ecg.training.windows`) with about a third of their
93 frames masked, and predicts the k-means cluster id of every masked frame (labels from ``hubert-ecg cluster``;
one codebook per ``--labels_dirs`` entry). The first iteration starts from a fresh model of a preset
architecture; later iterations continue from the previous iteration's backbone (``--model_name_or_path``) with
new codebook heads.

The loop runs on accelerate, so the same command runs on one CPU, ``accelerate launch --num_processes N`` GPUs,
or several nodes (DDP; gloo on CPU). Optimisation follows the paper: AdamW, lr 5e-5, betas (0.9, 0.98), eps 1e-9,
weight decay 0.01 (not on biases and norms), 8 % linear warmup then linear decay to 0; bf16 / fp16 mixed
precision and gradient accumulation are options. The per-device batch size times processes times accumulation
steps is the effective batch.

Reproducibility and resumption: the data order is a seeded permutation per epoch split into global batches (rank
``r`` takes the ``r``-th slice), and the time mask and dropout of every micro-batch are seeded from
``(seed, micro-batch number, rank)``. ``accelerator.save_state`` writes ``checkpoints/checkpoint-{step}`` every
``--save_steps``; rerunning the same command (``--resume_from_checkpoint auto``, the default) continues from the
last complete checkpoint with exactly the batches, masks and hence losses of an uninterrupted run.

Outputs in ``--output_dir``: the final ``HuBERTECGForPreTraining`` (``model.safetensors``, ``config.json``, the
model card ``README.md``) and ``preprocessor_config.json``; ``log_history.jsonl`` (one JSON object per logged
step: ``loss``, ``learning_rate``, and ``eval_loss`` / ``eval_masked_accuracy`` at evaluations);
``pretrain_results.json``; TensorBoard event files under ``runs/`` when tensorboard is installed.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from transformers.utils import logging

from ..hub import upload_folder
from ..inference import keep_positional_conv_accurate
from .arguments import run_command
from .clustering import load_labels
from .windows import distributed_on_cpu, load_window_dataset, shard_range

logger = logging.get_logger(__name__)

__all__ = ["PretrainArguments", "WindowLabelDataset", "main", "run_pretraining", "split_by_record"]

CHECKPOINTS = "checkpoints"
PROGRESS_FILE = "progress.json"
LOG_FILE = "log_history.jsonl"
RESULTS_FILE = "pretrain_results.json"
CRASH_EXIT_CODE = 75


@dataclass
class PretrainArguments:
    """Arguments of ``hubert-ecg pretrain`` (command line, or a YAML / JSON file given as the only argument)."""

    output_dir: str = field(metadata={"help": "Where checkpoints, logs and the final model are written."})
    windows_dir: str = field(metadata={"help": "Window dataset (hubert-ecg cluster / build_window_dataset)."})
    labels_dirs: list[str] = field(
        metadata={"help": "One or more `hubert-ecg cluster` output folders: one codebook each, rows = windows."}
    )
    model_name_or_path: str | None = field(
        default=None,
        metadata={"help": "Previous iteration's model: its backbone is continued with new codebook heads."},
    )
    preset: str = field(default="small", metadata={"help": "Architecture of a fresh model: small, base or large."})
    config_overrides: str | None = field(
        default=None,
        metadata={"help": 'JSON of config fields, e.g. \'{"hidden_size": 256, "num_hidden_layers": 4}\'.'},
    )
    validation_fraction: float = field(
        default=0.05, metadata={"help": "Fraction of records (all their windows) held out for validation."}
    )
    per_device_train_batch_size: int = field(default=8, metadata={"help": "Windows per process per micro-batch."})
    per_device_eval_batch_size: int = field(default=16)
    gradient_accumulation_steps: int = field(default=1)
    learning_rate: float = field(default=5e-5, metadata={"help": "Peak learning rate (5e-5 in the paper)."})
    adam_beta1: float = 0.9
    adam_beta2: float = 0.98
    adam_epsilon: float = 1e-9
    weight_decay: float = 0.01
    warmup_ratio: float = field(default=0.08, metadata={"help": "Fraction of steps of linear warmup (8 %)."})
    max_grad_norm: float = field(default=1.0, metadata={"help": "Gradient clipping (0 to disable)."})
    max_steps: int = field(default=-1, metadata={"help": "Optimizer steps; overrides num_train_epochs when > 0."})
    num_train_epochs: float = field(default=1.0)
    mixed_precision: str = field(default="no", metadata={"help": "'no', 'bf16' or 'fp16'."})
    freeze_feature_encoder: bool = field(default=False)
    logging_steps: int = field(default=10)
    eval_steps: int = field(default=0, metadata={"help": "Validate every N steps (0: only at the end)."})
    max_eval_batches: int | None = field(default=None, metadata={"help": "Cap on validation batches per process."})
    save_steps: int = field(default=500, metadata={"help": "accelerator.save_state every N steps (0: never)."})
    save_total_limit: int | None = field(default=2, metadata={"help": "Checkpoints kept (oldest deleted)."})
    resume_from_checkpoint: str | None = field(
        default="auto",
        metadata={"help": "'auto' (latest checkpoint in output_dir if any), a checkpoint folder, or 'none'."},
    )
    seed: int = field(default=42)
    dataloader_num_workers: int = field(default=0)
    report_to: str = field(default="auto", metadata={"help": "'tensorboard', 'none' or 'auto' (if installed)."})
    push_to_hub: bool = field(default=False)
    hub_model_id: str | None = field(default=None)
    hub_private_repo: bool | None = field(default=None)
    stop_after_step: int | None = field(
        default=None,
        metadata={"help": "Testing: exit abruptly (code 75, like a crash) right after this step, without saving."},
    )

    def __post_init__(self):
        if isinstance(self.labels_dirs, str):
            self.labels_dirs = [self.labels_dirs]
        if not self.labels_dirs:
            raise ValueError("--labels_dirs needs at least one `hubert-ecg cluster` output folder")
        if self.mixed_precision not in ("no", "bf16", "fp16"):
            raise ValueError(f"--mixed_precision must be 'no', 'bf16' or 'fp16', got {self.mixed_precision!r}")
        if self.report_to not in ("auto", "tensorboard", "none"):
            raise ValueError(f"--report_to must be 'auto', 'tensorboard' or 'none', got {self.report_to!r}")
        if not 0.0 <= self.validation_fraction < 1.0:
            raise ValueError(f"--validation_fraction must lie in [0, 1), got {self.validation_fraction}")
        if not 0.0 <= self.warmup_ratio <= 1.0:
            raise ValueError(f"--warmup_ratio must lie in [0, 1], got {self.warmup_ratio}")
        for name in ("per_device_train_batch_size", "per_device_eval_batch_size", "gradient_accumulation_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name} must be at least 1, got {getattr(self, name)}")
        if isinstance(self.config_overrides, dict):
            self.config_overrides = json.dumps(self.config_overrides)
        if self.push_to_hub and not self.hub_model_id:
            raise ValueError("--push_to_hub needs --hub_model_id")

    def overrides(self) -> dict:
        """``config_overrides`` as a dict. Raises ValueError for invalid JSON."""
        if not self.config_overrides:
            return {}
        try:
            value = json.loads(self.config_overrides)
        except json.JSONDecodeError as error:
            raise ValueError(f"--config_overrides is not valid JSON: {error}") from None
        if not isinstance(value, dict):
            raise ValueError(f"--config_overrides must be a JSON object, got {self.config_overrides!r}")
        return value


def split_by_record(record_ids: Sequence[str], fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic train / validation split that keeps all windows of a record together.

    A record is held out when the first 8 hex digits of the MD5 of its id, over 2**32, fall below ``fraction``:
    the split does not depend on the order or number of records (adding data keeps old assignments). When
    ``fraction > 0`` and no record falls below it (a small dataset), the record with the smallest hash is held out,
    so that a validation set asked for is never empty (unless there is only one record).

    Returns:
        (train row indices, validation row indices), int64.
    """
    unique, inverse = np.unique(np.asarray(record_ids, dtype=object).astype(str), return_inverse=True)
    position = np.array([int(hashlib.md5(r.encode()).hexdigest()[:8], 16) / 2**32 for r in unique])
    held_records = position < fraction
    if fraction > 0 and len(unique) > 1 and not held_records.any():
        held_records[np.argmin(position)] = True
    held = held_records[inverse.reshape(-1)] if len(record_ids) else np.zeros(0, dtype=bool)
    return np.flatnonzero(~held), np.flatnonzero(held)


class WindowLabelDataset(torch.utils.data.Dataset):
    """Rows of a window dataset with their cluster labels, fetched a batch at a time (memory-mapped).

    Item / batch: ``input_values`` float32 (batch, 6000) and ``labels`` int64 (batch, num_codebooks, frames).
    """

    def __init__(self, dataset, labels: Sequence[np.ndarray]):
        self.dataset = dataset.with_format("numpy", columns=["input_values"])
        self.labels = list(labels)

    def __len__(self):
        return len(self.dataset)

    def __getitems__(self, indices):
        indices = list(indices)
        values = np.asarray(self.dataset[indices]["input_values"], dtype=np.float32)
        labels = np.stack([np.asarray(lab[indices], dtype=np.int64) for lab in self.labels], axis=1)
        return {"input_values": torch.from_numpy(values), "labels": torch.from_numpy(labels)}

    def __getitem__(self, index):
        batch = self.__getitems__([index])
        return {key: value[0] for key, value in batch.items()}


def _collate(batch):
    return batch  # __getitems__ already returns the batch


def _micro_seed(seed: int, micro: int, rank: int) -> int:
    return (seed * 1_000_003 + micro * 1009 + rank * 7919) % (2**32)


def _build_model(args: PretrainArguments, vocab_sizes: list[int]):
    from ..configuration import HuBERTECGConfig
    from ..modeling import HuBERTECGForPreTraining

    overrides = args.overrides()
    if args.model_name_or_path:
        previous = HuBERTECGForPreTraining.from_pretrained(args.model_name_or_path)
        config_dict = {**previous.config.to_dict(), **overrides, "vocab_sizes": vocab_sizes,
                       "ensemble_length": len(vocab_sizes)}
        config = HuBERTECGConfig.from_dict(config_dict)
        model = HuBERTECGForPreTraining(config)
        model.hubert_ecg.load_state_dict(previous.hubert_ecg.state_dict())
        logger.info(f"continuing the backbone of {args.model_name_or_path} with new codebooks {vocab_sizes}")
        return model
    config = HuBERTECGConfig.from_preset(args.preset, **{**overrides, "vocab_sizes": vocab_sizes,
                                                        "ensemble_length": len(vocab_sizes)})
    return HuBERTECGForPreTraining(config)


def _checkpoints(output_dir: Path) -> list[tuple[int, Path]]:
    """Complete checkpoints (with progress.json), sorted by step."""
    found = []
    for path in (output_dir / CHECKPOINTS).glob("checkpoint-*"):
        if (path / PROGRESS_FILE).exists():
            found.append((json.loads((path / PROGRESS_FILE).read_text())["step"], path))
    return sorted(found)


def _tensorboard_available() -> bool:
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        return False
    return True


@torch.no_grad()
def _evaluate(accelerator, model, data: WindowLabelDataset, rows: np.ndarray, args: PretrainArguments) -> dict:
    """Masked-prediction loss and accuracy on ``rows`` (each process a contiguous part), reduced over processes.

    Every validation batch gets a fixed mask seeded from its number, so evaluations are comparable across steps.
    """
    model.eval()
    rank, world = accelerator.process_index, accelerator.num_processes
    begin, end = shard_range(len(rows), world, rank)
    num_codebooks = len(data.labels)
    # per codebook: masked CE sum, masked count, masked correct, unmasked correct, unmasked count
    sums = torch.zeros(num_codebooks, 5, dtype=torch.float64, device=accelerator.device)
    batch_size = args.per_device_eval_batch_size
    for number, offset in enumerate(range(begin, end, batch_size)):
        if args.max_eval_batches is not None and number >= args.max_eval_batches:
            break
        batch = data.__getitems__(rows[offset : min(offset + batch_size, end)])
        values = batch["input_values"].to(accelerator.device)
        labels = batch["labels"].to(accelerator.device)
        np.random.seed(_micro_seed(args.seed + 1, offset, 0))
        mask = model.compute_mask(values.shape[0], labels.shape[-1])
        with accelerator.autocast():
            out = model(values, mask_time_indices=mask)
        for i, logits in enumerate(out.logits):
            logits = logits.float()
            target = labels[:, i]
            ce = F.cross_entropy(logits.transpose(1, 2), target, reduction="none")
            correct = logits.argmax(-1) == target
            sums[i, 0] += (ce * mask).sum()
            sums[i, 1] += mask.sum()
            sums[i, 2] += (correct & mask).sum()
            sums[i, 3] += (correct & ~mask).sum()
            sums[i, 4] += (~mask).sum()
    sums = accelerator.reduce(sums, reduction="sum")
    model.train()
    masked_count = sums[:, 1].clamp(min=1)
    return {
        "eval_loss": float((sums[:, 0] / masked_count).sum()),
        "eval_masked_accuracy": float((sums[:, 2] / masked_count).mean()),
        "eval_unmasked_accuracy": float((sums[:, 3] / sums[:, 4].clamp(min=1)).mean()),
        "eval_frames": int(sums[0, 1] + sums[0, 4]),
    }


def run_pretraining(args: PretrainArguments) -> dict:
    """Run one HuBERT pretraining iteration in this process (one of ``accelerate launch``'s, or alone).

    Returns:
        the final results (``step``, ``train_loss``, ``eval_loss``, ``eval_masked_accuracy``, ...), on every process.

    Raises:
        ValueError: labels that do not match the windows (row count or frames per window), too little data for one
            step, bad arguments.
        ImportError: ``--report_to tensorboard`` without tensorboard.
    """
    from accelerate import Accelerator
    from accelerate.utils import DistributedDataParallelKwargs, set_seed
    from tqdm.auto import tqdm
    from transformers import get_linear_schedule_with_warmup

    from ..processing import HuBERTECGFeatureExtractor

    output_dir = Path(args.output_dir)
    tracker = None
    if args.report_to == "tensorboard" and not _tensorboard_available():
        raise ImportError("--report_to tensorboard needs tensorboard: pip install 'hubert-ecg[tensorboard]'")
    if args.report_to != "none" and _tensorboard_available():
        tracker = "tensorboard"

    # data
    dataset = load_window_dataset(args.windows_dir)
    labels, vocab_sizes = [], []
    for directory in args.labels_dirs:
        array, info = load_labels(directory)
        if array.shape[0] != len(dataset):
            raise ValueError(
                f"labels in {directory} have {array.shape[0]} rows but {args.windows_dir} has {len(dataset)} windows; "
                "cluster the same window dataset"
            )
        labels.append(array)
        vocab_sizes.append(int(info["num_clusters"]))

    set_seed(args.seed)
    model = _build_model(args, vocab_sizes)
    input_length = len(dataset[0]["input_values"])
    frames = int(model._get_feat_extract_output_lengths(input_length))
    if any(lab.shape[1] != frames for lab in labels):
        raise ValueError(
            f"labels have {[lab.shape[1] for lab in labels]} frames per window but the model gives {frames} for "
            f"{input_length} samples; the feature encoder must keep the released strides (64 samples per frame)"
        )
    if args.freeze_feature_encoder:
        model.freeze_feature_encoder()
    ddp = DistributedDataParallelKwargs(find_unused_parameters=model.config.layerdrop > 0)
    accelerator = Accelerator(
        mixed_precision=args.mixed_precision, cpu=distributed_on_cpu(), log_with=tracker, project_dir=str(output_dir), kwargs_handlers=[ddp]
    )
    if accelerator.is_main_process:
        logging.set_verbosity_info()
    rank, world = accelerator.process_index, accelerator.num_processes
    if args.mixed_precision in ("bf16", "fp16"):  # a wrong low-precision grouped-conv kernel: that module in fp32
        keep_positional_conv_accurate(model, torch.bfloat16 if args.mixed_precision == "bf16" else torch.float16,
                                      accelerator.device)

    record_ids = dataset.data.column("record_id").to_pylist()
    train_rows, val_rows = split_by_record(record_ids, args.validation_fraction)
    data = WindowLabelDataset(dataset, labels)
    micro_global = args.per_device_train_batch_size * world
    micro_per_epoch = (len(train_rows) // micro_global) // args.gradient_accumulation_steps * args.gradient_accumulation_steps
    steps_per_epoch = micro_per_epoch // args.gradient_accumulation_steps
    if steps_per_epoch < 1:
        raise ValueError(
            f"{len(train_rows)} training windows are fewer than one optimizer step needs "
            f"({micro_global * args.gradient_accumulation_steps}); lower the batch size or add data"
        )
    total_steps = args.max_steps if args.max_steps > 0 else math.ceil(args.num_train_epochs * steps_per_epoch)
    warmup_steps = math.ceil(args.warmup_ratio * total_steps)

    no_decay = [p for n, p in model.named_parameters() if p.requires_grad and (n.endswith("bias") or "norm" in n.lower())]
    decay = [p for n, p in model.named_parameters() if p.requires_grad and not (n.endswith("bias") or "norm" in n.lower())]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": args.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=args.learning_rate, betas=(args.adam_beta1, args.adam_beta2), eps=args.adam_epsilon,
    )
    scheduler = get_linear_schedule_with_warmup(optimizer, warmup_steps, total_steps)
    model, optimizer = accelerator.prepare(model, optimizer)
    accelerator.register_for_checkpointing(scheduler)  # stepped by hand once per optimizer step
    unwrapped = accelerator.unwrap_model(model)

    # resume
    global_step = 0
    if accelerator.is_main_process:
        output_dir.mkdir(parents=True, exist_ok=True)
    accelerator.wait_for_everyone()
    resume = args.resume_from_checkpoint
    checkpoint = None
    if resume and resume.lower() not in ("none", "no", "false"):
        if resume == "auto":
            found = _checkpoints(output_dir)
            checkpoint = found[-1][1] if found else None
        else:
            checkpoint = Path(resume)
            if not (checkpoint / PROGRESS_FILE).exists():
                raise ValueError(f"--resume_from_checkpoint {resume} is not a complete checkpoint folder")
    log_path = output_dir / LOG_FILE
    if checkpoint is not None:
        accelerator.load_state(str(checkpoint))
        global_step = json.loads((checkpoint / PROGRESS_FILE).read_text())["step"]
        logger.info(f"resumed from {checkpoint} at step {global_step}")
    if accelerator.is_main_process:
        # drop log lines written after the checkpoint by an interrupted run
        kept = []
        if log_path.exists() and checkpoint is not None:
            kept = [line for line in log_path.read_text().splitlines()
                    if line.strip() and json.loads(line).get("step", 0) <= global_step]
        log_path.write_text("".join(line + "\n" for line in kept))
    accelerator.wait_for_everyone()
    if tracker:
        accelerator.init_trackers("runs", config={k: v for k, v in asdict(args).items() if isinstance(v, (int, float, str, bool))})

    def log(entry: dict):
        if accelerator.is_main_process:
            with open(log_path, "a") as handle:
                handle.write(json.dumps(entry) + "\n")
        if tracker:
            accelerator.log({k: v for k, v in entry.items() if k != "step"}, step=entry["step"])

    logger.info(
        f"pretraining: {len(train_rows)} train / {len(val_rows)} validation windows, {world} process(es), "
        f"effective batch {micro_global * args.gradient_accumulation_steps}, {total_steps} steps "
        f"({steps_per_epoch} per epoch), warmup {warmup_steps}, codebooks {vocab_sizes}, "
        f"{unwrapped.num_parameters():,} parameters"
    )

    def batches(start_micro: int):
        """Yield (micro number, batch) for this rank from global micro-batch ``start_micro`` on, epoch after epoch."""
        micro = start_micro
        while True:
            epoch, position = divmod(micro, micro_per_epoch)
            generator = torch.Generator().manual_seed(args.seed + epoch)
            order = train_rows[torch.randperm(len(train_rows), generator=generator).numpy()]
            mine = [
                order[p * micro_global + rank * args.per_device_train_batch_size :][: args.per_device_train_batch_size]
                for p in range(position, micro_per_epoch)
            ]
            loader = torch.utils.data.DataLoader(
                data, batch_size=args.per_device_train_batch_size, sampler=np.concatenate(mine).tolist(),
                collate_fn=_collate, num_workers=args.dataloader_num_workers,
            )
            for batch in loader:
                yield micro, batch
                micro += 1

    model.train()
    progress = tqdm(total=total_steps, initial=global_step, desc="pretrain", disable=not accelerator.is_main_process)
    stream = batches(global_step * args.gradient_accumulation_steps)
    started, window_losses, last_eval = time.time(), [], {}
    while global_step < total_steps:
        step_loss = torch.zeros((), device=accelerator.device)
        for j in range(args.gradient_accumulation_steps):
            micro, batch = next(stream)
            values = batch["input_values"].to(accelerator.device)
            target = batch["labels"].to(accelerator.device)
            seed = _micro_seed(args.seed, micro, rank)
            np.random.seed(seed)
            torch.manual_seed(seed)
            mask = unwrapped.compute_mask(values.shape[0], frames)
            last = j == args.gradient_accumulation_steps - 1
            context = accelerator.no_sync(model) if not last and world > 1 else _nullcontext()
            with context:
                loss = model(values, labels=target, mask_time_indices=mask).loss
                accelerator.backward(loss / args.gradient_accumulation_steps)
            step_loss += loss.detach().float() / args.gradient_accumulation_steps
        if args.max_grad_norm > 0:
            accelerator.clip_grad_norm_(model.parameters(), args.max_grad_norm)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        global_step += 1
        progress.update(1)
        step_loss = accelerator.reduce(step_loss, reduction="mean")
        window_losses.append(float(step_loss))
        if global_step % max(args.logging_steps, 1) == 0 or global_step == total_steps:
            entry = {"step": global_step, "epoch": round(global_step / steps_per_epoch, 4),
                     "loss": float(np.mean(window_losses)), "learning_rate": scheduler.get_last_lr()[0]}
            window_losses = []
            progress.set_postfix(loss=f"{entry['loss']:.4f}")
            if args.eval_steps > 0 and global_step % args.eval_steps == 0 and len(val_rows):
                entry.update(last_eval := _evaluate(accelerator, unwrapped, data, val_rows, args))
            log(entry)
        elif args.eval_steps > 0 and global_step % args.eval_steps == 0 and len(val_rows):
            last_eval = _evaluate(accelerator, unwrapped, data, val_rows, args)
            log({"step": global_step, **last_eval})
        if args.save_steps > 0 and global_step % args.save_steps == 0 and global_step < total_steps:
            _save_checkpoint(accelerator, output_dir, global_step, args.save_total_limit)
        if args.stop_after_step is not None and global_step >= args.stop_after_step:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(CRASH_EXIT_CODE)  # a crash: no cleanup, no final save
    progress.close()

    if len(val_rows) and not (args.eval_steps > 0 and global_step % args.eval_steps == 0 and last_eval):
        last_eval = _evaluate(accelerator, unwrapped, data, val_rows, args)
        log({"step": global_step, **last_eval})
    accelerator.wait_for_everyone()
    history = [json.loads(line) for line in log_path.read_text().splitlines() if line.strip()]
    train_losses = [e["loss"] for e in history if "loss" in e]
    results = {
        "step": global_step, "train_loss": train_losses[-1] if train_losses else None, **last_eval,
        "train_windows": int(len(train_rows)), "validation_windows": int(len(val_rows)), "processes": world,
        "effective_batch_size": micro_global * args.gradient_accumulation_steps, "vocab_sizes": vocab_sizes,
        "seconds_this_run": time.time() - started,
    }
    if accelerator.is_main_process:
        unwrapped.card_data = {
            "title": f"HuBERT-ECG pretrained ({'continued from ' + args.model_name_or_path if args.model_name_or_path else args.preset})",
            "base_model": args.model_name_or_path if args.model_name_or_path and not os.path.isdir(args.model_name_or_path) else None,
            "metrics": {k: round(v, 4) for k, v in results.items() if k.startswith("eval_") and isinstance(v, float)},
            "command": "hubert-ecg pretrain " + " ".join(sys.argv[1:]) if sys.argv else None,
            "notes": f"HuBERT masked-prediction pretraining, {global_step} steps of {results['effective_batch_size']} "
            f"windows, codebooks {vocab_sizes}, on {len(dataset)} 5 s windows.",
            "tags": ["self-supervised", "hubert", "pretraining"],
        }
        unwrapped.save_pretrained(output_dir)
        HuBERTECGFeatureExtractor().save_pretrained(output_dir)
        (output_dir / RESULTS_FILE).write_text(json.dumps(results, indent=2))
        if args.push_to_hub:  # model, card, feature extractor, results and log in one commit; no training state
            upload_folder(output_dir, args.hub_model_id, commit_message="Upload pretrained HuBERT-ECG",
                          private=args.hub_private_repo, ignore_patterns=[f"{CHECKPOINTS}/**", "**/events.out.tfevents*"])
        logger.info(f"pretraining done: {json.dumps(results)}")
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return results


class _nullcontext:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


def _save_checkpoint(accelerator, output_dir: Path, step: int, limit: int | None):
    """``accelerator.save_state`` into checkpoints/checkpoint-{step}; progress.json marks it complete."""
    path = output_dir / CHECKPOINTS / f"checkpoint-{step}"
    accelerator.save_state(str(path))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        (path / PROGRESS_FILE).write_text(json.dumps({"step": step}))
        if limit:
            for _, old in _checkpoints(output_dir)[:-limit]:
                shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``hubert-ecg pretrain``; returns the exit code (2 on bad arguments or data)."""
    return run_command(argv, PretrainArguments, "hubert-ecg pretrain", run_pretraining)


if __name__ == "__main__":
    sys.exit(main())
