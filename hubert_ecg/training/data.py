"""Labelled ECG data sets for fine-tuning and evaluation: manifests -> ``datasets.Dataset``.

Two sources:

* a CSV manifest in the original release's format: a ``filename`` column (paths relative to a data directory, in
  any format :func:`hubert_ecg.io.read_ecg` reads), optional ``age`` and ``sex`` columns, then the label columns:
  several 0/1 columns for multi-label classification, one integer column (class index; or class names, given
  the model's label names) for multi-class classification, or one float column for regression (:func:`load_manifest`);
* PTB-XL metadata, ``ptbxl_database.csv`` and ``scp_statements.csv``, for the label sets of the PTB-XL benchmark
  (Strodthoff et al., IEEE JBHI 2021): ``all``, ``diagnostic``, ``subdiagnostic``, ``superdiagnostic``, ``form`` and
  ``rhythm``, split by ``strat_fold`` (1-8 train, 9 validation, 10 test) (:func:`load_ptbxl`).

Every record is read once (:func:`hubert_ecg.windows.load_record`) and stored as raw signal: ``signal`` is an
``Array2D`` float32 of shape ``(12, max_samples)`` in mV with the leads in the order of
:data:`hubert_ecg.leads.STANDARD_LEADS`, mapped by :func:`hubert_ecg.leads.map_leads` as everywhere in the
package (records shorter than the longest are right-padded with zeros; ``num_samples`` holds the true length), with
``lead_mask`` (the leads present: with ``missing_leads="zero"`` a 2-lead record is accepted as pretraining accepts
it, its other leads zero-filled), ``sampling_rate`` (Hz), ``record_name`` and ``labels``. Preprocessing runs on the
fly with :func:`with_preprocessing`, which gives each training example a random, time-aligned 5 s window (the same
start for all leads; :func:`hubert_ecg.windows.choose_window_starts`) every time it is drawn.
"""

from __future__ import annotations

import ast
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import torch
from datasets import Array2D, Dataset, Features, Sequence as HFSequence, Value
from transformers.utils import logging

from ..io import manifest_path_column, manifest_paths
from ..leads import DEFAULT_MISSING_LEADS, STANDARD_LEADS
from ..windows import record_windows

logger = logging.get_logger(__name__)

PTBXL_LABEL_SETS = ("all", "diagnostic", "subdiagnostic", "superdiagnostic", "form", "rhythm")
# The five superclasses in the order used throughout the package (PTB-XL, Wagner et al. 2020).
SUPERDIAGNOSTIC = ("NORM", "MI", "STTC", "CD", "HYP")
PTBXL_SPLITS = {"train": tuple(range(1, 9)), "validation": (9,), "test": (10,)}
PROBLEM_TYPES = ("multi_label_classification", "single_label_classification", "regression")
# THE rule for unusable records (unreadable, truncated, too short, lacking leads, ...) in the commands that read many
# of them (`predict`, `evaluate`, `finetune`): stated once here, shown in the commands' --help and in the docs.
BAD_RECORDS_RULE = (
    "unusable records (unreadable, truncated, lacking leads, ...) are skipped and listed on stderr with the reason, "
    "and the command exits with status 1 after finishing with the rest; false: the first one stops the command "
    "(status 2)"
)
#: the help of every command's ``--missing_leads`` (one default: :data:`hubert_ecg.leads.DEFAULT_MISSING_LEADS`)
MISSING_LEADS_HELP = (
    "records lacking some of the 12 leads: zero (zero-filled and flagged, as the model was pretrained) or raise "
    "(unusable: skipped and listed)"
)
_META_COLUMNS = ("age", "sex")  # besides the path column (hubert_ecg.io.PATH_COLUMNS): not labels


@dataclass
class LabelledRecords:
    """A list of labelled ECG files before they are read.

    Attributes:
        paths: one path per record (as :func:`~hubert_ecg.io.read_ecg` takes it).
        labels: float32 ``(records, num_labels)`` multi-hot for multi-label, int64 ``(records,)`` class indices for
            single-label, float32 ``(records,)`` (one target) or ``(records, num_labels)`` for regression.
        label_names: one name per label (per class for single-label).
        problem_type: one of :data:`PROBLEM_TYPES`.
        folds: PTB-XL ``strat_fold`` per record, or None.
        label_indices: where the manifest labels a subset of a model's outputs (:func:`read_manifest` with
            ``allow_subset=True``): the model's output index of each of ``label_names``, increasing (the labels
            are in the model's order); None when the labels are every output, in order.
    """

    paths: list[str]
    labels: np.ndarray
    label_names: list[str]
    problem_type: str
    folds: np.ndarray | None = None
    label_indices: list[int] | None = None

    def select(self, mask: np.ndarray) -> "LabelledRecords":
        """The records where the bool ``mask`` (records,) is True."""
        index = np.flatnonzero(mask)
        return LabelledRecords(
            [self.paths[i] for i in index], self.labels[index], list(self.label_names), self.problem_type,
            None if self.folds is None else self.folds[index],
            None if self.label_indices is None else list(self.label_indices),
        )

    def __len__(self) -> int:
        return len(self.paths)


@dataclass
class Skipped:
    """Records that could not be used: ``(path, reason)`` pairs (see :data:`BAD_RECORDS_RULE`)."""

    items: list[tuple[str, str]] = field(default_factory=list)

    def add(self, path: str, reason: str):
        """Record that ``path`` was skipped, and why."""
        self.items.append((str(path), reason))

    def __len__(self) -> int:
        return len(self.items)

    def lines(self) -> list[str]:
        """One line per skipped record: the path and the reason (once, where the reason already names it)."""
        return [reason if reason.startswith(path) else f"{path}: {reason}" for path, reason in self.items]

    def report(self) -> str:
        """One line per skipped record, for stderr."""
        return "\n".join([f"skipped {len(self.items)} record(s):"] + [f"  {line}" for line in self.lines()])


# ----------------------------------------------------------------------------------------------------------------
# manifests
# ----------------------------------------------------------------------------------------------------------------


def read_manifest(
    csv_path: str | os.PathLike,
    data_dir: str | os.PathLike | None = None,
    num_labels: int | None = None,
    problem_type: str | None = None,
    label_names: Sequence[str] | None = None,
    allow_subset: bool = False,
) -> LabelledRecords:
    """Read a CSV manifest in the original release's format.

    Columns: ``filename`` (or another of :data:`hubert_ecg.io.PATH_COLUMNS`, the rule of every manifest; relative to
    ``data_dir``, default the CSV's folder; absolute paths are kept), optional
    ``age`` and ``sex``, then the label columns (for a regression with ``label_names``: the columns of those
    names). The problem type is inferred when not given: one integer column
    -> ``single_label_classification`` (class indices 0..num_labels-1), one float column -> ``regression``,
    several 0/1 columns -> ``multi_label_classification``.

    Args:
        csv_path: the manifest.
        data_dir: folder the file names are relative to.
        num_labels: expected number of labels (of classes for single-label); checked against the columns.
        problem_type: one of :data:`PROBLEM_TYPES`, or None to infer it.
        label_names: expected label names (e.g. a model's ``id2label``): the label columns are reordered to
            match them; a missing name is an error (unless ``allow_subset``). Columns none of which is a label name,
            as many as the labels, are taken in order (with a warning). For a regression they are the target
            columns by name (any other columns are ignored; ``age`` too is a target when an output is named
            ``age``); unnamed outputs (no column of that name) take the label columns in order.
        allow_subset: with ``label_names`` of a multi-label model (several names): the label columns may name some
            of them only (``evaluate`` and ``calibrate`` of those outputs; not fine-tuning, whose loss needs every
            output). The records then hold those labels in the model's order, with ``label_indices``.

    Returns:
        :class:`LabelledRecords`.

    Raises:
        ValueError: naming the CSV, when it is missing or unreadable, has no ``filename`` column or no label
            columns, when the label columns do not match ``num_labels`` / ``label_names`` (a label column that is
            not one of ``label_names`` is named, with some of the known names), when multi-hot labels are not 0/1,
            when class indices are out of range, or for an unknown ``problem_type``.
    """
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise ValueError(f"manifest CSV not found: {str(csv_path)!r}")
    try:
        frame = pd.read_csv(csv_path)
    except Exception as err:  # pandas raises many types
        raise ValueError(f"cannot read the manifest CSV {str(csv_path)!r}: {type(err).__name__}: {err}") from None
    path_column = manifest_path_column(frame.columns, csv_path)
    if problem_type is not None and problem_type not in PROBLEM_TYPES:
        raise ValueError(f"problem_type must be one of {PROBLEM_TYPES}, got {problem_type!r}")
    columns, label_indices, problem_type = _label_columns(frame, path_column, csv_path, problem_type, label_names,
                                                          allow_subset)
    values = frame[columns]
    if problem_type is None:
        if len(columns) > 1:
            problem_type = "multi_label_classification"
        elif pd.api.types.is_integer_dtype(values[columns[0]]):
            problem_type = "single_label_classification"
        else:
            problem_type = "regression"
    if values.isna().any().any():
        raise ValueError(f"manifest {str(csv_path)!r} has empty label cells in columns {columns}")

    if problem_type == "single_label_classification":
        if len(columns) != 1:
            raise ValueError(
                f"manifest {str(csv_path)!r}: multi-class labels need one integer column, found {len(columns)}: {columns}"
            )
        labels = values[columns[0]].to_numpy()
        if not pd.api.types.is_numeric_dtype(values[columns[0]]):  # class names: the model's label names
            known = {str(name): i for i, name in enumerate(label_names or [])}
            unknown = sorted({str(v) for v in labels} - set(known))
            if unknown:
                raise ValueError(
                    f"manifest {str(csv_path)!r}: column {columns[0]!r} holds class names {unknown[:5]} that are not "
                    f"the model's classes {list(known)} (or give integer class indices)"
                )
            labels = np.array([known[str(v)] for v in labels])
        if not np.all(np.equal(np.mod(labels, 1), 0)):
            raise ValueError(f"manifest {str(csv_path)!r}: column {columns[0]!r} must hold integer class indices")
        labels = labels.astype(np.int64)
        n = num_labels if num_labels is not None else (len(label_names) if label_names else int(labels.max()) + 1)
        if labels.min() < 0 or labels.max() >= n:
            raise ValueError(
                f"manifest {str(csv_path)!r}: class indices in {columns[0]!r} must lie in [0, {n - 1}] for "
                f"num_labels={n}, found [{labels.min()}, {labels.max()}]"
            )
        names = list(label_names) if label_names else [str(i) for i in range(n)]
    else:
        labels = values.to_numpy(dtype=np.float32)
        if problem_type == "multi_label_classification" and not np.isin(labels, (0.0, 1.0)).all():
            raise ValueError(f"manifest {str(csv_path)!r}: multi-label columns {columns} must hold 0 or 1")
        if num_labels is not None and labels.shape[1] != num_labels and label_indices is None:
            raise ValueError(
                f"manifest {str(csv_path)!r} has {labels.shape[1]} label column(s) {columns} but num_labels="
                f"{num_labels}"
            )
        if problem_type == "regression" and labels.shape[1] == 1:
            labels = labels[:, 0]
        names = [str(c) for c in columns]
    paths = manifest_paths(frame[path_column], data_dir if data_dir is not None else csv_path.parent)
    return LabelledRecords(paths, labels, names, problem_type, label_indices=label_indices)


def _label_columns(frame, path_column: str, csv_path: Path, problem_type: str | None, label_names, allow_subset: bool):
    """The label columns of a manifest, in the model's order where ``label_names`` are given; ``label_indices`` for a
    subset of a multi-label model's outputs (``allow_subset``); the problem type (set for a subset). Raises
    ``ValueError`` as :func:`read_manifest` documents."""
    columns = [c for c in frame.columns
               if c != path_column and c not in _META_COLUMNS and not str(c).startswith("Unnamed:")]
    if problem_type == "regression" and label_names is not None and all(n in frame.columns for n in label_names):
        columns = list(label_names)  # the outputs' columns by name, whatever else the manifest holds (even age)
    elif problem_type == "regression" and label_names is not None and len(label_names) == 1 and len(columns) > 1:
        raise ValueError(
            f"manifest {str(csv_path)!r} has no column {label_names[0]!r} (the model's output) and several label "
            f"columns {columns}: name the target column {label_names[0]!r}"
        )
    if not columns:
        raise ValueError(f"manifest {str(csv_path)!r} has no label columns after filename/age/sex")
    label_indices = None
    if label_names is not None and problem_type != "single_label_classification" and len(label_names) > 1:
        known = [str(name) for name in label_names]
        unknown = [c for c in columns if str(c) not in known]
        if not unknown and len(columns) == len(known):
            columns = list(label_names)  # reorder to the model's labels
        elif len(columns) == len(known) and len(unknown) == len(columns):
            logger.warning(
                f"manifest {str(csv_path)!r}: label columns {columns} are taken in order as {list(label_names)}"
            )
        elif unknown:
            shown = ", ".join(known[:8]) + (", ..." if len(known) > 8 else "")
            raise ValueError(
                f"manifest {str(csv_path)!r}: label column(s) {unknown} are not labels of the model; the model has "
                f"{len(known)} labels ({shown}). Name each label column as one of the model's labels (id2label)"
                + (", a subset of them to evaluate or calibrate those outputs only" if allow_subset else "")
                + f", or give {len(known)} label columns, in the model's order"
            )
        elif allow_subset:  # some of the model's labels: those outputs only, in the model's order
            label_indices = [i for i, name in enumerate(known) if name in columns]
            columns = [known[i] for i in label_indices]
            problem_type = problem_type or "multi_label_classification"  # even one 0/1 column
        else:
            raise ValueError(
                f"manifest {str(csv_path)!r} has {len(columns)} label column(s) {columns} but the model has "
                f"{len(label_names)} labels {list(label_names)} (a subset of the labels is accepted by "
                "hubert-ecg evaluate and calibrate, not here)"
            )
    return columns, label_indices, problem_type


# ----------------------------------------------------------------------------------------------------------------
# PTB-XL
# ----------------------------------------------------------------------------------------------------------------


def read_ptbxl(
    ptbxl_dir: str | os.PathLike | Sequence[str | os.PathLike],
    label_set: str = "superdiagnostic",
    sampling_rate: int = 100,
    drop_unlabelled: bool = True,
    require_files: bool = True,
) -> LabelledRecords:
    """Multi-label PTB-XL labels from ``ptbxl_database.csv`` and ``scp_statements.csv``.

    Label sets as in the PTB-XL benchmark: ``all`` (every SCP statement), ``diagnostic`` (statements with
    ``diagnostic == 1``), ``subdiagnostic`` / ``superdiagnostic`` (their ``diagnostic_subclass`` /
    ``diagnostic_class``; superdiagnostic in the order NORM, MI, STTC, CD, HYP), ``form`` and ``rhythm``
    (statements with ``form == 1`` / ``rhythm == 1``). A statement counts whatever its likelihood in ``scp_codes``.

    Args:
        ptbxl_dir: folder holding the two CSV files and ``records100/`` and/or ``records500/``; or several such
            folders (a list, or one string of comma-separated folders, e.g. ``ptbxl,ptbxl_extra``): their records
            are concatenated in the order given (each folder's labels from its own metadata).
        label_set: one of :data:`PTBXL_LABEL_SETS`.
        sampling_rate: 100 (``filename_lr``) or 500 (``filename_hr``) Hz.
        drop_unlabelled: drop records without any label of the set (12 of the 434 shared records for
            superdiagnostic).
        require_files: keep only records whose ``.hea`` file exists (the shared copy holds a subset).

    Returns:
        :class:`LabelledRecords` with ``folds`` (``strat_fold``) and labels float32 ``(records, num_labels)``.

    Raises:
        ValueError: for a missing folder or CSV, an unknown ``label_set`` or ``sampling_rate``.
    """
    folders = _folders(ptbxl_dir)
    if len(folders) > 1:
        parts = [read_ptbxl(folder, label_set, sampling_rate, drop_unlabelled, require_files) for folder in folders]
        return LabelledRecords(
            [path for part in parts for path in part.paths], np.concatenate([part.labels for part in parts]),
            parts[0].label_names, parts[0].problem_type, np.concatenate([part.folds for part in parts]),
        )
    ptbxl_dir = folders[0]
    if label_set not in PTBXL_LABEL_SETS:
        raise ValueError(f"label_set must be one of {PTBXL_LABEL_SETS}, got {label_set!r}")
    if sampling_rate not in (100, 500):
        raise ValueError(f"PTB-XL sampling_rate must be 100 or 500 Hz, got {sampling_rate!r}")
    database, statements = ptbxl_dir / "ptbxl_database.csv", ptbxl_dir / "scp_statements.csv"
    for path in (database, statements):
        if not path.is_file():
            raise ValueError(f"PTB-XL metadata not found: {str(path)!r} (expected in ptbxl_dir={str(ptbxl_dir)!r})")
    frame = pd.read_csv(database, index_col="ecg_id")
    scp = pd.read_csv(statements, index_col=0)

    if label_set == "all":
        mapping = {code: code for code in scp.index}
    elif label_set == "diagnostic":
        mapping = {code: code for code in scp.index[scp.diagnostic == 1]}
    elif label_set == "subdiagnostic":
        diag = scp[scp.diagnostic == 1]
        mapping = dict(zip(diag.index, diag.diagnostic_subclass))
    elif label_set == "superdiagnostic":
        diag = scp[scp.diagnostic == 1]
        mapping = dict(zip(diag.index, diag.diagnostic_class))
    else:
        mapping = {code: code for code in scp.index[scp[label_set] == 1]}
    mapping = {code: str(name) for code, name in mapping.items() if isinstance(name, str) and name}
    names = list(SUPERDIAGNOSTIC) if label_set == "superdiagnostic" else sorted(set(mapping.values()))
    column = {name: i for i, name in enumerate(names)}

    column_name = "filename_lr" if sampling_rate == 100 else "filename_hr"
    paths, labels, folds = [], [], []
    for _, row in frame.iterrows():
        path = ptbxl_dir / row[column_name]
        if require_files and not path.with_suffix(".hea").is_file():
            continue
        codes = ast.literal_eval(row["scp_codes"])
        vector = np.zeros(len(names), dtype=np.float32)
        for code in codes:
            if code in mapping:
                vector[column[mapping[code]]] = 1.0
        if drop_unlabelled and not vector.any():
            continue
        paths.append(str(path))
        labels.append(vector)
        folds.append(int(row["strat_fold"]))
    if not paths:
        raise ValueError(f"no PTB-XL records at {sampling_rate} Hz with {label_set} labels found under {str(ptbxl_dir)!r}")
    return LabelledRecords(paths, np.stack(labels), names, "multi_label_classification", np.asarray(folds))


def _folders(ptbxl_dir) -> list[Path]:
    """``ptbxl_dir`` as a list of folders: a path, a comma-separated string of paths, or a list of paths."""
    items = ptbxl_dir.split(",") if isinstance(ptbxl_dir, str) else (
        [ptbxl_dir] if isinstance(ptbxl_dir, os.PathLike) else list(ptbxl_dir))
    folders = [Path(str(item).strip()) for item in items if str(item).strip()]
    if not folders:
        raise ValueError(f"ptbxl_dir names no folder: {ptbxl_dir!r}")
    return folders


def parse_fold_splits(spec: str | dict | None, required: Sequence[str] = ("train", "validation")
                      ) -> dict[str, tuple[int, ...]]:
    """PTB-XL splits by ``strat_fold`` from ``"train=1-7,validation=8,test=9"`` (ranges and single folds, ``+``
    joins several: ``train=1-6+8``), or a mapping ``{"train": [1, ...], ...}``; None or ``""``: :data:`PTBXL_SPLITS`
    (1-8 train, 9 validation, 10 test).

    Raises:
        ValueError: naming the bad part: an unknown split name (train, validation, test), a fold outside 1-10, a
            fold in two splits, or a split of ``required`` without folds.
    """
    if spec is None or (isinstance(spec, str) and not spec.strip()):
        return dict(PTBXL_SPLITS)
    if isinstance(spec, str):
        items = {}
        for part in spec.split(","):
            name, sep, folds = part.partition("=")
            if not sep:
                raise ValueError(f"--ptbxl_folds: expected split=folds such as 'train=1-7', got {part.strip()!r}")
            items[name.strip()] = folds.strip()
    else:
        items = dict(spec)
    splits, seen = {}, {}
    for name, folds in items.items():
        if name not in PTBXL_SPLITS:
            raise ValueError(f"--ptbxl_folds: unknown split {name!r}; expected train, validation or test")
        numbers = []
        for piece in (folds.split("+") if isinstance(folds, str) else [str(f) for f in folds]):
            low, dash, high = piece.strip().partition("-")
            try:
                numbers += list(range(int(low), int(high) + 1)) if dash else [int(low)]
            except ValueError:
                raise ValueError(f"--ptbxl_folds: {name}={folds!r} is not a fold, a range 'a-b' or 'a+b'") from None
        for fold in numbers:
            if not 1 <= fold <= 10:
                raise ValueError(f"--ptbxl_folds: fold {fold} of {name} is outside PTB-XL's strat_fold 1-10")
            if fold in seen:
                raise ValueError(f"--ptbxl_folds: fold {fold} is in both {seen[fold]} and {name}")
            seen[fold] = name
        splits[name] = tuple(numbers)
    for name in required:
        if not splits.get(name):
            raise ValueError(f"--ptbxl_folds: {spec!r} has no {name} folds")
    return splits


def split_by_fold(records: LabelledRecords, splits: dict[str, Sequence[int]] = PTBXL_SPLITS) -> dict[str, LabelledRecords]:
    """Split PTB-XL records by ``strat_fold`` (default: 1-8 train, 9 validation, 10 test); empty splits are left out."""
    if records.folds is None:
        raise ValueError("split_by_fold needs records with folds (from read_ptbxl)")
    out = {}
    for name, folds in splits.items():
        mask = np.isin(records.folds, list(folds))
        if mask.any():
            out[name] = records.select(mask)
    return out


def label_fraction(labels: np.ndarray, problem_type: str, fraction: float, seed: int = 0,
                   min_examples: int = 2) -> np.ndarray:
    """The records of a seeded random ``fraction`` of a labelled training set, for label-efficiency studies.

    The first ``round(fraction * records)`` records (at least 1) of a permutation seeded by ``seed`` are taken.
    Classification subsets keep every label learnable where the full set allows it: a label (class) with fewer
    than ``min_examples`` positive records in the subset, or (multi-label) fewer than ``min_examples`` negative
    ones, gets the next records of the permutation that have (lack) it, so a small subset can exceed its size by
    a few records (at most ``2 * min_examples`` per label). The default of 2 is what a cross-validated linear probe
    needs (:func:`hubert_ecg.training.probe.fit_probe`). The same ``(labels, fraction, seed)`` give the same records,
    so a probe and a fine-tuning run can share a subset.

    Args:
        labels: ``(records, num_labels)`` multi-hot (multi-label), ``(records,)`` class indices (single-label; a
            negative index marks an unlabelled record) or regression targets.
        problem_type: one of :data:`PROBLEM_TYPES`.
        fraction: in (0, 1]; 1 keeps every record.
        seed: seed of the permutation.
        min_examples: the fewest positive (and, multi-label, negative) records per label.

    Returns:
        A bool mask ``(records,)``.

    Raises:
        ValueError: for a ``fraction`` outside (0, 1] or an unknown ``problem_type``.
    """
    if not 0 < fraction <= 1:
        raise ValueError(f"the training fraction must lie in (0, 1], got {fraction}")
    if problem_type not in PROBLEM_TYPES:
        raise ValueError(f"problem_type must be one of {PROBLEM_TYPES}, got {problem_type!r}")
    labels = np.asarray(labels)
    count = len(labels)
    order = np.random.default_rng(seed).permutation(count)
    mask = np.zeros(count, dtype=bool)
    mask[order[: max(1, int(round(fraction * count)))]] = True
    if problem_type == "regression" or mask.all():
        return mask
    if problem_type == "single_label_classification":
        columns = [labels == c for c in np.unique(labels[labels >= 0])]
    else:
        hot = np.nan_to_num(labels.reshape(count, -1)) > 0
        columns = [hot[:, j] for j in range(hot.shape[1])]
        columns += [~column for column in columns]
    for column in columns:
        missing = min_examples - int((mask & column).sum())
        if missing > 0:
            extra = [i for i in order if column[i] and not mask[i]][:missing]
            mask[extra] = True
    return mask


def mix_sources(parts: Sequence[Dataset], names: Sequence[str], probabilities: Sequence[float] | None = None,
                seed: int = 0, stopping_strategy: str | None = None) -> Dataset:
    """Labelled datasets of several sources as one, with a ``source`` column (the source's name per row).

    With ``probabilities`` the rows are drawn by ``datasets.interleave_datasets`` (through
    :func:`hubert_ecg.training.sources.mix_rows`, the mixing of pretraining): the chance that the next row comes
    from source ``i`` is ``probabilities[i]``, until ``stopping_strategy`` ends the draw (``all_exhausted``, the
    default: every row of every source at least once, the smaller sources repeated; ``first_exhausted``: until the
    first source runs out). Without: the sources concatenated in order (evaluation splits).

    Raises:
        ValueError: for a different number of names, parts or probabilities, or as ``mix_rows`` raises.
    """
    from datasets import concatenate_datasets

    if len(names) != len(parts) or (probabilities is not None and len(probabilities) != len(parts)):
        raise ValueError(f"mix_sources: {len(parts)} datasets, {len(names)} names and "
                         f"{len(probabilities or [])} probabilities")
    labelled = [part.add_column("source", [name] * len(part)) for part, name in zip(parts, names)]
    pooled = concatenate_datasets(labelled) if len(labelled) > 1 else labelled[0]
    if probabilities is None:
        return pooled
    from .sources import DEFAULT_STOPPING_STRATEGY, mix_rows

    offsets = np.cumsum([0] + [len(part) for part in parts])
    rows, which = mix_rows([np.arange(len(part)) for part in parts], probabilities, seed,
                           stopping_strategy or DEFAULT_STOPPING_STRATEGY)
    return pooled.select(offsets[which] + rows)


# ----------------------------------------------------------------------------------------------------------------
# reading signals into a Dataset
# ----------------------------------------------------------------------------------------------------------------


def build_dataset(
    records: LabelledRecords,
    on_error: str = "raise",
    skipped: Skipped | None = None,
    missing_leads: str = DEFAULT_MISSING_LEADS,
    feature_extractor=None,
) -> Dataset:
    """Read every record of ``records`` into a ``datasets.Dataset``.

    Columns: ``signal`` Array2D float32 ``(12, max_samples)`` in mV (standard lead order, zero-padded on the right),
    ``lead_mask`` (12 bools: the leads present), ``num_samples`` (int, true length), ``sampling_rate`` (float, Hz), ``record_name`` (str: the path), ``labels``
    (see :class:`LabelledRecords`). Label names and problem type are in ``dataset.info.description`` as JSON and
    returned by :func:`label_info`.

    Args:
        records: what to read.
        on_error: ``"raise"``: an unreadable record raises; ``"skip"``: it is left out and listed in ``skipped``.
        skipped: collects ``(path, reason)`` of skipped records.
        missing_leads: ``"raise"`` (a record without the 12 standard leads is an error naming them) or ``"zero"``
            (its missing leads are zero-filled and ``lead_mask`` says which are real), as pretraining accepts them.
        feature_extractor: whose window geometry the records are checked against (default: the standard one).

    A record is usable when :func:`hubert_ecg.windows.record_windows` accepts it (the check the pipeline and
    ``hubert-ecg predict`` / ``evaluate`` make) and it holds finite samples. The commands skip unusable records by
    default (:data:`BAD_RECORDS_RULE`); this function raises unless ``on_error="skip"``.

    Raises:
        ValueError: naming the file, for a missing or unusable record (with ``on_error="raise"``), or when no
            record could be read.
    """
    import json

    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    skipped = skipped if skipped is not None else Skipped()
    if feature_extractor is None:
        from ..processing import HuBERTECGFeatureExtractor

        feature_extractor = HuBERTECGFeatureExtractor()
    signals, masks, rates, names, keep = [], [], [], [], []
    for i, path in enumerate(records.paths):
        try:
            # the checks every command makes (windows.record_windows): readable, leads, length, and signal quality
            # over every window training may draw (all of them, the last one padded: the whole record)
            plan = record_windows(path, feature_extractor, window="all", pad_to_window=True,
                                  missing_leads=missing_leads)
            record, present, rows = plan.record, np.asarray(plan.lead_mask, dtype=bool), plan.rows
            signal = np.zeros((len(STANDARD_LEADS), record.signal.shape[1]), dtype=np.float32)
            signal[present] = np.asarray(record.signal, dtype=np.float32)[rows[present]]
            if not np.isfinite(signal[present]).any():
                raise ValueError(f"{path!r} holds no finite samples")
        except ValueError as err:
            if on_error == "raise":
                raise ValueError(f"cannot use record {path!r}: {err}") from None
            skipped.add(path, str(err))
            continue
        signals.append(signal)
        masks.append(present)
        rates.append(float(record.sampling_rate))
        names.append(str(path))
        keep.append(i)
    if not signals:
        raise ValueError(f"none of the {len(records)} records could be read:\n{skipped.report()}")
    max_len = max(s.shape[1] for s in signals)
    padded = np.zeros((len(signals), len(STANDARD_LEADS), max_len), dtype=np.float32)
    for i, s in enumerate(signals):
        padded[i, :, : s.shape[1]] = s
    labels = records.labels[keep]
    if records.problem_type == "single_label_classification":
        label_feature = Value("int64")
    elif labels.ndim == 1:
        label_feature = Value("float32")
    else:
        label_feature = HFSequence(Value("float32"), length=labels.shape[1])
    features = Features(
        {
            "signal": Array2D(shape=(len(STANDARD_LEADS), max_len), dtype="float32"),
            "lead_mask": HFSequence(Value("bool"), length=len(STANDARD_LEADS)),
            "num_samples": Value("int64"),
            "sampling_rate": Value("float32"),
            "record_name": Value("string"),
            "labels": label_feature,
        }
    )
    data = {
        "signal": padded,
        "lead_mask": np.stack(masks),
        "num_samples": [s.shape[1] for s in signals],
        "sampling_rate": rates,
        "record_name": names,
        "labels": labels,
    }
    dataset = Dataset.from_dict(data, features=features)
    dataset.info.description = json.dumps({"label_names": records.label_names, "problem_type": records.problem_type})
    return dataset


def label_info(dataset: Dataset) -> tuple[list[str], str]:
    """``(label_names, problem_type)`` stored by :func:`build_dataset`."""
    import json

    info = json.loads(dataset.info.description or "{}")
    if "label_names" not in info:
        raise ValueError("dataset was not built by hubert_ecg.training.data.build_dataset (no label information)")
    return list(info["label_names"]), info["problem_type"]


def load_manifest(
    csv_path: str | os.PathLike,
    data_dir: str | os.PathLike | None = None,
    num_labels: int | None = None,
    problem_type: str | None = None,
    label_names: Sequence[str] | None = None,
    on_error: str = "raise",
    skipped: Skipped | None = None,
    missing_leads: str = DEFAULT_MISSING_LEADS,
) -> Dataset:
    """A ``datasets.Dataset`` from a CSV manifest and a folder of ECG files (:func:`read_manifest` then
    :func:`build_dataset`); raises ``ValueError`` as they do."""
    records = read_manifest(csv_path, data_dir, num_labels=num_labels, problem_type=problem_type, label_names=label_names)
    return build_dataset(records, on_error=on_error, skipped=skipped, missing_leads=missing_leads)


def load_ptbxl(
    ptbxl_dir: str | os.PathLike,
    label_set: str = "superdiagnostic",
    sampling_rate: int = 100,
    splits: dict[str, Sequence[int]] = PTBXL_SPLITS,
    on_error: str = "raise",
    skipped: Skipped | None = None,
    missing_leads: str = DEFAULT_MISSING_LEADS,
) -> dict[str, Dataset]:
    """PTB-XL as ``{"train", "validation", "test"} -> Dataset`` split by ``strat_fold`` (splits without records are
    left out; the shared copy has no fold 10). See :func:`read_ptbxl` and :func:`build_dataset`."""
    records = read_ptbxl(ptbxl_dir, label_set=label_set, sampling_rate=sampling_rate)
    return {name: build_dataset(part, on_error, skipped, missing_leads)
            for name, part in split_by_fold(records, splits).items()}


# ----------------------------------------------------------------------------------------------------------------
# on-the-fly preprocessing
# ----------------------------------------------------------------------------------------------------------------


class ECGTransform:
    """Batch transform for ``Dataset.with_transform``: raw ``signal`` -> ``input_values`` (batch, 6000) float32,
    ``attention_mask`` (batch, 6000) and ``labels``, through
    :class:`~hubert_ecg.training.collators.DataCollatorForECGClassification` (the same windows and preprocessing as
    the collator a ``Trainer`` script uses).

    Args:
        feature_extractor: a :class:`~hubert_ecg.processing.HuBERTECGFeatureExtractor`.
        window: ``"random"`` (a new random 5 s window, the same start for all leads, at every access: training) or
            ``"first"`` (evaluation); chosen by :func:`hubert_ecg.windows.choose_window_starts`. Records shorter
            than 5 s are padded (``attention_mask`` marks the padding); leads absent from a record (``lead_mask``)
            are zero-filled as in pretraining.
        seed: seed of the random windows (and of the augmentations).
        augmentations: optional :mod:`hubert_ecg.augmentations` chain applied by the collator after the feature
            extractor, only with ``window="random"``; rows with a ``sample_index`` column are seeded from
            ``(seed, epoch, sample_index)``, the epoch from the rows' ``epoch`` column (:class:`EpochRecords`)
            when they have one.
    """

    def __init__(self, feature_extractor, window: str = "random", seed: int | None = None, augmentations=None):
        from .collators import DataCollatorForECGClassification

        self.feature_extractor = feature_extractor
        self.window = window
        self.collator = DataCollatorForECGClassification(feature_extractor, window=window, missing_leads="zero",
                                                         seed=seed, augmentations=augmentations)

    def __call__(self, batch: dict) -> dict:
        keys = [key for key in batch if key not in ("record_name", "source")]
        rows = [dict(zip(keys, values)) for values in zip(*(batch[key] for key in keys))]
        return self.collator(rows)


class EpochRecords(torch.utils.data.Dataset):
    """The training records of fine-tuning, indexed by epoch: item ``i`` (any ``i >= 0``) is record
    ``i % len(records)`` of epoch ``i // len(records)``, through ``transform`` (an :class:`ECGTransform`).

    The Trainer's :class:`~hubert_ecg.training.trainer.EpochShuffleSampler` asks for ``epoch * len(records) +
    position``; each row reaches the transform with its ``sample_index`` (the record's index) and its ``epoch``, which
    seed its random window and augmentations (:class:`~hubert_ecg.training.collators.DataCollatorForECGClassification`).
    The epoch thus travels with the index, into DataLoader workers too (persistent or not), and a resumed run sees
    the windows of an uninterrupted one.

    Args:
        records: ``datasets.Dataset`` of raw records (:func:`build_dataset`), without a transform.
        transform: called on a batch dict of columns (plus ``sample_index`` and ``epoch``), returns a dict of
            tensors with the batch first (``input_values`` (batch, 6000), ``attention_mask``, ``labels``).

    Raises:
        ValueError: for empty ``records`` or a negative index.
    """

    def __init__(self, records: Dataset, transform):
        if len(records) == 0:
            raise ValueError("EpochRecords needs at least one record")
        self.records = records
        self.transform = transform

    def __len__(self) -> int:
        return len(self.records)

    def __getitems__(self, indices) -> list[dict]:
        keys = [int(i) for i in indices]
        if any(key < 0 for key in keys):
            raise ValueError(f"EpochRecords: indices must be >= 0, got {min(keys)}")
        n = len(self.records)
        batch = dict(self.records[[key % n for key in keys]])
        batch["sample_index"] = [key % n for key in keys]
        batch["epoch"] = [key // n for key in keys]
        out = self.transform(batch)
        return [{name: value[j] for name, value in out.items()} for j in range(len(keys))]

    def __getitem__(self, index) -> dict:
        return self.__getitems__([index])[0]


def with_preprocessing(dataset: Dataset, feature_extractor, window: str = "random", seed: int | None = None,
                       augmentations=None) -> Dataset:
    """``dataset`` with :class:`ECGTransform` applied on access (columns ``input_values``, ``attention_mask``,
    ``labels``); ``augmentations`` as :class:`ECGTransform` takes them (training windows only)."""
    return dataset.with_transform(ECGTransform(feature_extractor, window=window, seed=seed,
                                               augmentations=augmentations))


__all__ = [
    "LabelledRecords",
    "Skipped",
    "BAD_RECORDS_RULE",
    "PTBXL_LABEL_SETS",
    "SUPERDIAGNOSTIC",
    "read_manifest",
    "read_ptbxl",
    "split_by_fold",
    "parse_fold_splits",
    "label_fraction",
    "mix_sources",
    "build_dataset",
    "label_info",
    "load_manifest",
    "load_ptbxl",
    "ECGTransform",
    "EpochRecords",
    "with_preprocessing",
]
