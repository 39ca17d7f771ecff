"""``hubert-ecg evaluate [CONFIG.yaml|.json] --model M (--ptbxl_dir DIR [--split test] | --test_csv CSV
[--data_dir DIR]) [--output_dir OUT]``: AUROC, AUPRC and F1 of a classifier on a labelled set, with bootstrap CIs
(:func:`hubert_ecg.training.evaluate.evaluate`; the metrics, files and lead sets are described there). Needs the
``[train]`` extra.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Literal

from .arguments import MISSING_LEADS, RecordArguments, parse, parse_tta_windows, same_as
from .records import BadRecords, usage_error

PROG = "hubert-ecg evaluate"
DESCRIPTION = (
    "AUROC, AUPRC and F1 (or the regression metrics) of a classifier on a labelled set (PTB-XL or a manifest), each "
    "with its bootstrap CI; with --lead_sets, per lead set. Without --model: the bundled demo model (a "
    "demonstration, not a clinical tool). Exit status: 0 when every record was scored, 1 when some or all were "
    "skipped (listed on stderr), 2 for usage errors (bad arguments or files, a model that cannot be loaded)."
)
#: the help of ``--skip_bad_records`` (:data:`hubert_ecg.training.data.BAD_RECORDS_RULE`; tests check they match)
BAD_RECORDS_RULE = (
    "unusable records (unreadable, truncated, lacking leads, ...) are skipped and listed on stderr with the reason, "
    "and the command exits with status 1 after finishing with the rest; false: the first one stops the command "
    "(status 2)"
)

__all__ = ["EvaluateArguments", "main"]


@dataclass
class EvaluateArguments:
    """Arguments of ``hubert-ecg evaluate`` (what :func:`hubert_ecg.training.evaluate.evaluate` reads)."""

    model: str | None = field(default=None, metadata={
        "help": "hub id or save_pretrained directory (default: the bundled demo model, a demonstration, not a "
                "clinical tool); several, comma-separated, are evaluated on the same records, each into "
                "output_dir/<model folder name>, and lead_sets.png draws one line per model"})
    ptbxl_dir: str | None = field(default=None, metadata={
        "help": "PTB-XL folder (labels from its metadata), or several, comma-separated: their records are pooled"})
    ptbxl_folds: str | None = field(default=None, metadata={
        "help": "PTB-XL splits by strat_fold, e.g. 'train=1-7,validation=8,test=9' (default: train=1-8, "
                "validation=9, test=10)"})
    label_set: str | None = field(default=None, metadata={"help": "PTB-XL label set (default: superdiagnostic)"})
    ptbxl_sampling_rate: int = field(default=100, metadata={"help": "PTB-XL records to read: 100 or 500 Hz"})
    split: str = field(default="test", metadata={
        "help": "PTB-XL split: train, validation or test (folds 1-8, 9, 10 unless --ptbxl_folds says otherwise)"})
    test_csv: str | None = field(default=None, metadata={
        "help": "manifest CSV (filename, [age, sex], labels); a multi-label model's label columns may name some of "
                "its labels only: those outputs are evaluated"})
    data_dir: str | None = field(default=None, metadata={"help": "folder the manifest's file names are relative to"})
    output_dir: str | None = field(default=None, metadata={"help": "where metrics.json, per_label.csv, ... go"})
    threshold: float | None = field(default=None, metadata={
        "help": "F1 threshold on the probabilities (default: the model's config.label_thresholds, from hubert-ecg "
                "calibrate, where it has one; else 0.5)"})
    n_bootstrap: int = field(default=1000, metadata={"help": "bootstrap resamples for the CIs (0: none)"})
    confidence: float = field(default=0.95, metadata={"help": "confidence level of the CIs"})
    tta_windows: str = field(default="0", metadata={
        "help": "0: the first 5 s window; N: N random windows per record; all: every 5 s window, --stride_seconds "
                "apart (e.g. 3 windows of a 10 s record with --stride_seconds 2.5)"})
    stride_seconds: float | None = field(default=None, metadata={
        "help": "with --tta_windows all: seconds between the starts of consecutive windows (default 5: side by side)"})
    tta_aggregation: Literal["mean", "max"] = field(default="mean", metadata={"help": "over the TTA windows"})
    save_probabilities: bool = field(default=False, metadata={"help": "write probabilities.csv"})
    plot_roc: bool | None = field(default=None, metadata={
        "help": "draw roc_curves.png into --output_dir (default: when --output_dir is given; true without "
                "--output_dir is refused: there is nowhere to write it)"})
    batch_size: int = field(default=32, metadata={"help": "windows per model call"})
    seed: int = field(default=0, metadata={"help": "seed of TTA windows and bootstrap"})
    device: str = field(default="cpu", metadata={"help": "torch device, e.g. cpu or cuda:0"})
    missing_leads: Literal[MISSING_LEADS] = same_as(RecordArguments, "missing_leads")
    lead_sets: str | None = field(default=None, metadata={
        "help": "comma-separated lead sets (12,6,4,3,2,1: PhysioNet/CinC 2021) to score every record with, the "
                "other leads zero-filled; writes lead_sets.csv and lead_sets.png"})
    skip_bad_records: bool = field(default=True, metadata={"help": BAD_RECORDS_RULE})

    def __post_init__(self):
        if self.batch_size < 1:
            raise ValueError(f"--batch_size must be a positive integer, got {self.batch_size}")
        self.tta_windows = parse_tta_windows(self.tta_windows, self.stride_seconds)
        if self.n_bootstrap < 0:
            raise ValueError(f"--n_bootstrap must be 0 or positive, got {self.n_bootstrap}")
        if not 0 < self.confidence < 1:
            raise ValueError(f"--confidence must lie between 0 and 1, got {self.confidence}")
        if self.plot_roc and not self.output_dir:  # no silent no-op: the picture would go nowhere
            raise ValueError("--plot_roc writes roc_curves.png into --output_dir: give --output_dir OUT (or leave "
                             "--plot_roc out)")


def main(argv: list[str] | None = None) -> int:
    """``hubert-ecg evaluate``; prints the report (one per model), lists skipped records on stderr; returns 0 when
    every record was scored, 1 when some or all were skipped (:mod:`hubert_ecg_cli.records`), 2 when the arguments
    or files are wrong."""
    (args,) = parse(argv, (EvaluateArguments,), PROG, DESCRIPTION)
    from hubert_ecg.io import NoUsableRecords
    from hubert_ecg.training.evaluate import evaluate, evaluate_models, format_report

    bad = BadRecords(PROG, noun="record")
    try:
        if not args.model:
            from hubert_ecg.demo import demo_model_path

            print(f"{PROG}: using the bundled demo model ({demo_model_path()}): a demonstration, not a clinical tool.",
                  file=sys.stderr)
        if args.model and "," in args.model:
            results = evaluate_models(args)
        else:
            results = {None: evaluate(args)}
    except NoUsableRecords as err:
        bad.extend(err.skipped)
        return bad.report(err.total)
    except ValueError as err:
        return usage_error(PROG, err)
    for name, result in results.items():
        if name is not None:
            print(f"== {name}")
        print(format_report(result, args.confidence))
        bad.extend(result["skipped"])
    if args.output_dir:
        print(f"\nwritten to {args.output_dir}")
    return bad.report()
