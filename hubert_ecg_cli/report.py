"""``hubert-ecg report FILE [--model M] [--output report.pdf|.png|.html|.json] [--label L]``: one page for a
clinician (:func:`hubert_ecg.report.build_report`, :func:`hubert_ecg.report.write_report`). Needs the ``[plot]``
extra (matplotlib); the measurements need ``[clinical]``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .arguments import ModelArguments, parse, same_as
from .plot import check_output
from .records import RECORD_ERRORS, record_error

PROG = "hubert-ecg report"
DESCRIPTION = (
    "One page for a clinician: the 12-lead plot with the top label's attribution, the model's calibrated predictions "
    "with thresholds, the interval measurements (ours and the device's), the device's statements and a patient-free "
    "header. Without --model: the bundled demo model (not a clinical tool). Exit status: 0, 1 for a record that "
    "cannot be reported (the reason on stderr), 2 for usage errors."
)
#: what :func:`hubert_ecg.report.write_report` writes (:data:`hubert_ecg.report.REPORT_FORMATS`; tests check)
REPORT_FORMATS = (".pdf", ".png", ".html", ".json")

__all__ = ["ReportArguments", "main"]


@dataclass
class ReportArguments:
    """What ``report`` reports, with which model, and where it writes the page."""

    file: str = field(metadata={
        "positional": True, "metavar": "FILE",
        "help": "an ECG file: WFDB, .mat, .npy, EDF, HDF5, DICOM, MUSE / Philips / HL7 aECG XML, SCP-ECG, ISHNE"})
    output: str = field(default="report.pdf", metadata={"help": "report.pdf, .png, .html or .json",
                                                        "deprecated": ["--out"]})
    model: str | None = same_as(ModelArguments, "model")
    device: str | None = same_as(ModelArguments, "device")
    label: str | None = field(default=None, metadata={
        "help": "the label whose attribution is drawn (default: the top one)"})
    attribution: bool = field(default=True, metadata={
        "help": "draw the top label's attribution behind the leads (--no_attribution leaves it out: faster)"})

    def __post_init__(self):
        check_output(self.output, REPORT_FORMATS)


def main(argv: list[str] | None = None) -> int:
    """``hubert-ecg report FILE``: see :mod:`hubert_ecg.report`. Exit status 0, 1 for a record that cannot be
    reported (the reason on stderr), 2 for usage errors."""
    (args,) = parse(argv, (ReportArguments,), PROG, DESCRIPTION)

    from hubert_ecg.report import build_report, write_report

    try:
        report = build_report(args.file, args.model, label=args.label, attribution=args.attribution,
                              device=args.device)
    except RECORD_ERRORS as err:
        return record_error(PROG, args.file, err)
    out = write_report(report, args.output)
    top = report["predictions"][0]
    print(f"{report['file']}: {top['label']} {top.get('score', top.get('value')):.3f}; wrote {out}")
    return 0
