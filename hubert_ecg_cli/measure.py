"""``hubert-ecg measure FILES... [--format table|csv|json] [--method M]``: global ECG measurements per file.

Heart rate, RR, PR, QRS, QT, QTc (Bazett, Fridericia) and the frontal P / QRS / T axes of every file
(:func:`hubert_ecg.measurements.measure`), beside the device's own values where the file carries them. Needs the
``[clinical]`` extra (neurokit2).
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from typing import Literal

from .arguments import parse
from .records import RECORD_ERRORS, BadRecords, usage_error

PROG = "hubert-ecg measure"
# table columns: quantity -> heading
_HEADINGS = {"heart_rate": "HR", "rr_interval": "RR", "pr_interval": "PR", "qrs_duration": "QRS",
             "qt_interval": "QT", "qtc_bazett": "QTcB", "qtc_fridericia": "QTcF", "p_axis": "P ax",
             "qrs_axis": "QRS ax", "t_axis": "T ax"}


def _device_as_ours(result: dict) -> tuple[dict, dict]:
    """The device block and the differences, keyed by our quantity names (the device's qtc under the QTc it was
    compared with)."""
    from hubert_ecg.measurements import QUANTITIES

    device, difference = {}, {}
    for key, entry in (result.get("device") or {}).items():
        diff = result["difference"].get(key, {})
        ours = diff.get("compared_with") or key
        if ours in QUANTITIES:
            device[ours], difference[ours] = entry.get("value"), diff.get("value")
    return device, difference


def _number(value) -> str:
    if value is None:
        return "-"
    return f"{value:g}" if float(value).is_integer() else f"{value:.1f}"


def format_results(results: list[dict], fmt: str) -> str:
    """The rows of ``hubert-ecg measure`` (see :func:`main`): ``table`` (one row per file, and for a file with the
    device's values a ``device`` and a ``difference`` row; ms, bpm, degrees; notes under it), ``csv`` (one row per
    file and quantity: value, unit, device, difference) or ``json`` (the list of :func:`measure` results)."""
    from hubert_ecg.measurements import QUANTITIES

    if fmt == "json":
        return json.dumps(results, indent=2)
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["file", "quantity", "value", "unit", "device", "difference", "method", "beats"])
        for result in results:
            device, difference = _device_as_ours(result)
            for key in QUANTITIES:
                cells = [result[key]["value"], device.get(key), difference.get(key)]
                writer.writerow([result["record"], key, *["" if c is None else c for c in cells[:1]],
                                 result[key]["unit"], *["" if c is None else c for c in cells[1:]],
                                 result["method"], result["beats"]])
        return buffer.getvalue().rstrip("\n")
    rows = [["file", "", "beats", *(_HEADINGS[k] for k in QUANTITIES)]]
    notes = []
    for result in results:
        rows.append([result["record"], "ours", str(result["beats"]),
                     *(_number(result[k]["value"]) for k in QUANTITIES)])
        if result.get("device"):
            device, difference = _device_as_ours(result)
            rows.append(["", "device", "", *(_number(device.get(k)) for k in QUANTITIES)])
            rows.append(["", "difference", "", *(_number(difference.get(k)) for k in QUANTITIES)])
        notes += [f"{result['record']}: {note}" for note in result["notes"]]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) if i < 2 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths)))
             .rstrip() for row in rows]
    units = "HR in bpm; RR, PR, QRS, QT, QTc in ms; axes in degrees"
    return "\n".join(lines + [units] + notes)


DESCRIPTION = (
    "Heart rate, RR, PR, QRS, QT, QTc (Bazett, Fridericia) and the frontal P/QRS/T axes of ECG files, beside the "
    "device's own measurements where the file carries them (docs/measurements.md). Needs the [clinical] extra "
    "(neurokit2). Exit status: 0 when every file was measured, 1 when some were not (listed on stderr), 2 for usage "
    "errors."
)
#: neurokit2's delineation methods (:data:`hubert_ecg.measurements.METHODS`; tests/test_cli.py checks they match)
METHODS = ("prominence", "dwt", "cwt", "peak")


@dataclass
class MeasureArguments:
    """What ``measure`` reads and how it prints it."""

    files: list[str] = field(metadata={
        "positional": True, "nargs": "+", "metavar": "FILE",
        "help": "ECG files (WFDB record names or .hea/.dat, .mat, ...), directories (every record under them) or "
                "manifests (.csv with a filename column, .txt one path a line)"})
    format: Literal["table", "csv", "json"] = field(default="table", metadata={"help": "output format"})
    method: Literal[METHODS] = field(default="prominence", metadata={"help": "neurokit2 delineation method"})


def main(argv: list[str] | None = None) -> int:
    """``hubert-ecg measure FILES... [--format table|csv|json] [--method M]``.

    Measures every file (any format :func:`hubert_ecg.read_ecg` reads, every record under a directory, or the
    records of a manifest) and prints the measurements on stdout (see :func:`format_results`). Returns the exit
    status: 0 when every file was measured, 1 when some (or all) were not (they are listed on stderr with the
    reason: unreadable, flat, too short, no beats), 2 for a usage error.
    """
    (args,) = parse(argv, (MeasureArguments,), PROG, DESCRIPTION)
    from hubert_ecg.io import read_ecg
    from hubert_ecg.measurements import measure
    from hubert_ecg.pipelines import expand_inputs

    try:
        inputs = expand_inputs(args.files)
    except ValueError as err:
        return usage_error(PROG, err)
    results, bad = [], BadRecords(PROG, noun="file")
    for item, error in inputs:
        if error is None:
            try:
                record = read_ecg(item)
                record.record_name = item
                results.append(measure(record, method=args.method))
                continue
            except RECORD_ERRORS as err:
                error = err
        bad.add(item, error)
    if results:
        print(format_results(results, args.format))
    return bad.report(len(inputs), verb="measured")
