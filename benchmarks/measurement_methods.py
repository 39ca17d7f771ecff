"""neurokit2's delineation methods under ``hubert_ecg.measure``: agreement with the devices and plausibility on PTB-XL.

For each method (``prominence``, ``dwt``, ``cwt``, ``peak``) and each way of combining the leads' boundaries (the
quartile rule of ``hubert_ecg.measurements.ONSET_QUANTILE`` = 0.25, or the median lead, 0.5):

* against the device's own measurements of the clinical fixtures in ``../shared/data/clinical`` that carry them
  (read by ``hubert_ecg.read_ecg``: GE MUSE, the two Philips files, HL7 aECG, DICOM): the median absolute
  difference, ours - device, of PR, QRS, QT and the QRS axis over those records;
* on the 81 PTB-XL fold-9 records at 500 Hz (original mV, ``../shared/data/ptbxl/records500``; PTB-XL has no
  interval annotations): the share of records where PR, QRS and QT are all reported, and the share of the NORM
  records whose PR (120-220 ms), QRS (60-120 ms) and QTc Bazett (340-470 ms) are all within normal limits.

Prints one table (the one in docs/measurements.md). Usage: ``python benchmarks/measurement_methods.py [--data
../shared/data] [--limit N]``. About 4 minutes on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import ast
import csv
import statistics
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hubert_ecg import measurements  # noqa: E402
from hubert_ecg.io import ECGRecord, read_ecg  # noqa: E402

def device_records(data: Path) -> list[ECGRecord]:
    """Every clinical fixture whose file carries the device's own measurements, read by ``hubert_ecg.read_ecg``
    (the ``[clinical]`` extra): GE MUSE, the two Philips Sierra files, HL7 aECG, DICOM."""
    records = []
    for path in sorted(p for p in (data / "clinical").rglob("*") if p.is_file() and p.suffix.lower() != ".ann"):
        try:
            record = read_ecg(path)
        except ValueError:
            continue
        if record.metadata.get("measurements"):
            record.record_name = path.name
            records.append(record)
    return records


def ptbxl_records(data: Path, limit: int | None) -> list[tuple[str, bool]]:
    rows = list(csv.DictReader(open(data / "ptbxl" / "ptbxl_database.csv", encoding="utf-8")))
    out = []
    for row in rows:
        if row["strat_fold"] not in ("9", "9.0"):
            continue
        path = data / "ptbxl" / row["filename_hr"]
        if path.with_suffix(".hea").exists():
            out.append((str(path), "NORM" in ast.literal_eval(row["scp_codes"])))
    return out[:limit]


AGREEMENT = (("heart_rate", "heart rate (bpm)"), ("pr_interval", "PR (ms)"), ("qrs_duration", "QRS (ms)"),
             ("qt_interval", "QT (ms)"), ("qtc", "QTc (ms, the device's formula or Bazett)"), ("p_axis", "P axis (deg)"),
             ("qrs_axis", "QRS axis (deg)"), ("t_axis", "T axis (deg)"))


def agreement_table(devices: list[ECGRecord]) -> None:
    """Ours - device per quantity and record with the default method, and the median and 90th percentile of the
    absolute differences (the agreement table of docs/measurements.md)."""
    outs = [measurements.measure(record) for record in devices]
    print("| quantity | " + " / ".join(r.record_name for r in devices) + " | records | median abs | 90th pct abs |")
    print("|---|---|---|---|---|")
    for key, title in AGREEMENT:
        diffs = [out["difference"].get(key, {}).get("value") for out in outs]
        cells = " / ".join("-" if d is None else f"{d:+.1f}" for d in diffs)
        got = [abs(d) for d in diffs if d is not None]
        if got:
            print(f"| {title} | {cells} | {len(got)} | {statistics.median(got):.1f} | "
                  f"{float(np.percentile(got, 90)):.1f} |")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--limit", type=int, default=None, help="PTB-XL records (default: all of fold 9)")
    parser.add_argument("--agreement", action="store_true",
                        help="only the agreement table with the devices (default method; a few seconds)")
    args = parser.parse_args(argv)
    data = Path(args.data)
    devices = device_records(data)
    if args.agreement:
        agreement_table(devices)
        return 0
    ptbxl = [(read_ecg(path), norm) for path, norm in ptbxl_records(data, args.limit)]
    configs = [(m, 0.25) for m in ("prominence", "dwt", "cwt", "peak")] + [("prominence", 0.5), ("dwt", 0.5)]
    keys = ("pr_interval", "qrs_duration", "qt_interval", "qrs_axis")
    print(f"devices: {len(devices)} records ({', '.join(r.record_name for r in devices)}); PTB-XL fold 9: "
          f"{len(ptbxl)} records, {sum(n for _, n in ptbxl)} NORM")
    print("| method | leads combined | PR | QRS | QT | QRS axis | PTB-XL: PR, QRS, QT reported | PTB-XL NORM: "
          "within normal limits |")
    print("|---|---|---|---|---|---|---|---|")
    for method, quantile in configs:
        measurements.ONSET_QUANTILE = quantile
        diffs = {key: [] for key in keys}
        for record in devices:
            out = measurements.measure(record, method=method)
            for key in keys:
                value = out["difference"].get(key, {}).get("value")
                diffs[key].append(abs(value) if value is not None else None)
        cells = []
        for key in keys:
            got = [d for d in diffs[key] if d is not None]
            cells.append(f"{statistics.median(got):.0f}" + ("" if len(got) == len(devices) else
                                                             f" ({len(devices) - len(got)} none)") if got else "none")
        reported = normal = norms = 0
        for record, norm in ptbxl:
            try:
                out = measurements.measure(record, method=method)
            except ValueError:
                continue
            pr, qrs, qtc = (out[k]["value"] for k in ("pr_interval", "qrs_duration", "qtc_bazett"))
            reported += out["qt_interval"]["value"] is not None and None not in (pr, qrs)
            if norm:
                norms += 1
                normal += None not in (pr, qrs, qtc) and 120 <= pr <= 220 and 60 <= qrs <= 120 and 340 <= qtc <= 470
        combined = "quartiles" if quantile == 0.25 else "median lead"
        print(f"| {method} | {combined} | {' | '.join(cells)} | {reported}/{len(ptbxl)} | {normal}/{norms} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
