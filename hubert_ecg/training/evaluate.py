"""``hubert-ecg evaluate`` (:mod:`hubert_ecg_cli.evaluate`): AUROC, AUPRC and F1 of a classifier on a labelled set, with bootstrap 95 % CIs.

``hubert-ecg evaluate [CONFIG.yaml|.json] --model M (--ptbxl_dir DIR [--split validation] | --test_csv CSV
[--data_dir DIR]) [--output_dir OUT]``

Every record is scored on its first 5 s window (as the release evaluates), with ``--tta_windows N`` on N random 5 s
windows, or with ``--tta_windows all`` on every 5 s window ``--stride_seconds`` apart; the probabilities of a
record's windows are aggregated by their mean or maximum (``--tta_aggregation``). Writes to
``output_dir``: ``metrics.json`` (macro / micro AUROC and AUPRC, macro / micro F1 at ``--threshold``, each with a
percentile-bootstrap CI over records), ``per_label.csv``, ``roc_curves.png`` (one ROC curve per label) and, with
``--save_probabilities``, ``probabilities.csv``.

The metrics follow the model's problem type (``config.problem_type_of()``):

* multi-label: the above, F1 at the threshold of each label;
* single-label (multi-class, softmax): ``accuracy`` and ``macro_f1`` of the argmax class, ``macro_auroc`` /
  ``macro_auprc`` one-vs-rest (over the classes present in the records), micro averages, Brier score and ECE; the
  labels are one column of class indices or class names (``--tta_aggregation`` mean only);
* regression: ``mae``, ``rmse``, ``mse``, ``r2`` and ``pearson_r`` (the mean over the outputs), and per output
  (``per_label.csv``: one row per output with each metric's CI bounds); the targets are the manifest's columns
  named as the model's outputs (``id2label``), e.g. ``age`` or ``QTc_ms,HR_bpm``.

Every metric has its percentile-bootstrap CI (``--n_bootstrap`` resamples of the records).

A manifest for a multi-label model may label a subset of its outputs: label columns named as some of the model's
``id2label`` names (e.g. ``NORM,AF,IRBBB`` of the 164 Cardio-Learning outputs; a column that is not a label name is
an error naming it). The metrics, per-label rows, CIs, ROC curves and ``probabilities.csv`` then cover those
outputs only, and the report says how many were evaluated (``3 of 164 outputs labelled in the manifest``;
``metrics.json``: ``"outputs": {"evaluated", "of", "labels"}``).

With ``--lead_sets 12,6,4,3,2,1`` (names of :data:`hubert_ecg.leads.LEAD_SETS`, the PhysioNet/CinC 2021 lead sets)
the same records are scored again with each lead set, the other leads zero-filled as missing leads (the
``lead_set`` of :class:`hubert_ecg.pipelines.ECGClassificationPipeline`), and the metrics with their bootstrap CIs
are reported per lead set: ``metrics.json`` gains ``"lead_sets": {"12": {"leads", "n_records", "metrics", "ci"},
...}``, and ``lead_sets.csv`` (one row per lead set) and ``lead_sets.png`` (macro AUROC per lead set, with its CI)
are written. The ``"12"`` row is the plain evaluation; every lead set scores the records it scored (a record can
still drop out of a lead set whose leads are all flat in it: ``n_records`` says). Unusable records are handled as in ``predict`` and ``finetune``
(:data:`hubert_ecg.training.data.BAD_RECORDS_RULE`): skipped and listed on stderr, exit status 1 (also when no
record could be scored); 2 with ``--skip_bad_records false`` at the first one.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import asdict, is_dataclass
from pathlib import Path

import numpy as np
from ..leads import DEFAULT_MISSING_LEADS, check_missing_leads
from transformers.utils import logging

logger = logging.get_logger(__name__)

__all__ = ["evaluate", "evaluate_models", "format_report", "labelled_records", "plot_lead_sets", "score_records"]


def labelled_records(args, label_names, problem_type):
    """The labelled records ``args`` names (PTB-XL ``ptbxl_dir`` / ``ptbxl_folds`` / ``split`` / ``label_set`` /
    ``ptbxl_sampling_rate``, or ``test_csv`` / ``data_dir``), labels in the model's label order.

    A manifest of a multi-label model may label some of its outputs only: label columns named as some of
    ``label_names`` (``read_manifest(..., allow_subset=True)``); the records' ``label_names`` are then those, in the
    model's order, and ``label_indices`` their output indices (None when every output is labelled).

    Raises:
        ValueError: for neither or both sources, an unknown split, labels that do not match the model's (a
            manifest's label column that is not one of ``label_names`` is named).
    """
    from . import data

    if bool(args.ptbxl_dir) == bool(args.test_csv):
        raise ValueError("give exactly one data source: --ptbxl_dir or --test_csv")
    if args.ptbxl_dir and problem_type == "regression":
        raise ValueError(
            f"a regression model ({list(label_names)}) is evaluated on a manifest: --test_csv with a filename column "
            "and one column per output, named as the model's id2label (PTB-XL's metadata holds diagnostic labels)"
        )
    if args.test_csv:
        return data.read_manifest(args.test_csv, args.data_dir, num_labels=len(label_names),
                                  problem_type=problem_type, label_names=label_names, allow_subset=True)
    if args.split not in data.PTBXL_SPLITS:
        raise ValueError(f"--split must be one of {sorted(data.PTBXL_SPLITS)}, got {args.split!r}")
    records = data.read_ptbxl(args.ptbxl_dir, args.label_set or "superdiagnostic", args.ptbxl_sampling_rate)
    if sorted(records.label_names) != sorted(label_names):
        raise ValueError(
            f"PTB-XL label set {args.label_set or 'superdiagnostic'!r} has labels {records.label_names} but the "
            f"model has {list(label_names)}; choose the matching --label_set"
        )
    order = [records.label_names.index(name) for name in label_names]
    records.labels, records.label_names = records.labels[:, order], list(label_names)
    parts = data.split_by_fold(records, data.parse_fold_splits(args.ptbxl_folds, required=(args.split,)))
    if args.split not in parts:
        raise ValueError(f"PTB-XL split {args.split!r} has no records under {args.ptbxl_dir!r} (found {sorted(parts)})")
    return parts[args.split]


def tta_window_choice(tta_windows, stride_seconds=None, seed=0) -> dict:
    """The pipeline's window arguments for a test-time-averaging choice.

    Args:
        tta_windows: 0 (the first 5 s window, as the release evaluates), N > 0 (N random windows, seeded by
            ``seed``) or ``"all"`` (every 5 s window, ``stride_seconds`` apart; a 10 s PTB-XL record with a 2.5 s
            stride gives 3 windows).
        stride_seconds: with ``"all"`` only: seconds between window starts (None: 5, windows side by side).

    Raises:
        ValueError: for a negative or non-integer ``tta_windows`` other than ``"all"``, a ``stride_seconds`` that is
            not positive, or a ``stride_seconds`` without ``"all"``.
    """
    if tta_windows == "all":
        if stride_seconds is not None and not float(stride_seconds) > 0:
            raise ValueError(f"--stride_seconds must be a positive number of seconds, got {stride_seconds!r}")
        return {"window": "all", "stride_seconds": stride_seconds}
    if stride_seconds is not None:
        raise ValueError(f"--stride_seconds spaces the windows of --tta_windows all; got --tta_windows {tta_windows!r}")
    if isinstance(tta_windows, bool) or not isinstance(tta_windows, int) or tta_windows < 0:
        raise ValueError(f"--tta_windows must be 0, a positive number of windows or 'all', got {tta_windows!r}")
    return {"window": "random", "num_windows": tta_windows, "seed": seed} if tta_windows else {"window": "first"}


def score_records(model, feature_extractor, paths, tta_windows=0, aggregation="mean", batch_size=32, seed=0,
                  device="cpu", lead_set=None, missing_leads=DEFAULT_MISSING_LEADS, function_to_apply=None,
                  stride_seconds=None):
    """Scores of every readable record, through the ``ecg-classification`` pipeline (its window choice, model call
    and aggregation: :class:`hubert_ecg.pipelines.ECGClassificationPipeline`).

    Args:
        paths: record paths for :func:`hubert_ecg.read_ecg`.
        tta_windows, stride_seconds: which windows (:func:`tta_window_choice`: 0 the first 5 s window, N random
            windows seeded by ``seed``, ``"all"`` every window ``stride_seconds`` apart), aggregated by
            ``aggregation`` (``"mean"`` or ``"max"``).
        batch_size: windows per forward pass.
        lead_set: None (every lead of the record), or a lead set (a name of :data:`hubert_ecg.leads.LEAD_SETS` or
            lead names): the other leads are zero-filled as missing leads.
        missing_leads: ``"raise"`` (default: a record lacking any of the 12 leads is skipped, as in ``finetune``)
            or ``"zero"``; with a ``lead_set`` always ``"zero"``.
        function_to_apply: None (the model's own scores, with its ``config.score_calibration``) or ``"none"``
            (the logits, averaged over the windows).

    Returns:
        ``(scores, kept, skipped)``: scores float64 ``(kept records, num_labels)`` in label-id order (sigmoid,
        softmax or raw outputs by the model's problem type), the indices of the scored records in ``paths``, and
        ``(path, reason)`` pairs of the skipped ones.
    """
    from ..pipelines import ECGClassificationPipeline

    model.to(device).eval()
    clf = ECGClassificationPipeline(model=model, feature_extractor=feature_extractor, device=torch_device(device))
    window = tta_window_choice(tta_windows, stride_seconds, seed)
    paths = [str(p) for p in paths]
    window["missing_leads"] = missing_leads
    if lead_set is not None:
        window.update(lead_set=lead_set, missing_leads="zero")
    results, skipped = clf.predict_files(paths, batch_size=batch_size, aggregation=aggregation, top_k=None,
                                         function_to_apply=function_to_apply, **window)
    skipped_names = {name for name, _ in skipped}
    kept = [i for i, p in enumerate(paths) if p not in skipped_names]
    label_ids = {name: i for i, name in model.config.id2label.items()}
    scores = np.zeros((len(results), model.config.num_labels))
    for row, (_, predictions) in enumerate(results):
        for p in predictions:
            scores[row, label_ids[p["label"]]] = p["score"] if "score" in p else p["value"]  # value: regression
    return scores, kept, skipped


def torch_device(device):
    """``"cpu"``, ``"cuda:0"``, ... as the ``torch.device`` the pipeline takes."""
    import torch

    return torch.device(device)


def plot_roc_curves(labels: np.ndarray, scores: np.ndarray, label_names, path: str | Path) -> None:
    """One ROC curve per label (with both classes present) on one figure, saved as PNG at ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import roc_auc_score, roc_curve

    fig, ax = plt.subplots(figsize=(5.5, 5))
    for j, name in enumerate(label_names):
        y = labels[:, j]
        if 0 < y.sum() < len(y):
            fpr, tpr, _ = roc_curve(y, scores[:, j])
            ax.plot(fpr, tpr, label=f"{name} (AUROC {roc_auc_score(y, scores[:, j]):.3f}, n+={int(y.sum())})")
    ax.plot([0, 1], [0, 1], "k--", linewidth=0.8)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title("ROC curves per label")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_lead_sets(tables: dict, path: str | Path, metric: str = "macro_auroc", confidence: float = 0.95) -> None:
    """``metric`` per lead set, one line per model, with its CI as error bars, saved as PNG at ``path``.

    Args:
        tables: model name -> its lead-set table (``result["lead_sets"]`` of :func:`evaluate`: lead-set name ->
            ``{"metrics", "ci", ...}``); the x axis lists the lead sets of the first table, in its order.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    title = {"macro_auroc": "macro AUROC", "macro_auprc": "macro AUPRC"}.get(metric, metric.replace("_", " "))
    names = list(next(iter(tables.values())))
    x = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for offset, (model, table) in zip(np.linspace(-0.08, 0.08, len(tables)) if len(tables) > 1 else [0.0],
                                      tables.items()):
        rows = [table.get(n, {"metrics": {}, "ci": {}}) for n in names]
        values = np.array([r["metrics"].get(metric, np.nan) for r in rows], dtype=float)
        cis = np.array([r["ci"].get(metric, (np.nan, np.nan)) for r in rows], dtype=float).reshape(-1, 2)
        errors = np.abs(np.stack([values - cis[:, 0], cis[:, 1] - values])) if np.isfinite(cis).all() else None
        ax.errorbar(x + offset, values, yerr=errors, marker="o", capsize=3, label=model)
    ax.set_xticks(x, [f"{n} lead{'s' if n != '1' else ''}" for n in names])
    ax.set_xlabel("lead set (other leads zero-filled)")
    ax.set_ylabel(f"{title} (bars: {int(confidence * 100)}% CI)")
    ax.set_title(f"{title} per lead set")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def evaluate(args) -> dict:
    """Run the evaluation described by ``args``; returns ``{"metrics", "ci", "per_label", "n_records",
    "skipped"}`` (and ``"lead_sets"``: lead-set name -> ``{"leads", "n_records", "metrics", "ci", "skipped"}``
    with ``args.lead_sets``) and writes the files to ``args.output_dir`` when given.

    ``args`` is any object with these attributes (``hubert-ecg evaluate`` passes its parsed arguments,
    :class:`hubert_ecg_cli.evaluate.EvaluateArguments`, whose defaults are given here; a dataclass for
    :func:`evaluate_models`, which replaces ``model`` and ``output_dir``):

    * ``model`` (None: the bundled demo model), the data source as :func:`labelled_records` reads it:
      ``ptbxl_dir``, ``ptbxl_folds``, ``label_set``, ``ptbxl_sampling_rate`` (100), ``split`` ("test"), or
      ``test_csv`` and ``data_dir``;
    * ``output_dir`` (None: nothing written), ``save_probabilities`` (False), ``plot_roc`` (None: when
      ``output_dir`` is given);
    * ``threshold`` (None: the model's ``config.label_thresholds``, else 0.5), ``n_bootstrap`` (1000),
      ``confidence`` (0.95), ``seed`` (0);
    * ``tta_windows`` (0: the first 5 s window; N: N random windows; ``"all"``: every window, ``stride_seconds``
      apart, None: 5 s), ``tta_aggregation`` ("mean" or "max"),
      ``batch_size`` (32), ``device`` ("cpu"), ``missing_leads`` (:data:`hubert_ecg.leads.DEFAULT_MISSING_LEADS`);
    * ``lead_sets`` (None, or comma-separated names of :data:`hubert_ecg.leads.LEAD_SETS`), ``skip_bad_records``
      (True: unusable records are skipped and returned under ``"skipped"``; False: the first one raises).

    Raises:
        ValueError: for a missing model, data file or argument error, label columns that do not match the model,
            or when no record could be scored (the message lists the skipped records); for an unknown lead set in
            ``args.lead_sets`` (names it).
    """
    from ..leads import parse_lead_sets
    from .metrics import per_label_metrics

    if args.tta_aggregation not in ("mean", "max"):
        raise ValueError(f"--tta_aggregation must be 'mean' or 'max', got {args.tta_aggregation!r}")
    tta_window_choice(args.tta_windows, args.stride_seconds)  # checked before the model loads
    check_missing_leads(args.missing_leads, "--missing_leads")
    lead_set_names = parse_lead_sets(args.lead_sets) if args.lead_sets else []
    source, model, feature_extractor = _load_model(args)
    label_names = [model.config.id2label[i] for i in range(model.config.num_labels)]
    problem_type = model.config.problem_type_of()
    records = labelled_records(args, label_names, problem_type)

    scores, kept, skipped = _score_all(model, feature_extractor, records, args)
    labels = records.labels[kept]
    n_outputs = len(label_names)
    subset = records.label_indices  # None: every output is labelled
    if subset is not None:  # the labelled outputs only, in the model's order
        scores, label_names = scores[:, subset], list(records.label_names)
    stored = model.config.label_thresholds or {}
    threshold = np.array([stored.get(name, 0.5) for name in label_names]) if args.threshold is None \
        else args.threshold
    measured = _measurer(problem_type, threshold, args)

    metrics, ci = measured(labels, scores)
    if problem_type == "regression":
        per_label = _per_output_rows(labels, scores, label_names, args)
    else:
        per_label = per_label_metrics(labels, scores, label_names, problem_type, threshold)
    result = {"metrics": metrics, "ci": ci, "per_label": per_label, "n_records": len(kept), "skipped": skipped,
              "outputs": {"evaluated": len(label_names), "of": n_outputs,
                          "labels": list(label_names) if subset is not None else None}}
    if lead_set_names:
        result["lead_sets"] = _lead_set_table(lead_set_names, model, feature_extractor, records, labels, result,
                                              scores, kept, measured, args)

    if args.output_dir:
        _write_outputs(Path(args.output_dir), args, source, result, lead_set_names, problem_type, per_label,
                       label_names, labels, scores, kept, records)
    return result


def _load_model(args):
    """``(source, model, feature_extractor)``: the classifier ``args.model`` names (None: the demo model)."""
    from transformers import AutoModelForSequenceClassification

    from ..demo import demo_model_path
    from ..pipelines import load_feature_extractor

    source = args.model or demo_model_path()
    try:
        model = AutoModelForSequenceClassification.from_pretrained(source)
        feature_extractor = load_feature_extractor(source, model.config)
    except (OSError, ValueError) as err:
        raise ValueError(f"cannot load the model {source!r}: {type(err).__name__}: {err}") from None
    return source, model, feature_extractor


def _score_all(model, feature_extractor, records, args):
    """``(scores, kept, skipped)`` of the records; raises for a bad one (unless skipped) or when none is scored."""
    scores, kept, skipped = score_records(
        model, feature_extractor, records.paths, args.tta_windows, args.tta_aggregation, args.batch_size, args.seed,
        args.device, missing_leads=args.missing_leads, stride_seconds=args.stride_seconds,
    )
    if skipped and not args.skip_bad_records:
        path, reason = skipped[0]
        raise ValueError(f"cannot use record {path!r}: {reason}")
    if not kept:
        from ..io import NoUsableRecords

        lines = "\n".join(f"  {p}: {r}" for p, r in skipped)
        raise NoUsableRecords(f"none of the {len(records)} records could be scored:\n{lines}", skipped, len(records))
    return scores, kept, skipped


def _measurer(problem_type, threshold, args):
    """The function ``(labels, scores) -> (metrics, bootstrap CIs)`` of the problem type."""
    from .metrics import classification_metrics, metrics_with_ci, regression_metrics

    if problem_type == "regression":
        def metric(y, s):  # the means over the outputs (each output's own: per_label)
            return regression_metrics(y, s)
    else:
        def metric(y, s):
            return classification_metrics(y, s, problem_type, threshold)

    def measured(y, s):  # the metrics and their bootstrap CIs
        return metrics_with_ci(y, s, metric, args.n_bootstrap, args.confidence, args.seed)

    return measured


def _lead_set_table(lead_set_names, model, feature_extractor, records, labels, result, scores, kept, measured,
                    args) -> dict:
    """Lead-set name -> ``{"leads", "n_records", "metrics", "ci", "skipped"}``: the records rescored per lead set."""
    from ..leads import LEAD_SETS

    subset = records.label_indices
    table = {}
    for name in lead_set_names:
        if name == "12":  # every lead: the plain evaluation
            set_kept, set_skipped, set_metrics, set_ci = kept, result["skipped"], result["metrics"], result["ci"]
        else:
            set_scores, set_kept, set_skipped = score_records(  # the records of the plain evaluation
                model, feature_extractor, [records.paths[i] for i in kept], args.tta_windows,
                args.tta_aggregation, args.batch_size, args.seed, args.device, lead_set=name,
                stride_seconds=args.stride_seconds,
            )
            if subset is not None:
                set_scores = set_scores[:, subset]
            set_metrics, set_ci = measured(labels[set_kept], set_scores) if set_kept else ({}, {})
        table[name] = {"leads": list(LEAD_SETS[name]), "n_records": len(set_kept), "metrics": set_metrics,
                       "ci": set_ci, "skipped": set_skipped}
    return table


def _write_outputs(out: Path, args, source, result, lead_set_names, problem_type, per_label, label_names, labels,
                   scores, kept, records) -> None:
    """None; writes ``metrics.json``, ``per_label.csv`` and the other files asked for to ``out``."""
    out.mkdir(parents=True, exist_ok=True)

    def clean(v):
        return None if isinstance(v, float) and math.isnan(v) else v

    def as_json(row):  # metrics, CIs (NaN as null) and skipped records of a result or of a lead set
        return {"n_records": row["n_records"],
                "metrics": {k: clean(v) for k, v in row["metrics"].items()},
                "ci": {k: [clean(lo), clean(hi)] for k, (lo, hi) in row["ci"].items()},
                "skipped": [{"file": p, "reason": r} for p, r in row["skipped"]]}

    summary = {"model": source, "arguments": asdict(args) if is_dataclass(args) else dict(vars(args)), **as_json(result), "confidence": args.confidence,
               "outputs": result["outputs"]}
    if lead_set_names:
        summary["lead_sets"] = {name: {"leads": row["leads"], **as_json(row)}
                                for name, row in result["lead_sets"].items()}
        _write_lead_sets_csv(result["lead_sets"], out / "lead_sets.csv")
        if problem_type != "regression":
            plot_lead_sets({Path(str(source)).name or str(source): result["lead_sets"]}, out / "lead_sets.png",
                           "macro_auroc", args.confidence)
    (out / "metrics.json").write_text(json.dumps(summary, indent=2))
    if per_label:
        with open(out / "per_label.csv", "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(per_label[0]))
            writer.writeheader()
            writer.writerows(per_label)
    if args.save_probabilities:
        with open(out / "probabilities.csv", "w", newline="") as handle:
            writer = csv.writer(handle)
            prefix = "pred" if problem_type == "regression" else "p"  # values, not probabilities
            writer.writerow(["file"] + [f"{prefix}_{n}" for n in label_names] + [f"y_{n}" for n in label_names])
            y = labels if labels.ndim == 2 else np.eye(len(label_names))[labels] if problem_type != "regression" \
                else labels.reshape(len(labels), -1)
            for i, index in enumerate(kept):
                writer.writerow([records.paths[index]] + [f"{v:.6f}" for v in scores[i]]
                                + [f"{v:g}" for v in np.atleast_1d(y[i])])
    if args.plot_roc is not False and problem_type != "regression":
        y = labels if labels.ndim == 2 else np.eye(len(label_names))[labels]
        plot_roc_curves(y, scores, label_names, out / "roc_curves.png")


def _per_output_rows(labels: np.ndarray, values: np.ndarray, names, args) -> list[dict]:
    """One row per regression output: ``label``, ``n``, and ``mae``, ``rmse``, ``r2``, ``pearson_r`` each with its
    bootstrap CI bounds (``<metric>_low``, ``<metric>_high``; NaN without resamples). The resamples are those of
    the summary metrics (the same records drawn from the same seed)."""
    from .metrics import metrics_with_ci, per_output_regression_metrics

    keys = ("mae", "rmse", "r2", "pearson_r")
    labels = np.asarray(labels, dtype=np.float64).reshape(len(values), -1)
    rows = []
    for j, name in enumerate(names):
        def metric(y, s):
            return per_output_regression_metrics(y, s)[0]

        value, ci = metrics_with_ci(labels[:, j], values[:, j], metric, args.n_bootstrap, args.confidence, args.seed)
        row = {"label": name, "n": len(values)}
        for key in keys:
            low, high = ci.get(key, (float("nan"), float("nan")))
            row.update({key: value[key], f"{key}_low": low, f"{key}_high": high})
        rows.append(row)
    return rows


def _write_lead_sets_csv(table: dict, path: Path) -> None:
    """``lead_sets.csv``: one row per lead set: ``lead_set``, ``leads`` (space-separated), ``n_records``, then each
    metric with its CI bounds (``<metric>``, ``<metric>_low``, ``<metric>_high``)."""
    names = [k for row in table.values() for k in row["metrics"] if k != "n_labels_evaluated"]
    names = list(dict.fromkeys(names))
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["lead_set", "leads", "n_records"] + [f"{n}{s}" for n in names for s in ("", "_low", "_high")])
        for lead_set, row in table.items():
            cells = []
            for n in names:
                lo, hi = row["ci"].get(n, (float("nan"), float("nan")))
                cells += [f"{v:.6f}" for v in (row["metrics"].get(n, float("nan")), lo, hi)]
            writer.writerow([lead_set, " ".join(row["leads"]), row["n_records"]] + cells)


def format_report(result: dict, confidence: float = 0.95) -> str:
    """The summary table and the per-label table printed by ``hubert-ecg evaluate`` (with, for a manifest that
    labels some of the model's outputs, how many: ``"5 of 164 outputs labelled in the manifest"``)."""
    lines = [f"{result['n_records']} records scored"]
    outputs = result.get("outputs") or {}
    if outputs.get("labels") is not None:
        lines.append(f"{outputs['evaluated']} of {outputs['of']} outputs labelled in the manifest, evaluated: "
                     + ", ".join(outputs["labels"]))
    lines += ["", f"{'metric':<14} {'value':>7}   {int(confidence * 100)}% CI"]
    for name, value in result["metrics"].items():
        if name == "n_labels_evaluated":
            continue
        lo, hi = result["ci"].get(name, (float("nan"), float("nan")))
        ci = f"[{lo:.3f}, {hi:.3f}]" if not math.isnan(lo) else ""
        lines.append(f"{name:<14} {value:>7.3f}   {ci}".rstrip())
    def with_ci(value, low, high):
        return f"{value:>9.3f} " + (f"[{low:.3f}, {high:.3f}]" if not math.isnan(low) else "")

    regression = "mae" in result["metrics"]
    if result["per_label"] and regression:  # one row per output, each metric with its CI
        width = max(len("output"), *(len(row["label"]) for row in result["per_label"]))
        lines += ["", (f"{'output':<{width}} " + " ".join(f"{title:>9} {'CI':<24}" for title in
                                                           ("MAE", "RMSE", "R2", "Pearson r"))).rstrip()]
        for row in result["per_label"]:
            lines.append(f"{row['label']:<{width}} " + " ".join(
                f"{with_ci(row[key], row[key + '_low'], row[key + '_high']):<34}" for key in
                ("mae", "rmse", "r2", "pearson_r")).rstrip())
    elif result["per_label"]:
        lines += ["", f"{'label':<10} {'n+':>4} {'AUROC':>7} {'AUPRC':>7} {'F1':>7} {'thresh':>7} {'Brier':>7} "
                      f"{'ECE':>7}"]
        for row in result["per_label"]:
            threshold = f"{row['threshold']:>7.3f}" if not math.isnan(row["threshold"]) else f"{'argmax':>7}"
            lines.append(f"{row['label']:<10} {row['positives']:>4} {row['auroc']:>7.3f} {row['auprc']:>7.3f} "
                         f"{row['f1']:>7.3f} {threshold} {row['brier']:>7.3f} {row['ece']:>7.3f}")
    if result.get("lead_sets"):
        keys = ("mae", "r2") if regression else ("macro_auroc", "macro_auprc")
        titles = ("MAE", "R2") if regression else ("macro AUROC", "macro AUPRC")
        lines += ["", f"{'lead set':<9} {'n':>5} {titles[0]:>12} {'CI':>16} {titles[1]:>12} {'CI':>16}"]
        for name, row in result["lead_sets"].items():
            cells = []
            for key in keys:
                lo, hi = row["ci"].get(key, (float("nan"), float("nan")))
                ci = f"[{lo:.3f}, {hi:.3f}]" if not math.isnan(lo) else ""
                cells.append(f"{row['metrics'].get(key, float('nan')):>12.3f} {ci:>16}")
            lines.append(f"{name:<9} {row['n_records']:>5} " + " ".join(cells))
    return "\n".join(lines)


def evaluate_models(args) -> dict[str, dict]:
    """:func:`evaluate` for each model of a comma-separated ``args.model``, on the same records; each writes to
    ``output_dir/<the model's folder name>``, and with ``lead_sets`` ``output_dir/lead_sets.png`` draws one line per
    model and ``output_dir/lead_sets.csv`` holds every model's rows (a ``model`` column first).

    Returns:
        model name -> its :func:`evaluate` result.

    Raises:
        ValueError: as :func:`evaluate`, or for two models with the same folder name.
    """
    from dataclasses import replace

    models = [m.strip() for m in (args.model or "").split(",") if m.strip()]
    names = [Path(m).name or m for m in models]
    if len(set(names)) != len(names):
        raise ValueError(f"--model: the models' folder names must differ (they name the output folders), got {names}")
    results = {}
    for model, name in zip(models, names):
        out = str(Path(args.output_dir) / name) if args.output_dir else None
        results[name] = evaluate(replace(args, model=model, output_dir=out))
    if args.output_dir and args.lead_sets:
        tables = {name: result["lead_sets"] for name, result in results.items()}
        plot_lead_sets(tables, Path(args.output_dir) / "lead_sets.png", "macro_auroc", args.confidence)
        rows = []
        for name in names:  # each evaluate() wrote its own lead_sets.csv
            lines = (Path(args.output_dir) / name / "lead_sets.csv").read_text().splitlines()
            rows += [f"model,{lines[0]}"] if not rows else []
            rows += [f"{name},{line}" for line in lines[1:]]
        (Path(args.output_dir) / "lead_sets.csv").write_text("\n".join(rows) + "\n")
    return results
