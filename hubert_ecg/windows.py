"""Reading ECG records and choosing their windows: the one component that the pipeline, evaluation, fine-tuning
and pretraining use between the files (:mod:`hubert_ecg.io`) and the feature extractor
(:mod:`hubert_ecg.processing`).

```python
from hubert_ecg.windows import record_windows
plan = record_windows("records500/00000/00010_hr", feature_extractor, window="all", stride_seconds=2.5)
plan.window_starts            # seconds: [0.0, 2.5, 5.0]
for block in plan.features(feature_extractor, batch_windows=64):
    block["input_values"]     # (n <= 64, 6000) float32
```

* :func:`load_record`: a file path (any format :func:`hubert_ecg.read_ecg` reads; long ``.npy`` and WFDB format-16
  records are opened lazily), an :class:`~hubert_ecg.io.ECGRecord`, a dict (``signal``, ``sampling_rate``,
  optional ``lead_names``) or an array with ``sampling_rate`` -> an ``ECGRecord``.
* :func:`choose_window_starts`: THE window rule: ``"first"`` (0 s, as the release evaluates), ``"random"``
  (``num_windows`` uniformly random starts, the same for all leads; seeded), ``"all"`` (every ``stride_seconds``;
  with ``pad_to_window`` a last, padded window covers the remainder). Starts are whole samples at the feature
  extractor's ``target_sampling_rate``.
* :func:`record_windows`: both, plus the lead mapping (:func:`hubert_ecg.leads.map_leads`: missing leads are
  an error naming the record and the leads, or zero-filled with ``missing_leads="zero"`` and reported in
  ``lead_mask``), checked before any window is computed, so that a caller can skip a bad record up front.

The windows are cut by the feature extractor after it has filtered and scaled the whole record (the released
order, see :mod:`hubert_ecg.processing`); long records are processed piece by piece with flat memory.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

import numpy as np

from .io import ECGRecord, read_ecg
from .leads import STANDARD_LEADS, map_leads

__all__ = ["RecordWindows", "WINDOW_CHOICES", "choose_window_starts", "describe", "load_record", "record_windows"]

WINDOW_CHOICES = ("first", "random", "all")


def describe(source: Any, index: int | None = None) -> str:
    """How messages and results name an input: its path, the record's name, or ``input[index]``."""
    if isinstance(source, (str, os.PathLike)):
        return str(source)
    if isinstance(source, ECGRecord) and source.record_name:
        return str(source.metadata.get("path") or source.record_name)
    if isinstance(source, dict) and source.get("record_name"):
        return str(source["record_name"])
    return f"input[{index}]" if index is not None else "input"


def load_record(
    source: Any,
    sampling_rate: float | None = None,
    lead_names: Sequence[str] | None = None,
    lazy: bool = True,
) -> ECGRecord:
    """Any accepted input -> :class:`~hubert_ecg.io.ECGRecord`.

    Args:
        source: a file path (:func:`hubert_ecg.read_ecg`), an ``ECGRecord``, a dict with ``signal`` (``(leads,
            samples)`` in mV), ``sampling_rate`` (Hz) and optional ``lead_names`` / ``record_name``, or a numpy
            array / torch tensor ``(leads, samples)`` in mV.
        sampling_rate: rate in Hz for arrays (and ``.npy`` files); must agree with a rate the input stores.
        lead_names: names of the rows for arrays and dicts without them (default: the 12 standard leads for a
            12-row array).
        lazy: open long ``.npy`` / WFDB format-16 files without reading their samples (see :func:`read_ecg`).

    Raises:
        ValueError: naming the input, for a missing or unreadable file, an input of another type, a missing or
            conflicting sampling rate, or lead names that do not match the rows.
    """
    if isinstance(source, (str, os.PathLike)):
        return read_ecg(source, sampling_rate=sampling_rate, lead_names=lead_names, lazy=lazy)
    if isinstance(source, ECGRecord):
        if sampling_rate is not None and not np.isclose(float(sampling_rate), source.sampling_rate):
            raise ValueError(
                f"sampling_rate={sampling_rate} disagrees with the ECGRecord {describe(source)} "
                f"({source.sampling_rate:g} Hz); leave sampling_rate out for ECGRecords"
            )
        return source
    name = None
    if isinstance(source, dict):
        if "signal" not in source:
            raise ValueError(f"{describe(source)} is a dict without a 'signal' entry; expected signal, sampling_rate")
        sampling_rate = source.get("sampling_rate", sampling_rate)
        lead_names = source.get("lead_names", lead_names)
        name = source.get("record_name")
        source = source["signal"]
    if hasattr(source, "detach"):  # torch tensor
        source = source.detach().cpu().numpy()
    if isinstance(source, (list, tuple)):
        source = np.asarray(source)
    if not isinstance(source, np.ndarray):
        raise ValueError(
            f"input has type {type(source).__name__}; expected a file path, an ECGRecord, a dict with 'signal' and "
            "'sampling_rate', or an array (leads, samples) in mV"
        )
    if sampling_rate is None:
        raise ValueError("sampling_rate is required for arrays: pass the rate of the recording in Hz, e.g. 500")
    if source.ndim != 2:
        raise ValueError(f"expected an array of shape (leads, samples), got shape {source.shape}")
    if lead_names is None:
        lead_names = list(STANDARD_LEADS) if source.shape[0] == len(STANDARD_LEADS) else None
    if lead_names is None:
        raise ValueError(
            f"an array with {source.shape[0]} leads needs lead_names= (one per row); without names it must hold the "
            f"12 leads {list(STANDARD_LEADS)}"
        )
    return ECGRecord(signal=source, sampling_rate=sampling_rate, lead_names=list(lead_names), record_name=name)


def choose_window_starts(
    num_samples: int,
    sampling_rate: float,
    feature_extractor,
    window: str = "first",
    stride_seconds: float | None = None,
    num_windows: int = 1,
    pad_to_window: bool = False,
    rng: np.random.Generator | int | None = None,
) -> np.ndarray:
    """Start times (seconds, float64 ``(windows,)``) of the windows of a record of ``num_samples`` at
    ``sampling_rate`` Hz, in whole samples at ``feature_extractor.target_sampling_rate``.

    Args:
        window: ``"first"`` (one window at 0 s), ``"random"`` (``num_windows`` starts drawn uniformly from the
            windows that fit, with ``rng``) or ``"all"`` (every ``stride_seconds``, default the window length;
            with ``pad_to_window`` a last window that runs past the end covers a remainder the full ones miss).
        pad_to_window: whether a record shorter than one window is allowed (its one window is padded).
        rng: a ``numpy.random.Generator`` or a seed, for ``"random"``.

    Raises:
        ValueError: for an unknown ``window``, a non-positive ``stride_seconds`` or ``num_windows``, or a record
            shorter than one window without ``pad_to_window``.
    """
    if window not in WINDOW_CHOICES:
        raise ValueError(f"window must be one of {WINDOW_CHOICES}, got {window!r}")
    T = float(feature_extractor.target_sampling_rate)
    W = feature_extractor.window_samples
    n = feature_extractor.num_target_samples(num_samples, sampling_rate)
    if n < W and not pad_to_window:
        raise ValueError(
            f"the record lasts {num_samples / float(sampling_rate):g} s, shorter than the "
            f"{feature_extractor.window_seconds:g} s window; pass pad_to_window=True to zero-pad it"
        )
    if window == "first":
        starts = [0]
    elif window == "random":
        if not isinstance(num_windows, (int, np.integer)) or num_windows < 1:
            raise ValueError(f"num_windows must be a positive integer, got {num_windows!r}")
        rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
        starts = [int(rng.integers(0, max(n - W, 0) + 1)) for _ in range(int(num_windows))]
    else:
        stride = W if stride_seconds is None else int(round(float(stride_seconds) * T))
        if stride < 1:
            raise ValueError(f"stride_seconds must be at least one sample at {T:g} Hz, got {stride_seconds!r}")
        starts = list(range(0, max(n - W, 0) + 1, stride))
        if pad_to_window and n > W and starts[-1] + W < n and starts[-1] + stride < n:
            starts.append(starts[-1] + stride)
    return np.asarray(starts, dtype=np.float64) / T


@dataclass
class RecordWindows:
    """One record, checked, with the windows to take from it.

    Attributes:
        record: the :class:`~hubert_ecg.io.ECGRecord` (its ``signal`` may be a lazy :class:`~hubert_ecg.io.LazySignal`).
        name: how results and messages name it (:func:`describe`).
        window_starts: float64 ``(windows,)`` start times in seconds.
        lead_mask: bool ``(12,)``: the model's leads present in the record (all True unless ``missing_leads="zero"``).
        pad_to_window, missing_leads: as given to :func:`record_windows`.
    """

    record: ECGRecord
    name: str
    window_starts: np.ndarray
    lead_mask: np.ndarray
    pad_to_window: bool = False
    missing_leads: str = "raise"

    def __len__(self) -> int:
        return len(self.window_starts)

    def features(self, feature_extractor, batch_windows: int = 64, return_tensors: str | None = None) -> Iterator:
        """The windows through ``feature_extractor.iter_windows``: BatchFeatures of ``input_values`` ``(n <=
        batch_windows, 6000)`` float32 and ``attention_mask``, in the order of ``window_starts``; memory does not
        grow with the record's length."""
        return feature_extractor.iter_windows(
            self.record,
            window_starts=self.window_starts,
            batch_windows=batch_windows,
            pad_to_window=self.pad_to_window,
            missing_leads=self.missing_leads,
            return_tensors=return_tensors,
        )


def record_windows(
    source: Any,
    feature_extractor,
    window: str = "first",
    stride_seconds: float | None = None,
    num_windows: int = 1,
    pad_to_window: bool = False,
    missing_leads: str = "raise",
    rng: np.random.Generator | int | None = None,
    sampling_rate: float | None = None,
    lead_names: Sequence[str] | None = None,
    name: str | None = None,
) -> RecordWindows:
    """Read ``source`` (:func:`load_record`), map its leads, and choose its windows (:func:`choose_window_starts`).

    Everything that can make a record unusable is checked here, before any preprocessing: an unreadable file,
    missing leads (with ``missing_leads="raise"``), a record shorter than one window (without ``pad_to_window``).

    Raises:
        ValueError: whose message starts with the record's name (:func:`describe`) and says what was expected.
    """
    name = name or describe(source)
    try:
        record = load_record(source, sampling_rate=sampling_rate, lead_names=lead_names)
        if name.startswith("input") and record.record_name:
            name = str(record.metadata.get("path") or record.record_name)
        _, present = map_leads(
            record.lead_names, record.signal.shape[0], feature_extractor.lead_order, missing_leads, "the record"
        )
        starts = choose_window_starts(
            record.signal.shape[1], record.sampling_rate, feature_extractor, window, stride_seconds, num_windows,
            pad_to_window, rng,
        )
    except ValueError as err:
        message = str(err)
        raise ValueError(message if message.startswith(name) else f"{name}: {message}") from None
    return RecordWindows(record, name, starts, present, pad_to_window, missing_leads)
