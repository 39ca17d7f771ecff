"""``hubert-ecg plot FILE --output ecg.png [--start S] [--title T] [--dpi D]``: draw a record in the standard
12-lead layout (:func:`hubert_ecg.plotting.plot_ecg`). Needs the ``[plot]`` extra (matplotlib).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .arguments import RecordFileArguments, parse
from .records import RECORD_ERRORS, record_error

PROG = "hubert-ecg plot"
DESCRIPTION = (
    "Draw an ECG record in the standard 12-lead layout (3 x 4 columns of 2.5 s and a 10 s lead II rhythm strip) on "
    "ECG paper (25 mm/s, 10 mm/mV). The format follows the extension of --output: .png, .svg, .pdf. Exit status: 0, "
    "1 when the record cannot be read or drawn from --start (one line on stderr), 2 for usage errors."
)
#: the file formats :func:`hubert_ecg.plotting.save_figure` writes (``hubert_ecg.plotting._FORMATS``; tests check)
FORMATS = (".png", ".svg", ".pdf")

__all__ = ["PlotArguments", "check_output", "main"]


def check_output(output: str, formats: tuple[str, ...] = FORMATS) -> None:
    """A usage error (``ValueError``) for an ``--output`` whose extension is not one of ``formats``."""
    if Path(output).suffix.lower() not in formats:
        raise ValueError(f"--output {output!r}: expected a file name ending in {', '.join(formats)}")


@dataclass
class PlotArguments:
    """What ``plot`` draws and where it writes it."""

    file: str = field(metadata={"positional": True, "metavar": "FILE",
                                "help": "ECG file (WFDB record name or .hea/.dat, .mat, .npy, ...)"})
    output: str = field(metadata={"help": "output file: .png, .svg or .pdf", "deprecated": ["--out"]})
    start: float = field(default=0.0, metadata={"help": "seconds into the record (default 0)"})
    title: str | None = field(default=None, metadata={
        "help": "title (default: the record's name, rate and duration)"})
    dpi: int = field(default=150, metadata={"help": "pixels per inch of a PNG"})

    def __post_init__(self):
        check_output(self.output)
        if self.dpi < 1:
            raise ValueError(f"--dpi must be a positive integer, got {self.dpi}")


def main(argv: list[str] | None = None) -> int:
    """``hubert-ecg plot FILE --output ecg.png``. Returns 0; 1 (one line on stderr) for a record that cannot be read
    or drawn from ``--start``; 2 for a usage error (a bad output name)."""
    args, records = parse(argv, (PlotArguments, RecordFileArguments), PROG, DESCRIPTION)
    from hubert_ecg.plotting import plot_ecg, save_figure

    try:
        fig = plot_ecg(args.file, sampling_rate=records.sampling_rate, lead_names=records.lead_list, start=args.start,
                       title=args.title, dpi=args.dpi)
    except RECORD_ERRORS as err:  # the record: unreadable, or --start past its end
        return record_error(PROG, args.file, err)
    out = save_figure(fig, args.output)
    print(f"wrote {out}")
    return 0
