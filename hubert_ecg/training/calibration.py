"""Calibrated scores and decision thresholds for a trained classifier (``hubert-ecg calibrate``:
:mod:`hubert_ecg_cli.calibrate`).

A classifier trained with positive-class weights (``pos_weight``) or on few records ranks records well (AUROC) but
its sigmoid scores are not probabilities: a score of 0.46 says little until it is calibrated and a threshold says
where "positive" starts. On a labelled split that took no part in training (an inner validation split, never the
test set), :func:`calibrate` fits

* a calibration of the logits (``"platt"``: ``sigmoid(a * logit + b)`` per label, Platt 1999, fitted by
  scikit-learn's logistic regression on the logit; ``"temperature"``: ``softmax(logits / T)``, Guo et al., ICML
  2017, for single-label models), stored in ``config.score_calibration``;
* a decision threshold per label on the calibrated scores (``"max_f1"``: the score at which the label's F1 on the
  split is highest, from scikit-learn's ``precision_recall_curve``), stored in ``config.label_thresholds``,

and saves the model's ``config.json`` with them. :func:`hubert_ecg.modeling.scores_from_logits`, and so the
``ecg-classification`` pipeline, ``predict`` and ``evaluate``, apply them from then on. Neither changes AUROC or
AUPRC (the ranking of the records for each label is kept).

The labelled records may label a subset of a multi-label model's outputs (a manifest whose label columns are named
as some of its ``id2label`` names, e.g. 5 of the 164 Cardio-Learning outputs): Platt scaling and thresholds are
then fitted for those outputs only; every other output keeps ``a = 1, b = 0`` (its score unchanged, the plain
sigmoid) and gets no threshold, so the pipeline and ``predict`` report its score without a ``positive`` decision.
Temperature scaling, one ``T`` for every output, is refused on such a subset. A calibration replaces the stored one
as a whole (fitted from the raw logits).
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np

__all__ = ["fit_platt", "fit_temperature", "max_f1_thresholds", "calibrate", "format_report"]


def fit_platt(logits: np.ndarray, labels: np.ndarray) -> dict:
    """Platt scaling per label: ``{"method": "platt", "scale": [a_j], "bias": [b_j]}`` such that
    ``sigmoid(a_j * logit_j + b_j)`` maximises the likelihood of ``labels`` (unregularised logistic regression on
    the one logit). A label with one class only in ``labels`` keeps ``a = 1, b = 0``.

    The map stays increasing, so that no label's ranking of the records (its AUROC, AUPRC) changes: where the best
    fit has ``a <= 0`` (the label's scores rank the records against its labels on this split), ``a`` stays 1 and
    only ``b`` is fitted, with a warning naming the label.

    Args:
        logits: ``(records, num_labels)``; labels: multi-hot ``(records, num_labels)``.
    """
    from scipy.optimize import minimize_scalar
    from scipy.special import log_expit
    from sklearn.linear_model import LogisticRegression
    from transformers.utils import logging

    logits, labels = np.asarray(logits, dtype=np.float64), np.asarray(labels, dtype=np.float64)
    scale, bias = [], []
    for j in range(logits.shape[1]):
        x, y = logits[:, j], labels[:, j]
        if not 0 < y.sum() < len(y):
            scale.append(1.0)
            bias.append(0.0)
            continue
        fit = LogisticRegression(C=np.inf).fit(x[:, None], y.astype(int))
        if fit.coef_[0, 0] > 0:
            scale.append(float(fit.coef_[0, 0]))
            bias.append(float(fit.intercept_[0]))
            continue
        logging.get_logger(__name__).warning(
            f"label {j}: its scores rank the records against their labels on this split (Platt slope "
            f"{fit.coef_[0, 0]:.3g} <= 0); kept the ranking (scale 1) and fitted the bias only")
        nll = lambda b: -(y * log_expit(x + b) + (1 - y) * log_expit(-(x + b))).mean()  # noqa: E731
        scale.append(1.0)
        bias.append(float(minimize_scalar(nll, bounds=(-50.0, 50.0), method="bounded").x))
    return {"method": "platt", "scale": scale, "bias": bias}


def fit_temperature(logits: np.ndarray, labels: np.ndarray, problem_type: str) -> dict:
    """Temperature scaling: ``{"method": "temperature", "temperature": T}`` with the ``T`` in [0.05, 20] that
    minimises the negative log-likelihood of ``labels`` under ``softmax(logits / T)`` (single-label: class indices
    ``(records,)``) or ``sigmoid(logits / T)`` (multi-label: multi-hot ``(records, num_labels)``)."""
    from scipy.optimize import minimize_scalar
    from scipy.special import expit, log_softmax

    logits = np.asarray(logits, dtype=np.float64)

    def nll(log_t):
        z = logits / math.exp(log_t)
        if problem_type == "single_label_classification":
            return -log_softmax(z, axis=1)[np.arange(len(z)), np.asarray(labels).astype(int)].mean()
        p = np.clip(expit(z), 1e-12, 1 - 1e-12)
        y = np.asarray(labels, dtype=np.float64)
        return -(y * np.log(p) + (1 - y) * np.log(1 - p)).mean()

    best = minimize_scalar(nll, bounds=(math.log(0.05), math.log(20.0)), method="bounded")
    return {"method": "temperature", "temperature": float(math.exp(best.x))}


def max_f1_thresholds(scores: np.ndarray, labels: np.ndarray, label_names) -> dict[str, float]:
    """Per label, the score at or above which the label's F1 on (``scores``, ``labels``) is highest (the lowest
    such score when several tie); 0.5 for a label without positives.

    Args:
        scores: probabilities ``(records, num_labels)``; labels: multi-hot ``(records, num_labels)``;
            label_names: ``num_labels`` names, the keys of the result.

    Returns:
        ``{label name: threshold}``, thresholds in the units of ``scores``.
    """
    from sklearn.metrics import precision_recall_curve

    out = {}
    for j, name in enumerate(label_names):
        y = np.asarray(labels)[:, j]
        if y.sum() == 0:
            out[str(name)] = 0.5
            continue
        precision, recall, thresholds = precision_recall_curve(y, scores[:, j])
        f1 = 2 * precision[:-1] * recall[:-1] / np.maximum(precision[:-1] + recall[:-1], 1e-12)
        out[str(name)] = float(thresholds[int(np.argmax(f1))])
    return out


def calibrate(args) -> dict:
    """Fit the calibration and the thresholds ``args`` asks for on its labelled records and save them in the
    model's config (see the module docstring).

    ``args`` is any object with these attributes (``hubert-ecg calibrate`` passes its parsed arguments,
    :class:`hubert_ecg_cli.calibrate.CalibrateArguments`, whose defaults are given here):

    * ``model``: the classifier's local ``save_pretrained`` directory (required); ``output_dir`` (None: its
      ``config.json`` is updated in place; else the directory is copied there first);
    * the labelled records, as :func:`hubert_ecg.training.evaluate.labelled_records` reads them: ``ptbxl_dir``,
      ``ptbxl_folds``, ``label_set``, ``ptbxl_sampling_rate`` (100), ``split`` ("validation"), or ``test_csv``
      and ``data_dir``;
    * ``method`` ("auto", "platt", "temperature" or "none"), ``thresholds`` ("max_f1" or "none");
    * ``tta_windows`` (0; N or ``"all"`` as :func:`hubert_ecg.training.evaluate.tta_window_choice`),
      ``stride_seconds`` (None), ``batch_size`` (32), ``seed`` (0), ``device`` ("cpu"), ``missing_leads``
      (:data:`hubert_ecg.leads.DEFAULT_MISSING_LEADS`), ``skip_bad_records`` (True: unusable records are skipped
      and returned under ``"skipped"``; False: the first one raises).

    Returns:
        ``{"calibration", "thresholds", "n_records", "skipped", "outputs", "before", "after"}``; ``before`` /
        ``after`` hold the macro Brier score, ECE and F1 on the records with the raw and the calibrated scores (of
        the labelled outputs); ``outputs``: ``{"fitted", "of", "labels"}``, how many outputs were fitted of how
        many, and their names where the manifest labels a subset (else None).

    Raises:
        ValueError: for a missing ``--model``, a regression model, an unknown ``method`` / ``thresholds``, bad data
            arguments (as ``hubert-ecg evaluate``: a label column that is not one of the model's labels is named),
            ``--method temperature`` on a manifest that labels a subset of the outputs, or no record that could be
            scored.
    """
    from ..modeling import scores_from_logits
    from .evaluate import labelled_records
    from .metrics import classification_metrics

    if not args.model:
        raise ValueError("--model is required: the directory of the classifier to calibrate")
    if args.method not in ("auto", "platt", "temperature", "none"):
        raise ValueError(f"--method must be auto, platt, temperature or none, got {args.method!r}")
    if args.thresholds not in ("max_f1", "none"):
        raise ValueError(f"--thresholds must be max_f1 or none, got {args.thresholds!r}")
    model, feature_extractor = _load_classifier(args)
    config = model.config
    problem_type = config.problem_type_of()
    if problem_type == "regression":
        raise ValueError(f"{args.model!r} is a regression model: calibration and thresholds apply to classifiers")
    label_names = [config.id2label[i] for i in range(config.num_labels)]
    records = labelled_records(args, label_names, problem_type)
    subset = records.label_indices  # None: every output is labelled
    method = args.method
    if method == "auto":
        method = "platt" if problem_type == "multi_label_classification" else "temperature"
    if method == "temperature" and subset is not None:
        raise ValueError(
            f"--method temperature fits one temperature for all {len(label_names)} outputs, but the manifest "
            f"{args.test_csv!r} labels {len(subset)} of them ({', '.join(records.label_names)}): use --method platt "
            "(per label; the other outputs are left as they are) or label every output"
        )
    logits, kept, skipped = _record_logits(model, feature_extractor, records, args)
    labels = records.labels[kept]
    if method == "platt" and problem_type != "multi_label_classification":
        raise ValueError("--method platt is per label: for a multi-label model; use temperature for single-label")
    fitted = list(range(len(label_names))) if subset is None else list(subset)  # the labelled outputs
    names = [label_names[i] for i in fitted]
    calibration = _fit_calibration(method, logits, labels, fitted, len(label_names), problem_type)
    raw = scores_from_logits(logits, problem_type)[:, fitted]
    calibrated = scores_from_logits(logits, problem_type, calibration)[:, fitted]
    thresholds = None
    if args.thresholds == "max_f1" and problem_type == "multi_label_classification":
        thresholds = max_f1_thresholds(calibrated, labels, names)

    def summary(scores, threshold):
        m = classification_metrics(labels, scores, problem_type, threshold)
        return {k: m[k] for k in ("macro_brier", "macro_ece", "macro_f1")}

    result = {
        "calibration": calibration, "thresholds": thresholds, "n_records": len(kept), "skipped": skipped,
        "outputs": {"fitted": len(fitted), "of": len(label_names), "labels": names if subset is not None else None},
        "before": summary(raw, 0.5),
        "after": summary(calibrated, np.array([thresholds[n] for n in names]) if thresholds else 0.5),
    }
    _save_calibration(args, result)
    return result


def _load_classifier(args):
    """``(model, feature_extractor)`` of the local model directory ``args.model``."""
    from transformers import AutoModelForSequenceClassification

    from ..pipelines import load_feature_extractor

    if not Path(args.model).is_dir():
        raise ValueError(f"--model must be a local model directory (its config.json is updated, or the directory "
                         f"copied to --output_dir), got {args.model!r}")
    try:
        model = AutoModelForSequenceClassification.from_pretrained(args.model)
        feature_extractor = load_feature_extractor(args.model, model.config)
    except (OSError, ValueError) as err:
        raise ValueError(f"cannot load the model {args.model!r}: {type(err).__name__}: {err}") from None
    return model, feature_extractor


def _record_logits(model, feature_extractor, records, args):
    """``(logits, kept, skipped)`` of the records; raises for a bad one (unless skipped) or when none is scored."""
    from .evaluate import score_records

    logits, kept, skipped = score_records(
        model, feature_extractor, records.paths, args.tta_windows, "mean", args.batch_size, args.seed, args.device,
        missing_leads=args.missing_leads, function_to_apply="none", stride_seconds=args.stride_seconds,
    )
    if skipped and not args.skip_bad_records:
        raise ValueError(f"cannot use record {skipped[0][0]!r}: {skipped[0][1]}")
    if not kept:
        from ..io import NoUsableRecords

        raise NoUsableRecords(f"none of the {len(records)} records could be scored: "
                              + "; ".join(f"{p}: {r}" for p, r in skipped), skipped, len(records))
    return logits, kept, skipped


def _fit_calibration(method: str, logits, labels, fitted: list[int], num_labels: int, problem_type: str):
    """The fitted calibration dict of ``method`` (Platt on the ``fitted`` outputs, or temperature), or None."""
    calibration = None
    if method == "platt":
        platt = fit_platt(logits[:, fitted], labels)
        calibration = {"method": "platt", "scale": [1.0] * num_labels, "bias": [0.0] * num_labels}
        for j, i in enumerate(fitted):  # the other outputs keep a = 1, b = 0: their scores unchanged
            calibration["scale"][i], calibration["bias"][i] = platt["scale"][j], platt["bias"][j]
    elif method == "temperature":
        calibration = fit_temperature(logits, labels, problem_type)
    return calibration


def _save_calibration(args, result: dict) -> None:
    """None; writes the calibration and thresholds into the (copied) model's config and ``calibration.json``."""
    from transformers import AutoConfig

    target = Path(args.output_dir or args.model)
    if args.output_dir:
        shutil.copytree(args.model, target, dirs_exist_ok=True)
    saved = AutoConfig.from_pretrained(target)
    saved.score_calibration, saved.label_thresholds = result["calibration"], result["thresholds"]
    saved.validate_architecture()
    saved.save_pretrained(target)
    (target / "calibration.json").write_text(json.dumps(
        {**{k: v for k, v in result.items() if k != "skipped"}, "arguments": vars(args),
         "skipped": [{"file": p, "reason": r} for p, r in result["skipped"]]}, indent=2))


def format_report(result: dict) -> str:
    """What ``hubert-ecg calibrate`` prints."""
    lines = [f"{result['n_records']} records"]
    outputs = result.get("outputs") or {}
    if outputs.get("labels") is not None:
        lines.append(f"{outputs['fitted']} of {outputs['of']} outputs labelled in the manifest, fitted: "
                     f"{', '.join(outputs['labels'])}; the other outputs keep their scores (scale 1, bias 0) and "
                     "have no threshold")
    lines.append("")
    calibration = result["calibration"]
    if calibration is None:
        lines.append("calibration: none")
    elif calibration["method"] == "temperature":
        lines.append(f"calibration: temperature T = {calibration['temperature']:.3f}")
    else:
        lines.append("calibration: platt, sigmoid(a * logit + b) per label")
    if result["thresholds"]:
        lines.append("thresholds (max F1): " + ", ".join(f"{k} {v:.3f}" for k, v in result["thresholds"].items()))
    lines += ["", f"{'':<26} {'Brier':>7} {'ECE':>7} {'F1':>7}"]
    for name, key in (("raw scores, threshold 0.5", "before"), ("calibrated, thresholds", "after")):
        row = result[key]
        lines.append(f"{name:<26} {row['macro_brier']:>7.3f} {row['macro_ece']:>7.3f} {row['macro_f1']:>7.3f}")
    lines.append("(macro averages on the records fitted on: in-sample; report figures on a held-out split with "
                 "hubert-ecg evaluate)")
    return "\n".join(lines)
