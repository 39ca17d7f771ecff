"""One page a clinician can read (``hubert-ecg report FILE [--output report.pdf|.png|.html|.json]``:
:mod:`hubert_ecg_cli.report`).

```python
from hubert_ecg.report import build_report, write_report
report = build_report("muse_ecg1.xml")            # any file hubert_ecg.read_ecg reads; default: the demo model
write_report(report, "report.pdf")                 # .pdf, .png, .html or .json
```

The page: a patient-free header (file, acquisition time, device, format, sampling rate, duration, leads, derived leads,
quality flags); the 12-lead plot on ECG paper (25 mm/s, 10 mm/mV, 3 x 4 layout and a 10 s rhythm strip of lead II,
:func:`hubert_ecg.plotting.plot_ecg`) with the top label's attribution drawn behind the leads
(:func:`hubert_ecg.explain.explain`) and its legend; the model's (calibrated) predictions with their descriptions and
thresholds; the interval measurements, ours (:func:`hubert_ecg.measurements.measure`) beside the device's own when the
file carries them, and their difference; the device's statements; and the model card's "not a clinical tool" line.
The JSON holds the same content for machines. Nothing identifying the patient is read into the report.

matplotlib draws it (the ``[plot]`` extra); the attribution uses occlusion (no extra dependency); the measurements
need the ``[clinical]`` extra, and without it the page says so instead of showing numbers.
"""

from __future__ import annotations

import base64
import html
import io
import json
import textwrap
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["REPORT_FORMATS", "DISCLAIMER", "build_report", "measurement_rows", "render_figure", "write_report"]

#: what ``write_report`` writes, by file extension
REPORT_FORMATS = (".pdf", ".png", ".html", ".json")
#: said on every report, whatever the model card says besides
DISCLAIMER = "Not a medical device: not for clinical decisions."
#: predictions listed on the page: the positives and at least this many of the highest scores
TOP_PREDICTIONS = 5
#: the attribution method of the page: occlusion needs no optional dependency and is fast on one record
ATTRIBUTION_METHOD = "occlusion"
_MEASURES = (("heart_rate", "Heart rate"), ("rr_interval", "RR"), ("pr_interval", "PR"),
             ("qrs_duration", "QRS"), ("qt_interval", "QT"), ("qtc_bazett", "QTc Bazett"),
             ("qtc_fridericia", "QTc Fridericia"), ("p_axis", "P axis"), ("qrs_axis", "QRS axis"),
             ("t_axis", "T axis"))


def _model_note(pipe, is_demo: bool) -> str:
    """The model card's own "not a clinical tool" sentence where it has one, else the package's disclaimer."""
    if is_demo:
        return ("The bundled demo model: a small model trained on PTB-XL records for NORM/MI/STTC/CD/HYP, a "
                "demonstration of the package, not a clinical tool. " + DISCLAIMER)
    source = Path(str(getattr(pipe.model, "name_or_path", "") or ""))
    card = source / "README.md"
    if card.is_file():
        for line in card.read_text(encoding="utf-8", errors="replace").splitlines():
            if "not a clinical tool" in line.lower() or "not a medical device" in line.lower():
                return line.strip().lstrip("#>*- ").strip()
    return DISCLAIMER


def _measurements(record) -> dict:
    """Ours, the device's (the file's own, ``metadata["measurements"]``) and their difference; an ``error`` in place
    of numbers where they cannot be measured or the ``[clinical]`` extra is missing."""
    device = dict(record.metadata.get("measurements") or {})
    try:
        from .measurements import measure
    except ImportError as err:
        return {"error": f"measurements need the [clinical] extra ({err})", "device": device}
    try:
        result = measure(record)
    except ImportError as err:
        return {"error": f"measurements need the [clinical] extra: pip install \"hubert-ecg[clinical]\" ({err})",
                "device": device}
    except ValueError as err:
        return {"error": str(err), "device": device}
    return result


def build_report(
    source: Any,
    model: Any = None,
    *,
    label: str | None = None,
    attribution: bool = True,
    device: str | None = None,
    start: float | None = None,
    lead_set: Any = None,
) -> dict:
    """The content of a report of one record, as JSON-able data (see the module docstring).

    Args:
        source: a file path (any format :func:`hubert_ecg.read_ecg` reads, the clinical ones included) or an
            :class:`~hubert_ecg.ECGRecord`.
        model: None (the bundled demo model), a hub id or ``save_pretrained`` directory of a classifier, or an
            ``ECGClassificationPipeline`` already loaded (the web app's).
        label: the label whose attribution is drawn (default: the highest score).
        attribution: False to skip the attribution (faster).
        device: torch device of the model.
        start: seconds into the record of the 10 s drawn and explained (default None: the plot from 0 s and the
            attribution over the whole record).
        lead_set: score, explain and draw with these leads only, the others zero-filled as missing: a name of
            :data:`hubert_ecg.leads.LEAD_SETS` or a list of lead names (the pipeline's ``lead_set=``).

    Returns:
        dict with ``file``, ``header``, ``model``, ``predictions``, ``measurements``, ``statements``,
        ``attribution`` (and, under the private key ``_plot``, what :func:`render_figure` draws: the record and the
        attribution array; :func:`write_report` leaves it out of the JSON).

    Raises:
        ValueError: naming the file, for an unreadable record or one the model cannot score (too short, every lead
            flat), or a model that cannot be loaded.
    """
    from .demo import demo_model_path
    from .io import ECGRecord, read_ecg
    from .leads import lead_set as _lead_set
    from .pipelines import ECGClassificationPipeline, load_pipeline

    record = source if isinstance(source, ECGRecord) else read_ecg(source)
    name = str(source) if not isinstance(source, ECGRecord) else (record.record_name or "record")
    leads = None if lead_set is None else _lead_set(lead_set)
    if isinstance(model, ECGClassificationPipeline):
        pipe = model
        source = Path(str(getattr(pipe.model, "name_or_path", "") or ""))
        is_demo = source.resolve() == Path(demo_model_path()).resolve()
    else:
        pipe, is_demo = load_pipeline(model, device, None), model is None
    details = pipe(record, return_details=True, lead_set=leads)
    if details["error"] is not None:
        raise ValueError(f"{name}: {details['error']}")
    config = pipe.model.config
    thresholds = config.label_thresholds or {}
    problem_type = config.problem_type_of()
    predictions = []
    for rank, p in enumerate(details["predictions"]):
        if rank >= TOP_PREDICTIONS and not p.get("positive"):
            continue
        row = {"label": p["label"], "description": p.get("description"), "threshold": thresholds.get(p["label"])}
        row.update({k: p[k] for k in ("score", "value", "positive") if k in p})
        predictions.append(row)

    meta = record.metadata
    duration = record.signal.shape[1] / record.sampling_rate
    report = {
        "file": name,
        "header": {
            "acquisition_time": meta.get("acquisition_time"),
            "device": meta.get("device"),
            "source_format": meta.get("source_format"),
            "sampling_rate": float(record.sampling_rate),
            "duration_seconds": round(float(duration), 3),
            "leads": list(record.lead_names),
            "derived_leads": list(meta.get("derived_leads") or []),
            "lead_set": None if leads is None else list(leads),
            "start_seconds": None if start is None else float(start),
            "windows_scored": details["windows"],
            "quality_flags": list(details["flags"]),
        },
        "model": {
            "name_or_path": str(getattr(pipe.model, "name_or_path", "") or ""),
            "is_demo": is_demo,
            "problem_type": problem_type,
            "calibrated": config.score_calibration is not None,
            "thresholds": bool(thresholds),
            "note": _model_note(pipe, is_demo),
        },
        "predictions": predictions,
        "measurements": _measurements(record),
        "statements": list(meta.get("statements") or []),
        "attribution": None,
        "_plot": {"record": record, "values": None, "rate": None, "leads": None, "start": float(start or 0.0),
                  "lead_set": leads},
    }
    if attribution and problem_type != "regression":
        from .explain import explain

        target = label if label is not None else predictions[0]["label"]
        exp = explain(record, pipe, label=target, method=ATTRIBUTION_METHOD, start=float(start or 0.0),
                      duration=None if start is None else 10.0, lead_set=leads)
        order = [i for i in np.argsort(-exp.lead_importance, kind="stable") if exp.lead_mask[i]]
        report["attribution"] = {
            "label": exp.label,
            "method": exp.method,
            "lead_importance": {exp.lead_names[i]: round(float(exp.lead_importance[i]), 4) for i in order},
        }
        report["_plot"].update(values=exp.values, rate=exp.sampling_rate, leads=exp.lead_names)
    return report


def _number(value, unit: str = "") -> str:
    if value is None:
        return "-"
    return f"{value:.0f}{(' ' + unit) if unit else ''}" if abs(value) >= 10 else f"{value:.2f}{(' ' + unit) if unit else ''}"


def measurement_rows(measurements: dict) -> list[tuple[str, str, str, str]]:
    """(quantity, ours, device, difference) rows of the measurement table: the device's values beside ours, its
    QTc beside our QTc of the same formula (``difference[...]["compared_with"]`` of
    :func:`hubert_ecg.measurements.measure`)."""
    device = measurements.get("device") or {}
    by_ours = {}  # our quantity -> (device value, difference)
    for name, diff in (measurements.get("difference") or {}).items():
        by_ours[diff.get("compared_with", name)] = (device.get(name) or {}, diff.get("value"))
    rows = []
    for key, title in _MEASURES:
        ours = measurements.get(key) or {}
        dev, diff = by_ours.get(key, (device.get(key) or {}, None))
        if ours.get("value") is None and dev.get("value") is None:
            continue
        unit = ours.get("unit") or dev.get("unit") or ""
        rows.append((title, _number(ours.get("value"), unit), _number(dev.get("value"), unit),
                     "-" if diff is None else f"{int(round(diff)):+d}"))
    return rows


def _prediction_lines(report: dict) -> list[str]:
    lines = []
    for p in report["predictions"]:
        value = p.get("score", p.get("value"))
        threshold = "-" if p.get("threshold") is None else f"{p['threshold']:.2f}"
        mark = "*" if p.get("positive") else " "
        description = f"  {p['description']}" if p.get("description") else ""
        lines.append(f"{mark} {p['label']:<8} {value:6.3f}  thr {threshold:>4}{description}"[:58])
    if not report["model"]["thresholds"] and report["model"]["problem_type"] == "multi_label_classification":
        lines += ["no thresholds: this model was not calibrated", "(hubert-ecg calibrate), so nothing is marked"]
    else:
        lines.append("* at or above the label's threshold" if report["model"]["problem_type"] != "single_label_classification"
                     else "* the predicted class")
    return lines


def render_figure(report: dict, dpi: int = 100):
    """The one-page figure of a report (``build_report``'s output): header, 12-lead plot with the attribution and its
    legend, predictions, measurements, statements. Returns a matplotlib ``Figure``; the ECG keeps its paper scale
    (a millimetre of paper is a millimetre of the page)."""
    from .plotting import plot_ecg

    plot = report["_plot"]
    attribution = report.get("attribution")
    fig = plot_ecg(
        plot["record"],
        title=f"{report['file']}" + (f", from {plot.get('start', 0.0):g} s" if plot.get("start") else ""),
        start=plot.get("start", 0.0),
        lead_set=plot.get("lead_set"),
        attribution=plot["values"],
        attribution_rate=plot["rate"],
        attribution_leads=plot["leads"],
        attribution_label=None if attribution is None else f"{attribution['label']}, {attribution['method']}",
        dpi=dpi,
    )
    h = report["header"]
    flags = "; ".join(h["quality_flags"]) or "none"
    derived = f" (derived: {', '.join(h['derived_leads'])})" if h["derived_leads"] else ""
    header = [
        f"{report['file']}",
        *textwrap.wrap(
            f"acquired {h['acquisition_time'] or 'unknown'}   device {h['device'] or 'unknown'}   format "
            f"{h['source_format'] or 'unknown'}   {h['sampling_rate']:g} Hz   {h['duration_seconds']:g} s   "
            f"{len(h['leads'])} leads{derived}   quality flags: {flags}"
            + (f"   lead set: {', '.join(h['lead_set'])} (others zero-filled)" if h.get("lead_set") else ""),
            150),  # 8 pt monospace: about 153 characters across the 260 mm page
        *textwrap.wrap(("" if report["model"].get("is_demo") else f"model: {report['model']['name_or_path']}.  ")
                       + report["model"]["note"], 150),
    ]

    columns = [["Predictions (calibrated score, threshold)"] + _prediction_lines(report)]
    m = report["measurements"]
    if "error" in m:
        table = textwrap.wrap(f"not measured: {m['error']}", 44)
    else:
        table = [f"{'':<15}{'ours':>9}{'device':>9}{'diff':>7}"]
        table += [f"{q:<15}{o:>9}{d:>9}{x:>7}" for q, o, d, x in measurement_rows(m)]
    columns.append(["Measurements (ms, bpm, degrees)"] + table)
    side = ["Device statements"]
    for statement in report["statements"][:8] or ["none in the file"]:
        side += textwrap.wrap(statement, 44, initial_indent="  ", subsequent_indent="    ")
    attribution = report.get("attribution")
    if attribution is not None:
        ranked = list(attribution["lead_importance"].items())
        side += ["", f"Attribution: {attribution['label']} ({attribution['method']})",
                 "blue bands behind the leads: the score's drop",
                 "when that part is occluded (darkest: its",
                 "99.5th percentile on the page); by lead:",
                 "  " + "  ".join(f"{lead} {v:.3f}" for lead, v in ranked[:4]),
                 "  " + "  ".join(f"{lead} {v:.3f}" for lead, v in ranked[4:8])]
    columns.append(side)

    line_in = 7.5 / 72 * 1.25  # inches per line of 7.5 pt text
    header_in = 0.2 + line_in * 1.3 * len(header)
    panel_in = 0.3 + line_in * max(len(c) for c in columns)
    width, height = fig.get_size_inches()
    total = height + header_in + panel_in
    fig.set_size_inches(width, total)
    for ax in fig.axes:
        left, bottom, w, hgt = ax.get_position().bounds
        ax.set_position((left, (bottom * height + panel_in) / total, w, hgt * height / total))
    for text in fig.texts:
        x, y = text.get_position()
        text.set_position((x, (y * height + panel_in) / total))
    fig.text(0.01, 1 - 0.1 / total, "\n".join(header), fontsize=8, va="top", family="monospace")
    top = (panel_in - 0.15) / total
    for x, lines in zip((0.01, 0.42, 0.71), columns):
        fig.text(x, top, "\n".join(lines), fontsize=7.5, va="top", family="monospace")
    return fig


def _jsonable(report: dict) -> dict:
    return {k: v for k, v in report.items() if not k.startswith("_")}


def write_report(report: dict, path: str | Path, dpi: int = 100) -> Path:
    """Write a report to ``path``: ``.pdf`` / ``.png`` (the page), ``.html`` (the page as an image and the tables as
    text) or ``.json`` (the content without the plot); returns the path.

    Raises:
        ValueError: for another extension (names the path and the formats).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in REPORT_FORMATS:
        raise ValueError(f"cannot write {str(path)!r}: expected a file name ending in {', '.join(REPORT_FORMATS)}")
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".json":
        path.write_text(json.dumps(_jsonable(report), indent=2, default=str), encoding="utf-8")
        return path
    fig = render_figure(report, dpi=dpi)
    if suffix in (".pdf", ".png"):
        fig.savefig(path, format=suffix[1:], facecolor="white")
        return path
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", facecolor="white")
    image = base64.b64encode(buffer.getvalue()).decode("ascii")
    content = html.escape(json.dumps(_jsonable(report), indent=2, default=str))
    path.write_text(
        "<!doctype html><html><head><meta charset='utf-8'><title>ECG report: "
        f"{html.escape(report['file'])}</title></head><body>"
        f"<img alt='12-lead ECG report' style='max-width:100%' src='data:image/png;base64,{image}'>"
        f"<p>{html.escape(report['model']['note'])}</p><pre>{content}</pre></body></html>",
        encoding="utf-8",
    )
    return path
