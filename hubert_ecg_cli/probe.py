"""``hubert-ecg probe --embeddings train.parquet --eval eval.parquet [--output probe.json]``.

A linear probe of embeddings written by ``hubert-ecg embed`` (:func:`hubert_ecg.training.probe.linear_probe`:
standardised features and a logistic regression, ``C`` chosen on the train file by stratified k-fold
cross-validation); prints macro / micro AUROC and AUPRC with bootstrap CIs over the eval records
(:func:`hubert_ecg.training.evaluate.format_report`) and, with ``--output``, writes them as JSON.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from .arguments import parse
from .records import usage_error

PROG = "hubert-ecg probe"
DESCRIPTION = (
    "Linear probe of embeddings (hubert-ecg embed): standardised features and a logistic regression (scikit-learn; "
    "one per label, one-vs-rest, for multi-label), C chosen on the train file by stratified k-fold cross-validation; "
    "prints macro / micro AUROC and AUPRC with bootstrap CIs over the eval records, and a per-label table. Exit "
    "status: 0, or 2 for usage errors (a missing file, labels that differ between the files, ...)."
)

__all__ = ["ProbeArguments", "main"]


@dataclass
class ProbeArguments:
    """The two embedding files of ``probe``, the probe's settings and where the summary goes."""

    embeddings: str = field(metadata={"help": "Parquet file of the training records (with labels)"})
    eval: str = field(metadata={"help": "Parquet file of the evaluation records (same labels)"})
    labels: str | None = field(default=None, metadata={
        "help": "comma-separated label columns to use (default: those the files were written with)"})
    folds: int = field(default=5, metadata={"help": "cross-validation folds for choosing C"})
    Cs: str | None = field(default=None, metadata={
        "help": "comma-separated values of C to try (default: 9 values from 1e-4 to 1e4, log-spaced)"})
    n_bootstrap: int = field(default=1000, metadata={"help": "bootstrap resamples for the CIs (0: none)"})
    confidence: float = field(default=0.95, metadata={"help": "confidence level of the CIs"})
    threshold: float = field(default=0.5, metadata={"help": "F1 threshold on the probabilities"})
    train_fraction: float | None = field(default=None, metadata={
        "help": "fit on a random fraction in (0, 1] of the labelled training records, drawn with --seed with at "
                "least 2 positives and negatives of every label (the records `hubert-ecg finetune --train_fraction` "
                "draws from the same manifest with the same seed)"})
    seed: int = field(default=0, metadata={"help": "seed of the CV folds, the bootstrap and the --train_fraction draw"})
    output: str | None = field(default=None, metadata={"help": "write the metrics, CIs and chosen C as JSON here"})

    def __post_init__(self):
        if self.n_bootstrap < 0:
            raise ValueError("--n_bootstrap must be >= 0")
        if not 0 < self.confidence < 1:
            raise ValueError("--confidence must lie in (0, 1)")
        if self.Cs is not None:
            try:
                values = [float(c) for c in str(self.Cs).split(",") if c.strip()]
            except ValueError:
                raise ValueError(f"--Cs must be comma-separated numbers, got {self.Cs!r}") from None
            if any(not c > 0 for c in values):
                raise ValueError("--Cs values must be positive")
        if self.train_fraction is not None and not 0 < self.train_fraction <= 1:
            raise ValueError(f"--train_fraction must lie in (0, 1], got {self.train_fraction}")

    @property
    def C_list(self) -> list[float] | None:
        """``--Cs`` as numbers (None when not given: the package's default grid)."""
        return None if self.Cs is None else [float(c) for c in str(self.Cs).split(",") if c.strip()]

    @property
    def label_list(self) -> list[str] | None:
        """``--labels`` as a list (None when not given)."""
        return None if self.labels is None else [c.strip() for c in self.labels.split(",") if c.strip()]


def _clean(value):
    return None if isinstance(value, float) and math.isnan(value) else value


def _summary(args: ProbeArguments, result: dict) -> dict:
    """The JSON of ``--output``: the files, the draw, the numbers of records, the chosen C, the metrics and CIs."""
    return {"train": args.embeddings, "eval": args.eval, "train_fraction": args.train_fraction,
            "seed": args.seed, "n_train": result["n_train"],
            "n_records": result["n_records"], "C": result["C"], "confidence": args.confidence,
            "metrics": {k: _clean(v) for k, v in result["metrics"].items()},
            "ci": {k: [_clean(lo), _clean(hi)] for k, (lo, hi) in result["ci"].items()},
            "per_label": [{k: _clean(v) for k, v in row.items()} for row in result["per_label"]]}


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``hubert-ecg probe``; prints the report; returns 0, or 2 for usage errors (a missing file,
    labels that differ between the files, ...)."""
    (args,) = parse(argv, (ProbeArguments,), PROG, DESCRIPTION)
    from hubert_ecg.training.evaluate import format_report
    from hubert_ecg.training.probe import DEFAULT_CS, linear_probe, read_embeddings, subset_embeddings

    Cs = DEFAULT_CS if args.C_list is None else args.C_list
    try:
        train = read_embeddings(args.embeddings, args.label_list)
        evaluation = read_embeddings(args.eval, args.label_list)
        if args.train_fraction is not None:
            train = subset_embeddings(train, args.train_fraction, args.seed)
        result = linear_probe(train, evaluation, Cs, args.folds, args.n_bootstrap, args.confidence, args.seed,
                              args.threshold)
    except ValueError as err:
        return usage_error(PROG, err)
    chosen = ", ".join(f"{k} {v:g}" if v is not None else f"{k} (prevalence)" for k, v in result["C"].items())
    print(f"linear probe: {result['n_train']} training records ({args.embeddings}), C by {args.folds}-fold CV: "
          f"{chosen}")
    print(format_report(result, args.confidence))
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(json.dumps(_summary(args, result), indent=2))
        print(f"\nwritten to {args.output}")
    return 0
