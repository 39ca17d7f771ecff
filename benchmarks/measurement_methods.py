"""neurokit2's delineation methods under ``hubert_ecg.measure``: agreement with the devices and plausibility on PTB-XL.

For each method (``prominence``, ``dwt``, ``cwt``, ``peak``) and each way of combining the leads' boundaries (the
quartile rule of ``hubert_ecg.measurements.ONSET_QUANTILE`` = 0.25, or the median lead, 0.5):

* against the device's own measurements of the clinical fixtures in ``../shared/data/clinical`` (GE MUSE
  ``muse_ecg1.xml``, read here with the standard library; the two Philips files when the ``sierraecg`` package is
  installed): the median absolute difference, ours - device, of PR, QRS, QT and the QRS axis over those records;
* on the 81 PTB-XL fold-9 records at 500 Hz (original mV, ``../shared/data/ptbxl/records500``; PTB-XL has no
  interval annotations): the share of records where PR, QRS and QT are all reported, and the share of the NORM
  records whose PR (120-220 ms), QRS (60-120 ms) and QTc Bazett (340-470 ms) are all within normal limits.

Prints one table (the one in docs/measurements.md). Usage: ``python benchmarks/measurement_methods.py [--data
../shared/data] [--limit N]``. About 4 minutes on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import ast
import base64
import csv
import statistics
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hubert_ecg import measurements  # noqa: E402
from hubert_ecg.io import ECGRecord, read_ecg  # noqa: E402

MUSE_FIELDS = {"heart_rate": "VentricularRate", "pr_interval": "PRInterval", "qrs_duration": "QRSDuration",
               "qt_interval": "QTInterval", "qtc": "QTCorrected", "p_axis": "PAxis", "qrs_axis": "RAxis",
               "t_axis": "TAxis"}
PHILIPS_FIELDS = {"heart_rate": "meanventrate", "pr_interval": "meanprint", "qrs_duration": "meanqrsdur",
                  "qt_interval": "meanqtint", "qtc": "meanqtc", "p_axis": "pfrontaxis", "qrs_axis": "qrsfrontaxis",
                  "t_axis": "tfrontaxis"}
UNITS = {"heart_rate": "bpm", "p_axis": "deg", "qrs_axis": "deg", "t_axis": "deg"}


def read_muse(path: Path) -> ECGRecord:
    """A GE MUSE XML file's 10 s rhythm (8 stored leads, mV) and its ``RestingECGMeasurements``."""
    root = ET.parse(path).getroot()
    wave = next(w for w in root.findall("Waveform") if w.findtext("WaveformType") == "Rhythm")
    names, rows = [], []
    for lead in wave.findall("LeadData"):
        raw = np.frombuffer(base64.b64decode(lead.findtext("WaveFormData")), "<i2").astype(float)
        rows.append(raw * float(lead.findtext("LeadAmplitudeUnitsPerBit")) / 1000.0)
        names.append(lead.findtext("LeadID"))
    device = root.find("RestingECGMeasurements")
    found = {key: {"value": float(device.findtext(tag)), "unit": UNITS.get(key, "ms")}
             for key, tag in MUSE_FIELDS.items() if device.findtext(tag)}
    return ECGRecord(np.stack(rows), float(wave.findtext("SampleBase")), names, {"measurements": found}, path.stem)


def read_philips(path: Path) -> ECGRecord:
    """A Philips Sierra XML file through ``sierraecg`` (its leads at the file's resolution, uV -> mV) and the first
    ``globalmeasurements`` values."""
    import sierraecg

    ecg = sierraecg.read_file(str(path))
    first = {}
    for element in ET.parse(path).getroot().iter():
        first.setdefault(element.tag.split("}")[-1], element.text)
    resolution = float(first.get("signalresolution") or 5.0)
    signal = np.stack([np.asarray(lead.samples, float) * resolution / 1000.0 for lead in ecg.leads])
    found = {key: {"value": float(first[tag]), "unit": UNITS.get(key, "ms")}
             for key, tag in PHILIPS_FIELDS.items() if first.get(tag)}
    return ECGRecord(signal, float(ecg.leads[0].sampling_freq), [lead.label for lead in ecg.leads],
                     {"measurements": found}, path.stem)


def device_records(data: Path) -> list[ECGRecord]:
    records = [read_muse(data / "clinical" / "muse" / "muse_ecg1.xml")]
    try:
        import sierraecg  # noqa: F401
    except ImportError:
        print("(sierraecg not installed: the Philips files are left out)", file=sys.stderr)
        return records
    return records + [read_philips(p) for p in sorted((data / "clinical" / "sierra").glob("*.[xX][mM][lL]"))]


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


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--limit", type=int, default=None, help="PTB-XL records (default: all of fold 9)")
    args = parser.parse_args(argv)
    data = Path(args.data)
    devices = device_records(data)
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
