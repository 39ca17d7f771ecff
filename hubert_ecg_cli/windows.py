"""``hubert-ecg windows DATA... --output_dir DIR [--format arrow|parquet]``: records in, a window dataset out.

The command's arguments (:class:`WindowsArguments`) and ``main``; the window dataset itself is
:mod:`hubert_ecg.training.window_dataset` (build, load, export with cluster labels) and the multi-source datasets
:mod:`hubert_ecg.training.sources`.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from .arguments import WindowingArguments
from .records import EXIT_BAD_RECORDS, EXIT_OK, BadRecords, run_command

PROG = "hubert-ecg windows"

__all__ = ["WindowsArguments", "main"]


@dataclass
class WindowsArguments:
    """Arguments of ``hubert-ecg windows``: records (``DATA...`` or ``--sources``) in, a window dataset out.

    Raises:
        ValueError: without ``DATA`` nor ``--sources``, with both, or for an unknown ``--format``.
    """

    output_dir: str = field(metadata={"help": "Folder of the window dataset (created)."})
    data: list[str] = field(
        default_factory=list,
        metadata={"help": "Directories, record files or manifests (also as leading positional arguments)."},
    )
    sources: list[str] = field(
        default_factory=list,
        metadata={"help": "Instead of DATA: NAME=PATH entries, one window dataset per source in OUTPUT_DIR/NAME and "
                  "a multi-source dataset (with a `source` column) in OUTPUT_DIR, to cluster and pretrain on."},
    )
    format: Literal["arrow", "parquet"] = field(
        default="arrow",
        metadata={"help": "'arrow' (memory-mapped, for this machine) or 'parquet' (ZSTD files to share and stream)."},
    )
    stride_seconds: float | None = field(default=None, metadata={
        "help": WindowingArguments.__dataclass_fields__["stride_seconds"].metadata["help"]})
    exclude: list[str] = field(default_factory=list, metadata={"help": "Glob patterns of records to leave out."})
    windows_per_file: int = field(
        default=2048, metadata={"help": "With --format parquet: windows per file (more files: more parallel readers)."}
    )
    windows_dir: str | None = field(
        default=None,
        metadata={"help": "Instead of DATA: an existing window dataset to write as Parquet (with --format parquet), "
                  "with the cluster labels of --labels_dirs as a `labels` column (to stream `hubert`)."},
    )
    labels_dirs: list[str] = field(
        default_factory=list, metadata={"help": "With --windows_dir: `hubert-ecg cluster` outputs of that dataset."}
    )

    def __post_init__(self):
        for name in ("data", "sources", "exclude", "labels_dirs"):
            if isinstance(getattr(self, name), (str, dict)):
                setattr(self, name, [getattr(self, name)])
        if sum(map(bool, (self.data, self.sources, self.windows_dir))) != 1:
            raise ValueError("give the records as DATA... (one dataset) or --sources NAME=PATH ... (several), or an "
                             "existing --windows_dir to export")
        if self.labels_dirs and not self.windows_dir:
            raise ValueError("--labels_dirs goes with --windows_dir (the window dataset they label)")
        if self.windows_dir and self.format != "parquet":
            raise ValueError("--windows_dir exports a window dataset as Parquet: add --format parquet")
        if self.stride_seconds is not None and not self.stride_seconds > 0:
            raise ValueError(f"--stride_seconds must be a positive number of seconds, got {self.stride_seconds}")
        if self.windows_per_file < 1:
            raise ValueError(f"--windows_per_file must be >= 1, got {self.windows_per_file}")


def _run_windows(args: WindowsArguments) -> dict:
    from hubert_ecg.sharding import distributed_on_cpu
    from hubert_ecg.training.sources import parse_sources, prepare_sources
    from hubert_ecg.training.window_dataset import (
        INFO_FILE,
        build_windows_on_all_processes,
        export_window_dataset,
    )

    if args.windows_dir:
        from accelerate import PartialState

        if PartialState(cpu=distributed_on_cpu()).is_main_process:
            export_window_dataset(args.windows_dir, args.output_dir, args.labels_dirs, args.windows_per_file)
        PartialState(cpu=distributed_on_cpu()).wait_for_everyone()
    elif args.sources:
        specs = parse_sources(args.sources, "--sources")
        prepare_sources(specs, args.output_dir, args.stride_seconds, args.exclude, format=args.format)
    else:
        build_windows_on_all_processes(args.data, args.output_dir, args.stride_seconds, args.exclude,
                                       format=args.format, windows_per_file=args.windows_per_file)
    info = json.loads((Path(args.output_dir) / INFO_FILE).read_text())
    print(json.dumps({k: v for k, v in info.items() if k != "shards"} | {"files": len(info.get("shards", []))}))
    return info


def _windows_command(args: WindowsArguments) -> int:
    """``_run_windows``, then the records it skipped (every ``skipped.jsonl`` under ``--output_dir``) listed on
    stderr with their reason: exit status 1 when there are some, 0 otherwise."""
    from accelerate import PartialState

    from hubert_ecg.sharding import distributed_on_cpu
    from hubert_ecg.training.window_dataset import SKIPPED_FILE

    _run_windows(args)
    skipped = [json.loads(line) for file in sorted(Path(args.output_dir).rglob(SKIPPED_FILE))
               for line in file.read_text().splitlines() if line.strip()]
    bad = BadRecords(PROG, noun="record")
    bad.extend((entry["path"], entry["error"]) for entry in skipped)
    if PartialState(cpu=distributed_on_cpu()).is_main_process:
        return bad.report()
    return EXIT_BAD_RECORDS if skipped else EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``hubert-ecg windows DATA... --output_dir DIR [--format parquet]``; returns the exit code (0; 1
    when records were skipped, listed on stderr; 2 on bad arguments or data). Leading arguments that are not options (nor a YAML / JSON config) are ``--data``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    config = [argv.pop(0)] if argv and argv[0].endswith((".yaml", ".yml", ".json")) else []
    positional = []
    while argv and not argv[0].startswith("-"):
        positional.append(argv.pop(0))
    if positional:
        argv = ["--data", *positional, *argv]
    return run_command(config + argv, WindowsArguments, PROG, _windows_command)
