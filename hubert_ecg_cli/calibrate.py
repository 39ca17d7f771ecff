"""``hubert-ecg calibrate [CONFIG.yaml|.json] --model DIR (--ptbxl_dir DIR [--split validation] | --test_csv CSV)
[--output_dir OUT]``: fit score calibration and per-label thresholds on a validation split and save them in the
model's config (:func:`hubert_ecg.training.calibration.calibrate`). Needs the ``[train]`` extra.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from .arguments import MISSING_LEADS, RecordArguments, parse_tta_windows, same_as
from .evaluate import BAD_RECORDS_RULE, EvaluateArguments
from .records import BadRecords, run_command

PROG = "hubert-ecg calibrate"
DESCRIPTION = (
    "Fit a calibration of the scores (Platt per label, or temperature) and a decision threshold per label (max F1) "
    "on a labelled validation split, and save them in the model's config.json (predict, evaluate and the pipeline "
    "apply them). Exit status: 0 when every record was used, 1 when some or all were skipped (listed on stderr), "
    "2 for bad arguments or data."
)
#: ``--method`` and ``--thresholds`` values (:func:`hubert_ecg.training.calibration.calibrate` checks them too)
METHODS = ("auto", "platt", "temperature", "none")
THRESHOLDS = ("max_f1", "none")

__all__ = ["CalibrateArguments", "main"]


@dataclass
class CalibrateArguments:
    """Arguments of ``hubert-ecg calibrate`` (what :func:`hubert_ecg.training.calibration.calibrate` reads)."""

    model: str | None = field(default=None, metadata={"help": "the classifier's save_pretrained directory (required)"})
    ptbxl_dir: str | None = field(default=None, metadata={
        "help": "PTB-XL folder, or several comma-separated (labels from their metadata)"})
    ptbxl_folds: str | None = field(default=None, metadata={
        "help": "PTB-XL splits by strat_fold, e.g. 'train=1-7,validation=8,test=9': use the same as in training"})
    split: str = field(default="validation", metadata={
        "help": "PTB-XL split to fit on: validation (never the test split you report)"})
    label_set: str | None = field(default=None, metadata={"help": "PTB-XL label set (default: superdiagnostic)"})
    ptbxl_sampling_rate: int = field(default=100, metadata={"help": "PTB-XL records to read: 100 or 500 Hz"})
    test_csv: str | None = field(default=None, metadata={
        "help": "or: a manifest CSV (filename, labels) of the records to fit on; label columns naming some of a "
                "multi-label model's labels calibrate those outputs only (the others unchanged, no threshold)"})
    data_dir: str | None = field(default=None, metadata={"help": "folder the manifest's file names are relative to"})
    method: str = field(default="auto", metadata={
        "help": "calibration: platt (per label), temperature, none, or auto (platt for multi-label, temperature "
                "for single-label)"})
    thresholds: str = field(default="max_f1", metadata={
        "help": "decision thresholds per label: max_f1 (the score of the highest F1 on the split) or none"})
    output_dir: str | None = field(default=None, metadata={
        "help": "where to write the calibrated model (a copy); default: update config.json in --model in place"})
    tta_windows: str = same_as(EvaluateArguments, "tta_windows")
    stride_seconds: float | None = same_as(EvaluateArguments, "stride_seconds")
    batch_size: int = field(default=32, metadata={"help": "windows per model call"})
    seed: int = field(default=0, metadata={"help": "seed of the TTA windows"})
    device: str = field(default="cpu", metadata={"help": "torch device, e.g. cpu or cuda:0"})
    missing_leads: Literal[MISSING_LEADS] = same_as(RecordArguments, "missing_leads")
    skip_bad_records: bool = field(default=True, metadata={"help": BAD_RECORDS_RULE})

    def __post_init__(self):
        if self.method not in METHODS:
            raise ValueError(f"--method must be auto, platt, temperature or none, got {self.method!r}")
        if self.thresholds not in THRESHOLDS:
            raise ValueError(f"--thresholds must be max_f1 or none, got {self.thresholds!r}")
        if self.batch_size < 1:
            raise ValueError(f"--batch_size must be a positive integer, got {self.batch_size}")
        self.tta_windows = parse_tta_windows(self.tta_windows, self.stride_seconds)


def main(argv: list[str] | None = None) -> int:
    """``hubert-ecg calibrate``: 0 when every record was used, 1 when some or all were skipped (listed on stderr), 2
    for bad arguments or data."""
    out = {}

    def run(args):
        from hubert_ecg.training.calibration import calibrate

        out["result"] = calibrate(args)
        out["args"] = args

    code = run_command(argv, CalibrateArguments, PROG, run, DESCRIPTION)
    if code:
        return code
    from hubert_ecg.training.calibration import format_report

    result, args = out["result"], out["args"]
    print(format_report(result))
    print(f"\nsaved to {args.output_dir or args.model}: config.json (score_calibration, label_thresholds), "
          "calibration.json")
    bad = BadRecords(PROG, noun="record")
    bad.extend(result["skipped"])
    return bad.report()
