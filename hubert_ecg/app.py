"""``hubert-ecg app``: a local web app (Gradio, the optional ``[app]`` extra) to score ECG files and see why.

```
hubert-ecg app                                   # the demo model, http://127.0.0.1:7860
hubert-ecg app --model path/or/hub-id --port 8080 --max-file-size 200mb
```

Upload one or several ECG files (any format :func:`hubert_ecg.read_ecg` reads; a WFDB record as its ``.hea`` and
``.dat`` together, a challenge record as ``.hea`` and ``.mat``), pick a model (empty: the bundled demo model; a
local ``save_pretrained`` directory or a Hub id), press **Score**: the ranked labels with their scores, one block of
rows per file, and for a chosen file the 12-lead plot, with the attribution overlay of a chosen label and method
(:mod:`hubert_ecg.explain`). Files that cannot be scored are listed with the same message as ``hubert-ecg
predict`` gives. Uploads are limited to :data:`MAX_FILE_SIZE` per file (``--max-file-size``).

The server binds to 127.0.0.1 unless ``--host`` says otherwise. Its first endpoint, ``/predict``, serves
``gradio_client`` too: given only the files it returns the table of ranked labels and the messages::

    from gradio_client import Client, handle_file
    table, messages = Client("http://127.0.0.1:7860/").predict(
        [handle_file("00010_hr.hea"), handle_file("00010_hr.dat")], api_name="/predict")
    table["data"]   # [["00010_hr", 1, "NORM", 0.93], ["00010_hr", 2, "CD", 0.05], ...]

gradio is imported when the app is built, not when this module is imported.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any, Sequence

__all__ = ["MAX_FILE_SIZE", "TABLE_HEADERS", "group_uploads", "score_uploads", "draw_record", "build_app", "app_main"]

#: the largest file the app accepts by default (Gradio's ``max_file_size``): a 24-hour 2-lead Holter at 360 Hz in
#: WFDB format 212 is about 90 MB; a 10 s 12-lead record at 500 Hz, 120 kB.
MAX_FILE_SIZE = "100mb"
TABLE_HEADERS = ["file", "rank", "label", "score", "positive"]
_NO_ATTRIBUTION = "none (plot only)"
_TOP_LABEL = "top-scored label"
_WFDB_SIGNALS = (".dat", ".mat")
_pipelines: dict[str, Any] = {}


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


def group_uploads(paths: Sequence[str | os.PathLike], workdir: str | os.PathLike) -> list[dict[str, str | None]]:
    """Uploaded files -> the records they make up, copied together into ``workdir``.

    Gradio stores every uploaded file in a folder of its own; a WFDB record needs its ``.hea`` beside its ``.dat``
    (a challenge record its ``.mat``), so the files are copied into one folder and grouped by name: a ``.hea`` is one
    record (with the signal files of its name), a ``.dat`` / ``.mat`` without its ``.hea`` is an error, any other
    file is one record.

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
        else:
            records.append({"name": name, "path": str(workdir / name), "error": None})
    return records


def score_uploads(files: Sequence[str] | None, model: str | None = None, workdir: str | None = None):
    """Score uploaded files, as ``hubert-ecg predict`` does.

    Args:
        files: paths of the uploaded files (Gradio's temporary copies).
        model: hub id or directory; empty or None: the demo model.
        workdir: where the records are put together (default: a new temporary folder).

    Returns:
        ``(rows, message, records)``: ``rows`` one ``[file, rank, label, score, positive]`` per label of every
        scored file (ranked by score; a regression model: its outputs in order, the value in the score column;
        ``positive`` is "yes" / "no" at the model's ``config.label_thresholds`` (single-label: its class), ""
        for a model without them), ``message`` Markdown listing the files that were not scored with the reason (as
        ``hubert-ecg predict`` prints it) and the flags of those that were, ``records`` ``{name: path}`` of the
        scored files (for :func:`draw_record`).

    Raises:
        ValueError: if no file is given or the model cannot be loaded.
    """
    if not files:
        raise ValueError("no file uploaded: upload one or several ECG files (a WFDB record as its .hea and .dat)")
    workdir = workdir or tempfile.mkdtemp(prefix="hubert-ecg-app-")
    uploads = group_uploads([getattr(f, "name", f) for f in files], workdir)
    clf = _pipeline(model)
    readable = [u for u in uploads if u["error"] is None]
    details = iter(clf.predict_details([u["path"] for u in readable], batch_size=16))
    rows, lines, records = [], [], {}
    prefix = str(Path(workdir)) + os.sep
    for upload in uploads:
        if upload["error"] is None:
            d = next(details)
            upload = dict(upload, error=d["error"] and d["error"].replace(prefix, ""))
            if upload["error"] is None:
                records[upload["name"]] = upload["path"]
                rows += [[upload["name"], rank, p["label"], round(float(p["score"] if "score" in p else p["value"]), 4),
                          {True: "yes", False: "no"}.get(p.get("positive"), "")]
                         for rank, p in enumerate(d["predictions"], 1)]
                if d["flags"]:
                    lines.append(f"- **{upload['name']}**: " + "; ".join(d["flags"]).replace(prefix, ""))
                continue
        lines.append(f"- **{upload['name']}**: not scored: {upload['error']}")
    scored = len(records)
    head = f"Scored {scored} of {len(uploads)} record(s)" + (" with the demo model (a demonstration, not a clinical "
                                                              "tool)." if not _model_key(model) else ".")
    return rows, "\n".join([head] + lines), records


def draw_record(path: str, model: str | None = None, label: str | None = None, method: str | None = None,
                out: str | None = None, start: float = 0.0) -> str:
    """The 12-lead plot of a record as a PNG, with the attribution overlay of ``label`` when ``method`` is given.

    Args:
        path: the record (as :func:`score_uploads` returns it).
        model: as :func:`score_uploads`.
        label: a label of the model, or None / ``"top-scored label"``: the top-scored one.
        method: one of :data:`hubert_ecg.explain.METHODS`, or None / ``"none (plot only)"``: no overlay.
        out: the PNG to write (default: beside the record).
        start: seconds into the record of the 10 s shown.

    Returns:
        The PNG's path.

    Raises:
        ValueError: for an unreadable record, an unknown label or method, a model that cannot be loaded.
    """
    from .plotting import plot_ecg, save_figure

    out = out or str(Path(path).with_suffix("")) + f"-{method or 'plot'}-{label or 'top'}.png"
    if not method or method == _NO_ATTRIBUTION:
        fig = plot_ecg(path, start=start, dpi=110)
    else:
        from .explain import explain

        clf = _pipeline(model)
        exp = explain(path, clf, None if not label or label == _TOP_LABEL else label, method, start=start,
                      duration=10.0, n_steps=16)
        fig = plot_ecg(path, start=start, attribution=exp.values, attribution_rate=exp.sampling_rate,
                       attribution_leads=exp.lead_names, attribution_label=f"{exp.label} {exp.score:.2f}, {method}",
                       dpi=110)
    return str(save_figure(fig, out))


def _methods() -> list[str]:
    import importlib.util

    from .explain import METHODS

    have_captum = importlib.util.find_spec("captum") is not None
    return [_NO_ATTRIBUTION] + [m for m in METHODS if m != "integrated_gradients" or have_captum]


def build_app(model: str | None = None):
    """The app as a ``gradio.Blocks`` (not launched). ``model``: the model field's initial value (None: the demo
    model). Its first event, ``/predict``, takes the files (and the model field, default ``model``) and returns the
    table of ranked labels (``TABLE_HEADERS``) and the messages."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    import gradio as gr

    def on_score(files, model_name):
        try:
            rows, message, records = score_uploads(files, model_name)
        except ValueError as err:
            raise gr.Error(str(err)) from None
        return rows, message, records

    def on_records(records, model_name):
        names = list(records or {})
        try:
            labels = [str(v) for _, v in sorted(_pipeline(model_name).model.config.id2label.items())]
        except ValueError:
            labels = []
        return (gr.update(choices=names, value=names[0] if names else None),
                gr.update(choices=[_TOP_LABEL] + labels, value=_TOP_LABEL))

    def on_draw(records, name, model_name, label, method):
        if not records or name not in records:
            return None
        try:
            return draw_record(records[name], model_name, label, method)
        except (ValueError, ImportError) as err:
            raise gr.Error(str(err)) from None

    with gr.Blocks(title="HuBERT-ECG") as demo:
        gr.Markdown("## HuBERT-ECG\nUpload ECG files (WFDB: the `.hea` and `.dat` together; `.mat` + `.hea`, "
                    "`.npy`, EDF, ...) and press **Score**. Empty model field: the bundled demo model.")
        records = gr.State({})
        with gr.Row():
            files = gr.File(label="ECG files", file_count="multiple", type="filepath", elem_id="files")
            with gr.Column():
                model_box = gr.Textbox(value=model or "", label="model (hub id or directory; empty: demo model)",
                                       elem_id="model")
                score = gr.Button("Score", variant="primary", elem_id="score")
        table = gr.Dataframe(headers=TABLE_HEADERS, label="ranked labels", interactive=False, elem_id="scores")
        messages = gr.Markdown(elem_id="messages")
        with gr.Row():
            record = gr.Dropdown(label="record", choices=[], elem_id="record")
            label = gr.Dropdown(label="label", choices=[_TOP_LABEL], value=_TOP_LABEL, elem_id="label")
            method = gr.Dropdown(label="attribution", choices=_methods(), value=_NO_ATTRIBUTION, elem_id="method")
        plot = gr.Image(label="12-lead plot", show_label=False, type="filepath", elem_id="plot", interactive=False)

        event = score.click(on_score, inputs=[files, model_box], outputs=[table, messages, records],
                            api_name="predict")
        event.then(on_records, inputs=[records, model_box], outputs=[record, label], api_name=False).then(
            on_draw, inputs=[records, record, model_box, label, method], outputs=plot, api_name=False)
        for control in (record, label, method):
            control.input(on_draw, inputs=[records, record, model_box, label, method], outputs=plot, api_name=False)
    return demo


def app_main(argv: list[str] | None = None) -> int:
    """``hubert-ecg app [--model M] [--host 127.0.0.1] [--port 7860] [--max-file-size 100mb]``: serve the app until
    interrupted. Returns 2 (one line on stderr) for a model that cannot be loaded."""
    parser = argparse.ArgumentParser(
        prog="hubert-ecg app",
        description="A local web app: upload ECG files, see the ranked labels with scores, the 12-lead plot and the "
        "attributions of a label. Without --model: the bundled demo model (a demonstration, not a clinical tool).",
    )
    parser.add_argument("--model", default=None, help="hub id or save_pretrained directory (default: demo model)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    parser.add_argument("--max-file-size", default=MAX_FILE_SIZE,
                        help=f"largest upload per file, e.g. 20mb, 1gb (default {MAX_FILE_SIZE})")
    args = parser.parse_args(argv)
    try:
        _pipeline(args.model)  # fail here, not in the page, for a model that cannot be loaded
    except ValueError as err:
        print(f"hubert-ecg app: error: {err}", file=sys.stderr)
        return 2
    build_app(args.model).launch(server_name=args.host, server_port=args.port, max_file_size=args.max_file_size,
                                 share=False)
    return 0
