"""Metrics of fine-tuned classifiers, computed with scikit-learn (the ``evaluate`` library ships no metrics offline).

Multi-label: macro and micro AUROC and AUPRC (average precision), macro and micro F1 at a threshold on the sigmoid
probabilities. Single-label: the same on one-vs-rest probabilities (softmax) plus accuracy; F1 on the arg-max.
Regression: MAE, RMSE, MSE, R2 and Pearson's r, per output and as the mean over the outputs. Labels with only one class present in the targets have no AUROC/AUPRC; macro averages
are taken over the labels where it is defined (and ``n_labels_evaluated`` says how many).
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np
from sklearn.metrics import average_precision_score, f1_score, roc_auc_score

from ..modeling import scores_from_logits

__all__ = [
    "classification_metrics",
    "per_label_metrics",
    "regression_metrics",
    "per_output_regression_metrics",
    "bootstrap_ci",
    "metrics_with_ci",
    "expected_calibration_error",
    "make_compute_metrics",
]


def _one_hot(labels: np.ndarray, n: int) -> np.ndarray:
    out = np.zeros((len(labels), n), dtype=np.float64)
    out[np.arange(len(labels)), labels.astype(int)] = 1.0
    return out


def _targets(labels: np.ndarray, scores: np.ndarray, problem_type: str) -> np.ndarray:
    labels = np.asarray(labels)
    if problem_type == "single_label_classification":
        return _one_hot(labels.reshape(-1), scores.shape[1])
    return labels.reshape(scores.shape).astype(np.float64)


def expected_calibration_error(targets: np.ndarray, scores: np.ndarray, n_bins: int = 10) -> np.ndarray:
    """Expected calibration error per label (Naeini et al., AAAI 2015; Guo et al., ICML 2017): the scores
    ``(records, num_labels)`` in ``n_bins`` equal-width bins of [0, 1], the gap between the mean score and the
    fraction of positives in each bin, weighted by the bin's share of the records. Returns ``(num_labels,)``."""
    targets, scores = np.asarray(targets, dtype=np.float64), np.asarray(scores, dtype=np.float64)
    bins = np.clip((scores * n_bins).astype(int), 0, n_bins - 1)
    out = np.zeros(scores.shape[1])
    for j in range(scores.shape[1]):
        gap = np.bincount(bins[:, j], weights=targets[:, j] - scores[:, j], minlength=n_bins)
        out[j] = np.abs(gap).sum() / max(len(scores), 1)  # sum over bins of |sum(y - p)| / n = weighted |mean gap|
    return out


def _defined(y: np.ndarray) -> np.ndarray:
    """Per column: both classes present."""
    positives = y.sum(axis=0)
    return (positives > 0) & (positives < y.shape[0])


def classification_metrics(
    labels: np.ndarray, scores: np.ndarray, problem_type: str = "multi_label_classification", threshold: float = 0.5
) -> dict[str, float]:
    """Summary metrics of classification scores.

    Args:
        labels: multi-hot ``(records, num_labels)`` (multi-label) or class indices ``(records,)`` (single-label).
        scores: probabilities ``(records, num_labels)`` (sigmoid or softmax).
        problem_type: ``"multi_label_classification"`` or ``"single_label_classification"``.
        threshold: F1 threshold on the probabilities, one for all labels or one per label ``(num_labels,)``
            (multi-label only; single-label uses the arg-max).

    Returns:
        ``macro_auroc``, ``micro_auroc``, ``macro_auprc``, ``micro_auprc``, ``macro_f1``, ``micro_f1``,
        ``macro_brier`` (the Brier score, mean squared error of the probabilities, averaged over labels),
        ``macro_ece`` (:func:`expected_calibration_error` averaged over labels), ``n_labels_evaluated`` (labels with
        both classes present), and ``accuracy`` for single-label. AUROC/AUPRC are NaN when no label has both classes.
    """
    scores = np.asarray(scores, dtype=np.float64)
    y = _targets(labels, scores, problem_type)
    defined = _defined(y)
    out: dict[str, float] = {"n_labels_evaluated": int(defined.sum())}
    if defined.any():
        out["macro_auroc"] = float(roc_auc_score(y[:, defined], scores[:, defined], average="macro"))
        out["macro_auprc"] = float(average_precision_score(y[:, defined], scores[:, defined], average="macro"))
    else:
        out["macro_auroc"] = out["macro_auprc"] = float("nan")
    flat_y = y.ravel()
    if 0 < flat_y.sum() < flat_y.size:
        out["micro_auroc"] = float(roc_auc_score(flat_y, scores.ravel()))
        out["micro_auprc"] = float(average_precision_score(flat_y, scores.ravel()))
    else:
        out["micro_auroc"] = out["micro_auprc"] = float("nan")
    if problem_type == "single_label_classification":
        pred = _one_hot(scores.argmax(axis=1), scores.shape[1])
        out["accuracy"] = float((scores.argmax(axis=1) == np.asarray(labels).reshape(-1)).mean())
    else:
        pred = (scores >= threshold).astype(np.float64)
    out["macro_f1"] = float(f1_score(y, pred, average="macro", zero_division=0))
    out["micro_f1"] = float(f1_score(y, pred, average="micro", zero_division=0))
    out["macro_brier"] = float(((scores - y) ** 2).mean())
    out["macro_ece"] = float(expected_calibration_error(y, scores).mean())
    return out


def per_label_metrics(
    labels: np.ndarray,
    scores: np.ndarray,
    label_names: Sequence[str],
    problem_type: str = "multi_label_classification",
    threshold: float = 0.5,
) -> list[dict]:
    """One row per label: ``label``, ``positives``, ``auroc``, ``auprc`` (NaN with one class only), ``f1``,
    ``precision``, ``recall`` at ``threshold`` (one for all labels or one per label; arg-max for single-label),
    ``threshold``, ``brier`` and ``ece`` (see :func:`classification_metrics`)."""
    from sklearn.metrics import precision_score, recall_score

    scores = np.asarray(scores, dtype=np.float64)
    y = _targets(labels, scores, problem_type)
    if problem_type == "single_label_classification":
        pred = _one_hot(scores.argmax(axis=1), scores.shape[1])
    else:
        pred = (scores >= threshold).astype(np.float64)
    thresholds = np.broadcast_to(np.asarray(threshold, dtype=np.float64), (scores.shape[1],))
    ece = expected_calibration_error(y, scores)
    rows = []
    for j, name in enumerate(label_names):
        yj, sj, pj = y[:, j], scores[:, j], pred[:, j]
        both = 0 < yj.sum() < len(yj)
        rows.append(
            {
                "label": name,
                "positives": int(yj.sum()),
                "auroc": float(roc_auc_score(yj, sj)) if both else float("nan"),
                "auprc": float(average_precision_score(yj, sj)) if both else float("nan"),
                "f1": float(f1_score(yj, pj, zero_division=0)),
                "precision": float(precision_score(yj, pj, zero_division=0)),
                "recall": float(recall_score(yj, pj, zero_division=0)),
                "threshold": float(thresholds[j]) if problem_type != "single_label_classification" else float("nan"),
                "brier": float(((sj - yj) ** 2).mean()),
                "ece": float(ece[j]),
            }
        )
    return rows


def _pearson_r(targets: np.ndarray, predictions: np.ndarray) -> float:
    """Pearson's correlation of two vectors; NaN when either is constant (or has fewer than two values)."""
    t, p = targets - targets.mean(), predictions - predictions.mean()
    denominator = math.sqrt(float((t * t).sum()) * float((p * p).sum()))
    return float((t * p).sum() / denominator) if denominator > 0 else float("nan")


def per_output_regression_metrics(targets: np.ndarray, predictions: np.ndarray) -> list[dict[str, float]]:
    """One dict per output (column): ``mae``, ``rmse`` (in the targets' unit), ``mse``, ``r2`` (coefficient of
    determination, NaN with fewer than two records or constant targets) and ``pearson_r`` (NaN when the targets or
    the predictions are constant).

    Args:
        targets, predictions: ``(records,)`` for one output or ``(records, outputs)``; (n, 1) and (n,) match.
    """
    predictions = np.asarray(predictions, dtype=np.float64)
    predictions = predictions.reshape(len(predictions), -1)
    targets = np.asarray(targets, dtype=np.float64).reshape(predictions.shape)
    rows = []
    for t, p in zip(targets.T, predictions.T):
        error = p - t
        mse = float((error * error).mean())
        spread = float(((t - t.mean()) ** 2).sum())
        rows.append({
            "mae": float(np.abs(error).mean()),
            "rmse": math.sqrt(mse),
            "mse": mse,
            "r2": 1.0 - float((error * error).sum()) / spread if len(t) > 1 and spread > 0 else float("nan"),
            "pearson_r": _pearson_r(t, p),
        })
    return rows


def regression_metrics(targets: np.ndarray, predictions: np.ndarray) -> dict[str, float]:
    """``mae``, ``rmse``, ``mse``, ``r2`` and ``pearson_r`` of ``predictions`` against ``targets`` (same shape, or
    (n, 1) vs (n,)): each the mean over the outputs of :func:`per_output_regression_metrics` (scikit-learn's
    ``multioutput="uniform_average"``; the RMSE is the mean of the outputs' RMSEs)."""
    rows = per_output_regression_metrics(targets, predictions)
    with np.errstate(all="ignore"):
        return {name: float(np.mean([row[name] for row in rows])) for name in ("mae", "rmse", "mse", "r2", "pearson_r")}


def bootstrap_ci(
    labels: np.ndarray,
    scores: np.ndarray,
    metric: Callable[[np.ndarray, np.ndarray], dict[str, float]],
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap confidence intervals of every value ``metric(labels, scores)`` returns.

    Records are resampled with replacement ``n_resamples`` times; resamples where a metric is undefined (NaN) are
    ignored for it.

    Returns:
        metric name -> ``(low, high)``, the ``(1 - confidence) / 2`` and ``(1 + confidence) / 2`` quantiles
        (NaN, NaN when never defined).

    Raises:
        ValueError: if ``n_resamples`` < 1 or ``confidence`` is not in (0, 1).
    """
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be at least 1, got {n_resamples}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    labels, scores = np.asarray(labels), np.asarray(scores)
    rng = np.random.default_rng(seed)
    n = len(scores)
    samples: dict[str, list[float]] = {}
    for _ in range(n_resamples):
        index = rng.integers(0, n, n)
        for name, value in metric(labels[index], scores[index]).items():
            samples.setdefault(name, []).append(value)
    alpha = (1 - confidence) / 2
    out = {}
    for name, values in samples.items():
        values = np.asarray(values, dtype=np.float64)
        values = values[np.isfinite(values)]
        out[name] = (
            (float(np.quantile(values, alpha)), float(np.quantile(values, 1 - alpha))) if values.size else (float("nan"),) * 2
        )
    return out


def metrics_with_ci(
    labels: np.ndarray,
    scores: np.ndarray,
    metric: Callable[[np.ndarray, np.ndarray], dict[str, float]],
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[dict[str, float], dict[str, tuple[float, float]]]:
    """``(metric(labels, scores), its CIs)``: the CIs of :func:`bootstrap_ci` (none when ``n_resamples`` is 0),
    without ``n_labels_evaluated``, a count rather than an estimate.

    Raises:
        ValueError: as :func:`bootstrap_ci`.
    """
    ci = bootstrap_ci(labels, scores, metric, n_resamples, confidence, seed) if n_resamples else {}
    ci.pop("n_labels_evaluated", None)
    return metric(labels, scores), ci


def make_compute_metrics(problem_type: str, threshold: float = 0.5, sources: Sequence[str] | None = None) -> Callable:
    """A ``compute_metrics`` for the Trainer: ``EvalPrediction`` (logits, labels) -> metrics dict (keys as in
    :func:`classification_metrics` or :func:`regression_metrics`). AUROC/AUPRC that are undefined are reported
    as 0.5 / 0.0 so that model selection on ``macro_auroc`` never compares NaN.

    ``sources``: the source of every evaluated record, in order (a dataset's ``source`` column); with two or
    more sources the metrics of each source's records are added as ``{source}_{metric}`` (the Trainer logs them as
    ``eval_{source}_macro_auroc``, ...), next to the pooled ones."""

    def pooled(logits, labels) -> dict[str, float]:
        if problem_type == "regression":
            return regression_metrics(labels, np.asarray(logits).reshape(np.asarray(labels).shape))
        out = classification_metrics(labels, scores_from_logits(logits, problem_type), problem_type, threshold)
        for name, fallback in (("macro_auroc", 0.5), ("micro_auroc", 0.5), ("macro_auprc", 0.0), ("micro_auprc", 0.0)):
            if not np.isfinite(out[name]):
                out[name] = fallback
        return out

    def compute_metrics(prediction) -> dict[str, float]:
        logits = prediction.predictions
        if isinstance(logits, (tuple, list)):
            logits = logits[0]
        labels = prediction.label_ids
        out = pooled(logits, labels)
        names = np.asarray(sources if sources is not None else [], dtype=object)
        if len(set(names)) > 1 and len(names) == len(labels):
            for name in dict.fromkeys(names):
                where = names == name
                out.update({f"{name}_{key}": value for key, value in pooled(logits[where], labels[where]).items()})
        return out

    return compute_metrics
