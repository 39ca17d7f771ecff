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
* :func:`check_leads`: THE signal-quality rule, on the samples the windows cover, in mV: a lead is **flat** when
  its peak-to-peak amplitude is below :data:`FLAT_PEAK_TO_PEAK_MV` (0.05 mV; constant leads, leads recorded at
  zero, leads without a finite sample) and **saturated** (clipped) when it stays at its own maximum or minimum
  value for :data:`SATURATION_SECONDS` (0.1 s) or longer away from the record's first and last sample.
* :func:`record_windows`: all of it, plus the lead mapping (:func:`hubert_ecg.leads.map_leads`: missing leads are
  an error naming the record and the leads, or zero-filled with ``missing_leads="zero"`` and reported in
  ``lead_mask``), checked before any window is computed, so that a caller can skip a bad record up front. Flat
  leads are treated as missing (zero-filled, False in ``lead_mask``) with a warning; a record whose leads are all
  flat is refused; saturated leads are scored and reported. Records shorter than the 5 s window but at least
  ``min_duration`` (default :data:`MIN_DURATION`, 2.5 s) long are zero-padded (``attention_mask`` marks the
  padding); shorter ones are refused. What was found is in ``RecordWindows.flags``.

The windows are cut by the feature extractor after it has filtered and scaled the whole record (the released
order, see :mod:`hubert_ecg.processing`); long records are processed piece by piece with flat memory.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Iterator, Sequence

import numpy as np
from transformers.utils import logging

from .io import ECGRecord, LazySignal, read_ecg
from .leads import DEFAULT_MISSING_LEADS, STANDARD_LEADS, map_leads

logger = logging.get_logger(__name__)

__all__ = [
    "FLAT_PEAK_TO_PEAK_MV", "MIN_DURATION", "SATURATION_SECONDS", "LeadQuality", "RecordWindows", "WINDOW_CHOICES",
    "check_leads", "choose_window_starts", "describe", "load_record", "record_windows",
]

WINDOW_CHOICES = ("first", "random", "all")
#: a lead whose peak-to-peak amplitude over the samples the windows cover is below this many mV is flat (treated
#: as missing). Real leads are far above it: the smallest of the 903 records in ../shared/data (PTB-XL, CinC 2021,
#: MIT-BIH, PTB, CPSC2021) is 0.2 mV (aVL of a PTB-XL record); the CinC 2021 records whose V2, V4, V6 are all 0 mV
#: are below it.
FLAT_PEAK_TO_PEAK_MV = 0.05
#: a lead that stays at its own maximum or minimum value this many seconds or longer (not counting runs that touch
#: the record's first or last sample: PTB-XL records often end on a constant tail) is saturated (clipped). Real
#: unclipped leads in ../shared/data stay at their extreme at most 0.06 s; clipped CPSC2021 leads, 0.5-0.8 s.
SATURATION_SECONDS = 0.1
#: records shorter than the window but at least this many seconds long are scored zero-padded (attention mask);
#: shorter ones are refused (half of the released 5 s window).
MIN_DURATION = 2.5
_QUALITY_PIECE = 2**20  # samples read at a time by the quality check (memory stays flat for long records)


@dataclass
class LeadQuality:
    """What :func:`check_leads` found, per model lead (bool ``(12,)`` in ``lead_order``; False for absent leads).

    Attributes:
        flat: peak-to-peak below :data:`FLAT_PEAK_TO_PEAK_MV` mV (or no finite sample).
        saturated: a run at the lead's extreme value of :data:`SATURATION_SECONDS` or longer.
        peak_to_peak: float64 ``(12,)`` mV (NaN for absent leads or leads without a finite sample).
    """

    flat: np.ndarray
    saturated: np.ndarray
    peak_to_peak: np.ndarray


def _longest_run(equal: np.ndarray, at_start: bool, at_end: bool) -> int:
    """Longest run of True in a 1-D bool array, leaving out a run that touches the first sample (when ``at_start``:
    the piece starts the record) or the last one (when ``at_end``)."""
    if not equal.any():
        return 0
    edges = np.diff(np.concatenate([[0], equal.astype(np.int8), [0]]))
    starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    keep = ~((starts == 0) & at_start) & ~((stops == equal.shape[0]) & at_end)
    return int((stops - starts)[keep].max()) if keep.any() else 0


def check_leads(
    signal, sampling_rate: float, rows: np.ndarray, span: tuple[int, int] | None = None
) -> LeadQuality:
    """THE signal-quality rule on the leads of one record (see the module docstring for the thresholds).

    Args:
        signal: ``(leads, samples)`` in mV, an array or a :class:`~hubert_ecg.io.LazySignal`; read in pieces of
            2**20 samples (a run at an extreme across two pieces counts per piece).
        sampling_rate: Hz.
        rows: int ``(12,)``: the row of ``signal`` of every model lead, -1 for absent ones (:func:`map_leads`).
        span: ``(first, stop)`` samples to check (default: all). NaN / inf samples are ignored.

    Returns:
        :class:`LeadQuality`.
    """
    a, b = span if span is not None else (0, signal.shape[1])
    present = rows >= 0
    used = rows[present]
    lo = np.full(used.shape[0], np.inf)
    hi = np.full(used.shape[0], -np.inf)
    pieces, step = range(a, b, _QUALITY_PIECE), _QUALITY_PIECE  # bounded memory, lazy (file) signals or arrays

    def read(start):
        return np.asarray(signal[:, start : min(start + step, b)], dtype=np.float64)[used]

    for start in pieces:  # pass 1: the extremes
        x = read(start)
        with np.errstate(invalid="ignore"):
            lo = np.minimum(lo, np.where(np.isfinite(x), x, np.inf).min(axis=1))
            hi = np.maximum(hi, np.where(np.isfinite(x), x, -np.inf).max(axis=1))
    ptp = np.where(np.isfinite(hi) & np.isfinite(lo), hi - lo, np.nan)
    flat_used = ~(ptp >= FLAT_PEAK_TO_PEAK_MV)
    longest = np.zeros(used.shape[0], dtype=np.int64)
    candidates = np.flatnonzero(~flat_used)
    if candidates.size:  # pass 2: runs at the extremes
        for start in pieces:
            x = read(start)
            at_start, at_end = start == 0, min(start + step, b) >= signal.shape[1]
            for i in candidates:
                for value in (lo[i], hi[i]):
                    longest[i] = max(longest[i], _longest_run(x[i] == value, at_start, at_end))
    saturated_used = longest >= SATURATION_SECONDS * float(sampling_rate)
    n = rows.shape[0]
    flat, saturated, peak = np.zeros(n, bool), np.zeros(n, bool), np.full(n, np.nan)
    flat[present], saturated[present], peak[present] = flat_used, saturated_used, ptp
    return LeadQuality(flat=flat, saturated=saturated, peak_to_peak=peak)


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
        record: the :class:`~hubert_ecg.io.ECGRecord` to preprocess (its ``signal`` may be a lazy
            :class:`~hubert_ecg.io.LazySignal`): the record as read, without the rows of its flat leads (they are
            then missing leads, zero-filled).
        name: how results and messages name it (:func:`describe`).
        window_starts: float64 ``(windows,)`` start times in seconds.
        lead_mask: bool ``(12,)``: the model's leads present in the record and not flat (all True unless
            ``missing_leads="zero"`` or flat leads).
        pad_to_window: whether windows may run past the end (given, or a short record: ``short``).
        missing_leads: ``"zero"`` when leads are zero-filled (given, or flat leads), else ``"raise"``.
        flat_leads, saturated_leads: model lead names (:func:`check_leads`).
        short: True for a record shorter than one window, scored zero-padded.
        duration: seconds.
        flags: one short sentence per finding (reader warnings, flat / saturated leads, a short record), for
            outputs; empty for a clean record.
        rows: int ``(leads,)``: the row of ``record.signal`` of each model lead (``lead_order``), -1 where it is
            missing (absent, flat, or outside the lead set): the one lead mapping of the record
            (:func:`hubert_ecg.leads.map_leads`), made once here.
    """

    record: ECGRecord
    name: str
    window_starts: np.ndarray
    lead_mask: np.ndarray
    pad_to_window: bool = False
    missing_leads: str = DEFAULT_MISSING_LEADS
    flat_leads: list[str] = field(default_factory=list)
    saturated_leads: list[str] = field(default_factory=list)
    short: bool = False
    duration: float = float("nan")
    flags: list[str] = field(default_factory=list)
    rows: np.ndarray | None = None

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


def _check_quality(record: ECGRecord, rows: np.ndarray, present: np.ndarray, starts: np.ndarray, feature_extractor):
    """:func:`check_leads` over the samples the windows at ``starts`` cover: the record without its flat leads' rows,
    ``rows`` renumbered, the flat and the saturated model leads, and the flags saying so.

    Raises:
        ValueError: when every present lead is flat.
    """
    rate = float(record.sampling_rate)
    first = int(np.floor(starts.min() * rate))
    stop = min(record.signal.shape[1], int(np.ceil((starts.max() + feature_extractor.window_seconds) * rate)))
    quality = check_leads(record.signal, rate, rows, (first, max(stop, first + 1)))
    order = list(feature_extractor.lead_order)
    flat_names = [lead for lead, f in zip(order, quality.flat) if f]
    saturated_names = [lead for lead, f in zip(order, quality.saturated) if f]
    if quality.flat[present].all():
        raise ValueError(
            f"every lead is flat (peak-to-peak below {FLAT_PEAK_TO_PEAK_MV:g} mV: "
            f"{', '.join(f'{lead} {p:.3g}' for lead, p in zip(order, quality.peak_to_peak) if lead in flat_names)}"
            " mV): nothing to score; expected an ECG in mV"
        )
    flags = []
    if flat_names:
        flags.append(
            f"flat leads {', '.join(flat_names)} (peak-to-peak below {FLAT_PEAK_TO_PEAK_MV:g} mV): "
            "scored as missing (zero-filled)"
        )
        drop = np.zeros(record.signal.shape[0], dtype=bool)
        drop[rows[quality.flat]] = True
        record, rows = _without_rows(record, rows, drop)
    if saturated_names:
        flags.append(
            f"saturated leads {', '.join(saturated_names)} (at their extreme value for "
            f"{SATURATION_SECONDS:g} s or longer: clipped)"
        )
    return record, rows, flat_names, saturated_names, flags


def _log_findings(flags: list[str], name: str, key: str, warned: set | None) -> None:
    """Log each finding of a record, once per file ``key`` when a ``warned`` set is kept (see :func:`record_windows`)."""
    for flag in flags:
        if warned is None or (key, flag) not in warned:
            logger.warning(f"{name}: {flag}")
        if warned is not None:
            warned.add((key, flag))


def _file_key(source, record: ECGRecord, name: str) -> str:
    """One name per file, whatever the spelling of its path: the real path, a WFDB record without its suffix."""
    path = (record.metadata or {}).get("path") or (source if isinstance(source, (str, os.PathLike)) else None)
    if path is None:
        return name
    path = str(path)
    if path.lower().endswith((".hea", ".dat", ".mat")):
        path = path[:-4]
    return os.path.realpath(path)


def _without_rows(record: ECGRecord, rows: np.ndarray, drop: np.ndarray) -> tuple[ECGRecord, np.ndarray]:
    """``record`` without the rows ``drop`` (bool per row; a lazy signal stays lazy), and ``rows`` (the row of each
    model lead, -1 for absent ones: :func:`hubert_ecg.leads.map_leads`) renumbered for it, -1 for the dropped."""
    keep = np.flatnonzero(~drop)
    renumbered = np.full(len(drop), -1, dtype=rows.dtype)
    renumbered[keep] = np.arange(len(keep))
    rows = np.where(rows >= 0, renumbered[np.maximum(rows, 0)], -1)
    signal = record.signal
    if isinstance(signal, LazySignal):
        source = signal
        signal = LazySignal(lambda a, b: source[:, a:b][keep], (len(keep), source.shape[1]), source.source)
    else:
        signal = signal[keep]
    metadata = dict(record.metadata)
    metadata["dropped_leads"] = [record.lead_names[i] for i in np.flatnonzero(drop)]
    return ECGRecord(signal=signal, sampling_rate=record.sampling_rate,
                     lead_names=[record.lead_names[i] for i in keep], metadata=metadata,
                     record_name=record.record_name), rows


def record_windows(
    source: Any,
    feature_extractor,
    window: str = "first",
    stride_seconds: float | None = None,
    num_windows: int = 1,
    pad_to_window: bool = False,
    missing_leads: str = DEFAULT_MISSING_LEADS,
    rng: np.random.Generator | int | None = None,
    sampling_rate: float | None = None,
    lead_names: Sequence[str] | None = None,
    name: str | None = None,
    min_duration: float | None = MIN_DURATION,
    check_quality: bool = True,
    lead_set: Sequence[str] | None = None,
    warned: set | None = None,
) -> RecordWindows:
    """Read ``source`` (:func:`load_record`), map its leads, check them (:func:`check_leads`) and choose its windows
    (:func:`choose_window_starts`).

    Everything that can make a record unusable is checked here, before any preprocessing: an unreadable file,
    missing leads (with ``missing_leads="raise"``), every lead flat, a record shorter than ``min_duration``.

    Args:
        source, sampling_rate, lead_names: as :func:`load_record`.
        window, stride_seconds, num_windows, rng, pad_to_window: as :func:`choose_window_starts`.
        missing_leads: ``"raise"`` or ``"zero"`` (:func:`hubert_ecg.leads.map_leads`).
        name: how messages name the record (default :func:`describe`).
        min_duration: seconds; a record shorter than one window but at least this long is zero-padded (flagged
            ``short``), a shorter one refused. ``None``: the window length, unless ``pad_to_window``.
        check_quality: run :func:`check_leads` (flat leads zero-filled with a warning, saturated ones reported).
        lead_set: keep only these model leads (standard names, e.g. :func:`hubert_ecg.leads.lead_set`); the
            record's other rows are dropped and zero-filled as missing leads (``missing_leads`` becomes ``"zero"``).
        warned: the findings already logged (a set this function adds to): a finding of a file logged before, under
            any spelling of its path (``rec``, ``rec.hea``, ``./rec``), is not logged again; it stays in ``flags``.
            None: every finding is logged.

    Raises:
        ValueError: whose message starts with the record's name (:func:`describe`) and says what was expected.
    """
    name = name or describe(source)
    flags: list[str] = []
    flat_names: list[str] = []
    saturated_names: list[str] = []
    try:
        record = load_record(source, sampling_rate=sampling_rate, lead_names=lead_names)
        if name.startswith("input") and record.record_name:
            name = str(record.metadata.get("path") or record.record_name)
        flags += [str(w) for w in record.metadata.get("warnings", [])]
        rows, present = map_leads(
            record.lead_names, record.signal.shape[0], feature_extractor.lead_order, missing_leads, "the record"
        )
        duration = record.signal.shape[1] / float(record.sampling_rate)
        n_target = feature_extractor.num_target_samples(record.signal.shape[1], record.sampling_rate)
        short = n_target < feature_extractor.window_samples
        if short and min_duration is not None:
            if duration < float(min_duration):
                raise ValueError(
                    f"the record lasts {duration:g} s, shorter than the minimum of {float(min_duration):g} s "
                    f"(min_duration, --min_duration of hubert-ecg predict; records from {float(min_duration):g} s to the "
                    f"{feature_extractor.window_seconds:g} s window are scored zero-padded)"
                )
            pad_to_window = True
        starts = choose_window_starts(
            record.signal.shape[1], record.sampling_rate, feature_extractor, window, stride_seconds, num_windows,
            pad_to_window, rng,
        )
        if short:
            flags.append(
                f"short record: {duration:g} s, zero-padded to the {feature_extractor.window_seconds:g} s window"
            )
        if check_quality:
            record, rows, flat_names, saturated_names, found = _check_quality(record, rows, present, starts,
                                                                              feature_extractor)
            flags += found
            if flat_names:
                present = present & np.asarray([lead not in flat_names for lead in feature_extractor.lead_order])
                missing_leads = "zero"
        if lead_set is not None:
            keep = np.asarray([lead in lead_set for lead in feature_extractor.lead_order])
            if not (present & keep).any():
                raise ValueError(
                    f"has none of the leads of the lead set {list(lead_set)} (its leads: {record.lead_names})"
                )
            drop = np.zeros(record.signal.shape[0], dtype=bool)
            drop[rows[(rows >= 0) & ~keep]] = True
            if drop.any():
                record, rows = _without_rows(record, rows, drop)
            present = present & keep
            missing_leads = "zero"
    except ValueError as err:
        message = str(err)
        raise ValueError(message if message.startswith(name) else f"{name}: {message}") from None
    _log_findings(flags, name, _file_key(source, record, name), warned)
    return RecordWindows(record, name, starts, present, pad_to_window, missing_leads, flat_names, saturated_names,
                         short, duration, flags, rows)
