"""``hubert-ecg app`` (:mod:`hubert_ecg_cli.app`): a local web app (Gradio, the optional ``[app]`` extra) to score ECG files and see why.

```
hubert-ecg app                                   # the demo model, http://127.0.0.1:7860
hubert-ecg app --model path/or/hub-id --port 8080 --max_file_size 200mb
```

Upload one or several ECG files (any format :func:`hubert_ecg.read_ecg` reads; a WFDB record as its ``.hea`` and
``.dat`` together, a challenge record as ``.hea`` and ``.mat``; an XML, SCP, ISHNE (with its ``.ann``), DICOM, EDF or
``.npy`` file on its own), pick a model (empty: the bundled demo model; a local ``save_pretrained`` directory or a
Hub id) and a lead set (:data:`hubert_ecg.leads.LEAD_SETS`: the other leads zero-filled), press **Score**: the ranked
labels with their descriptions, scores and thresholds, one block of rows per file, and what the thresholds mean for
this model (:func:`threshold_note`: "no threshold: this model was not calibrated (hubert-ecg calibrate)" where
``positive`` is blank). For a chosen file: the 12-lead plot from a chosen start time, with the attribution overlay of
a chosen label and method (:mod:`hubert_ecg.explain`), its legend (colour scale, unit, leads by importance), and on
request the page of ``hubert-ecg report`` (:mod:`hubert_ecg.report`) with its tables and the PDF to download. Files
that cannot be scored are listed with the same message as ``hubert-ecg predict`` gives; Score without a file says
so. Uploads are limited to :data:`MAX_FILE_SIZE` per file (``--max_file_size``).

The server binds to 127.0.0.1 unless ``--host`` says otherwise. Its first endpoint, ``/predict``, serves
``gradio_client`` too: given only the files it returns the table of ranked labels and the messages::

    from gradio_client import Client, handle_file
    table, messages = Client("http://127.0.0.1:7860/").predict(
        [handle_file("00010_hr.hea"), handle_file("00010_hr.dat")], api_name="/predict")
    table["data"]   # [["00010_hr", 1, "NORM", "", 0.9469, 0.262, "yes"], ["00010_hr", 2, "CD", "", 0.0427, ...], ...]

gradio is imported when the app is built, not when this module is imported.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Sequence

from .leads import LEAD_SETS

__all__ = ["MAX_FILE_SIZE", "TABLE_HEADERS", "NO_FILE_MESSAGE", "LEAD_SET_CHOICES", "group_uploads",
           "score_uploads", "threshold_note", "record_duration", "draw_record", "draw_with_legend",
           "attribution_legend", "report_upload", "build_app"]

#: the largest file the app accepts by default (Gradio's ``max_file_size``): a 24-hour 2-lead Holter at 360 Hz in
#: WFDB format 212 is about 90 MB; a 10 s 12-lead record at 500 Hz, 120 kB.
MAX_FILE_SIZE = "100mb"
TABLE_HEADERS = ["file", "rank", "label", "description", "score", "threshold", "positive"]
#: what the page says when Score is pressed with no file
NO_FILE_MESSAGE = ("No file uploaded: upload one or several ECG files first (a WFDB record as its .hea and .dat "
                   "together, a challenge record as .hea and .mat; an XML, SCP, ISHNE, DICOM, EDF or .npy file on "
                   "its own), then press Score.")
#: the lead-set choices of the page: the PhysioNet/CinC 2021 lead sets of :data:`hubert_ecg.leads.LEAD_SETS`
LEAD_SET_CHOICES = ["12 (all leads)"] + [f"{name} ({', '.join(leads)})" for name, leads in LEAD_SETS.items()
                                         if name != "12"]
_NO_ATTRIBUTION = "none (plot only)"
_TOP_LABEL = "top-scored label"
_WFDB_SIGNALS = (".dat", ".mat")
#: files that go with a record of the same name and are not records themselves: ISHNE's .ann beside its .ecg,
#: WFDB annotation files beside a .hea
_COMPANIONS = (".ann", ".atr", ".qrs")
_pipelines: dict[str, Any] = {}
#: what the colour of the attribution bands means, by method (the values of :attr:`Explanation.values`)
_METHOD_UNITS = {
    "integrated_gradients": "the sample's contribution to the label's logit (input x integrated gradient)",
    "saliency": "the absolute gradient of the label's logit with respect to the sample",
    "occlusion": "the drop of the label's logit when the sample's 0.5 s patch of its lead is zeroed",
    "attention_rollout": "the attention the model pays to the sample (label-agnostic)",
}


def _model_key(model: str | None) -> str:
    return (model or "").strip()


def _pipeline(model: str | None):
    """The pipeline of ``model`` (empty: the demo model), loaded once per app process.

    Raises:
        ValueError: if the model cannot be loaded (the message of :func:`hubert_ecg.pipelines.load_pipeline`).
    """
    key = _model_key(model)
    if key not in _pipelines:
        from .pipelines import load_pipeline

        _pipelines[key] = load_pipeline(key or None)
    return _pipelines[key]


def _lead_set(choice: Any) -> tuple[str, ...] | None:
    """A lead-set choice of the page (``"6 (I, II, ...)"``, ``"6"``, a list of lead names) -> its leads in standard
    order, or None for all leads (None, empty, ``"12 ..."``).

    Raises:
        ValueError: for an unknown lead set (the message of :func:`hubert_ecg.leads.lead_set`).
    """
    from .leads import STANDARD_LEADS, lead_set

    if choice is None or (isinstance(choice, str) and not choice.strip()):
        return None
    if isinstance(choice, str):
        choice = choice.split()[0]
    leads = lead_set(choice)
    return None if leads == STANDARD_LEADS else leads


def group_uploads(paths: Sequence[str | os.PathLike], workdir: str | os.PathLike) -> list[dict[str, str | None]]:
    """Uploaded files -> the records they make up, copied together into ``workdir``.

    Gradio stores every uploaded file in a folder of its own; a WFDB record needs its ``.hea`` beside its ``.dat``
    (a challenge record its ``.mat``), so the files are copied into one folder and grouped by name: a ``.hea`` is one
    record (with the signal files of its name), a ``.dat`` / ``.mat`` without its ``.hea`` is an error; an ``.ann``,
    ``.atr`` or ``.qrs`` file beside a record of its name (ISHNE's annotations beside its ``.ecg``, WFDB
    annotations beside a ``.hea``) goes with that record; any other file (MUSE / Philips / HL7 XML, SCP, ISHNE,
    DICOM, EDF, ``.npy``, and any extension :func:`hubert_ecg.read_ecg` may learn) is one record, which the reader
    accepts or refuses with its own message.

    Returns:
        One dict per record, in upload order: ``name`` (the file name the user knows: the record name for WFDB,
        else the file name), ``path`` (what :func:`hubert_ecg.read_ecg` reads, or None) and ``error`` (None, or why
        it cannot be read).
    """
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    names = []
    for path in paths:
        path = Path(path)
        shutil.copyfile(path, workdir / path.name)
        if path.name not in names:
            names.append(path.name)
    headers = {Path(n).stem for n in names if Path(n).suffix.lower() == ".hea"}
    stems = {Path(n).stem for n in names if Path(n).suffix.lower() not in _COMPANIONS + _WFDB_SIGNALS}
    records, seen = [], set()
    for name in names:
        stem, suffix = Path(name).stem, Path(name).suffix.lower()
        if suffix == ".hea" or (suffix in _WFDB_SIGNALS and stem in headers):
            if stem not in seen:
                seen.add(stem)
                records.append({"name": stem, "path": str(workdir / f"{stem}.hea"), "error": None})
        elif suffix in _WFDB_SIGNALS:
            records.append({"name": name, "path": None,
                            "error": f"a WFDB signal file needs its header: upload {stem}.hea together with {name}"})
        elif suffix in _COMPANIONS and stem in stems:
            continue  # annotations of an uploaded record: copied beside it
        else:
            records.append({"name": name, "path": str(workdir / name), "error": None})
    return records


def threshold_note(config) -> str:
    """What the ``threshold`` and ``positive`` columns mean for a model (its ``config``), in one sentence: the
    thresholds of ``hubert-ecg calibrate``, the predicted class of a single-label model, or why they are blank."""
    problem_type = config.problem_type_of()
    if problem_type == "regression":
        return "A regression model: its outputs in the score column, in its own unit; no thresholds."
    if problem_type == "single_label_classification":
        return "A single-label model: \"positive\" marks the predicted class (the highest probability); no thresholds."
    thresholds = config.label_thresholds or {}
    calibrated = " Scores are calibrated (Platt)." if config.score_calibration is not None else ""
    if not thresholds:
        return ("**no threshold: this model was not calibrated (hubert-ecg calibrate)**, so \"positive\" is blank: the "
                "scores are the model's, with no decision (no default cut-off such as 0.5 is assumed)." + calibrated)
    labels = [str(v) for _, v in sorted(config.id2label.items())]
    without = [label for label in labels if label not in thresholds]
    note = ("\"positive\": the score is at or above the label's threshold (chosen by hubert-ecg calibrate on "
            "validation records)." + calibrated)
    if without:
        note += (f" No threshold for {', '.join(without)} (calibrated on records that did not label them): no "
                 "decision for those.")
    return note


def score_uploads(files: Sequence[str] | None, model: str | None = None, workdir: str | None = None,
                  lead_set: Any = None):
    """Score uploaded files, as ``hubert-ecg predict`` does.

    Args:
        files: paths of the uploaded files (Gradio's temporary copies).
        model: hub id or directory; empty or None: the demo model.
        workdir: where the records are put together (default: a new temporary folder).
        lead_set: score with these leads only, the others zero-filled (the pipeline's ``lead_set=``, as
            ``hubert-ecg evaluate --lead_sets``): a name of :data:`hubert_ecg.leads.LEAD_SETS`, a choice of
            :data:`LEAD_SET_CHOICES` or a list of lead names; None: every lead of the record.

    Returns:
        ``(rows, message, records)``: ``rows`` one ``TABLE_HEADERS`` row ``[file, rank, label, description, score,
        threshold, positive]`` per label of every scored file (ranked by score; a regression model: its outputs in
        order, the value in the score column; ``description`` from the model's ``config.label_descriptions`` or "";
        ``threshold`` the label's ``config.label_thresholds`` entry or ""; ``positive`` "yes" / "no" at that
        threshold (single-label: its class), "" without one), ``message`` Markdown: how many were scored, what the
        thresholds mean (:func:`threshold_note`), the files that were not scored with the reason (as ``hubert-ecg
        predict`` prints it) and the flags of those that were; ``records`` ``{name: path}`` of the scored files (for
        :func:`draw_record` and :func:`report_upload`).

    Raises:
        ValueError: if no file is given (:data:`NO_FILE_MESSAGE`), for an unknown lead set, or if the model cannot
            be loaded.
    """
    if not files:
        raise ValueError(NO_FILE_MESSAGE)
    leads = _lead_set(lead_set)
    workdir = workdir or tempfile.mkdtemp(prefix="hubert-ecg-app-")
    uploads = group_uploads([getattr(f, "name", f) for f in files], workdir)
    clf = _pipeline(model)
    thresholds = clf.model.config.label_thresholds or {}
    readable = [u for u in uploads if u["error"] is None]
    details = iter(clf.predict_details([u["path"] for u in readable], batch_size=16, lead_set=leads))
    rows, lines, records = [], [], {}
    prefix = str(Path(workdir)) + os.sep
    for upload in uploads:
        if upload["error"] is None:
            d = next(details)
            upload = dict(upload, error=d["error"] and d["error"].replace(prefix, ""))
            if upload["error"] is None:
                records[upload["name"]] = upload["path"]
                rows += [[upload["name"], rank, p["label"], p.get("description") or "",
                          round(float(p["score"] if "score" in p else p["value"]), 4),
                          round(float(thresholds[p["label"]]), 4) if p["label"] in thresholds else "",
                          {True: "yes", False: "no"}.get(p.get("positive"), "")]
                         for rank, p in enumerate(d["predictions"], 1)]
                if d["flags"]:
                    lines.append(f"- **{upload['name']}**: " + "; ".join(d["flags"]).replace(prefix, ""))
                continue
        lines.append(f"- **{upload['name']}**: not scored: {upload['error']}")
    scored = len(records)
    head = f"Scored {scored} of {len(uploads)} record(s)" + (" with the demo model (a demonstration, not a clinical "
                                                              "tool)." if not _model_key(model) else ".")
    if leads is not None:
        head += f" Lead set: {', '.join(leads)} only (the other leads zero-filled)."
    return rows, "\n".join([head, "", threshold_note(clf.model.config), ""] + lines).rstrip(), records


def record_duration(path: str) -> float:
    """Seconds of the record at ``path`` (long WFDB and ``.npy`` records are opened lazily, not read).

    Raises:
        ValueError: for an unreadable record (the message of :func:`hubert_ecg.read_ecg`).
    """
    from .io import read_ecg

    record = read_ecg(path, lazy=True)
    return record.signal.shape[1] / float(record.sampling_rate)


def attribution_legend(exp, scale: float) -> str:
    """The legend of the attribution bands of a plot (HTML): what they attribute, their colour scale (transparent
    at 0, darkest at ``scale``, the value :func:`hubert_ecg.plotting.attribution_scale` computes), what the values
    mean for the method, and the leads ranked by importance, as ``hubert-ecg explain`` prints them.

    Args:
        exp: a :class:`hubert_ecg.explain.Explanation`.
        scale: the attribution drawn darkest, in the method's unit.
    """
    import html

    import numpy as np

    ranked = [i for i in np.argsort(-exp.lead_importance, kind="stable") if exp.lead_mask[i]]
    importance = ("the drop of the label's score when the whole lead is zeroed" if exp.method == "occlusion" else
                  "the lead's share of the positive attribution (they sum to 1)")
    windows = f"{len(exp.window_starts)} window(s) of 5 s from {exp.window_starts[0]:g} s"
    leads = "  ".join(f"{exp.lead_names[i]} {exp.lead_importance[i]:.3f}" for i in ranked)
    bar = ("<span style='display:inline-block;width:160px;height:12px;vertical-align:middle;border:1px solid #999;"
           "background:linear-gradient(to right, rgba(26,89,242,0), rgba(26,89,242,0.7))'></span>")
    return (
        f"<div id='legend-text'><b>Attribution: {html.escape(exp.label)} ({exp.method.replace('_', ' ')})</b>, score "
        f"{exp.score:.3f} over {windows}.<br>"
        f"Blue bands behind the leads: 0 {bar} &ge; {scale:.3g}. Transparent: none (or negative); darkest: the "
        f"99.5th percentile of the positive attribution shown (after a 0.1 s moving average). Unit: "
        f"{_METHOD_UNITS.get(exp.method, exp.method)}.<br>"
        f"<b>Leads by importance</b> ({importance}): <code>{html.escape(leads)}</code></div>"
    )


def _draw(path: str, model: str | None, label: str | None, method: str | None, out: str | None, start: float,
          lead_set: Any):
    from .plotting import attribution_scale, plot_ecg, save_figure

    start = float(start or 0.0)
    leads = _lead_set(lead_set)
    tag = "all" if leads is None else "".join(leads)
    out = out or str(Path(path).with_suffix("")) + f"-{method or 'plot'}-{label or 'top'}-{start:g}s-{tag}.png"
    if not method or method == _NO_ATTRIBUTION:
        return str(save_figure(plot_ecg(path, start=start, lead_set=leads, dpi=110), out)), None
    from .explain import explain

    clf = _pipeline(model)
    exp = explain(path, clf, None if not label or label == _TOP_LABEL else label, method, start=start,
                  duration=10.0, n_steps=16, lead_set=leads)
    fig = plot_ecg(path, start=start, lead_set=leads, attribution=exp.values, attribution_rate=exp.sampling_rate,
                   attribution_leads=exp.lead_names, attribution_label=f"{exp.label} {exp.score:.2f}, {method}",
                   dpi=110)
    _, scale = attribution_scale(exp.values, exp.sampling_rate, start)
    return str(save_figure(fig, out)), attribution_legend(exp, scale)


def draw_with_legend(path: str, model: str | None = None, label: str | None = None, method: str | None = None,
                     out: str | None = None, start: float = 0.0, lead_set: Any = None) -> tuple[str, str]:
    """:func:`draw_record` and the legend of its attribution bands (:func:`attribution_legend`; without a method,
    a line saying how to get one). Returns ``(png_path, legend_html)``; raises as :func:`draw_record`."""
    png, legend = _draw(path, model, label, method, out, start, lead_set)
    return png, legend or ("No attribution drawn: choose an attribution method to see which parts of the record "
                           "raise the label's score, with the leads ranked by importance.")


def draw_record(path: str, model: str | None = None, label: str | None = None, method: str | None = None,
                out: str | None = None, start: float = 0.0, lead_set: Any = None) -> str:
    """The 12-lead plot of a record as a PNG, with the attribution overlay of ``label`` when ``method`` is given.

    Args:
        path: the record (as :func:`score_uploads` returns it).
        model: as :func:`score_uploads`.
        label: a label of the model, or None / ``"top-scored label"``: the top-scored one (over the 10 s shown).
        method: one of :data:`hubert_ecg.explain.METHODS`, or None / ``"none (plot only)"``: no overlay.
        out: the PNG to write (default: beside the record).
        start: seconds into the record of the 10 s shown and explained (``plot_ecg(start=)``, ``explain(start=,
            duration=10)``).
        lead_set: as :func:`score_uploads`: only these leads are drawn and explained, the others zero-filled.

    Returns:
        The PNG's path.

    Raises:
        ValueError: for an unreadable record, a start outside it, an unknown label, method or lead set, a record
            with none of the lead set's leads, a model that cannot be loaded.
    """
    return _draw(path, model, label, method, out, start, lead_set)[0]


def report_upload(path: str, model: str | None = None, label: str | None = None, start: float = 0.0,
                  lead_set: Any = None, out_dir: str | None = None, name: str | None = None) -> dict:
    """The report of ``hubert-ecg report`` (:func:`hubert_ecg.report.build_report`) for an uploaded record, as the
    page shows it.

    Args:
        path: the record (as :func:`score_uploads` returns it).
        model, lead_set: as :func:`score_uploads`.
        label: the label whose (occlusion) attribution is drawn; None / ``"top-scored label"``: the top one.
        start: seconds into the record of the 10 s drawn and explained.
        out_dir: where the PNG and the PDF go (default: beside the record).
        name: how the page names the record (default: the file name).

    Returns:
        dict with ``report`` (``build_report``'s output), ``png`` and ``pdf`` (paths written by
        :func:`hubert_ecg.report.write_report`), ``predictions`` (rows ``[label, description, score, threshold,
        positive]``), ``measurements`` (rows ``[quantity, ours, device, difference]``, empty when not measured) and
        ``text`` (Markdown: header, why a measurement is missing, the device's statements, the lead ranking, the
        model's note).

    Raises:
        ValueError: as :func:`hubert_ecg.report.build_report` (naming the file).
    """
    from .report import measurement_rows, build_report, write_report

    leads = _lead_set(lead_set)
    report = build_report(path, _pipeline(model), label=None if not label or label == _TOP_LABEL else label,
                          start=float(start or 0.0), lead_set=leads)
    name = name or Path(path).name
    report["file"] = name
    out = Path(out_dir or Path(path).parent)
    tag = f"{report['attribution']['label'] if report['attribution'] else 'none'}-{float(start or 0):g}s-" + (
        "all" if leads is None else "".join(leads))
    png = write_report(report, out / f"{Path(name).stem}-report-{tag}.png")
    pdf = write_report(report, out / f"{Path(name).stem}-report-{tag}.pdf")
    predictions = [[p["label"], p.get("description") or "", round(float(p.get("score", p.get("value"))), 4),
                    "" if p.get("threshold") is None else round(float(p["threshold"]), 4),
                    {True: "yes", False: "no"}.get(p.get("positive"), "")] for p in report["predictions"]]
    m = report["measurements"]
    measurements = [] if "error" in m else [list(row) for row in measurement_rows(m)]
    h = report["header"]
    lines = [f"**{name}**: acquired {h['acquisition_time'] or 'unknown'}, device {h['device'] or 'unknown'}, format "
             f"{h['source_format'] or 'unknown'}, {h['sampling_rate']:g} Hz, {h['duration_seconds']:g} s, "
             f"{len(h['leads'])} leads" + (f" (derived: {', '.join(h['derived_leads'])})" if h["derived_leads"] else "")
             + f"; quality flags: {'; '.join(h['quality_flags']) or 'none'}."]
    if h.get("lead_set"):
        lines.append(f"Lead set: {', '.join(h['lead_set'])} only (the other leads zero-filled).")
    if "error" in m:
        lines.append(f"Measurements: not measured: {m['error']}")
    lines.append("Device statements: " + ("; ".join(report["statements"]) or "none in the file"))
    if report["attribution"]:
        a = report["attribution"]
        lines.append(f"Attribution on the page: {a['label']} ({a['method']}); leads by importance (score drop with "
                     "the lead zeroed): `" + "  ".join(f"{k} {v:.3f}" for k, v in a["lead_importance"].items()) + "`")
    lines.append(f"_{report['model']['note']}_")
    return {"report": report, "png": str(png), "pdf": str(pdf), "predictions": predictions,
            "measurements": measurements, "text": "\n\n".join(lines)}


def _methods() -> list[str]:
    import importlib.util

    from .explain import METHODS

    have_captum = importlib.util.find_spec("captum") is not None
    return [_NO_ATTRIBUTION] + [m for m in METHODS if m != "integrated_gradients" or have_captum]


def _on_score(files, model_name, lead_choice):
    """``(table rows, messages, records by name)`` of the uploaded files: the app's ``/predict``."""
    if not files:
        return [], NO_FILE_MESSAGE, {}
    try:
        rows, message, records = score_uploads(files, model_name, lead_set=lead_choice)
    except ValueError as err:
        return [], f"Not scored: {err}", {}
    return rows, message, records


def _start_control(records, name):
    """The update of the start field for the record ``name``: back to 0, at most its last whole second."""
    import gradio as gr

    try:
        duration = record_duration(records[name])
    except (KeyError, TypeError, ValueError):
        return gr.update(value=0, maximum=None, info="seconds into the record of the 10 s drawn")
    last = max(0.0, float(int(duration - 1e-9)))
    return gr.update(value=0, maximum=last,
                     info=f"seconds into the record of the 10 s drawn (the record lasts {duration:g} s)")


def _on_records(records, model_name):
    """The updates of the record, label and start fields after scoring."""
    import gradio as gr

    names = list(records or {})
    try:
        labels = [str(v) for _, v in sorted(_pipeline(model_name).model.config.id2label.items())]
    except ValueError:
        labels = []
    return (gr.update(choices=names, value=names[0] if names else None),
            gr.update(choices=[_TOP_LABEL] + labels, value=_TOP_LABEL),
            _start_control(records, names[0] if names else None))


def _on_draw(records, name, model_name, label, method, start, lead_choice):
    """``(plot path, legend HTML)`` of the chosen record (``(None, "")`` without one)."""
    import gradio as gr

    if not records or name not in records:
        return None, ""
    try:
        return draw_with_legend(records[name], model_name, label, method, start=start or 0.0,
                                lead_set=lead_choice)
    except (ValueError, ImportError) as err:
        raise gr.Error(str(err)) from None


def _on_report(records, name, model_name, label, start, lead_choice):
    """``(page PNG, PDF download update, predictions, measurements, text)`` of the chosen record's report."""
    import gradio as gr

    if not records or name not in records:
        raise gr.Error("No record to report: upload a file and press Score first.")
    try:
        r = report_upload(records[name], model_name, label, start=start or 0.0, lead_set=lead_choice, name=name)
    except (ValueError, ImportError) as err:
        raise gr.Error(str(err)) from None
    return (r["png"], gr.update(value=r["pdf"], visible=True, label=f"Download the report (PDF): {name}"),
            r["predictions"], r["measurements"], r["text"])


def build_app(model: str | None = None):
    """The app as a ``gradio.Blocks`` (not launched). ``model``: the model field's initial value (None: the demo
    model). Its first event, ``/predict``, takes the files (the model field, default ``model``, and the lead set,
    default all leads) and returns the table of ranked labels (``TABLE_HEADERS``) and the messages."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    import gradio as gr

    with gr.Blocks(title="HuBERT-ECG") as demo:
        gr.Markdown("## HuBERT-ECG\nUpload ECG files (WFDB: the `.hea` and `.dat` together; `.mat` + `.hea`; an "
                    "XML, SCP, ISHNE `.ecg` (with its `.ann`), DICOM, EDF or `.npy` file on its own) and press "
                    "**Score**. Empty model field: the bundled demo model.")
        records = gr.State({})
        with gr.Row():
            files = gr.File(label="ECG files", file_count="multiple", type="filepath", elem_id="files")
            with gr.Column():
                model_box = gr.Textbox(value=model or "", label="model (hub id or directory; empty: demo model)",
                                       elem_id="model")
                lead_box = gr.Dropdown(label="lead set", choices=LEAD_SET_CHOICES, value=LEAD_SET_CHOICES[0],
                                       elem_id="lead_set",
                                       info="score, draw and report with these leads only; the others zero-filled "
                                       "(PhysioNet/CinC 2021 lead sets)")
                score = gr.Button("Score", variant="primary", elem_id="score")
        table = gr.Dataframe(headers=TABLE_HEADERS, label="ranked labels", interactive=False, elem_id="scores")
        messages = gr.Markdown(elem_id="messages")
        with gr.Row():
            record = gr.Dropdown(label="record", choices=[], elem_id="record")
            label = gr.Dropdown(label="label", choices=[_TOP_LABEL], value=_TOP_LABEL, elem_id="label")
            method = gr.Dropdown(label="attribution", choices=_methods(), value=_NO_ATTRIBUTION, elem_id="method")
            start = gr.Number(value=0, minimum=0, label="start (s)", elem_id="start",
                              info="seconds into the record of the 10 s drawn")
        plot = gr.Image(label="12-lead plot", show_label=False, type="filepath", elem_id="plot", interactive=False)
        legend = gr.HTML(elem_id="legend")
        with gr.Accordion("Report (the page of hubert-ecg report)", open=True, elem_id="report"):
            report_button = gr.Button("Report of this record", elem_id="report_button")
            report_pdf = gr.DownloadButton("Download the report (PDF)", visible=False, elem_id="report_pdf")
            report_image = gr.Image(label="report", show_label=False, type="filepath", elem_id="report_image",
                                    interactive=False)
            report_text = gr.Markdown(elem_id="report_text")
            with gr.Row():
                report_predictions = gr.Dataframe(headers=["label", "description", "score", "threshold", "positive"],
                                                  label="predictions", interactive=False,
                                                  elem_id="report_predictions")
                report_measurements = gr.Dataframe(headers=["quantity", "ours", "device", "difference"],
                                                   label="measurements (ms, bpm, degrees)", interactive=False,
                                                   elem_id="report_measurements")

        draw_inputs = [records, record, model_box, label, method, start, lead_box]
        event = score.click(_on_score, inputs=[files, model_box, lead_box], outputs=[table, messages, records],
                            api_name="predict")
        event.then(_on_records, inputs=[records, model_box], outputs=[record, label, start], api_name=False).then(
            _on_draw, inputs=draw_inputs, outputs=[plot, legend], api_name=False)
        record.input(_start_control, inputs=[records, record], outputs=start, api_name=False).then(
            _on_draw, inputs=draw_inputs, outputs=[plot, legend], api_name=False)
        for control in (label, method, lead_box):
            control.input(_on_draw, inputs=draw_inputs, outputs=[plot, legend], api_name=False)
        start.submit(_on_draw, inputs=draw_inputs, outputs=[plot, legend], api_name=False)
        start.blur(_on_draw, inputs=draw_inputs, outputs=[plot, legend], api_name=False)
        report_button.click(_on_report, inputs=[records, record, model_box, label, start, lead_box],
                            outputs=[report_image, report_pdf, report_predictions, report_measurements, report_text],
                            api_name=False)
    return demo
