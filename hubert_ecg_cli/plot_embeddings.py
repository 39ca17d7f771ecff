"""``hubert-ecg plot-embeddings emb.parquet [--color_by label|source|COLUMN] [--method pca|umap] --output emb.png``.

A 2-D view of embeddings written by ``hubert-ecg embed``: :func:`hubert_ecg.training.probe.plot_embeddings`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from .arguments import parse
from .records import usage_error

PROG = "hubert-ecg plot-embeddings"
#: :data:`hubert_ecg.training.probe.PROJECTIONS` (tests/test_probe.py checks they match)
METHODS = ("pca", "umap")
#: groups a plot colours at most (:data:`hubert_ecg.training.probe.MAX_GROUPS`; tests/test_probe.py checks it)
MAX_GROUPS = 10
DESCRIPTION = (
    "Draw embeddings (hubert-ecg embed) in 2-D, coloured by label, source or any column: PCA (default) or UMAP "
    "(--method umap: needs the [umap] extra, umap-learn; its first call compiles numba code for about a minute). "
    f"The {MAX_GROUPS} most frequent groups get a colour, the rest are grey. Exit status: 0, or 2 for usage errors."
)

__all__ = ["PlotEmbeddingsArguments", "main"]


@dataclass
class PlotEmbeddingsArguments:
    """The embeddings file of ``plot-embeddings``, how it is drawn and where the PNG goes."""

    embeddings: str = field(metadata={"positional": True, "metavar": "EMBEDDINGS",
                                      "help": "Parquet file written by hubert-ecg embed"})
    output: str = field(metadata={"help": "the PNG file to write", "deprecated": ["--out"]})
    color_by: str = field(default="label", metadata={
        "help": "label (multi-label: the record's labels joined by +), source, or a column name"})
    method: Literal[METHODS] = field(default="pca", metadata={"help": "2-D projection"})
    title: str | None = field(default=None, metadata={
        "help": "figure title (default: method, model, layer, colouring)"})
    seed: int = field(default=0, metadata={"help": "random state of the projection"})


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``hubert-ecg plot-embeddings``; returns 0, or 2 for usage errors."""
    (args,) = parse(argv, (PlotEmbeddingsArguments,), PROG, DESCRIPTION)
    from hubert_ecg.training.probe import plot_embeddings

    try:
        legend = plot_embeddings(args.embeddings, args.output, args.color_by, args.method, args.seed, args.title)
    except ValueError as err:
        return usage_error(PROG, err)
    print(f"wrote {args.output}: " + ", ".join(f"{g} {n}" for g, n in legend.items()))
    return 0
