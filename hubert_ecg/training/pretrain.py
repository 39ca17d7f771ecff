"""HuBERT masked-prediction pretraining of HuBERT-ECG with the transformers ``Trainer``: the library of
``hubert-ecg pretrain`` (the command's ``main`` is :mod:`hubert_ecg_cli.pretrain`).

One HuBERT iteration (Hsu et al. 2021; HuBERT-ECG, medRxiv doi 10.1101/2024.11.14.24317328): the model sees
5 s windows (``input_values`` (batch, 6000) from :mod:`hubert_ecg.training.window_dataset`) with about a third of their
frames masked (``config.num_frames(6000)`` = 93 frames), and predicts the k-means cluster id of every masked frame
(labels from ``hubert-ecg cluster``; one codebook per ``--labels_dirs`` entry). The first iteration starts from a
fresh model of a preset architecture; later iterations continue from the previous iteration's backbone
(``--model``) with new codebook heads.

The pieces are transformers' own: :class:`PretrainArguments` is a ``TrainingArguments`` with the few
pretraining fields (data, labels, model) and the paper's defaults (AdamW, lr 5e-5, betas (0.9, 0.98), eps 1e-9,
weight decay 0.01 off biases and norms, 8 % linear warmup then linear decay); the time masks are drawn by
:class:`~hubert_ecg.training.collators.DataCollatorForHuBERTECGPretraining`; the loss is the model's, in training
and in evaluation (``eval_loss`` is the training loss on held-out records); the masked-frame accuracy comes from
``compute_metrics``. The same command runs on one CPU, ``accelerate launch`` / ``torchrun`` over N GPUs or nodes,
or N CPU processes (gloo); ``--bf16`` / ``--fp16`` select mixed precision (``--bf16`` on a machine without a GPU:
the CPU, in bf16 where it has bf16 units, else fp32: :class:`~hubert_ecg.training.arguments.PrecisionOnAnyMachine`).

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

Several sources (``--sources NAME=PATH@PROBABILITY ...`` or a YAML ``sources:`` list, :mod:`hubert_ecg.training.sources`):
records, window datasets, Parquet folders or Hub datasets, combined in ``--windows_dir`` with a ``source`` column,
held out per source by record, mixed per epoch by ``datasets.interleave_datasets`` (``--stopping_strategy``, default
``all_exhausted``); the log then has ``loss/<source>`` and ``eval_loss/<source>`` (per-sample losses computed from the
model's outputs in :meth:`~hubert_ecg.training.trainer.HuBERTECGTrainer.compute_loss`). ``--streaming`` (not CMSC) streams Parquet sources,
split across processes, buffer-shuffled, endless (``--max_steps``), resumed by skipping the consumed batches.

Outputs in ``--output_dir``: the final ``HuBERTECGForPreTraining`` (``model.safetensors``, ``config.json``, model
card ``README.md``) and ``preprocessor_config.json``; ``log_history.jsonl`` (one JSON object per log: ``loss``,
``learning_rate``, ``grad_norm``, and ``eval_loss`` / ``eval_masked_accuracy`` at evaluations);
``pretrain_results.json``; TensorBoard event files under ``runs/`` when tensorboard is installed. With
``--push_to_hub`` the Trainer uploads the output directory (without checkpoints) once, at the end.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from transformers import TrainerCallback, TrainingArguments
from transformers.trainer_utils import IntervalStrategy
from transformers.utils import logging

from .arguments import PrecisionOnAnyMachine
from .clustering import load_labels
from .collators import (
    DataCollatorForContrastivePretraining,
    DataCollatorForHuBERTECGPretraining,
    default_simclr_chain,
    lead_mask_prob,
)
from .objectives import (  # noqa: F401  (the per-sample losses: re-exported, their home is objectives)
    OBJECTIVES,
    Objective,
    gather_with_grad,
    per_sample_contrastive_loss,
    per_sample_masked_loss,
)
from .sources import (
    DEFAULT_STOPPING_STRATEGY,
    STOPPING_STRATEGIES,
    SourceSpec,
    StreamingWindows,
    mix_rows,
    parse_sources,
    prepare_sources,
    record_position,
)
from .trainer import EpochShuffleSampler, HuBERTECGTrainer, last_checkpoint, resolve_checkpoint
from .window_dataset import build_windows_on_all_processes, distributed_on_cpu, is_window_dataset, load_window_dataset

logger = logging.get_logger(__name__)

__all__ = [
    "EpochShuffleSampler",
    "PretrainArguments",
    "WindowLabelDataset",
    "WindowPairDataset",
    "adjacent_window_pairs",
    "build_trainer",
    "compute_masked_accuracy",
    "last_checkpoint",
    "per_sample_contrastive_loss",
    "per_sample_masked_loss",
    "preprocess_logits_for_metrics",
    "run_pretraining",
    "split_by_record",
]

LOG_FILE = "log_history.jsonl"
RESULTS_FILE = "pretrain_results.json"


def _tensorboard_available() -> bool:
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        return False
    return True


@dataclass
class PretrainArguments(PrecisionOnAnyMachine, TrainingArguments):
    """Arguments of ``hubert-ecg pretrain``: transformers ``TrainingArguments`` (with the paper's optimiser defaults)
    plus the objective, data and model of one pretraining run (one HuBERT iteration). Command line, or a YAML / JSON file first.

    Raises:
        ValueError: for an unknown ``--objective`` or a bad ``--contrastive_weight``, no labels folder for an
            objective with ``hubert`` (or one for ``cmsc`` / ``simclr``), no ``--windows_dir`` nor ``--data`` nor
            ``--sources``, ``--data`` with ``--sources``, a bad ``--sources`` entry or ``--stopping_strategy``,
            ``--streaming`` without ``--sources`` or ``--max_steps``, with DataLoader workers, ``--labels_dirs`` or
            ``cmsc``, a validation fraction outside [0, 1), bad ``config_overrides`` or ``augmentations`` (none for ``simclr``),
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
    sources: list[str] = field(
        default_factory=list,
        metadata={"help": "Several sources mixed with probabilities, instead of --data: NAME=PATH@PROBABILITY each "
                  "(PATH: records, a window dataset, a Parquet folder or a Hub dataset id; NAME= and @PROBABILITY "
                  "optional: the folder name, equal chances), or a YAML list of {name, path, probability}. "
                  "Combined in --windows_dir (default OUTPUT_DIR/windows); the log gets loss/NAME."},
    )
    stopping_strategy: str = field(
        default=DEFAULT_STOPPING_STRATEGY,
        metadata={"help": "With --sources: when an epoch of the mixture ends: all_exhausted (every window of every "
                  "source seen, small sources repeated), first_exhausted or all_exhausted_without_replacement."},
    )
    streaming: bool = field(
        default=False,
        metadata={"help": "Stream the --sources (Parquet folders or Hub datasets) instead of loading them: split "
                  "across processes, buffer-shuffled, endless (set --max_steps); not cmsc; hubert reads the labels "
                  "column of shards from `hubert-ecg windows --windows_dir W --labels_dirs L --format parquet`."},
    )
    shuffle_buffer_size: int = field(
        default=1000, metadata={"help": "With --streaming: windows in the shuffle buffer (0: stream order)."}
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
    model: str | None = field(
        default=None,
        metadata={"help": "Previous iteration's model: its backbone is continued with new codebook heads.",
                  "deprecated": ["--model_name_or_path", "--model-name-or-path"]},  # read by hubert_ecg_cli
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
        for name in ("labels_dirs", "data", "exclude", "sources"):
            if isinstance(getattr(self, name), (str, dict)):
                setattr(self, name, [getattr(self, name)])
        if not self.output_dir:
            raise ValueError("--output_dir is required: where checkpoints, logs and the final model are written")
        objective = self.pretraining_objective()  # validates --objective and --contrastive_weight
        specs = self.source_specs()  # validates --sources; normalised to NAME=PATH@PROBABILITY
        self.sources = [f"{s.name}={s.path}@{s.probability!r}" for s in specs]
        if specs and self.data:
            raise ValueError("give either --data (one source) or --sources (several), not both")
        if self.stopping_strategy not in STOPPING_STRATEGIES:
            raise ValueError(f"--stopping_strategy must be one of {', '.join(STOPPING_STRATEGIES)}, got "
                             f"{self.stopping_strategy!r}")
        if self.streaming:
            if not specs:
                raise ValueError("--streaming reads --sources (Parquet folders or Hub dataset ids): give --sources")
            if objective.contrastive == "cmsc":
                raise ValueError(f"--streaming does not support {objective.name}: CMSC pairs need the adjacent "
                                 "windows of a record together, which a shuffled stream does not keep")
            if self.labels_dirs:
                raise ValueError("--streaming reads the cluster labels from the shards' `labels` column (`hubert-ecg "
                                 "windows --windows_dir W --labels_dirs L --format parquet`): drop --labels_dirs")
            if self.max_steps is None or self.max_steps <= 0:
                raise ValueError("--streaming needs --max_steps: a stream has no length to count epochs on")
            if self.shuffle_buffer_size < 0:
                raise ValueError(f"--shuffle_buffer_size must be >= 0, got {self.shuffle_buffer_size}")
            if self.dataloader_num_workers:
                raise ValueError("--streaming reads in the main process: use --dataloader_num_workers 0")
        if not self.windows_dir and (self.data or specs):
            self.windows_dir = str(Path(self.output_dir) / "windows")
        if not self.windows_dir:
            raise ValueError("--windows_dir is required: the window dataset of `hubert-ecg cluster` (or --data DIR "
                             "to build one)")
        if objective.hubert and not self.labels_dirs and not self.streaming:
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

    def source_specs(self) -> list[SourceSpec]:
        """``sources`` as :class:`~hubert_ecg.training.sources.SourceSpec` (empty for the single-source form).
        Raises ValueError naming a bad entry."""
        return parse_sources(self.sources, "--sources") if self.sources else []

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
    position = np.array([record_position(r) for r in unique])
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
        dataset: ``datasets.Dataset`` of :func:`~hubert_ecg.training.window_dataset.load_window_dataset`.
        labels: one int array (num_windows, frames) per codebook (:func:`~hubert_ecg.training.clustering.load_labels`);
            empty for the objectives without masked prediction (items then have no ``labels``).
        rows: the dataset rows this split uses (default: all), in order; a row may appear several times (a mixture
            of sources, :func:`~hubert_ecg.training.sources.mix_rows`).
        source_ids: optional int (num_windows,) the source of every dataset row; items then have a ``source_id``.
    """

    def __init__(self, dataset, labels: Sequence[np.ndarray], rows: Sequence[int] | None = None,
                 source_ids: np.ndarray | None = None):
        self.dataset = dataset.with_format("numpy", columns=["input_values"])
        self.labels = list(labels)
        self.rows = np.arange(len(dataset), dtype=np.int64) if rows is None else np.asarray(rows, dtype=np.int64)
        self.source_ids = None if source_ids is None else np.asarray(source_ids, dtype=np.int64)

    def __len__(self):
        return len(self.rows)

    def __getitems__(self, indices):
        keys = [int(i) for i in indices]
        rows = self.rows[np.asarray(keys, dtype=np.int64) % len(self.rows)]
        values = np.asarray(self.dataset[rows.tolist()]["input_values"], dtype=np.float32)
        items = [{"input_values": values[j], "sample_index": keys[j]} for j in range(len(keys))]
        if self.labels:  # not for the contrastive objectives without masked prediction
            labels = np.stack([np.asarray(lab[rows], dtype=np.int64) for lab in self.labels], axis=1)
            for j, item in enumerate(items):
                item["labels"] = labels[j]
        if self.source_ids is not None:
            for j, item in enumerate(items):
                item["source_id"] = int(self.source_ids[rows[j]])
        return items

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
        dataset: ``datasets.Dataset`` of :func:`~hubert_ecg.training.window_dataset.load_window_dataset`.
        labels: one int array (num_windows, frames) per codebook, or empty.
        pairs: int (num_pairs, 2) rows; groups: int (num_pairs,) record ids (:func:`adjacent_window_pairs`).
        source_ids: optional int (num_windows,) the source of every dataset row; items then have a ``source_id``
            (that of the pair's windows: both come from one record of one source).
    """

    def __init__(self, dataset, labels: Sequence[np.ndarray], pairs: np.ndarray, groups: np.ndarray,
                 source_ids: np.ndarray | None = None):
        self.dataset = dataset.with_format("numpy", columns=["input_values"])
        self.labels = list(labels)
        self.pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
        self.groups = np.asarray(groups, dtype=np.int64)
        self.source_ids = None if source_ids is None else np.asarray(source_ids, dtype=np.int64)

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
            if self.source_ids is not None:
                item["source_id"] = int(self.source_ids[rows[j][0]])
            if self.labels:
                item["labels"] = np.stack(
                    [np.stack([np.asarray(lab[r], dtype=np.int64) for lab in self.labels]) for r in rows[j]]
                )
            items.append(item)
        return items

    def __getitem__(self, index):
        return self.__getitems__([index])[0]


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
    if args.model:
        previous = HuBERTECGForPreTraining.from_pretrained(args.model)
        config_dict = {**previous.config.to_dict(), **overrides, "vocab_sizes": vocab_sizes,
                       "ensemble_length": len(vocab_sizes)}
        model = HuBERTECGForPreTraining(HuBERTECGConfig.from_dict(config_dict))
        model.hubert_ecg.load_state_dict(previous.hubert_ecg.state_dict())
        logger.info(f"continuing the backbone of {args.model} with new codebooks {vocab_sizes}")
        return model
    config = HuBERTECGConfig.from_preset(args.preset, **{**overrides, "vocab_sizes": vocab_sizes,
                                                        "ensemble_length": len(vocab_sizes)})
    return HuBERTECGForPreTraining(config)


def _ensure_windows(args: PretrainArguments) -> None:
    """Build ``args.windows_dir`` from ``args.data`` when it is not a window dataset yet (sharded over the processes,
    as ``hubert-ecg cluster`` does), or combine ``args.sources`` in it. Raises ValueError when it is missing and no
    ``--data`` is given."""
    specs = args.source_specs()
    if specs:
        prepare_sources(specs, args.windows_dir, stride_seconds=args.stride_seconds, exclude=args.exclude)
        return
    if is_window_dataset(args.windows_dir):
        return
    if not args.data:
        raise ValueError(f"--windows_dir {args.windows_dir} is not a window dataset yet; pass --data to build it")
    build_windows_on_all_processes(args.data, args.windows_dir, args.stride_seconds, args.exclude)


def _split_dataset(dataset, labels, rows, objective: Objective, window_seconds: float, what: str,
                   sources: np.ndarray | None = None, mixing: dict | None = None):
    """The training or validation dataset of ``rows`` for ``objective``: windows, or adjacent pairs for CMSC.

    With ``sources`` (int per dataset row) the items carry their ``source_id``; with ``mixing`` too
    (``probabilities``, ``seed``, ``stopping_strategy``) the sources' windows (pairs) are mixed by
    :func:`~hubert_ecg.training.sources.mix_rows` into the sequence of one epoch. CMSC pairs are made within one
    source (and one record)."""
    rows = np.asarray(rows, dtype=np.int64)
    num_sources = 0 if sources is None else int(sources.max()) + 1
    if objective.contrastive != "cmsc":
        if mixing is not None:
            rows, _ = mix_rows([rows[sources[rows] == s] for s in range(len(mixing["probabilities"]))], **mixing)
        return WindowLabelDataset(dataset, labels, rows, source_ids=sources)
    columns = dataset.data
    record_ids = columns.column("record_id").to_pylist()
    starts = columns.column("window_start").to_pylist()
    parts = [rows] if sources is None else [rows[sources[rows] == s] for s in range(num_sources)]
    pairs, groups, offset = [], [], 0
    for part in parts:  # groups numbered apart per source: one record id may exist in two sources
        p, g = adjacent_window_pairs(record_ids, starts, window_seconds, part)
        pairs.append(p)
        groups.append(g + offset)
        offset += int(g.max()) + 1 if len(g) else 0
    if what == "training" and sum(len(p) for p in pairs) == 0:
        raise ValueError("--objective cmsc needs records of at least two adjacent windows (10 s): none found among "
                         f"the {len(rows)} training windows")
    if mixing is not None:
        starts_at = np.cumsum([0] + [len(p) for p in pairs])
        chosen, _ = mix_rows([np.arange(starts_at[i], starts_at[i + 1]) for i in range(len(pairs))], **mixing)
        pairs, groups = np.concatenate(pairs)[chosen], np.concatenate(groups)[chosen]
    else:
        pairs, groups = np.concatenate(pairs), np.concatenate(groups)
    return WindowPairDataset(dataset, labels, pairs, groups, source_ids=sources) if len(pairs) else None


class _ListDataset(torch.utils.data.Dataset):
    """A fixed list of items (the validation windows of a stream)."""

    def __init__(self, items: list[dict]):
        self.items = items

    def __len__(self):
        return len(self.items)

    def __getitem__(self, index):
        return self.items[index]


def _streaming_datasets(args: PretrainArguments, specs: list[SourceSpec]):
    """Training stream of this process and the fixed validation windows (the first ``--max_eval_samples``, default
    256, of the held-out records' stream, the same on every process) for ``--streaming``."""
    train = StreamingWindows(specs, seed=args.data_seed if args.data_seed is not None else args.seed,
                             stopping_strategy=args.stopping_strategy, rank=args.process_index,
                             world_size=args.world_size, shuffle_buffer_size=args.shuffle_buffer_size,
                             validation_fraction=args.validation_fraction, split="train")
    evaluation = None
    if args.validation_fraction > 0:
        held = StreamingWindows(specs, seed=args.seed, stopping_strategy="all_exhausted_without_replacement",
                                shuffle_buffer_size=0, validation_fraction=args.validation_fraction,
                                split="validation", repeat=False)
        items = held.take(args.max_eval_samples if args.max_eval_samples is not None else 256)
        evaluation = _ListDataset(items) if items else None
    return train, evaluation


def _streamed_vocab_sizes(specs: list[SourceSpec]) -> list[int]:
    """The codebook sizes of streamed sources with a ``labels`` column: ``vocab_sizes`` of their ``windows.json``
    (``hubert-ecg windows --windows_dir W --labels_dirs L --format parquet``), equal in every source."""
    from .window_dataset import INFO_FILE

    found = {}
    for spec in specs:
        info_path = Path(spec.path) / INFO_FILE
        sizes = json.loads(info_path.read_text()).get("vocab_sizes") if info_path.is_file() else None
        if not sizes:
            raise ValueError(f"--sources {spec.name}: streaming a hubert objective needs Parquet shards with cluster "
                             f"labels and their vocab_sizes in windows.json; {spec.path} has none (write them with "
                             "`hubert-ecg windows --windows_dir W --labels_dirs L --format parquet`)")
        found[spec.name] = list(sizes)
    if len({tuple(v) for v in found.values()}) > 1:
        raise ValueError(f"--sources: the streamed sources have different codebooks {found}; export them from one "
                         "clustering of the combined windows")
    return next(iter(found.values()))


def build_trainer(args: PretrainArguments) -> HuBERTECGTrainer:
    """The model, data, collators and :class:`~hubert_ecg.training.trainer.HuBERTECGTrainer` of one pretraining run
    (nothing is trained yet). Evaluation batches come from the training collator without its augmentations (SimCLR
    keeps them: they make its two views, seeded by ``sample_index``, hence the same at every evaluation).

    Builds the window dataset from ``--data`` first when ``--windows_dir`` does not hold one.

    Raises:
        ValueError: labels that do not match the windows (row count or frames per window), an empty training set,
            or (CMSC) no record with two adjacent windows.
    """
    from ..processing import HuBERTECGFeatureExtractor

    objective = args.pretraining_objective()
    specs = args.source_specs()
    names = [spec.name for spec in specs]
    feature_extractor = HuBERTECGFeatureExtractor()
    window_seconds = feature_extractor.window_seconds
    labels, vocab_sizes = [], []
    if args.streaming:
        train_dataset, eval_dataset = _streaming_datasets(args, specs)
        input_length = feature_extractor.input_length
        if objective.hubert:
            vocab_sizes = _streamed_vocab_sizes(specs)
    else:
        dataset, labels, vocab_sizes = _windows_and_labels(args, objective, specs)
        input_length = len(dataset[0]["input_values"])

    model = _pretraining_model(args, vocab_sizes, labels, input_length)
    if not args.streaming:
        train_dataset, eval_dataset = _split_windows(args, dataset, labels, objective, window_seconds, specs, names)
    if eval_dataset is None and args.eval_strategy != IntervalStrategy.NO:
        logger.warning("no validation window (or pair) held out: evaluation is switched off")
        args.eval_strategy = IntervalStrategy.NO

    collator, eval_collator, metrics = _collators_and_metrics(args, model, objective)
    trainer = HuBERTECGTrainer(
        model=model,
        args=args,
        data_collator=collator,
        eval_data_collator=eval_collator,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        processing_class=feature_extractor,
        callbacks=[_LogFileCallback(Path(args.output_dir) / LOG_FILE)],
        objective=objective,
        source_names=names,
        **metrics,
    )
    logger.info(
        f"pretraining ({objective.name}): {'a stream of' if args.streaming else len(train_dataset)} train / "
        f"{len(eval_dataset or [])} validation "
        f"{'pairs' if objective.contrastive == 'cmsc' else 'windows'}, {args.world_size} process(es), "
        f"codebooks {vocab_sizes}, {model.num_parameters():,} parameters"
    )
    return trainer


def _windows_and_labels(args: PretrainArguments, objective: Objective, specs: list[SourceSpec]):
    """``(window dataset, cluster label arrays, codebook sizes)`` of ``--windows_dir`` (built first if need be)."""
    _ensure_windows(args)
    dataset = load_window_dataset(args.windows_dir)
    labels, vocab_sizes = [], []
    for directory in args.labels_dirs if objective.hubert else []:
        array, info = load_labels(directory)
        if array.shape[0] != len(dataset):
            raise ValueError(
                f"labels in {directory} have {array.shape[0]} rows but {args.windows_dir} has {len(dataset)} "
                "windows; cluster the same window dataset"
                + (" (with --sources: `hubert-ecg cluster --windows_dir` on the combined --windows_dir)"
                   if specs else "")
            )
        labels.append(array)
        vocab_sizes.append(int(info["num_clusters"]))
    return dataset, labels, vocab_sizes


def _pretraining_model(args: PretrainArguments, vocab_sizes: list[int], labels, input_length: int):
    """The fresh model from the seed, checked against the labels' frames per window, its encoder frozen if asked."""
    torch.manual_seed(args.seed)  # the fresh model's initialisation
    model = _build_model(args, vocab_sizes)
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
    return model


def _split_windows(args: PretrainArguments, dataset, labels, objective: Objective, window_seconds: float,
                   specs: list[SourceSpec], names: list[str]):
    """``(training dataset, validation dataset or None)``: the windows split by record (per source with sources)."""
    record_ids = dataset.data.column("record_id").to_pylist()
    sources = mixing = None
    if specs:  # validation records held out per source (a record id may exist in two sources)
        column = dataset.data.column("source").to_pylist()
        sources = np.asarray([names.index(name) for name in column], dtype=np.int64)
        record_ids = [f"{name}/{record}" for name, record in zip(column, record_ids)]
        mixing = dict(probabilities=[spec.probability for spec in specs],
                      seed=args.data_seed if args.data_seed is not None else args.seed,
                      stopping_strategy=args.stopping_strategy)
    train_rows, val_rows = split_by_record(record_ids, args.validation_fraction)
    if len(train_rows) == 0:
        raise ValueError(f"no training window left after holding out {args.validation_fraction} of the records")
    if args.max_eval_samples is not None:
        val_rows = val_rows[: args.max_eval_samples]
    train_dataset = _split_dataset(dataset, labels, train_rows, objective, window_seconds, "training", sources,
                                   mixing)
    eval_dataset = _split_dataset(dataset, labels, val_rows, objective, window_seconds, "validation",
                                  sources) if len(val_rows) else None
    return train_dataset, eval_dataset


def _collators_and_metrics(args: PretrainArguments, model, objective: Objective):
    """``(training collator, evaluation collator, metric keyword arguments of the Trainer)`` of the objective."""
    augmentations = args.augmentation_chain()
    model.config.lead_mask_prob = lead_mask_prob(augmentations)  # > 0: trained lead-agnostic
    if objective.contrastive:
        collator = DataCollatorForContrastivePretraining(
            model.config, seed=args.seed, augmentations=augmentations,
            views="pairs" if objective.contrastive == "cmsc" else "augment", mask=objective.hubert,
        )
    else:
        collator = DataCollatorForHuBERTECGPretraining(model.config, seed=args.seed, augmentations=augmentations)
    eval_collator = collator
    if collator.augmentations is not None and getattr(collator, "views", None) != "augment":
        eval_collator = dataclasses.replace(collator, augmentations=None)
    metrics = {}
    if objective.hubert:
        metrics = dict(compute_metrics=compute_masked_accuracy,
                       preprocess_logits_for_metrics=preprocess_logits_for_metrics)
    else:  # no labels: the evaluation loss comes from the groups, and there is nothing else to evaluate
        args.label_names = ["contrastive_groups"]
        args.prediction_loss_only = True
    return collator, eval_collator, metrics


def run_pretraining(args: PretrainArguments, command: str | None = None) -> dict:
    """Run one HuBERT pretraining iteration in this process (one of ``accelerate launch``'s, or alone).
    ``command``: the command line written on the model card (None: none).

    Returns:
        the final results (``step``, ``train_loss``, ``eval_loss``, ``eval_masked_accuracy``, ...), on every process.

    Raises:
        ValueError: labels that do not match the windows, too little data, bad arguments.
    """
    output_dir = Path(args.output_dir)
    trainer = build_trainer(args)
    if trainer.is_world_process_zero():
        output_dir.mkdir(parents=True, exist_ok=True)
    checkpoint = resolve_checkpoint(args.resume_from_checkpoint, args.output_dir)
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
        "train_windows": None if args.streaming else per_sample * len(trainer.train_dataset),
        "validation_windows": per_sample * len(trainer.eval_dataset) if trainer.eval_dataset is not None else 0,
        "processes": world,
        "effective_batch_size": args.per_device_train_batch_size * world * args.gradient_accumulation_steps,
        "vocab_sizes": vocab_sizes,
        "resumed_from": checkpoint,
    }
    if trainer.source_names:
        specs = args.source_specs()
        results["sources"] = {s.name: {"path": s.path, "probability": s.probability} for s in specs}
        results["stopping_strategy"] = args.stopping_strategy
        results["streaming"] = args.streaming
        if not args.streaming:  # windows (pairs) of each source in one epoch of the mixture
            drawn = np.bincount(_item_sources(trainer.train_dataset), minlength=len(specs))
            results["epoch_samples_per_source"] = dict(zip(trainer.source_names, drawn.tolist()))
    card = _model_card(trainer, args, metrics, results, command)
    if trainer.is_world_process_zero():
        (output_dir / RESULTS_FILE).write_text(json.dumps(results, indent=2))
    if args.push_to_hub:  # saves the model, feature extractor and card, then one upload without the checkpoints
        trainer.push_to_hub(commit_message="Upload pretrained HuBERT-ECG", card=card)
    else:
        trainer.save_model()  # the model and the feature extractor (the processing_class)
        trainer.create_model_card(card=card)
    if trainer.is_world_process_zero():
        logger.info(f"pretraining done: {json.dumps(results)}")
    return results


def _item_sources(dataset) -> np.ndarray:
    """The source of every item of a (mixed) :class:`WindowLabelDataset` or :class:`WindowPairDataset`."""
    rows = dataset.rows if isinstance(dataset, WindowLabelDataset) else dataset.pairs[:, 0]
    return dataset.source_ids[rows]


_OBJECTIVE_NOTES = {
    "hubert": "HuBERT masked-prediction",
    "cmsc": "CMSC (contrastive multi-segment coding, adjacent 5 s windows)",
    "simclr": "SimCLR (NT-Xent on two augmented views)",
    "hubert+cmsc": "HuBERT masked-prediction + CMSC",
    "hubert+simclr": "HuBERT masked-prediction + SimCLR",
}


def _model_card(trainer: HuBERTECGTrainer, args: PretrainArguments, metrics: dict, results: dict,
                command: str | None = None):
    """The package's card of the pretrained model: licence (:func:`~hubert_ecg.model_card.card_license`: the
    package's from a preset, the previous model's when continuing one), validation loss and masked accuracy."""
    from ..model_card import EvalResult, card_license, create_model_card

    base_model = args.model or None
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
        command=command,
        notes=f"{_OBJECTIVE_NOTES[trainer.objective.name]} pretraining: {results['step']} steps of "
        f"{results['effective_batch_size']} {'pairs of windows' if trainer.objective.contrastive == 'cmsc' else 'windows'}"
        f"{f', codebooks {vocab}' if (vocab := results['vocab_sizes']) else ''}, {results['train_windows'] or 'streamed'} "
        f"training and {results['validation_windows']} validation windows (held out by record).",
        tags=["self-supervised", "pretraining", *trainer.objective.name.split("+")],
    )
