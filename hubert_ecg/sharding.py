"""Inference over many processes, GPUs and machines: ``hubert-ecg predict|embed ... --output_dir OUT``.

Run under ``accelerate launch`` (or ``torchrun``), every process calls the same command; :func:`process_state`
says which process it is, :func:`my_shard` gives it its inputs and :class:`ShardedRun` keeps the output folder:

* **Sharding**: the inputs (expanded as in one process: files, every record under a directory, a manifest's
  records) are sorted by their name, the ones already written to ``OUT`` are dropped, and the rest is cut into
  ``N`` contiguous blocks, one per process, by ``accelerate.PartialState().split_between_processes`` (the first
  ``len % N`` processes get one more). The blocks are disjoint and together hold every remaining input.
* **Output**: each process writes its own file, named by its rank and the number of processes
  (``predictions-<rank>-of-<N>.csv`` for ``predict``, ``embeddings-<rank>-of-<N>.parquet`` for ``embed``), one
  batch of records at a time (``predict``: the rows are appended and flushed per batch; ``embed``: each batch is a
  Parquet part file ``embeddings-<rank>-of-<N>.part-<k>.parquet``, written to a temporary name and renamed, merged
  into the process's file when the run ends). A killed process so leaves every batch it finished.
* **Resume**: rerun the same command with the same ``OUT`` (any number of processes): the inputs found in the
  shard files (and the ``skipped`` lists) are not run again. A run refuses an ``OUT`` written with another model
  or other options (``index.json`` says which).
* **Index**: ``index.json``, written by process 0 when the run starts and again when it ends: the command, model
  and options, the number of processes of the last run, the sorted inputs, the shard files, the number of rows,
  the skipped inputs with their reasons, and ``finished`` (True once every input is in a shard file or skipped).

Without accelerate installed, or outside a launcher, there is one process (rank 0 of 1).
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from pathlib import Path
from typing import Callable, Iterable, Sequence

__all__ = ["INDEX_FILE", "distributed_on_cpu", "process_state", "my_shard", "ShardedRun"]

INDEX_FILE = "index.json"


def distributed_on_cpu() -> bool:
    """True when this process is one of several (``WORLD_SIZE`` > 1, set by ``accelerate launch`` / ``torchrun``)
    on a machine without an accelerator: accelerate then needs ``cpu=True`` to use gloo (``accelerate launch
    --multi_gpu --num_processes N`` on a CPU-only machine, or ``--cpu`` with ``ACCELERATE_USE_CPU``)."""
    import torch

    if os.environ.get("ACCELERATE_USE_CPU", "").lower() in ("1", "true", "yes"):
        return True
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    available = getattr(torch, "accelerator", None)
    has_accelerator = available.is_available() if available is not None else torch.cuda.is_available()
    return not has_accelerator


class _OneProcess:
    """The :class:`accelerate.PartialState` interface of a run with one process (no launcher, or no accelerate)."""

    process_index, num_processes, is_main_process, device = 0, 1, True, None

    def wait_for_everyone(self) -> None:
        pass


def process_state():
    """This process's ``accelerate.PartialState`` (rank ``process_index`` of ``num_processes``, its ``device``,
    ``wait_for_everyone()``), or a one-process stand-in when there is no launcher.

    Raises:
        ValueError: when launched on several processes (``WORLD_SIZE`` > 1) without accelerate installed.
    """
    try:
        from accelerate import PartialState
    except ImportError:
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            raise ValueError("several processes (WORLD_SIZE > 1) need accelerate: pip install accelerate") from None
        return _OneProcess()
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return _OneProcess()
    return PartialState(cpu=distributed_on_cpu())


def main_process_first(state, load: Callable):
    """``load()`` on the main process, then (after a barrier) on the others, and its result: what the main process
    caches on the way (the inference settings it measures for the model, :func:`hubert_ecg.inference.tuned_settings`)
    the others read, so every process runs the same settings and gives the rows one process would. An exception of
    the main process is raised after the barrier, so no process waits for it forever."""
    result, error = None, None
    if state.is_main_process:
        try:
            result = load()
        except Exception as err:  # re-raised below, after the others were released
            error = err
    state.wait_for_everyone()
    if error is not None:
        raise error
    return result if state.is_main_process else load()


def my_shard(state, items: Sequence) -> list:
    """This process's contiguous block of ``items`` (already sorted, identical on every process):
    ``state.split_between_processes`` (a process may get none)."""
    if state.num_processes == 1:
        return list(items)
    with state.split_between_processes(list(items)) as part:
        return list(part)


def _shard_name(prefix: str, rank: int, world: int, suffix: str) -> str:
    return f"{prefix}-{rank}-of-{world}{suffix}"


class ShardedRun:
    """The output folder of one sharded command (see the module docstring).

    Args:
        output_dir: the folder (created).
        command: ``"predict"`` or ``"embed"``: names the files (``predictions-*.csv`` / ``embeddings-*.parquet``).
        settings: what the rows depend on (model, options): saved in the index; a folder written with other
            settings is refused.
        state: :func:`process_state`.

    Raises:
        ValueError: when ``output_dir`` is a file, or holds the output of other settings (names both).
    """

    FILES = {"predict": ("predictions", ".csv"), "embed": ("embeddings", ".parquet")}

    def __init__(self, output_dir: str | Path, command: str, settings: dict, state) -> None:
        self.dir = Path(output_dir)
        if self.dir.exists() and not self.dir.is_dir():
            raise ValueError(f"--output_dir {str(self.dir)!r} is a file, expected a folder")
        self.command, self.settings, self.state = command, dict(settings), state
        self.prefix, self.suffix = self.FILES[command]
        self.rank, self.world = state.process_index, state.num_processes
        index = self.dir / INDEX_FILE
        if index.is_file():
            try:
                old = json.loads(index.read_text())
            except (OSError, ValueError) as err:
                raise ValueError(f"cannot read {str(index)!r}: {err}") from None
            if old.get("command") != command or old.get("settings") != self.settings:
                raise ValueError(
                    f"--output_dir {str(self.dir)!r} holds the output of `{old.get('command')}` with "
                    f"{old.get('settings')}, not `{command}` with {self.settings}: use another folder (or delete it)"
                )

    # ------------------------------------------------------------------ files
    @property
    def shard_path(self) -> Path:
        """This process's file: ``<prefix>-<rank>-of-<N><suffix>``."""
        return self.dir / _shard_name(self.prefix, self.rank, self.world, self.suffix)

    @property
    def skipped_path(self) -> Path:
        """This process's list of skipped inputs (``embed``; ``predict`` keeps them as rows with an error)."""
        return self.dir / _shard_name("skipped", self.rank, self.world, ".jsonl")

    def shard_files(self) -> list[Path]:
        """Every shard file in the folder (of this and earlier runs, any number of processes), sorted."""
        pattern = re.compile(rf"{self.prefix}-\d+-of-\d+{re.escape(self.suffix)}$")
        return sorted(p for p in self.dir.glob(f"{self.prefix}-*{self.suffix}") if pattern.match(p.name))

    def part_files(self) -> list[Path]:
        """``embed``'s per-batch part files not yet merged (left by a killed process)."""
        pattern = re.compile(rf"{self.prefix}-\d+-of-\d+\.part-\d+{re.escape(self.suffix)}$")
        return sorted(p for p in self.dir.glob(f"{self.prefix}-*.part-*{self.suffix}") if pattern.match(p.name))

    def skipped(self) -> list[dict]:
        """``{"name", "error"}`` of every input listed as skipped in the folder's ``skipped-*.jsonl``."""
        out = []
        for path in sorted(self.dir.glob("skipped-*-of-*.jsonl")):
            for line in path.read_text().splitlines():
                try:
                    out.append(json.loads(line))
                except ValueError:  # a line cut short by a kill
                    continue
        return out

    def record_skipped(self, entries: Iterable[tuple[str, str]]) -> None:
        """Append ``(name, reason)`` pairs to this process's ``skipped-<rank>-of-<N>.jsonl`` (flushed)."""
        entries = list(entries)
        if not entries:
            return
        with open(self.skipped_path, "a") as f:
            f.write("".join(json.dumps({"name": n, "error": e}) + "\n" for n, e in entries))
            f.flush()
            os.fsync(f.fileno())

    # ------------------------------------------------------------------ the run
    def start(self, names: Sequence[str], done: set[str]) -> list[int]:
        """Called by every process with the same sorted ``names`` (one per input) and ``done`` (names already
        written): writes the index (process 0), waits for every process (so none writes before all have read
        the folder) and returns the indices into ``names`` of this process's inputs."""
        remaining = [i for i, name in enumerate(names) if name not in done]
        if self.state.is_main_process:
            self.write_index(names, finished=False)
        self.state.wait_for_everyone()
        self.total_remaining = len(remaining)
        return my_shard(self.state, remaining)

    def write_index(self, names: Sequence[str], finished: bool, rows: int | None = None,
                    skipped: Sequence[dict] = ()) -> None:
        """Write ``index.json`` (atomically: a temporary file renamed)."""
        index = {
            "command": self.command, "settings": self.settings, "num_processes": self.world,
            "sharding": "inputs sorted by name; inputs not yet written split into contiguous blocks by "
                        "accelerate.PartialState().split_between_processes",
            "shard_files": [p.name for p in self.shard_files()], "inputs": list(names), "rows": rows,
            "skipped": list(skipped), "finished": finished, "written": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self.dir / f".{INDEX_FILE}.tmp"
        tmp.write_text(json.dumps(index, indent=2) + "\n")
        tmp.replace(self.dir / INDEX_FILE)

    def progress(self, count: int):
        """Process 0's progress bar over its ``count`` inputs (ECG/s); a no-op object on the others."""
        from tqdm.auto import tqdm

        desc = f"{self.command} (process 0 of {self.world})" if self.world > 1 else self.command
        return tqdm(total=count, desc=desc, unit="ECG", disable=not self.state.is_main_process, file=sys.stderr,
                    dynamic_ncols=True)


def chunks(items: Sequence, size: int) -> Iterable[list]:
    """``items`` in consecutive lists of at most ``size``."""
    size = max(1, int(size))
    for start in range(0, len(items), size):
        yield list(items[start:start + size])
