"""``hubert-ecg cluster [CONFIG.yaml|CONFIG.json] [--field value ...]``: k-means pretraining targets for one HuBERT
iteration.

The command's arguments (:class:`ClusterArguments`) and ``main``; the work is
:func:`hubert_ecg.training.clustering.run_clustering` (features, k-means, labels and statistics).
``--model`` was ``--model_name_or_path`` (still read, with a note; also as a key of the file).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from .arguments import WindowingArguments
from .records import run_command

PROG = "hubert-ecg cluster"
DESCRIPTION = (
    "K-means pretraining targets for one HuBERT iteration: MFCCs (iteration 1) or the hidden states of the previous "
    "iteration's model (--features hidden --model M) of every frame of a window dataset (--windows_dir, built from "
    "--data when it does not exist yet), clustered; writes labels.npy, the k-means model and cluster_stats.json in "
    "--output_dir. Runs on one process or under accelerate launch. Exit status: 0; 1 when no record could be used "
    "(listed on stderr); 2 for a usage error or bad data."
)

__all__ = ["ClusterArguments", "main"]


@dataclass
class ClusterArguments:
    """Arguments of ``hubert-ecg cluster`` (command line, or a YAML / JSON file given as the only argument)."""

    output_dir: str = field(metadata={"help": "Folder of this iteration's labels, k-means model and statistics."})
    windows_dir: str = field(
        metadata={"help": "Window dataset (built by this command from --data when it does not exist yet)."}
    )
    data: list[str] = field(
        default_factory=list,
        metadata={"help": "Directories, record files or manifests (.txt/.csv/.jsonl) to build --windows_dir from."},
    )
    exclude: list[str] = field(
        default_factory=list, metadata={"help": "Glob patterns of records to leave out, e.g. '*/records500/*'."}
    )
    stride_seconds: float | None = field(default=None, metadata={
        "help": WindowingArguments.__dataclass_fields__["stride_seconds"].metadata["help"]})
    features: Literal["mfcc", "hidden"] = field(
        default="mfcc",
        metadata={"help": "'mfcc' (iteration 1: 13 MFCCs + deltas + delta-deltas) or 'hidden' (later iterations)."},
    )
    model: str | None = field(
        default=None,
        metadata={"help": "Previous iteration's model (save_pretrained directory or Hub id) for 'hidden'.",
                  "deprecated": ["--model_name_or_path", "--model-name-or-path"]},
    )
    layer: int | None = field(
        default=None,
        metadata={"help": "Transformer layer (1-based) whose output is clustered; default min(9, num_hidden_layers)."},
    )
    num_clusters: int = field(default=100, metadata={"help": "K: 100 for MFCCs, 500-1000 for hidden states (paper)."})
    fit_windows: int = field(default=20000, metadata={"help": "Windows sampled to fit k-means (all their frames)."})
    max_fit_frames: int = field(default=1_000_000, metadata={"help": "Cap on the frames k-means is fitted on."})
    backend: Literal["sklearn", "faiss", "auto"] = field(default="sklearn", metadata={"help": "'sklearn' (MiniBatchKMeans), 'faiss' or 'auto'."})
    kmeans_batch_size: int = field(default=10000, metadata={"help": "MiniBatchKMeans batch size (frames)."})
    kmeans_max_iter: int = field(default=100, metadata={"help": "k-means iterations (epochs over the fit sample)."})
    kmeans_n_init: int = field(default=3, metadata={"help": "k-means restarts; the best inertia is kept."})
    batch_size: int = field(default=64, metadata={"help": "Windows per feature-extraction batch."})
    compare_labels_dir: str | None = field(
        default=None, metadata={"help": "Labels of a previous iteration: report NMI with them in cluster_stats.json."}
    )
    seed: int = field(default=0, metadata={"help": "Seed of the fit sample and of k-means."})

    def __post_init__(self):
        if self.features not in ("mfcc", "hidden"):
            raise ValueError(f"--features must be 'mfcc' or 'hidden', got {self.features!r}")
        if self.features == "hidden" and not self.model:
            raise ValueError("--features hidden needs --model (the previous iteration's model)")
        if self.backend not in ("sklearn", "faiss", "auto"):
            raise ValueError(f"--backend must be 'sklearn', 'faiss' or 'auto', got {self.backend!r}")
        if self.stride_seconds is not None and not self.stride_seconds > 0:
            raise ValueError(f"--stride_seconds must be a positive number of seconds, got {self.stride_seconds}")
        if self.num_clusters < 2:
            raise ValueError(f"--num_clusters must be at least 2, got {self.num_clusters}")
        if self.fit_windows < 1 or self.batch_size < 1:
            raise ValueError("--fit_windows and --batch_size must be positive")


def _run(args: ClusterArguments):
    from hubert_ecg.training.clustering import run_clustering

    return run_clustering(args)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``hubert-ecg cluster``; returns the exit code (0; 1 when no record could be used; 2 on bad
    arguments or data)."""
    return run_command(argv, ClusterArguments, PROG, _run, DESCRIPTION)


if __name__ == "__main__":
    sys.exit(main())
