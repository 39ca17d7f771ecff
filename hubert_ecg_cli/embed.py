"""``hubert-ecg embed INPUT... [--model M] [--layer L] --output emb.parquet | --output_dir OUT``.

One row per record through the ``ecg-feature-extraction`` pipeline (:class:`hubert_ecg.embeddings.ECGFeatureExtractionPipeline`:
the mean of the hidden states of the valid frames of all its 5 s windows), written to Parquet by
:func:`hubert_ecg.training.probe.write_embeddings` (the columns and metadata are described there). With
``--output_dir`` the rows go to Parquet files sharded over the processes of ``accelerate launch``, resumable.

The command's arguments (:class:`EmbedArguments` and the shared groups) and ``main``; the embeddings themselves
(:func:`~hubert_ecg.training.probe.embed_records`, :func:`~hubert_ecg.training.probe.read_embeddings`) are
:mod:`hubert_ecg.training.probe`.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from .arguments import (
    BACKENDS,
    BatchingArguments,
    ModelArguments,
    RecordArguments,
    WindowingArguments,
    parse,
)
from .records import BadRecords, usage_error

PROG = "hubert-ecg embed"
DESCRIPTION = (
    "Embed ECG records with a HuBERT-ECG backbone: one vector per record, the mean of the hidden states of the valid "
    "frames of all its 5 s windows (padding excluded), written to a Parquet file with the columns path, source, "
    "windows, the label columns of a labelled manifest, and embedding. --model: any HuBERT-ECG checkpoint (a "
    "classifier gives its backbone), or an exported backbone (a directory of `hubert-ecg export-onnx MODEL DIR --task "
    "feature-extraction`, run on the CPU with --backend). Unusable records (unreadable, truncated, too short, every "
    "lead flat, ...) are skipped and listed on stderr with the reason. Exit status: 0 when every record was embedded, "
    "1 when some or all were skipped (nothing is written when none was), 2 for usage errors."
)

__all__ = ["EmbedArguments", "main"]


@dataclass
class EmbedArguments:
    """What ``embed`` reads, which hidden state it averages, and where it writes."""

    inputs: list[str] = field(metadata={
        "positional": True, "nargs": "+", "metavar": "INPUT",
        "help": "ECG files, directories (every record under them) or manifests (.csv with a filename column and "
                "optional label columns, which become columns of the output; .txt one path a line)"})
    backend: Literal[BACKENDS] | None = field(default=None, metadata={
        "help": "runtime: torch (a save_pretrained directory or hub id), onnxruntime or openvino (an exported "
                "backbone; default: onnxruntime when installed, else openvino)"})
    layer: int | None = field(default=None, metadata={
        "help": "hidden state to average: 0 (after the feature projection) to num_hidden_layers, or negative from "
                "the end (default: the last)"})
    output: str | None = field(default=None, metadata={"help": "the Parquet file to write (e.g. emb.parquet)"})
    output_dir: str | None = field(default=None, metadata={
        "help": "instead of --output: write one Parquet file per process of `accelerate launch` "
                "(embeddings-<rank>-of-<N>.parquet, each batch saved as it finishes) and index.json to this folder; "
                "a rerun with the same folder skips the records already written (see docs/performance.md)"})
    source: list[str] = field(default_factory=list, metadata={
        "action": "extend",
        "help": "name of the source column: once for every input, or once per input in order (--source A B, or "
                "--source A --source B; default: the input argument each record came from)"})
    data_dir: str | None = field(default=None, metadata={
        "help": "folder the file names of labelled manifests are relative to (default: the manifest's)"})
    window: Literal["all", "first"] = field(default="all", metadata={
        "help": "windows averaged per record: every 5 s window (default) or the first"})
    min_duration: float | None = field(default=None, metadata={
        "help": "shortest record embedded, in seconds (default 2.5); records shorter than the 5 s window are "
                "zero-padded and their padding frames left out of the mean"})

    def __post_init__(self):
        if isinstance(self.source, str):  # from a configuration file
            self.source = [self.source]
        if (self.output is None) == (self.output_dir is None):
            raise ValueError("give one of --output FILE or --output_dir OUT")
        if self.min_duration is not None and self.min_duration < 0:
            raise ValueError(f"--min_duration must be >= 0 seconds, got {self.min_duration}")


def _label_columns_of(csv_path: Path) -> list[str]:
    """The label columns of a CSV manifest (those that :func:`hubert_ecg.training.data.read_manifest` takes)."""
    import pandas as pd

    try:
        columns = list(pd.read_csv(csv_path, nrows=0).columns)
    except Exception:  # read_manifest / expand_inputs report an unreadable file
        return []
    if "filename" not in columns:
        return []
    return [c for c in columns if c not in ("filename", "age", "sex") and not str(c).startswith("Unnamed:")]


def _gather_inputs(inputs: Sequence[str], sources: Sequence[str] | None, data_dir: str | None):
    """The records of ``hubert-ecg embed``'s inputs: ``(items, label_names, problem_type)`` where ``items`` are
    ``(path, source, label_row or None, error or None)``; a CSV manifest with label columns is read with
    :func:`hubert_ecg.training.data.read_manifest`, anything else with :func:`hubert_ecg.pipelines.expand_inputs`.

    Raises:
        ValueError: for an unreadable manifest, labelled manifests whose label columns differ, or a number of
            ``sources`` that is neither 1 nor the number of inputs.
    """
    from hubert_ecg.pipelines import expand_inputs
    from hubert_ecg.training.data import read_manifest

    if sources and len(sources) not in (1, len(inputs)):
        raise ValueError(f"--source: give one name, or one per input ({len(inputs)}), got {len(sources)}")
    items, label_names, problem_type = [], None, None
    for index, item in enumerate(inputs):
        source = (sources[0] if len(sources) == 1 else sources[index]) if sources else item
        path = Path(item)
        if path.suffix.lower() == ".csv" and path.is_file() and _label_columns_of(path):
            records = read_manifest(path, data_dir)
            if label_names is not None and (records.label_names != label_names or records.problem_type != problem_type):
                raise ValueError(
                    f"the manifest {item!r} has the labels {records.label_names} ({records.problem_type}) but an "
                    f"earlier one has {label_names} ({problem_type}); embed them into separate files"
                )
            label_names, problem_type = records.label_names, records.problem_type
            items += [(p, source, records.labels[i], None) for i, p in enumerate(records.paths)]
        else:
            items += [(p, source, None, error) for p, error in expand_inputs([item])]
    return items, label_names, problem_type


def _pipeline_kwargs(args: EmbedArguments, records: RecordArguments, windowing: WindowingArguments) -> dict:
    """The pipeline's window and record options of ``embed``, one process or many."""
    kwargs = {"window": args.window, "missing_leads": records.missing_leads}
    if windowing.stride_seconds is not None:
        kwargs["stride_seconds"] = windowing.stride_seconds
    if args.min_duration is not None:
        kwargs["min_duration"] = args.min_duration
    if records.sampling_rate is not None:
        kwargs["sampling_rate"] = records.sampling_rate
    if records.lead_list is not None:
        kwargs["lead_names"] = records.lead_list
    return kwargs


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``hubert-ecg embed``; returns 0 when every record was embedded, 1 when some or all were
    skipped (listed on stderr; nothing written when none was embedded), 2 for usage errors."""
    model_args, batching, records, windowing, args = parse(
        argv, (ModelArguments, BatchingArguments, RecordArguments, WindowingArguments, EmbedArguments), PROG,
        DESCRIPTION)

    from hubert_ecg.embeddings import load_feature_pipeline
    from hubert_ecg.training.probe import embed_records, write_embeddings

    if args.output_dir is not None:
        return _embed_to_dir(model_args, batching, records, windowing, args)
    try:
        items, label_names, problem_type = _gather_inputs(args.inputs, args.source, args.data_dir)
        pipe = load_feature_pipeline(model_args.model, model_args.device, model_args.dtype, args.backend)
        if args.layer is not None:
            pipe.check_layer(args.layer)
    except ValueError as err:
        return usage_error(PROG, err)
    kwargs = _pipeline_kwargs(args, records, windowing)
    embeddings, skipped = embed_records(pipe, items, label_names, problem_type, batching.batch_size, args.layer,
                                        **kwargs)
    bad = BadRecords(PROG, noun="record")
    bad.extend(skipped)
    if not len(embeddings):  # the one rule: every record listed, exit 1; nothing written
        return bad.report(len(items), verb="embedded (nothing written)")
    embeddings.metadata = {"model": model_args.model or "demo", "layer": args.layer, "window": args.window,
                           "stride_seconds": windowing.stride_seconds}
    write_embeddings(args.output, embeddings)
    print(f"wrote {len(embeddings)} embeddings of size {embeddings.vectors.shape[1]} to {args.output}")
    return bad.report(len(items), verb="embedded")


def _merge_parquet(paths: Sequence[Path], out: Path) -> None:
    """Concatenate Parquet files of one schema into ``out`` (written to a temporary name and renamed)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    tables = [pq.read_table(str(p)) for p in paths]
    table = pa.concat_tables(tables)
    tmp = out.with_name(f".{out.name}.tmp")
    pq.write_table(table, str(tmp))
    tmp.replace(out)


def _embed_to_dir(model_args, batching, records, windowing, args) -> int:
    """``hubert-ecg embed ... --output_dir OUT`` on every process of a launch (see :mod:`hubert_ecg.sharding`):
    this process's shard of the records (sorted by path) not yet in OUT, embedded one batch of ``--batch_size``
    records at a time, each batch saved as a Parquet part file (the columns and metadata of ``--output``), merged
    into ``embeddings-<rank>-of-<N>.parquet`` at the end (by process 0, every part in the folder, so parts a killed
    run left are merged too); skipped records go to ``skipped-<rank>-of-<N>.jsonl``. Exit status: 2 for a usage
    error; else 1 when a record of this process's shard (process 0: of the whole folder) was skipped, 0 otherwise."""
    import pyarrow.parquet as pq

    from hubert_ecg.embeddings import load_feature_pipeline
    from hubert_ecg.pipelines import launch_device
    from hubert_ecg.sharding import ShardedRun, chunks, main_process_first, process_state
    from hubert_ecg.training.probe import embed_records, write_embeddings

    settings = {"model": model_args.model or "demo", "layer": args.layer, "window": args.window,
                "stride": windowing.stride_seconds, "min_duration": args.min_duration, "dtype": model_args.dtype}
    if records.sampling_rate is not None or records.lead_names is not None:  # absent: the settings of earlier runs
        settings.update(sampling_rate=records.sampling_rate, lead_names=records.lead_list)
    try:
        state = process_state()
        run = ShardedRun(args.output_dir, "embed", settings, state)
        run.dir.mkdir(parents=True, exist_ok=True)
        items, label_names, problem_type = _gather_inputs(args.inputs, args.source, args.data_dir)
        device = launch_device(model_args.model, args.backend, model_args.device, state.device)
        pipe = main_process_first(
            state, lambda: load_feature_pipeline(model_args.model, device, model_args.dtype, args.backend))
        if args.layer is not None:
            pipe.check_layer(args.layer)
    except ValueError as err:
        return usage_error(PROG, err)
    kwargs = _pipeline_kwargs(args, records, windowing)
    items = sorted(items, key=lambda item: item[0])
    names = [item[0] for item in items]
    done = {e["name"] for e in run.skipped()}
    for path in run.shard_files() + run.part_files():
        done.update(str(p) for p in pq.read_table(str(path), columns=["path"]).column("path").to_pylist())
    mine = [items[i] for i in run.start(names, done)]
    first_part = len(list(run.dir.glob(f"{run.shard_path.stem}.part-*.parquet")))
    metadata = {"model": model_args.model or "demo", "layer": args.layer, "window": args.window,
                "stride_seconds": windowing.stride_seconds}
    skipped = []
    with run.progress(len(mine)) as bar:
        for k, chunk in enumerate(chunks(mine, batching.batch_size)):
            embeddings, chunk_skipped = embed_records(pipe, chunk, label_names, problem_type, batching.batch_size,
                                                      args.layer, **kwargs)
            if len(embeddings):
                embeddings.metadata = metadata
                part = run.dir / f"{run.shard_path.stem}.part-{first_part + k:06d}.parquet"
                tmp = part.with_name(f".{part.name}.tmp")
                write_embeddings(tmp, embeddings)
                tmp.replace(part)
            run.record_skipped(chunk_skipped)
            skipped += chunk_skipped
            bar.update(len(chunk))
    if skipped:
        print(f"{PROG}: process {run.rank} of {run.world}: skipped {len(skipped)} of {len(mine)} record(s):",
              file=sys.stderr)
        for path, reason in skipped:
            print(f"  {path}: {reason}", file=sys.stderr)
    state.wait_for_everyone()
    status = 1 if skipped else 0
    if state.is_main_process:
        groups: dict[str, list[Path]] = {}
        for part in run.part_files():
            groups.setdefault(part.name.split(".part-")[0], []).append(part)
        for stem, parts in groups.items():
            shard = run.dir / f"{stem}.parquet"
            _merge_parquet(([shard] if shard.exists() else []) + parts, shard)
            for part in parts:
                part.unlink()
        rows = sum(pq.read_metadata(str(p)).num_rows for p in run.shard_files())
        errors = run.skipped()
        written = {e["name"] for e in errors}
        for path in run.shard_files():
            written.update(str(p) for p in pq.read_table(str(path), columns=["path"]).column("path").to_pylist())
        run.write_index(names, finished=all(n in written for n in names), rows=rows, skipped=errors)
        print(f"{PROG}: {rows} embedding(s) in {len(run.shard_files())} file(s) under {run.dir} "
              f"({len(errors)} skipped; index.json lists them)", file=sys.stderr)
        status = 1 if errors else 0
    state.wait_for_everyone()
    return status
