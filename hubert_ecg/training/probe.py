"""Embeddings on disk and their linear evaluation: the library of ``hubert-ecg embed``, ``hubert-ecg probe`` and
``hubert-ecg plot-embeddings`` (their arguments and ``main`` are :mod:`hubert_ecg_cli.embed`,
:mod:`hubert_ecg_cli.probe` and :mod:`hubert_ecg_cli.plot_embeddings`).

* ``hubert-ecg embed FILES|DIR|MANIFEST... --model M [--layer L] --output emb.parquet``: one row per record through
  the ``ecg-feature-extraction`` pipeline (:class:`hubert_ecg.embeddings.ECGFeatureExtractionPipeline`: the mean of
  the hidden states of the valid frames of all its 5 s windows). Columns: ``path``, ``source`` (the input argument
  the record came from, or ``--source``), ``windows``, the label columns of a labelled manifest (one float 0/1
  column per label for multi-label, one ``label`` integer column for single-label, one float column for
  regression; null for records from unlabelled inputs) and ``embedding`` (``fixed_size_list<float32>[hidden_size]``).
  The file's schema metadata (key ``hubert_ecg``) holds JSON: ``model``, ``layer``, ``hidden_size``,
  ``label_names``, ``label_columns``, ``problem_type``, ``window``, ``stride_seconds``. Read it back with
  :func:`read_embeddings`.
* ``hubert-ecg probe --embeddings train.parquet --eval eval.parquet``: a linear probe (:func:`fit_probe`):
  standardised features and a scikit-learn logistic regression, one per label (one-vs-rest) for multi-label, one
  multinomial for single-label, the inverse regularisation ``C`` of each chosen on the train file by stratified
  k-fold cross-validation (AUROC for a label, log-loss for classes); prints macro / micro AUROC and AUPRC with
  percentile-bootstrap CIs over the eval records (:func:`hubert_ecg.training.metrics.classification_metrics` and
  :func:`~hubert_ecg.training.metrics.bootstrap_ci`, the numbers ``hubert-ecg evaluate`` reports, printed by
  :func:`hubert_ecg.training.evaluate.format_report`).
* ``hubert-ecg plot-embeddings emb.parquet --color_by label|source|COLUMN --output emb.png``: a 2-D view, PCA
  (scikit-learn) by default, UMAP with ``--method umap`` (the optional ``[umap]`` extra, ``umap-learn``; its first
  call in a fresh environment compiles numba code for about a minute).

Unusable records are handled as in ``predict`` and ``evaluate`` (:data:`hubert_ecg.training.data.BAD_RECORDS_RULE`):
skipped and listed on stderr with the reason, exit status 1.
"""

from __future__ import annotations

import dataclasses
import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
from transformers.utils import logging

logger = logging.get_logger(__name__)

__all__ = [
    "Embeddings", "read_embeddings", "write_embeddings", "embed_records", "fit_probe", "linear_probe",
    "subset_embeddings", "plot_embeddings", "draw_embeddings",
]

EMBEDDING_COLUMN = "embedding"
METADATA_KEY = b"hubert_ecg"
_RESERVED = ("path", "source", "windows", EMBEDDING_COLUMN)
_PROBLEMS = ("multi_label_classification", "single_label_classification", "regression")
#: default grid of the probe's inverse regularisation strength ``C`` (as scikit-learn's ``LogisticRegressionCV``)
DEFAULT_CS = tuple(float(c) for c in np.logspace(-4, 4, 9))
#: groups a plot colours at most; the rarer ones are drawn grey as "other"
MAX_GROUPS = 10
#: the 2-D projections of :func:`project`
PROJECTIONS = ("pca", "umap")


@dataclass
class Embeddings:
    """Per-record embeddings with their provenance and labels.

    Attributes:
        paths: one per record. sources: one per record (the input it came from).
        vectors: float32 ``(records, hidden_size)``.
        windows: int ``(records,)``: 5 s windows averaged (0 when unknown).
        labels: None, or float32 ``(records, num_labels)`` multi-hot (multi-label; NaN for unlabelled records),
            int64 ``(records,)`` class indices (single-label; -1 unlabelled), float32 ``(records,)`` (regression).
        label_names: label names (class names for single-label; the target's name for regression).
        problem_type: None (no labels) or a problem type of :data:`hubert_ecg.training.data.PROBLEM_TYPES`.
        metadata: the file's ``hubert_ecg`` metadata (``model``, ``layer``, ...).
    """

    paths: list[str]
    sources: list[str]
    vectors: np.ndarray
    windows: np.ndarray | None = None
    labels: np.ndarray | None = None
    label_names: list[str] = field(default_factory=list)
    problem_type: str | None = None
    metadata: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.paths)

    def label_columns(self) -> list[str]:
        """The Parquet columns of the labels: the label names (multi-label), ``label`` (single-label), the target's
        name (regression)."""
        if self.problem_type is None:
            return []
        if self.problem_type == "single_label_classification":
            return ["label"]
        return list(self.label_names)

    def labelled(self) -> np.ndarray:
        """Bool ``(records,)``: the records that have labels."""
        if self.labels is None:
            return np.zeros(len(self), dtype=bool)
        if self.problem_type == "single_label_classification":
            return self.labels >= 0
        labels = self.labels.reshape(len(self), -1)
        return np.isfinite(labels).all(axis=1)


def write_embeddings(path: str | Path, embeddings: Embeddings) -> None:
    """Write ``embeddings`` as a Parquet file (columns and metadata: see the module docstring).

    Raises:
        ValueError: for a label named like a reserved column (``path``, ``source``, ``windows``, ``embedding``),
            or vectors whose number of rows differs from the paths'.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    vectors = np.ascontiguousarray(embeddings.vectors, dtype=np.float32)
    n = len(embeddings.paths)
    if vectors.ndim != 2 or vectors.shape[0] != n:
        raise ValueError(f"expected vectors of shape ({n}, hidden_size), got {vectors.shape}")
    columns = embeddings.label_columns()
    clash = [c for c in columns if c in _RESERVED]
    if clash:
        raise ValueError(f"label column(s) {clash} clash with the columns {list(_RESERVED)} of the embeddings file")
    windows = embeddings.windows if embeddings.windows is not None else np.zeros(n, dtype=np.int32)
    arrays = {"path": pa.array(embeddings.paths, pa.string()), "source": pa.array(embeddings.sources, pa.string()),
              "windows": pa.array(np.asarray(windows, dtype=np.int32))}
    if embeddings.problem_type == "single_label_classification":
        labels = np.asarray(embeddings.labels, dtype=np.int64)
        arrays["label"] = pa.array(labels, mask=labels < 0)
    elif columns:
        labels = np.asarray(embeddings.labels, dtype=np.float32).reshape(n, len(columns))
        for j, name in enumerate(columns):
            arrays[name] = pa.array(labels[:, j], mask=~np.isfinite(labels[:, j]))
    arrays[EMBEDDING_COLUMN] = pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), vectors.shape[1])
    metadata = dict(embeddings.metadata, hidden_size=int(vectors.shape[1]), label_names=list(embeddings.label_names),
                    label_columns=columns, problem_type=embeddings.problem_type)
    table = pa.table(arrays).replace_schema_metadata({METADATA_KEY: json.dumps(metadata).encode()})
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, str(path))


def read_embeddings(path: str | Path, label_columns: Sequence[str] | None = None) -> Embeddings:
    """Read an embeddings Parquet file written by ``hubert-ecg embed`` (or any Parquet file with an ``embedding``
    list column, a ``path`` column and numeric label columns).

    Args:
        label_columns: the label columns to use (default: those named in the file's metadata; without metadata,
            every numeric column but ``windows``: several -> multi-label (0/1), one integer -> single-label class
            indices, one float -> regression).

    Raises:
        ValueError: naming the file, when it is missing or unreadable, has no ``embedding`` column, vectors of
            different lengths, or lacks a requested label column.
    """
    import pyarrow.parquet as pq

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"embeddings file not found: {str(path)!r}")
    try:
        table = pq.read_table(str(path))
    except Exception as err:  # pyarrow raises several types
        raise ValueError(f"cannot read the embeddings file {str(path)!r}: {type(err).__name__}: {err}") from None
    names = table.column_names
    if EMBEDDING_COLUMN not in names:
        raise ValueError(f"{str(path)!r} has no {EMBEDDING_COLUMN!r} column (columns: {names}); write it with "
                         "hubert-ecg embed")
    raw = (table.schema.metadata or {}).get(METADATA_KEY)
    metadata = json.loads(raw) if raw else {}
    column = table.column(EMBEDDING_COLUMN).combine_chunks()
    lengths = np.asarray(column.value_lengths() if hasattr(column, "value_lengths") else
                         [len(v) for v in column.to_pylist()])
    if len(column) and (lengths != lengths[0]).any():
        raise ValueError(f"{str(path)!r}: the embedding vectors have different lengths {sorted(set(lengths))}")
    width = int(lengths[0]) if len(column) else int(metadata.get("hidden_size", 0))
    vectors = np.asarray(column.flatten().to_numpy(zero_copy_only=False), dtype=np.float32).reshape(len(column), width)
    n = table.num_rows
    paths = [str(p) for p in table.column("path").to_pylist()] if "path" in names else [f"row {i}" for i in range(n)]
    sources = [str(s) if s is not None else "" for s in table.column("source").to_pylist()] if "source" in names \
        else [""] * n
    windows = np.asarray(table.column("windows").to_numpy(zero_copy_only=False)) if "windows" in names else None

    problem_type = metadata.get("problem_type")
    label_names = list(metadata.get("label_names") or [])
    if label_columns is None:
        if metadata:
            label_columns = list(metadata.get("label_columns") or [])
        else:
            label_columns = [c for c in names if c not in _RESERVED
                             and str(table.schema.field(c).type) in ("int32", "int64", "float", "double")]
            label_names = list(label_columns)
            problem_type = None
    else:
        label_columns = list(label_columns)
        missing = [c for c in label_columns if c not in names]
        if missing:
            raise ValueError(f"{str(path)!r} has no column(s) {missing} (columns: {names})")
        if label_columns != list(metadata.get("label_columns") or []):
            known = problem_type == "multi_label_classification" and set(label_columns) <= set(label_names)
            label_names, problem_type = list(label_columns), "multi_label_classification" if known else None
    labels = None
    if label_columns:
        frame = np.stack([np.asarray(table.column(c).to_pandas(), dtype=np.float64) for c in label_columns], axis=1)
        if problem_type is None:
            integer = all(str(table.schema.field(c).type).startswith("int") for c in label_columns)
            problem_type = ("multi_label_classification" if len(label_columns) > 1 else
                            "single_label_classification" if integer else "regression")
        if problem_type == "single_label_classification":
            column_values = frame[:, 0]
            labels = np.where(np.isfinite(column_values), column_values, -1).astype(np.int64)
            if not label_names or label_names == ["label"] or label_names == list(label_columns):
                top = int(labels.max()) if labels.size else -1
                label_names = [str(i) for i in range(top + 1)]
        elif problem_type == "regression":
            labels, label_names = frame[:, 0].astype(np.float32), list(label_columns)
        else:
            labels, label_names = frame.astype(np.float32), list(label_columns)
    else:
        problem_type, label_names = None, []
    return Embeddings(paths, sources, vectors, windows, labels, label_names, problem_type, metadata)


# ----------------------------------------------------------------------------------------------------------------
# embedding records (hubert-ecg embed: hubert_ecg_cli/embed.py)
# ----------------------------------------------------------------------------------------------------------------


def embed_records(
    pipe, items, label_names=None, problem_type=None, batch_size: int = 16, layer: int | None = None, **kwargs
) -> tuple[Embeddings, list[tuple[str, str]]]:
    """Embed ``items`` (``(path, source, label_row or None, error or None)``) with an ``ecg-feature-extraction``
    pipeline; returns ``(embeddings, skipped)``, ``skipped`` the ``(path, reason)`` of the records not embedded.
    ``kwargs`` go to the pipeline (``window``, ``stride_seconds``, ``min_duration``, ...)."""
    readable = [item for item in items if item[3] is None]
    details = iter(pipe.embed_details([item[0] for item in readable], batch_size=batch_size, layer=layer, **kwargs))
    rows, skipped = [], []
    for path, source, label, error in items:
        detail = next(details) if error is None else {"error": error}
        if detail["error"] is not None:
            skipped.append((path, detail["error"]))
        else:
            rows.append((path, source, label, detail))
    n_labels = len(label_names or [])
    labels = None
    if problem_type == "single_label_classification":
        labels = np.asarray([-1 if r[2] is None else int(r[2]) for r in rows], dtype=np.int64)
    elif problem_type is not None:
        blank = np.full(max(n_labels, 1), np.nan, dtype=np.float32)
        labels = np.stack([blank if r[2] is None else np.asarray(r[2], np.float32).reshape(-1) for r in rows]) \
            if rows else np.zeros((0, max(n_labels, 1)), np.float32)
        if problem_type == "regression":
            labels = labels[:, 0]
    hidden = int(pipe.model.config.hidden_size)
    vectors = np.stack([r[3]["embedding"] for r in rows]) if rows else np.zeros((0, hidden), np.float32)
    embeddings = Embeddings(
        [r[0] for r in rows], [r[1] for r in rows], vectors, np.asarray([r[3]["windows"] for r in rows], np.int32),
        labels, list(label_names or []), problem_type,
    )
    return embeddings, skipped


# ----------------------------------------------------------------------------------------------------------------
# the linear probe (hubert-ecg probe: hubert_ecg_cli/probe.py)
# ----------------------------------------------------------------------------------------------------------------


def _grid_search(X, y, Cs, folds, scoring, seed):
    """Standardised features + logistic regression, ``C`` chosen by stratified ``folds``-fold CV on (X, y)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV, StratifiedKFold
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    logistic = LogisticRegression(solver="newton-cholesky", max_iter=500)  # few features: a few Newton steps
    model = Pipeline([("scale", StandardScaler()), ("logistic", logistic)])
    search = GridSearchCV(model, {"logistic__C": list(Cs)}, scoring=scoring,
                          cv=StratifiedKFold(folds, shuffle=True, random_state=seed), refit=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence and "least populated class" warnings of tiny label sets
        search.fit(X, y)
    return search.best_estimator_, float(search.best_params_["logistic__C"])


def subset_embeddings(embeddings: Embeddings, fraction: float, seed: int = 0) -> Embeddings:
    """The labelled records of :func:`hubert_ecg.training.data.label_fraction` (a seeded random ``fraction`` with
    at least 2 positives and negatives of every label), in file order: for a file written from a manifest, the
    records that ``hubert-ecg finetune --train_fraction`` trains on with the same seed (when no record
    was skipped by either).

    Raises:
        ValueError: when the embeddings have no labels or ``fraction`` lies outside (0, 1].
    """
    from .data import label_fraction

    _require_labels(embeddings, "training")
    index = np.flatnonzero(embeddings.labelled())
    keep = index[label_fraction(embeddings.labels[index], embeddings.problem_type, fraction, seed)]
    return dataclasses.replace(
        embeddings, paths=[embeddings.paths[i] for i in keep], sources=[embeddings.sources[i] for i in keep],
        vectors=embeddings.vectors[keep], windows=None if embeddings.windows is None else embeddings.windows[keep],
        labels=embeddings.labels[keep],
    )


def _require_labels(embeddings: Embeddings, which: str) -> None:
    if embeddings.problem_type is None or embeddings.labels is None:
        raise ValueError(f"the {which} embeddings have no label columns (embed a manifest with label columns, or "
                         "name them with --labels)")


def fit_probe(train: Embeddings, Cs: Sequence[float] = DEFAULT_CS, folds: int = 5, seed: int = 0):
    """Fit the linear probe on ``train`` (its labelled records).

    Multi-label: one logistic regression per label (one-vs-rest), on standardised features, its ``C`` chosen from
    ``Cs`` by stratified ``folds``-fold cross-validation on ``train`` maximising AUROC; a label with fewer than 2
    positive or negative training records cannot be fitted: it is predicted at its training prevalence (a warning
    names it). Single-label: one multinomial logistic regression, ``C`` by cross-validated log-loss. The number of
    folds is lowered to the smallest class's count where needed (at least 2).

    Returns:
        A callable ``predict(vectors (n, hidden_size)) -> scores float64 (n, num_labels)`` (probabilities) with the
        attribute ``C``: label (class) name -> chosen C (None for a label predicted at its prevalence).

    Raises:
        ValueError: when ``train`` has no labels, no labelled record, regression targets, or a single class
            (single-label); for ``folds`` < 2 or an empty ``Cs``.
    """
    _require_labels(train, "training")
    if train.problem_type == "regression":
        raise ValueError("the linear probe is a classifier; these embeddings have a regression target")
    if folds < 2:
        raise ValueError(f"folds must be at least 2, got {folds}")
    if not len(Cs):
        raise ValueError("Cs must list at least one value of C")
    keep = train.labelled()
    if not keep.any():
        raise ValueError("no training record has labels")
    X, y = train.vectors[keep].astype(np.float64), train.labels[keep]
    names = list(train.label_names)

    if train.problem_type == "single_label_classification":
        classes, counts = np.unique(y, return_counts=True)
        if len(classes) < 2:
            raise ValueError(f"the training records hold a single class ({names[int(classes[0])]}); a probe needs two")
        model, C = _grid_search(X, y, Cs, max(2, min(folds, int(counts.min()))), "neg_log_loss", seed)

        def predict(vectors):
            scores = np.zeros((len(vectors), len(names)))
            scores[:, model.classes_.astype(int)] = model.predict_proba(np.asarray(vectors, np.float64))
            return scores

        predict.C = {names[int(c)]: C for c in classes}
        return predict

    models, chosen = [], {}
    for j, name in enumerate(names):
        yj = y[:, j].astype(int)
        positives = int(yj.sum())
        smallest = min(positives, len(yj) - positives)
        if smallest < 2:
            logger.warning(f"linear probe: label {name!r} has {positives} positive of {len(yj)} training records; "
                           "it is predicted at its training prevalence (AUROC 0.5)")
            models.append(positives / len(yj))
            chosen[name] = None
            continue
        model, chosen[name] = _grid_search(X, yj, Cs, min(folds, smallest), "roc_auc", seed)
        models.append(model)

    def predict(vectors):
        vectors = np.asarray(vectors, np.float64)
        return np.stack([np.full(len(vectors), m) if isinstance(m, float) else m.predict_proba(vectors)[:, 1]
                         for m in models], axis=1)

    predict.C = chosen
    return predict


def linear_probe(
    train: Embeddings, evaluation: Embeddings, Cs: Sequence[float] = DEFAULT_CS, folds: int = 5,
    n_bootstrap: int = 1000, confidence: float = 0.95, seed: int = 0, threshold: float = 0.5,
) -> dict:
    """Fit :func:`fit_probe` on ``train`` and score ``evaluation``.

    Returns:
        ``{"metrics", "ci", "per_label", "n_records", "n_train", "C", "scores", "labels"}``: the metrics of
        :func:`hubert_ecg.training.metrics.classification_metrics` on the labelled eval records, their bootstrap
        CIs (:func:`~hubert_ecg.training.metrics.bootstrap_ci`, ``n_bootstrap`` resamples, 0: none), the rows of
        :func:`~hubert_ecg.training.metrics.per_label_metrics`, the numbers of records, the chosen C per label and
        the eval scores ``(n_records, num_labels)`` with their labels.

    Raises:
        ValueError: as :func:`fit_probe`; when the eval file's labels or vector size differ from the train file's
            or no eval record has labels.
    """
    from .metrics import classification_metrics, metrics_with_ci, per_label_metrics

    _require_labels(train, "training")
    _require_labels(evaluation, "eval")
    if evaluation.problem_type != train.problem_type or list(evaluation.label_names) != list(train.label_names):
        raise ValueError(
            f"the eval embeddings have the labels {evaluation.label_names} ({evaluation.problem_type}) but the train "
            f"embeddings {train.label_names} ({train.problem_type})"
        )
    if evaluation.vectors.shape[1] != train.vectors.shape[1]:
        raise ValueError(f"the eval vectors have {evaluation.vectors.shape[1]} dimensions, the train vectors "
                         f"{train.vectors.shape[1]}: embed both with the same model and layer")
    predict = fit_probe(train, Cs, folds, seed)
    keep = evaluation.labelled()
    if not keep.any():
        raise ValueError("no eval record has labels")
    scores, labels = predict(evaluation.vectors[keep]), evaluation.labels[keep]
    problem_type = train.problem_type

    def metric(y, s):
        return classification_metrics(y, s, problem_type, threshold)

    metrics, ci = metrics_with_ci(labels, scores, metric, n_bootstrap, confidence, seed)
    return {"metrics": metrics, "ci": ci, "per_label": per_label_metrics(labels, scores, train.label_names,
                                                                        problem_type, threshold),
            "n_records": int(keep.sum()), "n_train": int(train.labelled().sum()), "C": predict.C, "scores": scores,
            "labels": labels}


# ----------------------------------------------------------------------------------------------------------------
# 2-D views (hubert-ecg plot-embeddings: hubert_ecg_cli/plot_embeddings.py)
# ----------------------------------------------------------------------------------------------------------------


def _groups(embeddings: Embeddings, color_by: str, path: str) -> list[str]:
    """The group of every record for ``color_by``: ``label`` (multi-label: the record's labels joined by ``+``,
    ``none`` without any; single-label: the class), ``source``, or any other column of the file."""
    if color_by == "source":
        return list(embeddings.sources)
    if color_by == "label":
        if embeddings.problem_type in (None, "regression"):
            raise ValueError(f"{path!r} has no classification labels to colour by; use --color-by source")
        keep = embeddings.labelled()
        if embeddings.problem_type == "single_label_classification":
            return [embeddings.label_names[int(c)] if ok else "unlabelled" for c, ok in zip(embeddings.labels, keep)]
        return ["+".join(n for n, v in zip(embeddings.label_names, row) if v > 0.5) or "none" if ok else "unlabelled"
                for row, ok in zip(embeddings.labels, keep)]
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    if color_by not in table.column_names or color_by == EMBEDDING_COLUMN:
        raise ValueError(f"--color-by must be label, source or a column of {path!r} "
                         f"({[c for c in table.column_names if c != EMBEDDING_COLUMN]}), got {color_by!r}")
    return [str(v) for v in table.column(color_by).to_pylist()]


def project(vectors: np.ndarray, method: str = "pca", seed: int = 0) -> tuple[np.ndarray, str, str]:
    """``(records, hidden_size)`` -> 2-D coordinates ``(records, 2)`` and the two axis titles.

    ``method``: ``"pca"`` (scikit-learn; the axes give the share of variance each component explains) or
    ``"umap"`` (``umap-learn``, the ``[umap]`` extra; ``random_state=seed``; its first call in a fresh
    environment compiles numba code for about a minute).

    Raises:
        ValueError: for another method, fewer than 3 records, or ``"umap"`` without ``umap-learn`` (says how to
            install it).
    """
    if method not in PROJECTIONS:
        raise ValueError(f"method must be one of {PROJECTIONS}, got {method!r}")
    vectors = np.asarray(vectors, dtype=np.float64)
    if len(vectors) < 3:
        raise ValueError(f"a 2-D view needs at least 3 records, got {len(vectors)}")
    if method == "pca":
        from sklearn.decomposition import PCA

        pca = PCA(n_components=2, random_state=seed)
        coords = pca.fit_transform(vectors)
        share = pca.explained_variance_ratio_
        return coords, f"PC 1 ({share[0]:.0%} of variance)", f"PC 2 ({share[1]:.0%} of variance)"
    try:  # umap
        import umap
    except ImportError:
        raise ValueError('--method umap needs umap-learn: pip install "hubert-ecg[umap]"') from None
    reducer = umap.UMAP(n_components=2, random_state=seed, n_neighbors=min(15, len(vectors) - 1))
    return reducer.fit_transform(vectors), "UMAP 1", "UMAP 2"


def plot_embeddings(path: str | Path, out: str | Path, color_by: str = "label", method: str = "pca",
                    seed: int = 0, title: str | None = None) -> dict[str, int]:
    """Draw the embeddings of ``path`` in 2-D (:func:`draw_embeddings`) and save the figure as PNG at ``out``.

    Returns:
        group -> number of records, in the legend's order.

    Raises:
        ValueError: as :func:`draw_embeddings`.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    try:
        legend = draw_embeddings(ax, path, color_by, method, seed, title)
        fig.tight_layout()
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(out, dpi=110)
    finally:
        plt.close(fig)
    return legend


def draw_embeddings(ax, path: str | Path, color_by: str = "label", method: str = "pca", seed: int = 0,
                    title: str | None = None, point_size: float = 10, legend_size: float = 7) -> dict[str, int]:
    """Draw the embeddings of ``path`` in 2-D (:func:`project`) on the matplotlib axes ``ax``, one colour per group
    of ``color_by`` (the :data:`MAX_GROUPS` most frequent; the rest grey, "other"), e.g. one panel of a grid.

    Returns:
        group -> number of records, in the legend's order.

    Raises:
        ValueError: as :func:`read_embeddings` and :func:`project`; for a ``color_by`` the file cannot give.
    """
    import matplotlib.pyplot as plt

    embeddings = read_embeddings(path)
    groups = _groups(embeddings, color_by, str(path))
    coords, xlabel, ylabel = project(embeddings.vectors, method, seed)
    names, counts = np.unique(np.asarray(groups, dtype=object).astype(str), return_counts=True)
    order = [names[i] for i in np.argsort(-counts, kind="stable")]
    shown = order[:MAX_GROUPS]
    groups = np.asarray([g if g in shown else "other" for g in groups])
    legend = {g: int((groups == g).sum()) for g in shown + (["other"] if len(order) > MAX_GROUPS else [])}
    palette = plt.get_cmap("tab10")
    for k, group in enumerate(legend):
        where = groups == group
        color = "lightgrey" if group == "other" else palette(k % 10)
        ax.scatter(coords[where, 0], coords[where, 1], s=point_size, alpha=0.7, color=color,
                   label=f"{group} ({legend[group]})")
    meta = embeddings.metadata
    layer = meta.get("layer")
    ax.set_title(title or f"{method.upper()} of {len(embeddings)} embeddings ({meta.get('model', 'model')}, "
                 f"{'last layer' if layer is None else f'layer {layer}'}) by {color_by}", fontsize=9)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=legend_size, markerscale=1.5, loc="best")
    return legend
