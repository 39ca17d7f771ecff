"""``hubert-ecg pretrain``: HuBERT masked-prediction pretraining of HuBERT-ECG with the transformers ``Trainer``.

One HuBERT iteration (Hsu et al. 2021; HuBERT-ECG, medRxiv doi 10.1101/2024.11.14.24317328): the model sees
5 s windows (``input_values`` (batch, 6000) from :mod:`hubert_ecg.training.windows`) with about a third of their
frames masked (``config.num_frames(6000)`` = 93 frames), and predicts the k-means cluster id of every masked frame
(labels from ``hubert-ecg cluster``; one codebook per ``--labels_dirs`` entry). The first iteration starts from a
fresh model of a preset architecture; later iterations continue from the previous iteration's backbone
(``--model_name_or_path``) with new codebook heads.

The pieces are transformers' own: :class:`PretrainArguments` is a ``TrainingArguments`` with the few
pretraining fields (data, labels, model) and the paper's defaults (AdamW, lr 5e-5, betas (0.9, 0.98), eps 1e-9,
weight decay 0.01 off biases and norms, 8 % linear warmup then linear decay); the time masks are drawn by
:class:`~hubert_ecg.training.collators.DataCollatorForHuBERTECGPretraining`; the loss is the model's, in training
and in evaluation (``eval_loss`` is the training loss on held-out records); the masked-frame accuracy comes from
``compute_metrics``. The same command runs on one CPU, ``accelerate launch`` / ``torchrun`` over N GPUs or nodes,
or N CPU processes (gloo); ``--bf16`` / ``--fp16`` select mixed precision.

Reproducibility and resumption: the data order of epoch ``e`` is a permutation seeded by ``seed + e``, and the
mask of every window is drawn from ``(seed, e * num_training_windows + row)``, so it depends neither on the
DataLoader worker nor on the batch; dropout follows the Trainer's saved random states. The Trainer writes
``checkpoint-{step}`` every ``--save_steps``; rerunning the same command (``--resume_from_checkpoint auto``, the
default) continues from the last complete checkpoint with the batches, masks and hence losses of an uninterrupted
run, also after ``kill -9``.

Objectives (``--objective``, :mod:`hubert_ecg.training.objectives`): ``hubert`` (the above, the default), ``cmsc``
(adjacent 5 s windows of one record are positives: :class:`WindowPairDataset`), ``simclr`` (two augmented views
of a window; default chain :func:`~hubert_ecg.training.collators.default_simclr_chain`), and ``hubert+cmsc`` /
``hubert+simclr`` (``hubert loss + --contrastive_weight * contrastive loss``, one forward pass). The contrastive
objectives add a projection head to :class:`~hubert_ecg.HuBERTECGForPreTraining` (``contrastive_projection_sizes``,
default ``[256, 128]``) and gather the embeddings of every process with their gradient; ``cmsc`` and ``simclr``
need no cluster labels and run straight on records: ``--data DIR`` builds the window dataset on the first call
(in ``--windows_dir``, default ``OUTPUT_DIR/windows``), as ``hubert-ecg cluster`` does. The log then has the parts
of the loss (``hubert_loss``, ``cmsc_loss`` / ``simclr_loss``, means over the logging interval and the processes).

Outputs in ``--output_dir``: the final ``HuBERTECGForPreTraining`` (``model.safetensors``, ``config.json``, model
card ``README.md``) and ``preprocessor_config.json``; ``log_history.jsonl`` (one JSON object per log: ``loss``,
``learning_rate``, ``grad_norm``, and ``eval_loss`` / ``eval_masked_accuracy`` at evaluations);
``pretrain_results.json``; TensorBoard event files under ``runs/`` when tensorboard is installed. With
``--push_to_hub`` the Trainer uploads the output directory (without checkpoints) once, at the end.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from transformers import Trainer, TrainerCallback, TrainingArguments
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, IntervalStrategy
from transformers.utils import logging

from .arguments import run_command
from .clustering import load_labels
from .collators import (
    DataCollatorForContrastivePretraining,
    DataCollatorForHuBERTECGPretraining,
    default_simclr_chain,
    lead_mask_prob,
)
from .objectives import OBJECTIVES, Objective, contrastive_loss
from .windows import (
    build_window_dataset,
    distributed_on_cpu,
    finalize_window_dataset,
    is_window_dataset,
    load_window_dataset,
)

logger = logging.get_logger(__name__)

__all__ = [
    "EpochShuffleSampler",
    "PretrainArguments",
    "PretrainingTrainer",
    "WindowLabelDataset",
    "WindowPairDataset",
    "adjacent_window_pairs",
    "build_trainer",
    "compute_masked_accuracy",
    "last_checkpoint",
    "main",
    "preprocess_logits_for_metrics",
    "run_pretraining",
    "split_by_record",
]

LOG_FILE = "log_history.jsonl"
RESULTS_FILE = "pretrain_results.json"
TRAINER_STATE = "trainer_state.json"


def _tensorboard_available() -> bool:
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        return False
    return True


@dataclass
class PretrainArguments(TrainingArguments):
    """Arguments of ``hubert-ecg pretrain``: transformers ``TrainingArguments`` (with the paper's optimiser defaults)
    plus the objective, data and model of one pretraining run (one HuBERT iteration). Command line, or a YAML / JSON file first.

    Raises:
        ValueError: for an unknown ``--objective`` or a bad ``--contrastive_weight``, no labels folder for an
            objective with ``hubert`` (or one for ``cmsc`` / ``simclr``), no ``--windows_dir`` nor ``--data``, a
            validation fraction outside [0, 1), bad ``config_overrides`` or ``augmentations`` (none for ``simclr``),
            or ``--report_to tensorboard`` without tensorboard.
    """

    objective: str = field(
        default="hubert",
        metadata={"help": f"Pretraining objective: {', '.join(OBJECTIVES)} (hubert needs --labels_dirs; "
                  "cmsc and simclr need no labels)."},
    )
    contrastive_weight: float = field(
        default=1.0, metadata={"help": "Weight of the contrastive loss in hubert+cmsc / hubert+simclr."}
    )
    windows_dir: str | None = field(
        default=None,
        metadata={"help": "Window dataset (hubert-ecg cluster / build_window_dataset); built from --data when it "
                  "does not exist yet (default with --data: OUTPUT_DIR/windows)."},
    )
    data: list[str] = field(
        default_factory=list,
        metadata={"help": "Directories, record files or manifests to build --windows_dir from on the first call."},
    )
    exclude: list[str] = field(
        default_factory=list, metadata={"help": "With --data: glob patterns of records to leave out."}
    )
    stride_seconds: float | None = field(
        default=None, metadata={"help": "With --data: seconds between window starts (default 5: non-overlapping)."}
    )
    labels_dirs: list[str] = field(
        default_factory=list,
        metadata={"help": "One or more `hubert-ecg cluster` output folders: one codebook each, rows = windows "
                  "(objectives with hubert only)."},
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
    max_eval_samples: int | None = field(
        default=None, metadata={"help": "Cap on the validation windows (the first ones of the held-out records)."}
    )
    freeze_feature_encoder: bool = field(default=False, metadata={"help": "Freeze the convolutional feature encoder."})
    augmentations: str | None = field(
        default=None,
        metadata={"help": "Augmentations of the training windows (100 Hz model view, after the feature extractor): "
                  "'default', 'none', a JSON list such as '[{\"name\": \"lead_mask\", \"mask_prob\": 0.5}]', "
                  "or a YAML list in the config file; the model config records lead_mask_prob."},
    )
    model_license: str | None = field(
        default=None,
        metadata={"help": "Licence on the model card (default: apache-2.0 from a preset; the previous model's "
                  "licence when continuing one, cc-by-nc-4.0 for the released weights)."},
    )
    # the paper's optimisation and this command's habits, as defaults of TrainingArguments' own fields
    adam_beta2: float = field(default=0.98, metadata={"help": "AdamW beta2 (paper: 0.98)."})
    adam_epsilon: float = field(default=1e-9, metadata={"help": "AdamW epsilon (paper: 1e-9)."})
    weight_decay: float = field(default=0.01, metadata={"help": "AdamW weight decay, not on biases and norms (0.01)."})
    warmup_steps: float = field(
        default=0.08, metadata={"help": "Warmup steps, or a fraction of all steps (paper: 0.08)."}
    )
    logging_steps: float = field(default=10, metadata={"help": "Log the training loss every N steps."})
    save_total_limit: int | None = field(default=2, metadata={"help": "Checkpoints kept (oldest deleted)."})
    resume_from_checkpoint: str | None = field(
        default="auto",
        metadata={"help": "'auto' (latest complete checkpoint in output_dir if any), a checkpoint folder, or 'none'."},
    )
    report_to: None | str | list[str] = field(
        default="auto", metadata={"help": "'auto' (tensorboard when installed), 'tensorboard', 'none', ..."}
    )
    hub_strategy: str = field(default="end", metadata={"help": "Push the final model once, at the end."})
    remove_unused_columns: bool = field(
        default=False, metadata={"help": "Must stay False: the collator needs every sample's `sample_index`."}
    )

    def __post_init__(self):
        for name in ("labels_dirs", "data", "exclude"):
            if isinstance(getattr(self, name), str):
                setattr(self, name, [getattr(self, name)])
        if not self.output_dir:
            raise ValueError("--output_dir is required: where checkpoints, logs and the final model are written")
        objective = self.pretraining_objective()  # validates --objective and --contrastive_weight
        if not self.windows_dir and self.data:
            self.windows_dir = str(Path(self.output_dir) / "windows")
        if not self.windows_dir:
            raise ValueError("--windows_dir is required: the window dataset of `hubert-ecg cluster` (or --data DIR "
                             "to build one)")
        if objective.hubert and not self.labels_dirs:
            raise ValueError(f"--objective {objective.name} needs --labels_dirs: at least one `hubert-ecg cluster` "
                             "output folder")
        if not objective.hubert and self.labels_dirs:
            raise ValueError(f"--objective {objective.name} uses no cluster labels: drop --labels_dirs (or use "
                             f"hubert+{objective.contrastive})")
        if not 0.0 <= self.validation_fraction < 1.0:
            raise ValueError(f"--validation_fraction must lie in [0, 1), got {self.validation_fraction}")
        if isinstance(self.config_overrides, dict):
            self.config_overrides = json.dumps(self.config_overrides)
        self.overrides()  # validates the JSON
        if isinstance(self.augmentations, (list, dict)):
            self.augmentations = json.dumps(self.augmentations)
        self.augmentation_chain()  # validates the chain: exit 2 naming the bad entry
        wanted = self.report_to if isinstance(self.report_to, list) else [self.report_to]
        if wanted == ["auto"]:
            self.report_to = "tensorboard" if _tensorboard_available() else "none"
        elif "tensorboard" in wanted and not _tensorboard_available():
            raise ValueError("--report_to tensorboard needs tensorboard: pip install tensorboard")
        if self.eval_steps and IntervalStrategy(self.eval_strategy) == IntervalStrategy.NO:
            self.eval_strategy = "steps"  # --eval_steps N alone means: evaluate every N steps
        if distributed_on_cpu():
            self.use_cpu = True  # several CPU processes: accelerate then uses gloo
        super().__post_init__()

    def pretraining_objective(self) -> Objective:
        """``objective`` and ``contrastive_weight`` as an :class:`~hubert_ecg.training.objectives.Objective`.
        Raises ValueError for an unknown name or a bad weight."""
        return Objective.parse(self.objective, self.contrastive_weight, "--objective")

    def augmentation_chain(self):
        """``augmentations`` as a :mod:`hubert_ecg.augmentations` chain (None for none). With SimCLR, unset or
        ``'default'`` is :func:`~hubert_ecg.training.collators.default_simclr_chain`. Raises ValueError naming a bad
        entry, or for SimCLR without augmentations."""
        from .collators import parse_augmentations

        if Objective.parse(self.objective, self.contrastive_weight).contrastive == "simclr":
            if self.augmentations is None or str(self.augmentations).strip().lower() == "default":
                return default_simclr_chain(sampling_rate=100)
            chain = parse_augmentations(self.augmentations, "--augmentations")
            if chain is None:
                raise ValueError("--objective simclr needs --augmentations (its two views): 'default' or a chain")
            return chain
        return parse_augmentations(self.augmentations, "--augmentations")

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
    """Rows of a window dataset with their cluster labels (memory-mapped), for the pretraining collator.

    Item ``i`` (``i >= 0``; ``i`` past ``len(self)`` wraps around) is window ``rows[i % len(rows)]``:
    ``{"input_values": float32 (6000,), "labels": int64 (num_codebooks, frames), "sample_index": i}``. The training
    sampler (:class:`EpochShuffleSampler`) asks for ``i = epoch * len(self) + position``, so ``sample_index``
    names the window *and* the epoch, and the collator seeds that window's mask from it.

    Args:
        dataset: ``datasets.Dataset`` of :func:`~hubert_ecg.training.windows.load_window_dataset`.
        labels: one int array (num_windows, frames) per codebook (:func:`~hubert_ecg.training.clustering.load_labels`);
            empty for the objectives without masked prediction (items then have no ``labels``).
        rows: the dataset rows this split uses (default: all).
    """

    def __init__(self, dataset, labels: Sequence[np.ndarray], rows: Sequence[int] | None = None):
        self.dataset = dataset.with_format("numpy", columns=["input_values"])
        self.labels = list(labels)
        self.rows = np.arange(len(dataset), dtype=np.int64) if rows is None else np.asarray(rows, dtype=np.int64)

    def __len__(self):
        return len(self.rows)

    def __getitems__(self, indices):
        keys = [int(i) for i in indices]
        rows = self.rows[np.asarray(keys, dtype=np.int64) % len(self.rows)]
        values = np.asarray(self.dataset[rows.tolist()]["input_values"], dtype=np.float32)
        if not self.labels:  # contrastive objectives without masked prediction
            return [{"input_values": values[j], "sample_index": keys[j]} for j in range(len(keys))]
        labels = np.stack([np.asarray(lab[rows], dtype=np.int64) for lab in self.labels], axis=1)
        return [{"input_values": values[j], "labels": labels[j], "sample_index": keys[j]} for j in range(len(keys))]

    def __getitem__(self, index):
        return self.__getitems__([index])[0]


def adjacent_window_pairs(
    record_ids: Sequence[str], window_starts: Sequence[float], window_seconds: float, rows: Sequence[int] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """CMSC's positive pairs: adjacent, non-overlapping windows of one record (Kiyasseh et al. 2021).

    Within each record, windows are taken in order of start and paired greedily with the window that starts
    exactly ``window_seconds`` later (within 1 ms): with the default non-overlapping 5 s windows, a 10 s record gives
    one pair, a 60 s record six; a record with one window gives none. Windows whose partner is already paired (or
    missing) stay unpaired.

    Args:
        record_ids: (num_windows,) the window dataset's ``record_id`` column.
        window_starts: (num_windows,) its ``window_start`` column, seconds.
        window_seconds: the window length (5.0).
        rows: the rows to pair (a train or validation split); default all.

    Returns:
        (pairs int64 (num_pairs, 2) of dataset rows (first, second segment), groups int64 (num_pairs,), one id per
        record, shared by every pair of that record).
    """
    rows = np.arange(len(record_ids), dtype=np.int64) if rows is None else np.asarray(rows, dtype=np.int64)
    ids = np.asarray(record_ids, dtype=object)[rows].astype(str)
    starts = np.asarray(window_starts, dtype=np.float64)[rows]
    unique, codes = np.unique(ids, return_inverse=True)
    order = np.lexsort((starts, codes))
    pairs, groups = [], []
    i = 0
    while i + 1 < len(order):
        first, second = order[i], order[i + 1]
        if codes[first] == codes[second] and abs(starts[second] - starts[first] - window_seconds) < 1e-3:
            pairs.append((rows[first], rows[second]))
            groups.append(codes[first])
            i += 2
        else:
            i += 1
    return (np.asarray(pairs, dtype=np.int64).reshape(-1, 2), np.asarray(groups, dtype=np.int64))


class WindowPairDataset(torch.utils.data.Dataset):
    """Pairs of adjacent windows of one record (:func:`adjacent_window_pairs`) for CMSC, with their cluster labels
    for ``hubert+cmsc``.

    Item ``i`` (wrapping around like :class:`WindowLabelDataset`) is pair ``i % len(self)``: ``{"input_values":
    float32 (2, 6000), "labels": int64 (2, num_codebooks, frames) (with labels), "sample_index": i, "group": int}``,
    ``group`` naming the record (segments of one record are positives of each other).

    Args:
        dataset: ``datasets.Dataset`` of :func:`~hubert_ecg.training.windows.load_window_dataset`.
        labels: one int array (num_windows, frames) per codebook, or empty.
        pairs: int (num_pairs, 2) rows; groups: int (num_pairs,) record ids (:func:`adjacent_window_pairs`).
    """

    def __init__(self, dataset, labels: Sequence[np.ndarray], pairs: np.ndarray, groups: np.ndarray):
        self.dataset = dataset.with_format("numpy", columns=["input_values"])
        self.labels = list(labels)
        self.pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
        self.groups = np.asarray(groups, dtype=np.int64)

    def __len__(self):
        return len(self.pairs)

    def __getitems__(self, indices):
        keys = [int(i) for i in indices]
        which = np.asarray(keys, dtype=np.int64) % len(self.pairs)
        rows = self.pairs[which]  # (n, 2)
        values = np.asarray(self.dataset[rows.reshape(-1).tolist()]["input_values"], dtype=np.float32)
        values = values.reshape(len(keys), 2, -1)
        items = []
        for j, key in enumerate(keys):
            item = {"input_values": values[j], "sample_index": key, "group": int(self.groups[which[j]])}
            if self.labels:
                item["labels"] = np.stack(
                    [np.stack([np.asarray(lab[r], dtype=np.int64) for lab in self.labels]) for r in rows[j]]
                )
            items.append(item)
        return items

    def __getitem__(self, index):
        return self.__getitems__([index])[0]


class EpochShuffleSampler(torch.utils.data.Sampler):
    """Epoch ``e`` yields ``e * num_samples + p`` for a permutation ``p`` of ``range(num_samples)`` seeded by
    ``seed + e``: the same order on every process and after a resume. The Trainer sets the epoch (``set_epoch``)."""

    def __init__(self, num_samples: int, seed: int):
        self.num_samples = int(num_samples)
        self.seed = int(seed)
        self.epoch = 0

    def set_epoch(self, epoch: int):
        """The epoch whose permutation (seeded by ``seed + epoch``) the next iteration yields."""
        self.epoch = int(epoch)

    def __len__(self):
        return self.num_samples

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        order = torch.randperm(self.num_samples, generator=generator)
        yield from (order + self.epoch * self.num_samples).tolist()


def preprocess_logits_for_metrics(logits, labels) -> torch.Tensor:
    """Keep what the accuracy needs of an evaluation batch: int64 (batch, num_codebooks + 1, frames), the predicted
    cluster of every frame and codebook, then the time mask (1 = masked)."""
    codebook_logits, mask = logits[0], logits[1]
    predictions = torch.stack([c.argmax(-1) for c in codebook_logits], dim=1)
    return torch.cat([predictions, mask.to(predictions.dtype).unsqueeze(1)], dim=1)


def compute_masked_accuracy(eval_prediction) -> dict[str, float]:
    """``compute_metrics`` of pretraining: the fraction of masked (and of unmasked) frames whose cluster is predicted
    right, averaged over codebooks; frames labelled -100 do not count.

    Args:
        eval_prediction: ``EvalPrediction`` with ``predictions`` int (windows, num_codebooks + 1, frames) from
            :func:`preprocess_logits_for_metrics` and ``label_ids`` int (windows, num_codebooks, frames).

    Returns:
        ``{"masked_accuracy": ..., "unmasked_accuracy": ...}`` (the Trainer prefixes ``eval_``); NaN where no frame
        counts.
    """
    predictions = np.asarray(eval_prediction.predictions)
    labels = np.asarray(eval_prediction.label_ids)
    masked = predictions[:, -1:].astype(bool)
    correct = predictions[:, :-1] == labels
    valid = labels != -100
    result = {}
    for name, where in (("masked_accuracy", valid & masked), ("unmasked_accuracy", valid & ~masked)):
        counts = where.sum(axis=(0, 2))
        hits = (correct & where).sum(axis=(0, 2))
        result[name] = float(np.mean(hits / counts)) if counts.all() else float("nan")
    return result


class _LogFileCallback(TrainerCallback):
    """Appends every log of the Trainer to ``log_history.jsonl``; on a resume, drops the lines an interrupted run
    wrote after the checkpoint it resumes from."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def on_train_begin(self, args, state, control, **kwargs):
        if not state.is_world_process_zero:
            return
        kept = []
        if self.path.exists() and state.global_step > 0:
            kept = [line for line in self.path.read_text().splitlines()
                    if line.strip() and json.loads(line).get("step", 0) <= state.global_step]
        self.path.write_text("".join(line + "\n" for line in kept))

    def on_log(self, args, state, control, logs=None, **kwargs):
        if state.is_world_process_zero and logs:
            with open(self.path, "a") as handle:
                handle.write(json.dumps({"step": state.global_step, **logs}) + "\n")


class PretrainingTrainer(Trainer):
    """The ``Trainer`` for masked prediction.

    Four differences from the plain Trainer: the training data come in :class:`EpochShuffleSampler` order (so a
    window's ``sample_index`` names its epoch); the loss is the ``objective``'s (:meth:`compute_loss`); the model's
    masked-prediction loss is used as it is (a mean over each batch's masked
    frames, not a sum to be divided by the number of labels, so ``num_items_in_batch`` is not passed); and
    ``create_model_card`` (which ``Trainer.push_to_hub`` calls before the upload) writes ``self.card``, the
    package's card (:mod:`hubert_ecg.model_card`), as ``README.md`` instead of transformers' generic card.
    """

    card = None

    def __init__(self, *args, objective: Objective | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.model_accepts_loss_kwargs = False
        self.objective = objective or Objective()
        self._loss_parts: dict[str, list[torch.Tensor]] = {}

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        """The objective's loss (:class:`~hubert_ecg.training.objectives.Objective`): the model's masked-prediction
        loss for ``hubert``; for the contrastive objectives, the contrastive loss of the ``contrastive_embeddings``
        gathered over processes (batch key ``contrastive_groups``), plus ``contrastive_weight`` times it to the
        masked-prediction loss for ``hubert+...``. The parts are logged (``hubert_loss``, ``cmsc_loss`` ...)."""
        if self.objective.contrastive is None:
            return super().compute_loss(model, inputs, return_outputs=return_outputs,
                                        num_items_in_batch=num_items_in_batch)
        inputs = dict(inputs)
        groups = inputs.pop("contrastive_groups")
        outputs = model(**inputs)
        temperature = self.accelerator.unwrap_model(model).config.contrastive_temperature
        contrastive = contrastive_loss(self.objective.contrastive, outputs.contrastive_embeddings, groups,
                                       temperature)
        loss = self.objective.combine(outputs.loss, contrastive)
        if model.training:
            if self.objective.hubert:
                self._loss_parts.setdefault("hubert_loss", []).append(outputs.loss.detach().float())
            self._loss_parts.setdefault(f"{self.objective.contrastive}_loss", []).append(contrastive.detach().float())
        return (loss, outputs) if return_outputs else loss

    def log(self, logs: dict[str, float], *args, **kwargs) -> None:
        """The Trainer's log, with the loss parts added to a training log: their means since the last one, averaged
        over processes like ``loss`` (so that ``loss = hubert_loss + contrastive_weight * cmsc_loss``)."""
        if "loss" in logs and self._loss_parts:
            names = sorted(self._loss_parts)
            means = torch.stack([torch.stack(self._loss_parts[k]).mean() for k in names])
            if self.args.world_size > 1:  # every process logs at the same steps
                means = self.accelerator.reduce(means, reduction="mean")
            logs = {**logs, **dict(zip(names, means.tolist()))}
            self._loss_parts = {}
        super().log(logs, *args, **kwargs)

    @contextlib.contextmanager
    def _collator_without_augmentations(self):
        collator = self.data_collator
        if getattr(collator, "views", None) == "augment":  # SimCLR: the augmentations make the two views
            yield
            return
        if getattr(collator, "augmentations", None) is not None:
            self.data_collator = dataclasses.replace(collator, augmentations=None)
        try:
            yield
        finally:
            self.data_collator = collator

    def get_eval_dataloader(self, eval_dataset=None):
        """Evaluation batches come from the training collator without its augmentations (SimCLR keeps them: they
        make its two views, seeded by ``sample_index``, hence the same at every evaluation)."""
        with self._collator_without_augmentations():
            return super().get_eval_dataloader(eval_dataset)

    def get_test_dataloader(self, test_dataset):
        """Test batches, like evaluation ones, are not augmented."""
        with self._collator_without_augmentations():
            return super().get_test_dataloader(test_dataset)

    def _get_train_sampler(self, train_dataset=None):
        dataset = train_dataset if train_dataset is not None else self.train_dataset
        seed = self.args.data_seed if self.args.data_seed is not None else self.args.seed
        return EpochShuffleSampler(len(dataset), seed)

    def create_model_card(self, *args, **kwargs) -> None:
        """Write this package's card (``self.card``) as ``README.md`` instead of transformers' generic one."""
        if self.is_world_process_zero() and self.card is not None:
            self.card.save(Path(self.args.output_dir) / "README.md")


DEFAULT_CONTRASTIVE_PROJECTION = [256, 128]


def _build_model(args: PretrainArguments, vocab_sizes: list[int]):
    from ..configuration import HuBERTECGConfig
    from ..modeling import HuBERTECGForPreTraining

    overrides = args.overrides()
    objective = args.pretraining_objective()
    if objective.contrastive:  # a projection head (SimCLR's 2-layer 256 -> 128 unless overridden)
        overrides.setdefault("contrastive_projection_sizes", DEFAULT_CONTRASTIVE_PROJECTION)
    else:
        overrides["contrastive_projection_sizes"] = []
    if args.model_name_or_path:
        previous = HuBERTECGForPreTraining.from_pretrained(args.model_name_or_path)
        config_dict = {**previous.config.to_dict(), **overrides, "vocab_sizes": vocab_sizes,
                       "ensemble_length": len(vocab_sizes)}
        model = HuBERTECGForPreTraining(HuBERTECGConfig.from_dict(config_dict))
        model.hubert_ecg.load_state_dict(previous.hubert_ecg.state_dict())
        logger.info(f"continuing the backbone of {args.model_name_or_path} with new codebooks {vocab_sizes}")
        return model
    config = HuBERTECGConfig.from_preset(args.preset, **{**overrides, "vocab_sizes": vocab_sizes,
                                                        "ensemble_length": len(vocab_sizes)})
    return HuBERTECGForPreTraining(config)


def last_checkpoint(output_dir: str | os.PathLike) -> str | None:
    """The ``checkpoint-{step}`` folder of ``output_dir`` with the highest step that is complete (the Trainer writes
    ``trainer_state.json`` last), or None."""
    found = []
    for path in Path(output_dir).glob(f"{PREFIX_CHECKPOINT_DIR}-*"):
        if (path / TRAINER_STATE).is_file() and path.name.split("-")[-1].isdigit():
            found.append((int(path.name.split("-")[-1]), path))
    return str(max(found)[1]) if found else None


def _resume_checkpoint(args: PretrainArguments) -> str | None:
    resume = args.resume_from_checkpoint
    if not resume or str(resume).lower() in ("none", "no", "false"):
        return None
    if resume == "auto":
        return last_checkpoint(args.output_dir)
    if not (Path(resume) / TRAINER_STATE).is_file():
        raise ValueError(f"--resume_from_checkpoint {resume} is not a complete checkpoint folder (no {TRAINER_STATE})")
    return str(resume)


def _ensure_windows(args: PretrainArguments) -> None:
    """Build ``args.windows_dir`` from ``args.data`` when it is not a window dataset yet (sharded over the processes,
    as ``hubert-ecg cluster`` does). Raises ValueError when it is missing and no ``--data`` is given."""
    if is_window_dataset(args.windows_dir):
        return
    if not args.data:
        raise ValueError(f"--windows_dir {args.windows_dir} is not a window dataset yet; pass --data to build it")
    from accelerate import PartialState

    state = PartialState(cpu=distributed_on_cpu())
    rank, world = state.process_index, state.num_processes
    build_window_dataset(args.data, args.windows_dir, stride_seconds=args.stride_seconds, exclude=args.exclude,
                         process_index=rank, num_processes=world, show_progress=state.is_main_process)
    state.wait_for_everyone()
    if world > 1 and state.is_main_process:
        finalize_window_dataset(args.windows_dir, world, args.stride_seconds)
    state.wait_for_everyone()


def _split_dataset(dataset, labels, rows, objective: Objective, window_seconds: float, what: str):
    """The training or validation dataset of ``rows`` for ``objective``: windows, or adjacent pairs for CMSC."""
    if objective.contrastive != "cmsc":
        return WindowLabelDataset(dataset, labels, rows)
    columns = dataset.data
    pairs, groups = adjacent_window_pairs(columns.column("record_id").to_pylist(),
                                          columns.column("window_start").to_pylist(), window_seconds, rows)
    if what == "training" and len(pairs) == 0:
        raise ValueError("--objective cmsc needs records of at least two adjacent windows (10 s): none found among "
                         f"the {len(rows)} training windows")
    return WindowPairDataset(dataset, labels, pairs, groups) if len(pairs) else None


def build_trainer(args: PretrainArguments) -> PretrainingTrainer:
    """The model, data, collator and :class:`PretrainingTrainer` of one pretraining run (nothing is trained yet).

    Builds the window dataset from ``--data`` first when ``--windows_dir`` does not hold one.

    Raises:
        ValueError: labels that do not match the windows (row count or frames per window), an empty training set,
            or (CMSC) no record with two adjacent windows.
    """
    from ..processing import HuBERTECGFeatureExtractor

    objective = args.pretraining_objective()
    _ensure_windows(args)
    dataset = load_window_dataset(args.windows_dir)
    labels, vocab_sizes = [], []
    for directory in args.labels_dirs if objective.hubert else []:
        array, info = load_labels(directory)
        if array.shape[0] != len(dataset):
            raise ValueError(
                f"labels in {directory} have {array.shape[0]} rows but {args.windows_dir} has {len(dataset)} windows; "
                "cluster the same window dataset"
            )
        labels.append(array)
        vocab_sizes.append(int(info["num_clusters"]))

    torch.manual_seed(args.seed)  # the fresh model's initialisation
    model = _build_model(args, vocab_sizes)
    input_length = len(dataset[0]["input_values"])
    frames = model.config.num_frames(input_length)
    if any(lab.shape[1] != frames for lab in labels):
        raise ValueError(
            f"labels have {[lab.shape[1] for lab in labels]} frames per window but the model gives {frames} for "
            f"{input_length} samples (config.num_frames); cluster with the same feature encoder geometry"
        )
    if args.freeze_feature_encoder:
        model.freeze_feature_encoder()
    if args.ddp_find_unused_parameters is None:
        args.ddp_find_unused_parameters = model.config.layerdrop > 0

    feature_extractor = HuBERTECGFeatureExtractor()
    record_ids = dataset.data.column("record_id").to_pylist()
    train_rows, val_rows = split_by_record(record_ids, args.validation_fraction)
    if len(train_rows) == 0:
        raise ValueError(f"no training window left after holding out {args.validation_fraction} of the records")
    if args.max_eval_samples is not None:
        val_rows = val_rows[: args.max_eval_samples]
    window_seconds = feature_extractor.window_seconds
    train_dataset = _split_dataset(dataset, labels, train_rows, objective, window_seconds, "training")
    eval_dataset = _split_dataset(dataset, labels, val_rows, objective, window_seconds, "validation") \
        if len(val_rows) else None
    if eval_dataset is None and args.eval_strategy != IntervalStrategy.NO:
        logger.warning("no validation window (or pair) held out: evaluation is switched off")
        args.eval_strategy = IntervalStrategy.NO

    augmentations = args.augmentation_chain()
    model.config.lead_mask_prob = lead_mask_prob(augmentations)  # > 0: trained lead-agnostic
    if objective.contrastive:
        collator = DataCollatorForContrastivePretraining(
            model.config, seed=args.seed, augmentations=augmentations,
            views="pairs" if objective.contrastive == "cmsc" else "augment", mask=objective.hubert,
        )
    else:
        collator = DataCollatorForHuBERTECGPretraining(model.config, seed=args.seed, augmentations=augmentations)
    metrics = {}
    if objective.hubert:
        metrics = dict(compute_metrics=compute_masked_accuracy,
                       preprocess_logits_for_metrics=preprocess_logits_for_metrics)
    else:  # no labels: the evaluation loss comes from the groups, and there is nothing else to evaluate
        args.label_names = ["contrastive_groups"]
        args.prediction_loss_only = True
    trainer = PretrainingTrainer(
        model=model,
        args=args,
        data_collator=collator,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        processing_class=feature_extractor,
        callbacks=[_LogFileCallback(Path(args.output_dir) / LOG_FILE)],
        objective=objective,
        **metrics,
    )
    logger.info(
        f"pretraining ({objective.name}): {len(train_dataset)} train / {len(eval_dataset or [])} validation "
        f"{'pairs' if objective.contrastive == 'cmsc' else 'windows'}, {args.world_size} process(es), "
        f"codebooks {vocab_sizes}, {model.num_parameters():,} parameters"
    )
    return trainer


def run_pretraining(args: PretrainArguments) -> dict:
    """Run one HuBERT pretraining iteration in this process (one of ``accelerate launch``'s, or alone).

    Returns:
        the final results (``step``, ``train_loss``, ``eval_loss``, ``eval_masked_accuracy``, ...), on every process.

    Raises:
        ValueError: labels that do not match the windows, too little data, bad arguments.
    """
    output_dir = Path(args.output_dir)
    trainer = build_trainer(args)
    if trainer.is_world_process_zero():
        output_dir.mkdir(parents=True, exist_ok=True)
    checkpoint = _resume_checkpoint(args)
    if checkpoint:
        logger.info(f"resuming from {checkpoint}")
    train_output = trainer.train(resume_from_checkpoint=checkpoint)

    metrics = {}
    if trainer.eval_dataset is not None:  # the final evaluation, unless the last step had one
        final = [e for e in trainer.state.log_history if "eval_loss" in e and e["step"] == trainer.state.global_step]
        metrics = {k: v for k, v in final[-1].items() if k.startswith("eval_")} if final else trainer.evaluate()
    losses = [e["loss"] for e in trainer.state.log_history if "loss" in e]
    world = trainer.args.world_size
    vocab_sizes = list(trainer.model.config.vocab_sizes)
    objective = trainer.objective
    per_sample = 2 if objective.contrastive == "cmsc" else 1  # a CMSC sample is a pair of windows
    results = {
        "objective": objective.name,
        "step": trainer.state.global_step,
        "train_loss": losses[-1] if losses else None,
        "mean_train_loss": train_output.training_loss,
        **metrics,
        "train_windows": per_sample * len(trainer.train_dataset),
        "validation_windows": per_sample * len(trainer.eval_dataset) if trainer.eval_dataset is not None else 0,
        "processes": world,
        "effective_batch_size": args.per_device_train_batch_size * world * args.gradient_accumulation_steps,
        "vocab_sizes": vocab_sizes,
        "resumed_from": checkpoint,
    }
    trainer.card = _model_card(trainer, args, metrics, results)
    if trainer.is_world_process_zero():
        (output_dir / RESULTS_FILE).write_text(json.dumps(results, indent=2))
    if args.push_to_hub:  # saves the model, feature extractor and card, then one upload without the checkpoints
        trainer.push_to_hub(commit_message="Upload pretrained HuBERT-ECG")
    else:
        trainer.save_model()  # the model and the feature extractor (the processing_class)
        trainer.create_model_card()
    if trainer.is_world_process_zero():
        logger.info(f"pretraining done: {json.dumps(results)}")
    return results


_OBJECTIVE_NOTES = {
    "hubert": "HuBERT masked-prediction",
    "cmsc": "CMSC (contrastive multi-segment coding, adjacent 5 s windows)",
    "simclr": "SimCLR (NT-Xent on two augmented views)",
    "hubert+cmsc": "HuBERT masked-prediction + CMSC",
    "hubert+simclr": "HuBERT masked-prediction + SimCLR",
}


def _model_card(trainer: PretrainingTrainer, args: PretrainArguments, metrics: dict, results: dict):
    """The package's card of the pretrained model: licence (:func:`~hubert_ecg.model_card.card_license`: the
    package's from a preset, the previous model's when continuing one), validation loss and masked accuracy."""
    from ..model_card import EvalResult, card_license, create_model_card

    base_model = args.model_name_or_path or None
    eval_results = [
        EvalResult(task_type="masked-prediction" if trainer.objective.name == "hubert" else trainer.objective.name,
                   dataset_type="ecg-windows", dataset_name=Path(args.windows_dir).name,
                   dataset_split="validation", metric_type=name, metric_name=name.replace("_", " "),
                   metric_value=float(metrics[f"eval_{name}"]))
        for name in ("loss", "masked_accuracy")
        if isinstance(metrics.get(f"eval_{name}"), float) and np.isfinite(metrics[f"eval_{name}"])
    ]
    return create_model_card(
        trainer.accelerator.unwrap_model(trainer.model),
        license=card_license(base_model, args.model_license),
        title=f"HuBERT-ECG pretrained ({f'continued from {base_model}' if base_model else f'{args.preset} preset'})",
        base_model=base_model,
        eval_results=eval_results,
        command="hubert-ecg pretrain " + " ".join(sys.argv[1:]) if sys.argv else None,
        notes=f"{_OBJECTIVE_NOTES[trainer.objective.name]} pretraining: {results['step']} steps of "
        f"{results['effective_batch_size']} {'pairs of windows' if trainer.objective.contrastive == 'cmsc' else 'windows'}"
        f"{f', codebooks {vocab}' if (vocab := results['vocab_sizes']) else ''}, {results['train_windows']} "
        f"training and {results['validation_windows']} validation windows (held out by record).",
        tags=["self-supervised", "pretraining", *trainer.objective.name.split("+")],
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``hubert-ecg pretrain``; returns the exit code (2 on bad arguments or data)."""
    return run_command(argv, PretrainArguments, "hubert-ecg pretrain", run_pretraining)


if __name__ == "__main__":
    sys.exit(main())
