"""Memory-mapped datasets of preprocessed 5 s windows for HuBERT pretraining.

Pretraining (HuBERT, Hsu et al. 2021; HuBERT-ECG, medRxiv doi 10.1101/2024.11.14.24317328) sees every 5 s window of
every record, preprocessed once by :class:`~hubert_ecg.processing.HuBERTECGFeatureExtractor` (the released
preprocessing: 500 Hz, 0.05-47 Hz band-pass, per-lead min-max scaling, 12 leads concatenated and decimated to
100 Hz). This module turns a directory, a list of files or a manifest into an Arrow dataset on disk with one row
per window:

=================  =======================  ========================================================================
column             type                     meaning
=================  =======================  ========================================================================
``input_values``   float32 (6000,)          the model input of the window (12 leads x 5 s x 100 Hz)
``lead_mask``      bool (12,)               leads present in the record (missing ones are zero-filled)
``record_id``      string                   the record's path relative to its source directory (files given
                                           one by one or in a manifest: relative to their common parent)
``window_start``   float64                  start of the window in seconds from the start of the record
=================  =======================  ========================================================================

The dataset is written in contiguous shards (``shard-00000-of-00004.arrow`` ...), one per process, so that the
windows of millions of ECGs are preprocessed in parallel (``accelerate launch``) and read back memory-mapped
(:func:`load_window_dataset`) without holding them in RAM: 6000 float32 are 24 kB per window, i.e. about 48 kB
per 10 s ECG on disk. The row order is the order of the record list whatever the number of processes. Records
that cannot be read or are shorter than one window are skipped and listed in ``skipped.jsonl``.

With ``format="parquet"`` (``hubert-ecg windows DATA... --format parquet``) the same rows are written as Parquet
files (``shard-00000-of-00001-00000.parquet`` ..., at most ``windows_per_file`` rows each, ZSTD-compressed) that
other machines read or stream (``load_dataset("parquet", data_files=..., streaming=True)``, see
:mod:`hubert_ecg.training.sources`); :func:`load_window_dataset` reads both formats.

A *multi-source* window dataset (:func:`combine_window_datasets`, written by ``hubert-ecg pretrain`` with
``--sources`` and by ``hubert-ecg windows --sources``) is a ``windows.json`` listing named sources (window datasets,
Parquet folders or Hub dataset ids); it loads as the concatenation of its sources in the listed order, with a
``source`` column (string: the source's name). Cluster labels of ``hubert-ecg cluster`` on it have one row per
window of that concatenation.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
from transformers.utils import logging

from ..processing import HuBERTECGFeatureExtractor
from ..io import find_records
from ..sharding import distributed_on_cpu  # noqa: F401  (re-exported: pretrain imports it from here)
from ..windows import record_windows

logger = logging.get_logger(__name__)

__all__ = [
    "WindowDatasetInfo",
    "build_window_dataset",
    "build_windows_on_all_processes",
    "combine_window_datasets",
    "export_window_dataset",
    "load_labels",
    "load_window_rows",
    "distributed_on_cpu",
    "load_window_dataset",
    "shard_range",
    "window_features",
]

INFO_FILE = "windows.json"
SKIPPED_FILE = "skipped.jsonl"
FORMATS = ("arrow", "parquet")
WINDOW_COLUMNS = ("input_values", "lead_mask", "record_id", "window_start")
#: the cluster labels of a window dataset (``hubert-ecg cluster`` writes them, :func:`load_labels` reads them)
LABELS_FILE = "labels.npy"
LABELS_INFO_FILE = "labels.json"


def window_features(input_length: int = 6000, num_leads: int = 12):
    """The ``datasets.Features`` of a window dataset (see the module docstring)."""
    from datasets import Features, List, Value

    return Features(
        {
            "input_values": List(Value("float32"), length=input_length),
            "lead_mask": List(Value("bool"), length=num_leads),
            "record_id": Value("string"),
            "window_start": Value("float64"),
        }
    )


def shard_range(num_items: int, num_shards: int, shard_index: int) -> tuple[int, int]:
    """Contiguous ``[start, stop)`` of shard ``shard_index`` when ``num_items`` are split into ``num_shards``.

    Shards differ in size by at most one item and concatenate back to ``range(num_items)`` in order.

    Raises:
        ValueError: if ``num_shards`` < 1 or ``shard_index`` is not in ``[0, num_shards)``.
    """
    if num_shards < 1 or not 0 <= shard_index < num_shards:
        raise ValueError(f"shard_index must lie in [0, num_shards), got shard_index={shard_index}, num_shards={num_shards}")
    base, extra = divmod(num_items, num_shards)
    start = shard_index * base + min(shard_index, extra)
    return start, start + base + (1 if shard_index < extra else 0)


def _record_roots(sources: Sequence[str | os.PathLike], records: Sequence[str]) -> list[Path]:
    """Directories that record ids are relative to: the source directories, then the common parent of the rest.

    Ids then name a record the same way wherever the data sits (``/data/ptbxl/...`` on one machine and
    ``/mnt/ptbxl/...`` on another), which keeps the record-level validation split of pretraining stable.
    """
    roots = [Path(os.path.abspath(s)) for s in sources if Path(s).is_dir()]
    loose = [os.path.dirname(os.path.abspath(r)) for r in records]
    loose = [d for d in loose if not any(Path(d).is_relative_to(root) for root in roots)]
    if loose:
        roots.append(Path(os.path.commonpath(loose)))
    return roots


def _record_id(path: str, roots: Sequence[Path]) -> str:
    """The record's path without extension, relative to the first of ``roots`` (absolute paths) containing it."""
    p = Path(os.path.abspath(path))
    for root in roots:
        try:
            return str(p.relative_to(root).with_suffix(""))
        except ValueError:
            continue
    return str(p.with_suffix(""))


@dataclass
class WindowDatasetInfo:
    """What :func:`build_window_dataset` wrote: numbers of records, windows and skipped records, and the shards."""

    num_records: int
    num_windows: int
    num_skipped: int
    shards: list[str]
    stride_seconds: float
    seconds: float


def _shard_name(index: int, count: int) -> str:
    return f"shard-{index:05d}-of-{count:05d}"


def build_window_dataset(
    sources: str | os.PathLike | Sequence[str | os.PathLike],
    output_dir: str | os.PathLike,
    stride_seconds: float | None = None,
    exclude: Sequence[str] = (),
    feature_extractor: HuBERTECGFeatureExtractor | None = None,
    process_index: int = 0,
    num_processes: int = 1,
    records_per_batch: int = 32,
    show_progress: bool = True,
    format: str = "arrow",
    windows_per_file: int = 2048,
) -> WindowDatasetInfo | None:
    """Preprocess every window of every record into Arrow shards under ``output_dir``.

    Process ``process_index`` of ``num_processes`` handles a contiguous slice of the sorted record list (see
    :func:`shard_range`) and writes ``shard-{process_index}-of-{num_processes}.arrow`` plus its skipped-record list;
    call it in every process (e.g. under ``accelerate launch``), wait for all, then call
    :func:`finalize_window_dataset` on one process (done for you when ``num_processes == 1``).

    Records are read and their windows chosen by :func:`hubert_ecg.windows.record_windows` (``window="all"``,
    ``missing_leads="zero"``) and preprocessed with ``feature_extractor`` (default: the released preprocessing),
    records of equal rate and length together: a record with fewer than 12
    standard leads (e.g. 2-lead Holter ECGs) has its missing leads zero-filled and ``lead_mask`` says which are
    real. Records that cannot be read or preprocessed, or last less than one window (5 s), are skipped and listed
    with the reason in ``skipped.jsonl``.

    Args:
        sources: directories, record files or manifests (see :func:`hubert_ecg.io.find_records`).
        output_dir: folder of the dataset; created if needed.
        stride_seconds: seconds between window starts (default: the window length, 5 s: non-overlapping windows).
        exclude: glob patterns of records to leave out (e.g. a second copy at another rate).
        feature_extractor: the preprocessing; its ``input_length`` fixes the length of ``input_values``.
        process_index, num_processes: this process and the number of processes sharing the work.
        records_per_batch: records preprocessed together (records of equal rate and length share the filtering).
        show_progress: a tqdm bar on process 0.
        format: ``"arrow"`` (one memory-mappable ``.arrow`` file per process, the default) or ``"parquet"``
            (ZSTD-compressed Parquet files of at most ``windows_per_file`` windows, for streaming and sharing).
        windows_per_file: with ``format="parquet"``, rows per file (2048 windows: about 20 MB before compression);
            more files let more processes and DataLoader workers stream in parallel.

    Returns:
        :class:`WindowDatasetInfo` when ``num_processes == 1`` (the dataset is finalized), else None.

    Raises:
        ValueError: for a missing source, an unknown ``format`` or ``windows_per_file`` < 1, or when no record at
            all yields a window.
    """
    from tqdm.auto import tqdm

    if format not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {format!r}")
    if int(windows_per_file) < 1:
        raise ValueError(f"windows_per_file must be >= 1, got {windows_per_file}")

    start_time = time.time()
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    extractor = feature_extractor or HuBERTECGFeatureExtractor()
    records = find_records(sources, exclude=exclude)
    src_list = [sources] if isinstance(sources, (str, os.PathLike)) else list(sources)
    roots = _record_roots(src_list, records)
    begin, end = shard_range(len(records), num_processes, process_index)
    mine = records[begin:end]
    name = _shard_name(process_index, num_processes)
    features = window_features(extractor.input_length, len(extractor.lead_order))
    skipped: list[dict] = []
    num_windows = 0
    with _shard_writer(output_dir, name, features, format, int(windows_per_file)) as writer:
        bar = tqdm(total=len(mine), desc="windows", unit="record", disable=not show_progress or process_index != 0)
        for offset in range(0, len(mine), records_per_batch):
            batch_paths = mine[offset : offset + records_per_batch]
            loaded, ids = [], []
            for path in batch_paths:
                try:
                    # full 5 s windows only: a record shorter than one window is skipped (and listed)
                    loaded.append(record_windows(path, extractor, window="all", stride_seconds=stride_seconds,
                                                 missing_leads="zero", min_duration=None))
                    ids.append(_record_id(path, roots))
                except Exception as error:  # noqa: BLE001 - any unreadable file is skipped and listed
                    skipped.append({"path": path, "error": f"{type(error).__name__}: {error}"})
            rows = _extract(extractor, loaded, ids, stride_seconds, skipped)
            if rows is not None and len(rows["record_id"]):
                writer.write_batch(rows)
                num_windows += len(rows["record_id"])
            bar.update(len(batch_paths))
        bar.close()
    with open(output_dir / f"{name}.skipped.jsonl", "w") as handle:
        for entry in skipped:
            handle.write(json.dumps(entry) + "\n")
    with open(output_dir / f"{name}.json", "w") as handle:
        json.dump({"records": len(mine) - len(skipped), "windows": num_windows, "skipped": len(skipped),
                   "seconds": time.time() - start_time, "files": writer.files, "format": format}, handle)
    if skipped:
        logger.warning(f"process {process_index}: skipped {len(skipped)} unreadable or too short records")
    if num_processes == 1:
        return finalize_window_dataset(output_dir, num_processes=1, stride_seconds=stride_seconds, total_records=len(records))
    return None


class _shard_writer:
    """Writes the rows of one process: one ``.arrow`` file (``datasets``' ``ArrowWriter``), or Parquet files of at
    most ``per_file`` rows (``pyarrow.parquet.ParquetWriter``); ``files`` lists what was written, in row order."""

    def __init__(self, output_dir: Path, name: str, features, format: str, per_file: int):
        self.output_dir, self.name, self.features, self.format, self.per_file = output_dir, name, features, format, per_file
        self.files: list[str] = []
        self._writer, self._rows_in_file = None, 0

    def __enter__(self):
        if self.format == "arrow":
            from datasets.arrow_writer import ArrowWriter

            self.files.append(f"{self.name}.arrow")
            self._writer = ArrowWriter(features=self.features, path=str(self.output_dir / self.files[0]))
        else:
            for stale in self.output_dir.glob(f"{self.name}-*.parquet"):  # a previous, interrupted build
                stale.unlink()
        return self

    def write_batch(self, rows: dict):
        if self.format == "arrow":
            self._writer.write_batch(rows)
            return
        import pyarrow as pa
        import pyarrow.parquet as pq

        schema = self.features.arrow_schema
        table = pa.Table.from_pydict({k: rows[k] for k in self.features}, schema=schema)
        offset = 0
        while offset < table.num_rows:
            if self._writer is None or self._rows_in_file >= self.per_file:
                self._close_parquet()
                self.files.append(f"{self.name}-{len(self.files):05d}.parquet")
                # float windows: byte-stream split then ZSTD (22 % smaller than the Arrow file on PTB-XL; a
                # dictionary would only grow them), a dictionary for the repeated record ids
                self._writer = pq.ParquetWriter(str(self.output_dir / self.files[-1]), schema, compression="zstd",
                                                use_dictionary=["record_id"],
                                                use_byte_stream_split=["input_values.list.element"])
            take = min(self.per_file - self._rows_in_file, table.num_rows - offset)
            self._writer.write_table(table.slice(offset, take), row_group_size=256)
            self._rows_in_file += take
            offset += take

    def _close_parquet(self):
        if self._writer is not None:
            self._writer.close()
        self._writer, self._rows_in_file = None, 0

    def __exit__(self, *exc):
        if self.format == "arrow":
            self._writer.finalize()
            self._writer.close()
        else:
            self._close_parquet()
        return False


def _extract(extractor, plans, ids, stride_seconds, skipped) -> dict | None:
    """Preprocess the windows of a batch of records (:class:`hubert_ecg.windows.RecordWindows`); on a failure,
    retry one by one to skip only the bad records."""
    if not plans:
        return None
    try:
        out = extractor(
            [plan.record for plan in plans], window_starts=[plan.window_starts for plan in plans], missing_leads="zero"
        )
    except Exception:  # noqa: BLE001
        if len(plans) == 1:
            raise
        parts = []
        for plan, record_id in zip(plans, ids):
            try:
                parts.append(_extract(extractor, [plan], [record_id], stride_seconds, skipped))
            except Exception as error:  # noqa: BLE001
                skipped.append({"path": record_id, "error": f"{type(error).__name__}: {error}"})
        parts = [p for p in parts if p is not None]
        if not parts:
            return None
        return {key: [v for p in parts for v in p[key]] for key in parts[0]}
    return {
        "input_values": list(np.asarray(out["input_values"], dtype=np.float32)),
        "lead_mask": [plan.lead_mask for plan in plans for _ in range(len(plan))],
        "record_id": [record_id for plan, record_id in zip(plans, ids) for _ in range(len(plan))],
        "window_start": [float(start) for plan in plans for start in plan.window_starts],
    }


def finalize_window_dataset(
    output_dir: str | os.PathLike, num_processes: int, stride_seconds: float | None = None, total_records: int | None = None
) -> WindowDatasetInfo:
    """Merge the per-shard summaries into ``windows.json`` and ``skipped.jsonl``; run once after all shards exist.

    Raises:
        ValueError: if a shard is missing or the dataset has no window.
    """
    output_dir = Path(output_dir)
    shards, totals, skipped_lines = [], {"records": 0, "windows": 0, "skipped": 0, "seconds": 0.0}, []
    formats = set()
    for index in range(num_processes):
        name = _shard_name(index, num_processes)
        if not (output_dir / f"{name}.json").exists():
            raise ValueError(f"shard {name} is missing in {output_dir}; did every process finish?")
        summary = json.loads((output_dir / f"{name}.json").read_text())
        files = summary.get("files", [f"{name}.arrow"])
        missing = [f for f in files if not (output_dir / f).exists()]
        if missing:
            raise ValueError(f"shard files {missing} are missing in {output_dir}; did every process finish?")
        shards += files
        formats.add(summary.get("format", "arrow"))
        for key in totals:
            totals[key] += summary[key]
        skipped_lines += (output_dir / f"{name}.skipped.jsonl").read_text().splitlines()
    if totals["windows"] == 0:
        raise ValueError(f"no record in the sources gave a 5 s window (skipped {totals['skipped']}); see {output_dir / SKIPPED_FILE}")
    (output_dir / SKIPPED_FILE).write_text("".join(line + "\n" for line in skipped_lines))
    info = WindowDatasetInfo(
        num_records=totals["records"],
        num_windows=totals["windows"],
        num_skipped=totals["skipped"],
        shards=shards,
        stride_seconds=float(stride_seconds) if stride_seconds else 5.0,
        seconds=totals["seconds"],
    )
    (output_dir / INFO_FILE).write_text(json.dumps({**info.__dict__, "format": formats.pop()}, indent=2))
    logger.info(
        f"window dataset {output_dir}: {info.num_windows} windows of {info.num_records} records, "
        f"{info.num_skipped} skipped"
    )
    return info


def build_windows_on_all_processes(data, windows_dir, stride_seconds=None, exclude=(), format: str = "arrow",
                                   windows_per_file: int = 2048) -> None:
    """Build the window dataset of ``data`` in ``windows_dir`` (:func:`build_window_dataset`), sharded over the
    processes of this run (``accelerate launch`` / ``torchrun``): every process calls it and writes its shard,
    process 0 finalizes, and all return once the dataset is complete. Used by ``cluster``, ``pretrain`` and
    ``windows``.

    Raises:
        ValueError: as :func:`build_window_dataset` (a missing source, no record with a window).
    """
    from accelerate import PartialState

    state = PartialState(cpu=distributed_on_cpu())
    rank, world = state.process_index, state.num_processes
    build_window_dataset(data, windows_dir, stride_seconds=stride_seconds, exclude=exclude, process_index=rank,
                         num_processes=world, show_progress=state.is_main_process, format=format,
                         windows_per_file=windows_per_file)
    state.wait_for_everyone()
    if world > 1 and state.is_main_process:
        finalize_window_dataset(windows_dir, world, stride_seconds)
    state.wait_for_everyone()


def load_window_dataset(output_dir: str | os.PathLike):
    """The window dataset written by :func:`build_window_dataset` (Arrow: memory-mapped, nothing is loaded into RAM;
    Parquet: converted once into the ``datasets`` cache) or by :func:`combine_window_datasets` (the concatenation of
    its sources, with a ``source`` column).

    Returns:
        ``datasets.Dataset`` with the columns of the module docstring, rows in record-list order.

    Raises:
        ValueError: if ``output_dir`` holds no finalized window dataset, or a source of a multi-source one cannot
            be loaded.
    """
    from datasets import Dataset, concatenate_datasets

    output_dir = Path(output_dir)
    info_path = output_dir / INFO_FILE
    if not info_path.exists():
        raise ValueError(f"{output_dir} is not a window dataset (no {INFO_FILE}); build it with build_window_dataset")
    info = json.loads(info_path.read_text())
    if "sources" in info:
        parts = []
        for source in info["sources"]:
            part = load_window_rows(source["location"], where=f"{output_dir} source {source['name']!r}")
            if len(part) != source["num_windows"]:
                raise ValueError(f"source {source['name']!r} of {output_dir} ({source['location']}) now has {len(part)} "
                                 f"windows, not the {source['num_windows']} it was combined with; rebuild it")
            parts.append(part.add_column("source", [source["name"]] * len(part)))
        return parts[0] if len(parts) == 1 else concatenate_datasets(parts)
    files = [str(output_dir / shard) for shard in info["shards"]]
    if info.get("format", "arrow") == "parquet":
        return _parquet_dataset(files)
    parts = [Dataset.from_file(file) for file in files]
    parts = [p for p in parts if len(p)]
    return parts[0] if len(parts) == 1 else concatenate_datasets(parts)


def _parquet_dataset(files: Sequence[str]):
    from datasets import load_dataset

    return load_dataset("parquet", data_files={"train": list(files)}, split="train")


def parquet_files(path: str | os.PathLike) -> list[str]:
    """The Parquet files of a folder (a ``format="parquet"`` window dataset: in row order), sorted; empty if none."""
    path = Path(path)
    if (path / INFO_FILE).exists():
        info = json.loads((path / INFO_FILE).read_text())
        if info.get("format") == "parquet" and "shards" in info:
            return [str(path / shard) for shard in info["shards"]]
    return sorted(str(p) for p in path.rglob("*.parquet")) if path.is_dir() else []


def load_window_rows(location: str | os.PathLike, where: str = "source"):
    """Window rows from ``location``: a window dataset folder (Arrow or Parquet, :func:`load_window_dataset`), a
    folder of Parquet files with the window columns, or a ``datasets`` dataset id on the Hub (split ``train``).

    Returns:
        ``datasets.Dataset`` with at least the columns ``input_values``, ``record_id`` and ``window_start``.

    Raises:
        ValueError: naming ``where`` when nothing loads there or the window columns are missing.
    """
    path = Path(location)
    if is_window_dataset(path):
        dataset = load_window_dataset(path)
    elif path.is_dir() and parquet_files(path):
        dataset = _parquet_dataset(parquet_files(path))
    elif not path.exists() and "/" in str(location) and not str(location).startswith((".", "/")):
        from datasets import load_dataset

        try:
            dataset = load_dataset(str(location), split="train")
        except Exception as error:  # noqa: BLE001 - offline, unknown id, ...
            raise ValueError(f"{where}: cannot load the Hub dataset {str(location)!r}: {type(error).__name__}: "
                             f"{error}") from None
    else:
        raise ValueError(f"{where}: {str(location)!r} is neither a window dataset, a folder of Parquet window "
                         "shards nor a Hub dataset id")
    missing = [c for c in ("input_values", "record_id", "window_start") if c not in dataset.column_names]
    if missing:
        raise ValueError(f"{where}: {str(location)!r} has no {missing} column(s); expected the window columns "
                         f"{list(WINDOW_COLUMNS)} (hubert-ecg windows)")
    return dataset


def combine_window_datasets(output_dir: str | os.PathLike, sources: Sequence[tuple[str, str]]) -> dict:
    """Write ``output_dir/windows.json`` of a multi-source window dataset: the window datasets, Parquet folders or
    Hub ids of ``sources`` (``(name, location)`` pairs), concatenated in that order by :func:`load_window_dataset`
    with a ``source`` column. Local locations are stored as absolute paths.

    Returns:
        the info written (``sources``: name, location, num_windows each; ``num_windows``).

    Raises:
        ValueError: for duplicate names, or a source that does not load (:func:`load_window_rows`).
    """
    names = [name for name, _ in sources]
    if len(set(names)) != len(names) or not names:
        raise ValueError(f"source names must be unique and at least one is needed, got {names}")
    entries = []
    for name, location in sources:
        rows = load_window_rows(location, where=f"source {name!r}")
        stored = str(Path(location).resolve()) if Path(location).exists() else str(location)
        entries.append({"name": name, "location": stored, "num_windows": len(rows)})
    info = {"sources": entries, "num_windows": sum(e["num_windows"] for e in entries)}
    Path(output_dir).mkdir(parents=True, exist_ok=True)
    (Path(output_dir) / INFO_FILE).write_text(json.dumps(info, indent=2))
    return info


def is_window_dataset(path: str | os.PathLike) -> bool:
    """True if ``path`` holds a finalized window dataset."""
    return (Path(path) / INFO_FILE).exists()


def iter_batches(dataset, start: int, stop: int, batch_size: int) -> Iterable[tuple[int, np.ndarray]]:
    """Yield ``(row, input_values (n, 6000) float32)`` for rows ``[start, stop)`` of a window dataset in batches."""
    view = dataset.with_format("numpy", columns=["input_values"])
    for row in range(start, stop, batch_size):
        values = view[row : min(row + batch_size, stop)]["input_values"]
        yield row, np.asarray(values, dtype=np.float32)


def load_labels(labels_dir: str | os.PathLike) -> tuple[np.ndarray, dict]:
    """Memory-mapped cluster labels of a window dataset (written by ``hubert-ecg cluster``,
    :mod:`hubert_ecg.training.clustering`) and their description.

    Returns:
        (labels int (num_windows, frames) memmap, info dict with ``num_clusters``, ``num_windows``, ``windows_dir``...).

    Raises:
        ValueError: if ``labels_dir`` has no ``labels.npy`` / ``labels.json``.
    """
    labels_dir = Path(labels_dir)
    if not (labels_dir / LABELS_FILE).exists() or not (labels_dir / LABELS_INFO_FILE).exists():
        raise ValueError(f"{labels_dir} holds no {LABELS_FILE} / {LABELS_INFO_FILE}; run `hubert-ecg cluster` first")
    return np.load(labels_dir / LABELS_FILE, mmap_mode="r"), json.loads((labels_dir / LABELS_INFO_FILE).read_text())


def export_window_dataset(
    windows_dir: str | os.PathLike,
    output_dir: str | os.PathLike,
    labels_dirs: Sequence[str | os.PathLike] = (),
    windows_per_file: int = 2048,
    batch_size: int = 256,
) -> dict:
    """Write a window dataset (Arrow, Parquet or multi-source) as Parquet shards, with its cluster labels as a
    ``labels`` column, so that ``hubert`` objectives can stream it (``hubert-ecg pretrain --streaming``).

    Rows keep their order. A multi-source dataset is written one source per folder (``output_dir/<name>``) plus a
    multi-source ``windows.json`` in ``output_dir``; each folder's ``windows.json`` records ``vocab_sizes`` (one per
    labels folder: its ``num_clusters``).

    Args:
        windows_dir: the window dataset (:func:`load_window_dataset`).
        output_dir: where the Parquet dataset is written.
        labels_dirs: ``hubert-ecg cluster`` outputs of that dataset (one codebook each; rows = its windows).
        windows_per_file: rows per Parquet file.
        batch_size: rows read and written at a time.

    Returns:
        the ``windows.json`` written in ``output_dir``.

    Raises:
        ValueError: labels whose row count is not the dataset's, or labels of different frame counts.
    """
    from datasets import Features, List, Value

    dataset = load_window_dataset(windows_dir)
    labels, vocab_sizes = [], []
    for directory in labels_dirs:
        array, info = load_labels(directory)
        if array.shape[0] != len(dataset):
            raise ValueError(f"labels in {directory} have {array.shape[0]} rows but {windows_dir} has {len(dataset)} "
                             "windows; cluster the same window dataset")
        labels.append(array)
        vocab_sizes.append(int(info["num_clusters"]))
    if len({lab.shape[1] for lab in labels}) > 1:
        raise ValueError(f"labels of {list(labels_dirs)} have different frame counts")
    base = window_features(len(dataset[0]["input_values"]), len(dataset[0]["lead_mask"]))
    features = Features({**base, **({"labels": List(List(Value("int16"), length=labels[0].shape[1]),
                                                    length=len(labels))} if labels else {})})
    output_dir = Path(output_dir)
    column = np.asarray(dataset["source"]) if "source" in dataset.column_names else None
    sources = [None] if column is None else list(dict.fromkeys(column.tolist()))
    written = []
    for source in sources:
        rows = np.arange(len(dataset)) if source is None else np.flatnonzero(column == source)
        target = output_dir if source is None else output_dir / source
        target.mkdir(parents=True, exist_ok=True)
        view = dataset.select_columns(list(base))
        with _shard_writer(target, _shard_name(0, 1), features, "parquet", int(windows_per_file)) as writer:
            for start in range(0, len(rows), batch_size):
                chunk = rows[start:start + batch_size]
                batch = view[chunk.tolist()]
                if labels:
                    batch["labels"] = np.stack([np.asarray(lab[chunk]) for lab in labels], axis=1).astype(np.int16).tolist()
                writer.write_batch(batch)
        info = {"num_records": len(set(dataset.select(rows)["record_id"])) if len(rows) else 0,
                "num_windows": int(len(rows)), "num_skipped": 0, "shards": writer.files, "format": "parquet",
                "vocab_sizes": vocab_sizes, "exported_from": str(Path(windows_dir).resolve())}
        (target / INFO_FILE).write_text(json.dumps(info, indent=2))
        written.append((source, str(target)))
    if sources == [None]:
        return info
    return combine_window_datasets(output_dir, written)
