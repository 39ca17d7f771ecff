"""``hubert-ecg predict INPUT... [--model M] [--top_k K] [--format table|csv|json] [--output_dir OUT]``.

Scores every input (an ECG file in any format :func:`hubert_ecg.read_ecg` reads, every record under a directory, or
the records of a manifest) with a classifier (default: the bundled demo model) and prints one row per input: its
predictions, the number of 5 s windows scored and its flags, or the reason it was not scored. With ``--output_dir``
the rows go to CSV files sharded over the processes of ``accelerate launch``, resumable.
"""

from __future__ import annotations

import csv
import io as _io
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from .arguments import (
    BACKENDS,
    BatchingArguments,
    ModelArguments,
    RecordArguments,
    WindowingArguments,
    parse,
)
from .records import BadRecords, usage_error

PROG = "hubert-ecg predict"
DESCRIPTION = (
    "Score ECG files with a HuBERT-ECG classifier. Without --model: the bundled demo model (a demonstration, not a "
    "clinical tool). One row per input (csv/json: with the number of windows, flags and the error of inputs that "
    "were not scored). Exit status: 0 when every input was scored, 1 when some were not, 2 for usage errors."
)

__all__ = ["PredictArguments", "main"]


@dataclass
class PredictArguments:
    """What ``predict`` scores and how it prints it."""

    inputs: list[str] = field(metadata={
        "positional": True, "nargs": "+", "metavar": "INPUT",
        "help": "ECG files (WFDB record names or .hea/.dat, .mat, .npy, ...), directories (every record under them) "
                "or manifests (.csv with a filename column, .txt one path a line)"})
    backend: Literal[BACKENDS] | None = field(default=None, metadata={
        "help": "runtime: torch (a save_pretrained directory or hub id), onnxruntime or openvino (an exported model: "
                "a directory of `hubert-ecg export-onnx` or a .onnx file with its config.json beside it; default: "
                "onnxruntime when installed, else openvino)"})
    top_k: int | None = field(default=None, metadata={
        "help": "labels per file, highest first (default: all; the table of a model with more than 10 labels shows "
                "the 5 highest and the positives); regression models print every output"})
    format: Literal["table", "csv", "json"] = field(default="table", metadata={"help": "output format"})
    aggregation: Literal["mean", "max"] = field(default="mean", metadata={"help": "over the 5 s windows"})
    min_duration: float | None = field(default=None, metadata={
        "help": "shortest record scored, in seconds (default: 2.5); records shorter than the 5 s window are "
                "zero-padded"})
    output_dir: str | None = field(default=None, metadata={
        "help": "write the rows as CSV files to this folder instead of stdout, sharded over the processes of "
                "`accelerate launch` (one predictions-<rank>-of-<N>.csv each, flushed per batch, and index.json); "
                "a rerun with the same folder skips the inputs already written (see docs/performance.md); --format "
                "does not apply"})

    def __post_init__(self):
        if self.top_k is not None and self.top_k < 1:
            raise ValueError(f"--top_k must be a positive integer, got {self.top_k}")
        if self.min_duration is not None and self.min_duration < 0:
            raise ValueError(f"--min_duration must be >= 0 seconds, got {self.min_duration}")


def _flag_text(flags) -> str:
    return "; ".join(flags)


#: a model with more labels than this shows, by default, its TABLE_TOP_K highest labels (and its positives) in the
#: table; csv and json list every label unless ``--top_k`` says otherwise
MANY_LABELS = 10
TABLE_TOP_K = 5


def _value_text(value: float) -> str:
    """A regression output as printed: a plain number (5 significant digits), never a probability."""
    return f"{value:.5g}"


def _csv_kinds(described: bool, thresholded: bool) -> tuple[str, ...]:
    return ("label",) + (("description",) if described else ()) + ("score",) + (("positive",) if thresholded else ())


def _csv_header(layout) -> list[str]:
    """The header of ``predict --format csv`` for ``layout``: ``("regression", output names)`` or ``("labels",
    ranks, kinds)`` (kinds: ``label``, optional ``description``, ``score``, optional ``positive``)."""
    if layout[0] == "regression":
        return ["file", "windows", *layout[1], "flags", "error"]
    _, ranks, kinds = layout
    return ["file", "windows"] + [f"{kind}_{r}" for r in range(1, ranks + 1) for kind in kinds] + ["flags", "error"]


def _csv_row(d: dict, layout) -> list:
    """One input's cells in ``predict --format csv`` (see :func:`_csv_header`)."""
    if layout[0] == "regression":
        values = {p["label"]: repr(p["value"]) for p in (d["predictions"] or [])}
        return [d["name"], d["windows"], *[values.get(n, "") for n in layout[1]], _flag_text(d["flags"]),
                d["error"] or ""]
    _, ranks, kinds = layout
    cells = []
    for p in d["predictions"] or []:
        cell = {"label": p["label"], "description": p.get("description", ""), "score": f"{p['score']:.4f}",
                "positive": int(p["positive"]) if "positive" in p else ""}  # "": no threshold
        cells += [cell[kind] for kind in kinds]
    cells += [""] * (len(kinds) * ranks - len(cells))
    return [d["name"], d["windows"], *cells, _flag_text(d["flags"]), d["error"] or ""]


def _csv_line(cells: list) -> str:
    buffer = _io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(cells)
    return buffer.getvalue().rstrip("\n")


def _model_csv_layout(config, top_k: int | None):
    """The csv layout (:func:`_csv_header`) of a model's rows, from its config (not from rows: a shard of
    ``predict --output-dir`` may hold no scored row): ``top_k`` (or every) label, a description column when the
    config describes any label, a positive column for a single-label model or one with label thresholds."""
    problem_type = config.problem_type_of()
    names = [config.id2label[i] for i in range(config.num_labels)]
    if problem_type == "regression":
        return ("regression", names)
    described = any(n in (getattr(config, "label_descriptions", None) or {}) for n in names)
    thresholded = problem_type == "single_label_classification" or any(
        n in (config.label_thresholds or {}) for n in names)
    ranks = config.num_labels if top_k is None else min(top_k, config.num_labels)
    return ("labels", ranks, _csv_kinds(described, thresholded))


def _format(details: list[dict], fmt: str, problem_type: str = "multi_label_classification",
            table_top_k: int | None = None) -> str:
    """The rows of ``hubert-ecg predict``: one per input (see :func:`predict_main`).

    ``problem_type``: the model's (``config.problem_type_of()``): a regression prints its outputs in order as
    values (csv: one column per output); a classifier its labels by decreasing score, ``*`` marking the positives
    (its thresholds; for single-label the argmax, the record's one class). ``table_top_k``: in the table, show only
    this many highest labels per input, plus any positive beyond them (None: every label returned)."""
    regression = problem_type == "regression"
    if fmt == "json":
        return json.dumps([{"file": d["name"], "windows": d["windows"], "predictions": d["predictions"],
                            "flags": d["flags"], "error": d["error"]} for d in details], indent=2)
    predictions = [p for d in details for p in (d["predictions"] or [])]
    thresholded = any("positive" in p for p in predictions)
    described = any("description" in p for p in predictions)
    if fmt == "csv":
        if regression:  # one column per output, named by id2label
            layout = ("regression", list(dict.fromkeys(p["label"] for p in predictions)))
        else:
            ranks = max([len(d["predictions"] or []) for d in details] + [0])
            layout = ("labels", ranks, _csv_kinds(described, thresholded))
        return "\n".join([_csv_line(_csv_header(layout))] + [_csv_line(_csv_row(d, layout)) for d in details])

    def shown(items):
        if table_top_k is None or regression:
            return items
        return [p for rank, p in enumerate(items) if rank < table_top_k or p.get("positive")]

    width = max([len("file")] + [len(d["name"]) for d in details])
    lines = [f"{'file':<{width}}  " + ("outputs (value)" if regression else "predictions (score)")]
    hidden = 0
    for d in details:
        if d["error"] is not None:
            lines.append(f"{d['name']:<{width}}  not scored: {d['error']}")
            continue
        items = shown(d["predictions"])
        hidden = max(hidden, len(d["predictions"]) - len(items))
        flags = f"  [{_flag_text(d['flags'])}]" if d["flags"] else ""
        if regression:
            lines.append(f"{d['name']:<{width}}  " + "  ".join(
                f"{p['label']} {_value_text(p['value'])}" + (f" ({p['description']})" if "description" in p else "")
                for p in items) + flags)
        elif described:  # one line per label: code, score, description
            label_width = max(len(p["label"]) for p in items) if items else 0
            for row, p in enumerate(items):
                mark = "*" if p.get("positive") else " "
                text = f"{p['label']:<{label_width}} {p['score']:.3f}{mark}  {p.get('description', '')}".rstrip()
                lines.append(f"{d['name'] if row == 0 else '':<{width}}  {text}" + (flags if row == 0 else ""))
            if not items:
                lines.append(f"{d['name']:<{width}}" + flags)
        else:
            lines.append(f"{d['name']:<{width}}  " + "  ".join(
                f"{p['label']} {p['score']:.3f}{'*' if p.get('positive') else ''}" for p in items) + flags)
    if hidden:
        lines.append(f"showing the {table_top_k} highest labels per file (and any marked *); --top-k N or "
                     "--format csv/json for more")
    if thresholded:
        lines.append("* the predicted class (the highest probability; single-label)"
                     if problem_type == "single_label_classification" else
                     "* at or above the label's decision threshold (the model's config.label_thresholds)"
                     + ("; labels without a threshold are never marked" if any("positive" not in p for p in
                                                                               predictions) else ""))
    return "\n".join(lines)



def main(argv: list[str] | None = None) -> int:
    """Entry point of ``hubert-ecg predict``; returns the exit status: 0 when every input was scored, 1 when some
    (or all) were not (listed with the reason), 2 for a usage error (bad arguments, a model that cannot be loaded,
    an unreadable manifest)."""
    model_args, batching, records, windowing, args = parse(
        argv, (ModelArguments, BatchingArguments, RecordArguments, WindowingArguments, PredictArguments), PROG,
        DESCRIPTION)
    from hubert_ecg.pipelines import expand_inputs

    try:
        inputs = expand_inputs(args.inputs)
    except ValueError as err:
        return usage_error(PROG, err)
    options = {"batch_size": batching.batch_size, "top_k": args.top_k, "aggregation": args.aggregation,
               "stride_seconds": windowing.stride_seconds, "min_duration": args.min_duration,
               "sampling_rate": records.sampling_rate, "lead_names": records.lead_list,
               "missing_leads": records.missing_leads}

    from hubert_ecg.pipelines import load_pipeline

    if args.output_dir is not None:
        return _predict_to_dir(model_args, args, inputs, options)
    try:
        if model_args.model is None:
            from hubert_ecg.demo import demo_model_description, demo_model_path

            print(f"{PROG}: using the bundled demo model ({demo_model_path()}), {demo_model_description()}: a "
                  "demonstration, not a clinical tool.", file=sys.stderr)
        clf = load_pipeline(model_args.model, model_args.device, model_args.dtype, args.backend)
    except ValueError as err:
        return usage_error(PROG, err)
    readable = [item for item, error in inputs if error is None]
    config = clf.model.config
    try:
        scored = iter(clf.predict_details(readable, **options))
    except ValueError as err:  # an option the model refuses (e.g. --aggregation max of a multi-class model)
        return usage_error(PROG, err)
    details = [next(scored) if error is None else
               {"name": item, "predictions": None, "windows": 0, "flags": [], "error": error}
               for item, error in inputs]
    many = args.top_k is None and config.num_labels > MANY_LABELS
    print(_format(details, args.format, config.problem_type_of(), TABLE_TOP_K if many else None))
    bad = BadRecords(PROG, noun="input")
    bad.extend((d["name"], d["error"]) for d in details if d["error"] is not None)
    return bad.report(len(details), verb="scored")


def _read_csv_rows(path: Path) -> list[list[str]]:
    """The complete rows (header first) of a csv shard; a last line cut short by a kill is left out."""
    with open(path, encoding="utf-8", newline="") as f:
        text = f.read()
    return list(csv.reader(_io.StringIO(text[: text.rfind("\n") + 1])))


def _predict_to_dir(model_args, args, inputs: list[tuple[str, str | None]], options: dict) -> int:
    """``hubert-ecg predict ... --output_dir OUT`` on every process of a launch (see :mod:`hubert_ecg.sharding`):
    this process's shard of the sorted inputs not yet in OUT, scored one batch of ``--batch_size`` inputs at a
    time, each batch's rows appended to ``predictions-<rank>-of-<N>.csv`` (the columns of ``--format csv``) and
    flushed. Exit status: 2 for a usage error; else 1 when an input of this process's shard (process 0: of the
    whole folder) was not scored, 0 otherwise."""
    import os

    from hubert_ecg.pipelines import launch_device, load_pipeline
    from hubert_ecg.sharding import (
        ShardedRun,
        chunks,
        main_process_first,
        process_state,
    )

    settings = {"model": model_args.model or "demo", "top_k": args.top_k, "aggregation": args.aggregation,
                "stride": options["stride_seconds"], "min_duration": args.min_duration,
                "sampling_rate": options["sampling_rate"], "lead_names": options["lead_names"],
                "dtype": model_args.dtype}
    try:
        state = process_state()
        run = ShardedRun(args.output_dir, "predict", settings, state)
        run.dir.mkdir(parents=True, exist_ok=True)
        if model_args.model is None and state.is_main_process:
            from hubert_ecg.demo import demo_model_path

            print(f"{PROG}: using the bundled demo model ({demo_model_path()}): a demonstration, not a clinical tool.",
                  file=sys.stderr)
        device = launch_device(model_args.model, args.backend, model_args.device, state.device)
        clf = main_process_first(
            state, lambda: load_pipeline(model_args.model, device, model_args.dtype, args.backend))
    except ValueError as err:
        return usage_error(PROG, err)
    inputs = sorted(inputs, key=lambda pair: pair[0])
    names = [item for item, _ in inputs]
    done = {row[0] for path in run.shard_files() for row in _read_csv_rows(path)[1:] if row}
    if state.is_main_process:  # resume: drop the last lines cut short by a kill (no process writes yet)
        for path in run.shard_files():
            text = path.read_bytes()
            if not text.endswith(b"\n"):
                with open(path, "r+b") as f:
                    f.truncate(text.rfind(b"\n") + 1)
    mine = [inputs[i] for i in run.start(names, done)]
    layout = _model_csv_layout(clf.model.config, args.top_k)
    path = run.shard_path
    skipped = []
    with open(path, "a", encoding="utf-8", newline="") as f, run.progress(len(mine)) as bar:
        if f.tell() == 0:
            f.write(_csv_line(_csv_header(layout)) + "\n")
        for chunk in chunks(mine, options["batch_size"]):
            readable = [item for item, error in chunk if error is None]
            try:
                scored = iter(clf.predict_details(readable, **options))
            except ValueError as err:  # an option the model refuses
                return usage_error(PROG, err)
            details = [next(scored) if error is None else
                       {"name": item, "predictions": None, "windows": 0, "flags": [], "error": error}
                       for item, error in chunk]
            f.write("".join(_csv_line(_csv_row(d, layout)) + "\n" for d in details))
            f.flush()
            os.fsync(f.fileno())
            skipped += [d for d in details if d["error"] is not None]
            bar.update(len(chunk))
    if skipped:
        print(f"{PROG}: process {run.rank} of {run.world}: skipped {len(skipped)} of {len(mine)} "
              "input(s):", file=sys.stderr)
        for d in skipped:
            print(f"  {d['name']}: {d['error']}", file=sys.stderr)
    state.wait_for_everyone()
    status = 1 if skipped else 0
    if state.is_main_process:
        rows = [row for p in run.shard_files() for row in _read_csv_rows(p)[1:] if row]
        errors = [{"name": row[0], "error": row[-1]} for row in rows if row[-1]]
        written = {row[0] for row in rows}
        run.write_index(names, finished=all(n in written for n in names), rows=len(rows), skipped=errors)
        print(f"{PROG}: {len(rows)} row(s) in {len(run.shard_files())} file(s) under {run.dir} "
              f"({len(errors)} not scored; index.json lists them)", file=sys.stderr)
        status = 1 if errors else 0
    state.wait_for_everyone()
    return status
