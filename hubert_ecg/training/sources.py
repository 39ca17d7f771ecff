"""Several pretraining sources mixed with probabilities, in memory or streamed (``hubert-ecg pretrain --sources``).

A *source* is a named place that windows come from, with the probability that the next training sample is drawn
from it (:class:`SourceSpec`):

* a directory of records, a record file or a manifest (:func:`hubert_ecg.io.find_records`): its window dataset is
  built on the first call, in ``WINDOWS_DIR/<name>`` (sharded over the processes, as ``hubert-ecg cluster`` does);
* an existing window dataset (:func:`~hubert_ecg.training.window_dataset.build_window_dataset`, Arrow or Parquet);
* a local folder of Parquet window shards (``hubert-ecg windows DATA --format parquet``);
* a ``datasets`` dataset on the Hub (its id, split ``train``) with the window columns.

**In memory** (the default): the sources are combined into one multi-source window dataset in ``--windows_dir``
(:func:`~hubert_ecg.training.window_dataset.combine_window_datasets`: the concatenation of the sources in the listed
order, with a ``source`` column); the validation records are held out per source (the record-level hash split of
:func:`~hubert_ecg.training.pretrain.split_by_record` on ``source/record_id``), and the training rows of the
sources are mixed by ``datasets.interleave_datasets(probabilities, seed, stopping_strategy)`` (:func:`mix_rows`)
into the row sequence of one epoch, which the run then shuffles per epoch like a single source. Cluster labels
(``--labels_dirs``) have one row per window of that concatenation: run ``hubert-ecg cluster --windows_dir
WINDOWS_DIR`` on the combined dataset (one k-means codebook for all sources, so a cluster id means the same
everywhere).

**Streamed** (``--streaming``): Parquet sources (local folders or Hub ids) are read as ``datasets.IterableDataset``
(``load_dataset("parquet", data_files=..., streaming=True)``), each split across the processes with
``datasets.distributed.split_dataset_by_node`` (whole files per process when their number is a multiple of the
number of processes, else every ``world_size``-th window), interleaved with the same probabilities, seed and
stopping strategy, and shuffled with a seeded buffer (new order of the files and of the windows each pass,
``set_epoch``). (With several sources every pass ends with the 5 s pause that ``datasets`` makes when it stops the
reader threads of interleaved Parquet streams, a workaround of apache/arrow#45214: negligible for passes over
real corpora, noticeable on toy ones.) :class:`StreamingWindows`
repeats the passes without end (``--max_steps`` sets the length of the run) and numbers the windows it yields
(``sample_index``), so that masks and augmentations are seeded as in memory. A resumed run replays the stream and
skips the batches already trained on (the Trainer's ``skip_first_batches``): reading them again costs I/O, not
training, and gives exactly the batches of an uninterrupted run. Streams serve ``simclr`` and, from shards with a
``labels`` column (:func:`~hubert_ecg.training.window_dataset.export_window_dataset`), ``hubert`` and ``hubert+simclr``;
not ``cmsc`` (its pairs need the adjacent windows of a record together).

Stopping strategy (``--stopping_strategy``): ``all_exhausted`` (the default here; ``datasets``' own default is
``first_exhausted``) ends an epoch when every source has been drawn at least as many times as it has windows, so
every window of every source is seen each epoch and the smaller sources are repeated to keep the probabilities;
``first_exhausted`` ends it when the first source runs out (no repetition, but most windows of the large sources
are left out of an epoch whose small source has a high probability); ``all_exhausted_without_replacement`` draws
each window exactly once (the probabilities then hold only until a source runs out).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from transformers.utils import logging

from .window_dataset import (
    build_windows_on_all_processes,
    combine_window_datasets,
    distributed_on_cpu,
    is_window_dataset,
    parquet_files,
    INFO_FILE,
)

logger = logging.get_logger(__name__)

__all__ = [
    "STOPPING_STRATEGIES",
    "SourceSpec",
    "StreamingWindows",
    "mix_rows",
    "parse_sources",
    "prepare_sources",
    "record_held_out",
    "record_position",
    "stream_source",
]

STOPPING_STRATEGIES = ("all_exhausted", "first_exhausted", "all_exhausted_without_replacement")
DEFAULT_STOPPING_STRATEGY = "all_exhausted"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass
class SourceSpec:
    """One pretraining source.

    Args:
        name: unique name (letters, digits, ``_.-``): the ``source`` column, the ``loss/<name>`` log key and the
            folder ``WINDOWS_DIR/<name>`` its windows are built in.
        path: records (directory, file or manifest), a window dataset, a Parquet folder or a Hub dataset id.
        probability: chance that a training sample comes from this source (normalised over the sources); None for
            every source: equal chances.
    """

    name: str
    path: str
    probability: float | None = None

    def kind(self) -> str:
        """``"windows"`` (a window dataset), ``"parquet"`` (a folder of Parquet files), ``"records"`` (any other
        existing path) or ``"hub"`` (no such local path: a Hub dataset id)."""
        path = Path(self.path)
        if is_window_dataset(path):
            info = json.loads((path / INFO_FILE).read_text())
            return "parquet" if info.get("format") == "parquet" else "windows"
        # Parquet files at the top or in data/ (a downloaded Hub dataset); records folders are not searched deeply
        if path.is_dir() and (any(path.glob("*.parquet")) or any(path.glob("data/*.parquet"))):
            return "parquet"
        if path.exists():
            return "records"
        return "hub"


def _parse_one(value: Any, index: int, where: str) -> SourceSpec:
    if isinstance(value, str) and value.strip().startswith("{"):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as error:
            raise ValueError(f"{where}[{index}] is not valid JSON: {error}") from None
    if isinstance(value, dict):
        unknown = sorted(set(value) - {"name", "path", "probability"})
        if unknown or "path" not in value:
            raise ValueError(f"{where}[{index}] must have a `path` and may have `name` and `probability`, got keys "
                             f"{sorted(value)}")
        name, path, probability = value.get("name"), str(value["path"]), value.get("probability")
    elif isinstance(value, str):
        text = value.strip()
        name, path, probability = None, text, None
        if "=" in text and _NAME.match(text.split("=", 1)[0]):
            name, path = text.split("=", 1)
        if "@" in path:
            head, tail = path.rsplit("@", 1)
            try:
                probability = float(tail)
                path = head
            except ValueError:
                pass
    else:
        raise ValueError(f"{where}[{index}] must be 'NAME=PATH@PROBABILITY' or a mapping, got {value!r}")
    if not path:
        raise ValueError(f"{where}[{index}] has an empty path")
    name = str(name) if name else Path(path.rstrip("/")).name
    if not _NAME.match(name):
        raise ValueError(f"{where}[{index}]: source name {name!r} must be letters, digits, '_', '.' or '-'")
    if probability is not None:
        try:
            probability = float(probability)
        except (TypeError, ValueError):
            raise ValueError(f"{where}[{index}] ({name}): probability must be a number, got {probability!r}") from None
        if not (0 <= probability < float("inf")):
            raise ValueError(f"{where}[{index}] ({name}): probability must be >= 0, got {probability}")
    return SourceSpec(name=name, path=path, probability=probability)


def parse_sources(values: Sequence[Any], where: str = "--sources") -> list[SourceSpec]:
    """The sources of ``--sources``: entries ``NAME=PATH@PROBABILITY`` (``NAME=`` and ``@PROBABILITY`` optional; the
    name defaults to the path's last part), JSON objects, or mappings ``{name, path, probability}`` from a YAML
    file. Probabilities are normalised to sum to 1; none given: equal probabilities.

    Raises:
        ValueError: naming the entry, for a bad entry, duplicate names, probabilities given for some sources only,
            or probabilities that sum to 0.
    """
    if isinstance(values, (str, dict)):
        values = [values]
    specs = [_parse_one(value, i, where) for i, value in enumerate(values)]
    names = [s.name for s in specs]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"{where}: source names must be unique, {duplicates} appear twice (give NAME=PATH)")
    given = [s.probability is not None for s in specs]
    if any(given) and not all(given):
        raise ValueError(f"{where}: give a probability to every source or to none, got "
                         f"{[(s.name, s.probability) for s in specs]}")
    if specs and all(given):
        total = sum(s.probability for s in specs)
        if total <= 0:
            raise ValueError(f"{where}: the probabilities sum to 0")
        for s in specs:
            s.probability = s.probability / total
    else:
        for s in specs:
            s.probability = 1.0 / len(specs)
    return specs


def mix_rows(
    rows: Sequence[np.ndarray], probabilities: Sequence[float], seed: int,
    stopping_strategy: str = DEFAULT_STOPPING_STRATEGY,
) -> tuple[np.ndarray, np.ndarray]:
    """One epoch's mixture of the sources: ``datasets.interleave_datasets`` of the sources' row lists.

    Args:
        rows: per source, int (n_s,) the items (window rows, or pair indices) it contributes.
        probabilities: per source, the chance that the next item comes from it.
        seed: seed of the draws.
        stopping_strategy: see the module docstring.

    Returns:
        (items int64 (N,), source int64 (N,)): the drawn items in order, and the source index of each.

    Raises:
        ValueError: for an unknown strategy, or a source with probability > 0 and no item.
    """
    from datasets import Dataset, interleave_datasets

    if stopping_strategy not in STOPPING_STRATEGIES:
        raise ValueError(f"--stopping_strategy must be one of {STOPPING_STRATEGIES}, got {stopping_strategy!r}")
    for index, (part, p) in enumerate(zip(rows, probabilities)):
        if len(part) == 0 and p > 0:
            raise ValueError(f"source {index} has no training item but probability {p}")
    parts = [Dataset.from_dict({"item": np.asarray(r, dtype=np.int64), "source": np.full(len(r), i, dtype=np.int64)})
             for i, r in enumerate(rows)]
    if len(parts) == 1:
        mixed = parts[0]
    else:
        mixed = interleave_datasets(parts, probabilities=list(map(float, probabilities)), seed=int(seed),
                                    stopping_strategy=stopping_strategy)
    table = mixed.with_format("numpy")[:]
    return np.asarray(table["item"], dtype=np.int64), np.asarray(table["source"], dtype=np.int64)


def prepare_sources(specs: Sequence[SourceSpec], windows_dir, stride_seconds=None, exclude=(),
                    format: str = "arrow") -> None:
    """Make ``windows_dir`` the multi-source window dataset of ``specs`` (every process calls it): record sources
    are built into ``windows_dir/<name>`` first (once, in ``format``), then ``windows.json`` lists every source in
    order.

    Raises:
        ValueError: when ``windows_dir`` already holds a window dataset of other sources, or a source cannot be
            built or loaded.
    """
    from accelerate import PartialState

    windows_dir = Path(windows_dir)
    locations = []
    for spec in specs:
        if spec.kind() == "records":
            target = windows_dir / spec.name
            if not is_window_dataset(target):
                build_windows_on_all_processes(spec.path, target, stride_seconds, exclude, format=format)
            locations.append((spec.name, str(target)))
        else:
            locations.append((spec.name, spec.path))
    wanted = [(n, str(Path(loc).resolve()) if Path(loc).exists() else loc) for n, loc in locations]
    state = PartialState(cpu=distributed_on_cpu())
    state.wait_for_everyone()  # every process sees windows.json as it was before this call
    if is_window_dataset(windows_dir):
        info = json.loads((windows_dir / INFO_FILE).read_text())
        have = [(s["name"], s["location"]) for s in info.get("sources", [])]
        if have == wanted:
            return
        raise ValueError(f"--windows_dir {windows_dir} already holds a window dataset of other sources "
                         f"({have or 'a single source'}); choose another --windows_dir for --sources {wanted}")
    if state.is_main_process:
        combine_window_datasets(windows_dir, locations)
    state.wait_for_everyone()


def record_position(key: str) -> float:
    """The record's place in [0, 1) for the validation split: the first 8 hex digits of the MD5 of ``key`` (its id,
    or ``source/record_id`` with several sources) over 2**32. A record is held out when it falls below the fraction."""
    import hashlib

    return int(hashlib.md5(str(key).encode()).hexdigest()[:8], 16) / 2**32


def record_held_out(source: str, record_id: str, fraction: float) -> bool:
    """Whether a record is in the validation split: the rule of :func:`~hubert_ecg.training.pretrain.split_by_record`
    on ``source/record_id`` (:func:`record_position`, without its fallback for small datasets), usable one window at
    a time on a stream."""
    return record_position(f"{source}/{record_id}") < fraction


def stream_source(spec: SourceSpec, where: str = "--sources"):
    """The windows of a Parquet source as a ``datasets.IterableDataset`` (``streaming=True``): a local folder of
    Parquet files (in file order), or a Hub dataset id (split ``train``).

    Raises:
        ValueError: for a source that is not Parquet (records or an Arrow window dataset: write Parquet shards with
            ``hubert-ecg windows --format parquet`` first) or that cannot be opened.
    """
    from datasets import load_dataset

    kind = spec.kind()
    try:
        if kind == "parquet":
            return load_dataset("parquet", data_files={"train": parquet_files(spec.path)}, split="train",
                                streaming=True)
        if kind == "hub":
            return load_dataset(spec.path, split="train", streaming=True)
    except Exception as error:  # noqa: BLE001 - offline, unknown id, bad files
        raise ValueError(f"{where} {spec.name}: cannot stream {spec.path!r}: {type(error).__name__}: {error}") from None
    raise ValueError(f"{where} {spec.name}: --streaming reads Parquet shards (a local folder or a Hub dataset), but "
                     f"{spec.path!r} is {'records' if kind == 'records' else 'an Arrow window dataset'}; write them "
                     "with `hubert-ecg windows ... --format parquet`")


class StreamingWindows(torch.utils.data.IterableDataset):
    """Training (or validation) windows streamed from Parquet sources, mixed, split across processes and shuffled.

    Each pass ``e`` (0, 1, ...) is: every source's stream (:func:`stream_source`) restricted to the split's records
    (:func:`record_held_out`), split by node (``split_dataset_by_node(rank, world_size)``), the sources interleaved
    (``interleave_datasets(probabilities, seed, stopping_strategy)``), then shuffled with a buffer of
    ``shuffle_buffer_size`` windows seeded by ``seed`` (``set_epoch(e)``: another order each pass). Training streams
    (``repeat=True``) start the next pass when one ends, without end.

    Items: ``{"input_values": float32 (6000,), "sample_index": k * world_size + rank, "source_id": int}`` for the
    ``k``-th window this process yields (plus ``labels`` int (num_codebooks, frames) when the rows have a ``labels``
    column), so that masks and augmentations are seeded per window, different on every process.

    Use ``dataloader_num_workers=0`` (workers would each replay the whole stream).

    Args:
        specs: the sources (Parquet folders or Hub ids).
        seed, stopping_strategy: of the mixture and of the shuffle.
        rank, world_size: this process and the number of processes.
        shuffle_buffer_size: windows in the shuffle buffer (0: no shuffle).
        validation_fraction: fraction of records held out; ``split`` chooses ``"train"`` (the others) or
            ``"validation"`` (those).
        repeat: start a new pass when one ends (training).
    """

    def __init__(self, specs: Sequence[SourceSpec], seed: int = 0, stopping_strategy: str = DEFAULT_STOPPING_STRATEGY,
                 rank: int = 0, world_size: int = 1, shuffle_buffer_size: int = 1000, validation_fraction: float = 0.0,
                 split: str = "train", repeat: bool = True):
        if stopping_strategy not in STOPPING_STRATEGIES:
            raise ValueError(f"--stopping_strategy must be one of {STOPPING_STRATEGIES}, got {stopping_strategy!r}")
        if split not in ("train", "validation"):
            raise ValueError(f"split must be 'train' or 'validation', got {split!r}")
        self.specs = list(specs)
        self.seed, self.stopping_strategy = int(seed), stopping_strategy
        self.rank, self.world_size = int(rank), int(world_size)
        self.shuffle_buffer_size = int(shuffle_buffer_size)
        self.validation_fraction, self.split, self.repeat = float(validation_fraction), split, repeat
        for spec in self.specs:
            stream_source(spec)  # fail now, naming the source, rather than in the DataLoader

    def stream(self, epoch: int = 0):
        """Pass ``epoch`` of this process as a ``datasets.IterableDataset`` of rows (``input_values``,
        ``record_id``, ``window_start``, ``source_id`` ...)."""
        from datasets import interleave_datasets
        from datasets.distributed import split_dataset_by_node

        parts = []
        for index, spec in enumerate(self.specs):
            part = stream_source(spec)
            if self.validation_fraction > 0:
                held = self.split == "validation"
                part = part.filter(lambda row, name=spec.name: record_held_out(name, row["record_id"],
                                                                                self.validation_fraction) == held)
            part = split_dataset_by_node(part, rank=self.rank, world_size=self.world_size)
            parts.append(part.map(lambda row, i=index: {"source_id": i}))
        mixed = parts[0] if len(parts) == 1 else interleave_datasets(
            parts, probabilities=[s.probability for s in self.specs], seed=self.seed,
            stopping_strategy=self.stopping_strategy)
        if self.shuffle_buffer_size > 0:
            # the buffer fills from one file at a time (the file order is shuffled too): reading several files
            # at once would cost datasets' 5 s pause at the end of every pass (apache/arrow#45214)
            import inspect

            one_file = {"max_buffer_input_shards": 1} if "max_buffer_input_shards" in inspect.signature(
                mixed.shuffle).parameters else {}  # (an option of recent datasets versions only)
            mixed = mixed.shuffle(seed=self.seed, buffer_size=self.shuffle_buffer_size, **one_file)
        mixed.set_epoch(int(epoch))
        return mixed

    def __iter__(self):
        count, epoch = 0, 0
        while True:
            yielded = 0
            for row in self.stream(epoch):
                item = {"input_values": np.asarray(row["input_values"], dtype=np.float32),
                        "sample_index": count * self.world_size + self.rank, "source_id": int(row["source_id"])}
                if row.get("labels") is not None:
                    item["labels"] = np.asarray(row["labels"], dtype=np.int64)
                yield item
                count += 1
                yielded += 1
            if not self.repeat:
                return
            if yielded == 0:
                raise ValueError(f"the {self.split} stream of process {self.rank} is empty: no window in "
                                 f"{[s.path for s in self.specs]} for it")
            epoch += 1

    def take(self, n: int) -> list[dict]:
        """The first ``n`` items of one pass (e.g. a fixed validation set)."""
        out = []
        for item in self:
            if len(out) >= n:
                break
            out.append(item)
        return out
