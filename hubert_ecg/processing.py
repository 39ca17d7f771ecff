"""HuBERTECGFeatureExtractor: ECGs at any sampling rate and length -> HuBERT-ECG ``input_values`` (N, 6000).

The defaults reproduce the preprocessing of the released HuBERT-ECG weights (medRxiv doi
10.1101/2024.11.14.24317328 and the released preprocessing script), step by step:

1. resample every lead to 500 Hz with ``scipy.signal.resample`` (FFT) to ``int(T * 500 / fs)`` samples;
2. FIR band-pass 0.05-47 Hz at 500 Hz (``scipy.signal.firwin``, Hamming, ``int(0.3 * 500)`` taps made odd = 151),
   applied forward and backward as ``scipy.signal.filtfilt`` does (odd extension of ``3 * 151`` samples);
3. scale every lead to [-1, 1] by its minimum and maximum over the whole filtered record:
   ``2 (x - min) / (max - min + 1e-8) - 1``;
4. take a 5 s window (2500 samples at 500 Hz, the same for all leads); missing values become the mean of the
   whole window;
5. concatenate the leads in the order I, II, III, aVR, aVL, aVF, V1-V6 (30000 samples) and
   ``scipy.signal.decimate(x, 5)`` (order-8 Chebyshev type I, zero phase) to 6000 samples at 100 Hz.

Missing samples (NaN, inf) are set to 0 before step 1, excluded from the minimum and maximum of step 3 and set to
the mean of the window in step 4 (a 500 Hz sample is missing when the input sample at or before its time is).
This reproduces the release's reference vector for a record with missing values.

The implementation is vectorised: all leads of all records of the same rate and length are resampled and filtered
in one call. The zero-phase FIR filter of step 2 is computed exactly as ``filtfilt`` computes it, but as a single
FFT convolution of the odd-extended signal with the 301-tap kernel ``b * b`` (for a FIR filter, ``filtfilt``'s
initial conditions only affect samples inside the discarded padding when the padding is at least ``ntaps - 1``
samples long), which is what makes it an order of magnitude faster than a per-lead ``filtfilt``. The decimation
of step 5 is likewise one FFT convolution with the autocorrelation of the anti-alias filter's impulse response,
with the backward pass's start computed exactly with ``sosfilt``. FFTs run in float32 on centred signals: the
result agrees with the scipy steps to ~1e-6 (the reference vectors to < 1e-6; the bar is 1e-4).

Which windows to take is the caller's choice (``window_starts`` in seconds; :mod:`hubert_ecg.windows` holds the
rules: first, random, all with a stride); they are cut after steps 1-3 ran on the whole record, as released.
Records longer than :data:`STREAM_SAMPLES` at 500 Hz run in two passes over pieces of the record (the filter's
context is kept at every piece boundary, so the numbers are the same): memory does not grow with the record.

This module is saved next to every model as remote code (``preprocessor_config.json`` ``auto_map``) and imports
only numpy, scipy, torch, transformers and :mod:`hubert_ecg.leads` (the lead names, which ``save_pretrained``
copies beside it).
"""

from __future__ import annotations

import functools
import math
from typing import Any, Sequence

import numpy as np
import scipy.fft
import scipy.signal
from transformers.feature_extraction_utils import BatchFeature, FeatureExtractionMixin
from transformers.utils import logging

from .leads import (
    DEFAULT_MISSING_LEADS,
    STANDARD_LEADS,
    check_missing_leads,
    check_sampling_rate,
    map_leads,
    normalize_lead_name,
)

logger = logging.get_logger(__name__)

__all__ = ["HuBERTECGFeatureExtractor"]

#: Records longer than this many samples at ``target_sampling_rate`` are preprocessed piece by piece (two passes:
#: the per-lead minimum and maximum of the filtered record, then the windows), so that memory does not grow with
#: the record's length. 2**20 samples at 500 Hz are about 35 minutes.
STREAM_SAMPLES = 2**20

# ----------------------------------------------------------------------------------------------------------------
# numerical kernels (vectorised over rows)
# ----------------------------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=16)
def _bandpass_taps(fs: float, lowcut: float, highcut: float) -> np.ndarray:
    """FIR band-pass taps of the release: ``int(0.3 * fs)`` taps made odd, Hamming window (``firwin``)."""
    numtaps = int(0.3 * fs)
    if numtaps % 2 == 0:
        numtaps += 1
    taps = scipy.signal.firwin(numtaps, [lowcut, highcut], pass_zero=False, fs=fs)
    taps.setflags(write=False)
    return taps


@functools.lru_cache(maxsize=64)
def _kernel_spectrum(fs: float, lowcut: float, highcut: float, n_fft: int) -> np.ndarray:
    taps = _bandpass_taps(fs, lowcut, highcut)
    kernel = np.convolve(taps, taps[::-1])  # forward then backward pass = one symmetric kernel
    spectrum = scipy.fft.rfft(kernel, n_fft)
    spectrum.setflags(write=False)
    return spectrum


def _zero_phase_fir(
    sources: Sequence[np.ndarray],
    fs: float,
    lowcut: float,
    highcut: float,
    keep: tuple[int, int] | None = None,
    dtype=np.float32,
    block_rows: int = 48,
    center: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``scipy.signal.filtfilt(b, 1, x, axis=-1)`` (odd padding of ``3 * len(b)`` samples) for the band-pass ``b``,
    with the per-row minimum and maximum of the result (step 3 of the release).

    Computed as one FFT convolution of the odd-extended signal with the symmetric kernel ``b * b[::-1]``: for a
    FIR filter, ``filtfilt``'s initial conditions only reach into the padding, which is discarded. Each row is
    centred on its mean first (the filter is linear and shift-equivariant, and the min-max scaling that follows
    ignores the shift), so that float32 arithmetic keeps ~1e-6 of the row's range. Rows are streamed block by
    block from ``sources`` (no stacked copy of the input), and only the samples in ``keep`` are returned.

    Args:
        sources: float arrays of shape ``(rows_i, samples)``, all with the same number of samples; their rows,
            in order, are the rows filtered.
        keep: ``(first, stop)`` sample range of the result to return (default: all samples).
        dtype: float32 (default, ~1e-6 relative to each row's range) or float64 (~1e-12).
        center: float64 ``(rows,)`` constants subtracted from the rows instead of their means (the pieces of one
            long record are filtered with the same constants, so that they fit together).

    Returns:
        ``(filtered[:, first:stop], minimum, maximum)``: the filtered rows (``dtype``), equal to
        ``filtfilt(b, 1, x - mean(x))`` up to rounding (the per-row constant ``mean(x) * sum(b)**2`` is not
        added back), and float64 ``(rows,)`` minimum and maximum over all samples of each filtered row.
    """
    taps = _bandpass_taps(fs, lowcut, highcut)
    ntaps = taps.shape[0]
    padlen = 3 * ntaps
    n = sources[0].shape[1]
    rows = sum(source.shape[0] for source in sources)
    first, stop = keep if keep is not None else (0, n)
    out = np.empty((rows, stop - first), dtype=dtype)
    lo = np.empty(rows)
    hi = np.empty(rows)
    if n <= padlen:
        # too short for filtfilt's default padding: use filtfilt itself with the padding the signal allows
        x = np.concatenate([np.asarray(source, dtype=np.float64) for source in sources])
        shift = x.mean(axis=-1, keepdims=True) if center is None else np.asarray(center, dtype=np.float64)[:, None]
        filtered = scipy.signal.filtfilt(taps, 1.0, x - shift, axis=-1, padlen=max(n - 1, 0))
        return filtered[:, first:stop].astype(dtype), filtered.min(axis=-1), filtered.max(axis=-1)
    n_ext = n + 2 * padlen
    n_fft = scipy.fft.next_fast_len(n_ext, real=True)
    spectrum = _kernel_spectrum(fs, lowcut, highcut, n_fft).astype(np.result_type(dtype, np.complex64))
    start = padlen + ntaps - 1
    ext = np.empty((block_rows, n_fft), dtype=dtype)
    ext[:, n_ext:] = 0.0

    def flush(filled: int, row0: int) -> None:
        e = ext[:filled]
        mid = e[:, padlen : padlen + n]
        # odd extension exactly as scipy.signal.filtfilt(padtype="odd") builds it
        np.subtract(2.0 * mid[:, :1], mid[:, padlen:0:-1], out=e[:, :padlen])
        np.subtract(2.0 * mid[:, -1:], mid[:, -2 : -padlen - 2 : -1], out=e[:, padlen + n : n_ext])
        spec = scipy.fft.rfft(e, axis=-1)
        spec *= spectrum
        filtered = scipy.fft.irfft(spec, n_fft, axis=-1, overwrite_x=True)[:, start : start + n]
        filtered.min(axis=-1, out=lo[row0 : row0 + filled])
        filtered.max(axis=-1, out=hi[row0 : row0 + filled])
        out[row0 : row0 + filled] = filtered[:, first:stop]

    filled = row0 = 0
    for source in sources:
        for chunk_start in range(0, source.shape[0], block_rows):
            chunk = source[chunk_start : chunk_start + block_rows]
            if filled + chunk.shape[0] > block_rows:
                flush(filled, row0)
                row0 += filled
                filled = 0
            if center is None:
                centred = chunk - chunk.mean(axis=-1, keepdims=True, dtype=np.float64)
            else:
                centred = chunk - center[row0 + filled : row0 + filled + chunk.shape[0], None]
            ext[filled : filled + chunk.shape[0], padlen : padlen + n] = centred
            filled += chunk.shape[0]
    if filled:
        flush(filled, row0)
    return out, lo, hi


@functools.lru_cache(maxsize=8)
def _decimation_filter(q: int, tolerance: float = 1e-13):
    """``scipy.signal.decimate``'s anti-alias filter (order-8 Chebyshev type I, 0.05 dB ripple, cutoff 0.8/q).

    Returns (sos, padlen of sosfiltfilt, impulse response h truncated where the rest of sum |h| < tolerance,
    the steady-state initial conditions ``sosfilt_zi(sos)``).
    """
    sos = scipy.signal.cheby1(8, 0.05, 0.8 / q, output="sos")
    ntaps = 2 * sos.shape[0] + 1 - min(int((sos[:, 2] == 0).sum()), int((sos[:, 5] == 0).sum()))
    impulse = np.zeros(20000)
    impulse[0] = 1.0
    h = scipy.signal.sosfilt(sos, impulse)
    tail = np.cumsum(np.abs(h)[::-1])[::-1]
    K = int(np.argmax(tail < tolerance * tail[0]))
    h = h[: K + 1]
    zi = scipy.signal.sosfilt_zi(sos)
    for array in (h, zi):  # not sos: scipy's sosfilt needs a writable buffer
        array.setflags(write=False)
    return sos, 3 * ntaps, h, zi


@functools.lru_cache(maxsize=8)
def _decimation_plan(q: int, n: int):
    """Buffer layout and kernel spectrum of :func:`_decimate` for rows of ``n`` samples."""
    sos, padlen, h, _ = _decimation_filter(q)
    K = h.shape[0] - 1
    L = n + 2 * padlen
    left = K + (-(K + padlen)) % q  # constant lead-in >= K, so that the first kept sample sits at a multiple of q
    m = scipy.fft.next_fast_len(-(-(left + L) // q), real=True)
    while m % 2:
        m = scipy.fft.next_fast_len(m + 1, real=True)
    n_fft = q * m
    g = np.correlate(h, h, mode="full")  # forward then backward pass: symmetric kernel of 2K + 1 taps
    circular = np.zeros(n_fft)
    circular[: K + 1] = g[K:]
    circular[n_fft - K :] = g[:K]
    spectrum = scipy.fft.rfft(circular).real.astype(np.float32) / q  # real: the kernel is symmetric
    # Keeping every q-th sample of an inverse FFT of length n_fft = an inverse FFT of length m of the spectrum
    # folded onto m bins: D[k] = sum_i Z[k + i m] / q. Bins beyond n_fft / 2 are the conjugates of mirrored ones.
    half = m // 2
    direct, mirrored = [], []
    for i in range(q):
        start = i * m
        if start + half <= n_fft // 2:
            direct.append((start, spectrum[start : start + half + 1]))
        else:
            mirrored.append((n_fft - start, spectrum[n_fft - start - half : n_fft - start + 1][::-1]))
    return left, n_fft, m, direct, mirrored


def _decimate(x: np.ndarray, q: int) -> np.ndarray:
    """``scipy.signal.decimate(x, q, axis=-1)`` (IIR, zero phase) computed with FFTs.

    ``sosfiltfilt`` starts each pass from the filter's steady state for the first sample, which is a convolution
    of the impulse response with the signal continued by that constant. Away from the end, both passes together
    are one convolution with the autocorrelation of the impulse response (truncated where what is left sums to
    1e-13); only every q-th output is needed, so the spectrum is folded onto ``n_fft / q`` bins before the
    inverse FFT. The last samples, where the backward pass starts, are computed exactly with ``sosfilt``.
    Agrees with ``decimate`` to ~1e-6 (float32 FFTs of values of order 1).

    Args:
        x: float array ``(rows, samples)``.

    Returns:
        float64 array ``(rows, ceil(samples / q))``.
    """
    sos, padlen, h, steady_state = _decimation_filter(q)
    K = h.shape[0] - 1
    rows, n = x.shape
    L = n + 2 * padlen
    if L < 4 * K:
        return scipy.signal.decimate(x, q, axis=-1)
    left, n_fft, m, direct, mirrored = _decimation_plan(q, n)
    ext = np.empty((rows, n_fft), dtype=np.float32)
    body = ext[:, left : left + L]
    body[:, padlen : padlen + n] = x
    np.subtract(2.0 * x[:, :1], x[:, padlen:0:-1], out=body[:, :padlen])  # odd extension, as sosfiltfilt
    np.subtract(2.0 * x[:, -1:], x[:, -2 : -padlen - 2 : -1], out=body[:, padlen + n :])
    ext[:, :left] = body[:, :1]  # the forward pass's steady state: the first extended sample, continued
    ext[:, left + L :] = 0.0
    spec = scipy.fft.rfft(ext, axis=-1)
    del ext
    half = m // 2
    folded = np.zeros((rows, half + 1), dtype=spec.dtype)
    for start, kernel in direct:
        folded += spec[:, start : start + half + 1] * kernel
    if mirrored:
        back = np.zeros_like(folded)
        for start, kernel in mirrored:
            back += spec[:, start - half : start + 1][:, ::-1] * kernel
        folded += np.conjugate(back)
    decimated = scipy.fft.irfft(folded, m, axis=-1)
    first = (left + padlen) // q
    n_out = -(-n // q)
    out = decimated[:, first : first + n_out].astype(np.float64)
    # the last K extended samples: forward pass warmed up over K samples (its start-up transient has died out),
    # then the backward pass from the true end, started from its steady state as sosfiltfilt starts it
    tail_len = min(2 * K, n)
    x_tail = np.asarray(x[:, n - tail_len :], dtype=np.float64)
    tail_ext = np.concatenate([x_tail, 2.0 * x_tail[:, -1:] - x_tail[:, -2 : -padlen - 2 : -1]], axis=1)
    y_tail = scipy.signal.sosfilt(sos, tail_ext, axis=-1)[:, tail_len - K :]  # extended samples L - K - padlen ..
    zi = steady_state[:, None, :] * y_tail[None, :, -1:]
    z_tail = scipy.signal.sosfilt(sos, y_tail[:, ::-1], axis=-1, zi=zi)[0][:, ::-1]
    # z_tail[:, i] is the filtered sample at x index n - K + padlen + i - padlen = n - K + i
    tail_start = n - K
    first_out = -(-tail_start // q)
    out[:, first_out:] = z_tail[:, first_out * q - tail_start : n - tail_start : q]
    return out


# ----------------------------------------------------------------------------------------------------------------
# the feature extractor
# ----------------------------------------------------------------------------------------------------------------


class HuBERTECGFeatureExtractor(FeatureExtractionMixin):
    r"""Turns 12-lead ECG arrays of any sampling rate and length into HuBERT-ECG ``input_values``.

    The defaults reproduce the preprocessing of the released weights (see the module docstring; medRxiv doi
    10.1101/2024.11.14.24317328): FFT resampling to 500 Hz, a 0.05-47 Hz zero-phase FIR band-pass, per-lead
    min-max scaling to [-1, 1] over the whole record, a 5 s window, the 12 leads concatenated in the order
    I, II, III, aVR, aVL, aVF, V1-V6 and decimated by 5 to 100 Hz: ``(N, 12 * 5 s * 100 Hz) = (N, 6000)``.
    Saved with ``save_pretrained`` as ``preprocessor_config.json``.

    It takes arrays, nothing else: reading files and choosing which windows to take (random, all with a stride)
    is :mod:`hubert_ecg.windows`. Because the release filters and scales the whole record before it cuts the
    window, the windows are given to the call as start times (``window_starts``), not as pre-cut arrays. Every
    window has the same length, so there is no padding API (the base class is ``FeatureExtractionMixin``, not
    ``SequenceFeatureExtractor``): a record shorter than the window is padded with ``pad_to_window=True`` and
    ``attention_mask`` marks the padding.

    Args:
        sampling_rate: rate of the model input in Hz (100 for the released weights).
        target_sampling_rate: rate in Hz at which the band-pass filter, the scaling and the window run (500).
            Must be an integer multiple of ``sampling_rate``.
        window_seconds: window length in seconds (5.0 for the released weights).
        lowcut, highcut: band-pass edges in Hz (0.05 and 47.0 for the released weights).
        lead_order: the leads of the model input, in order (:data:`STANDARD_LEADS`).
        padding_value: value of padded samples and of zero-filled missing leads in ``input_values``.
        scale_epsilon: the ``1e-8`` of the release's min-max scaling ``2 (x - min) / (max - min + eps) - 1``.

    Raises:
        ValueError: for non-positive rates, a ``target_sampling_rate`` that is not an integer multiple of
            ``sampling_rate``, a band that does not fit below ``target_sampling_rate / 2``, or lead names in
            ``lead_order`` that are not standard leads.
    """

    model_input_names = ["input_values", "attention_mask"]

    def __init__(
        self,
        sampling_rate: int = 100,
        target_sampling_rate: int = 500,
        window_seconds: float = 5.0,
        lowcut: float = 0.05,
        highcut: float = 47.0,
        lead_order: Sequence[str] = STANDARD_LEADS,
        padding_value: float = 0.0,
        scale_epsilon: float = 1e-8,
        **kwargs,
    ):
        # keys that configurations saved by SequenceFeatureExtractor versions carry; their API is not offered
        for legacy in ("feature_size", "padding_side", "return_attention_mask"):
            kwargs.pop(legacy, None)
        super().__init__(**kwargs)
        for name, value in (("sampling_rate", sampling_rate), ("target_sampling_rate", target_sampling_rate)):
            if not isinstance(value, (int, float)) or not value > 0:
                raise ValueError(f"{name} must be a positive number of Hz, got {value!r}")
        ratio = target_sampling_rate / sampling_rate
        if abs(ratio - round(ratio)) > 1e-9 or round(ratio) < 1:
            raise ValueError(
                f"target_sampling_rate ({target_sampling_rate} Hz) must be an integer multiple of sampling_rate "
                f"({sampling_rate} Hz): the model input is decimated from one to the other"
            )
        if not (0 < lowcut < highcut < target_sampling_rate / 2):
            raise ValueError(
                f"expected 0 < lowcut < highcut < target_sampling_rate / 2, got lowcut={lowcut}, highcut={highcut}, "
                f"target_sampling_rate={target_sampling_rate}"
            )
        if not window_seconds > 0:
            raise ValueError(f"window_seconds must be positive, got {window_seconds!r}")
        lead_order = [str(lead) for lead in lead_order]
        bad = [lead for lead in lead_order if normalize_lead_name(lead) != lead]
        if bad or len(set(lead_order)) != len(lead_order):
            raise ValueError(f"lead_order must list distinct standard leads from {STANDARD_LEADS}, got {lead_order}")
        self.sampling_rate = sampling_rate
        self.target_sampling_rate = target_sampling_rate
        self.window_seconds = float(window_seconds)
        self.lowcut = float(lowcut)
        self.highcut = float(highcut)
        self.lead_order = lead_order
        self.padding_value = float(padding_value)
        self.scale_epsilon = float(scale_epsilon)

    # ------------------------------------------------------------------ derived sizes
    @property
    def decimation_factor(self) -> int:
        """``target_sampling_rate / sampling_rate`` (5 for the released weights)."""
        return int(round(self.target_sampling_rate / self.sampling_rate))

    @property
    def window_samples(self) -> int:
        """Window length in samples at ``target_sampling_rate`` (2500 for the released weights)."""
        return int(round(self.window_seconds * self.target_sampling_rate))

    @property
    def input_length(self) -> int:
        """Length of one row of ``input_values`` (6000 for the released weights: 12 leads x 5 s x 100 Hz)."""
        return math.ceil(len(self.lead_order) * self.window_samples / self.decimation_factor)

    def num_target_samples(self, num_samples: int, sampling_rate: float) -> int:
        """Samples of a record of ``num_samples`` at ``sampling_rate`` Hz once resampled to ``target_sampling_rate``
        (``int(T * 500 / fs)``, as the release resamples)."""
        return int(num_samples * self.target_sampling_rate / float(sampling_rate))

    # ------------------------------------------------------------------ input normalisation
    def _as_items(self, ecg, sampling_rate, lead_names) -> list[tuple[Any, float, list[str] | None]]:
        """Flatten the accepted inputs to a list of (signal (leads, samples), rate Hz, names or None)."""
        if isinstance(ecg, (list, tuple)):
            if len(ecg) == 0:
                raise ValueError("ecg is an empty list; expected one or more ECGs of shape (leads, samples)")
            if all(isinstance(e, (int, float, np.number)) for e in ecg) or all(
                isinstance(e, (list, tuple)) and e and isinstance(e[0], (int, float, np.number)) for e in ecg
            ):
                ecg = [np.asarray(ecg)]  # nested python lists of numbers: one array
                batched = False
            else:
                batched = True
            items = list(ecg)
        else:
            items = [ecg]
            batched = False
            array = _to_numpy(ecg)
            if array is not None and array.ndim == 3:
                items = list(array)
                batched = True

        rates = _per_item(sampling_rate, len(items), "sampling_rate", scalar_types=(int, float, np.number))
        names_given = lead_names is not None and len(lead_names) > 0 and not isinstance(lead_names[0], str)
        if names_given:
            names_per = _per_item(lead_names, len(items), "lead_names", scalar_types=())
        else:
            names_per = [lead_names] * len(items)

        out = []
        for index, (item, rate, names) in enumerate(zip(items, rates, names_per)):
            where = f"ecg[{index}]" if batched else "ecg"
            if isinstance(item, str) or hasattr(item, "__fspath__"):
                raise ValueError(
                    f"{where} is a file name ({str(item)!r}); the feature extractor takes arrays: read the file with "
                    "hubert_ecg.read_ecg, or use hubert_ecg.windows / the ecg-classification pipeline, which read files"
                )
            if isinstance(item, dict):
                if "signal" not in item:
                    raise ValueError(f"{where} is a dict without a 'signal' entry; expected keys signal, sampling_rate")
                rate = item.get("sampling_rate", rate)
                names = item.get("lead_names", names)
                item = np.asarray(item["signal"]) if isinstance(item["signal"], (list, tuple)) else item["signal"]
            elif hasattr(item, "signal") and hasattr(item, "sampling_rate"):  # an ECGRecord
                if rate is not None and not np.isclose(float(rate), float(item.sampling_rate)):
                    raise ValueError(
                        f"sampling_rate={rate} disagrees with the ECGRecord {where} ({float(item.sampling_rate):g} "
                        "Hz); leave sampling_rate out for ECGRecords"
                    )
                rate = item.sampling_rate
                names = names if names is not None else getattr(item, "lead_names", None)
                item = item.signal
            elif rate is None and _as_signal(item) is not None:
                raise ValueError(
                    f"sampling_rate is required for arrays ({where}): pass the rate of the recording in Hz, "
                    "e.g. sampling_rate=500"
                )
            signal = _as_signal(item)
            if signal is None:
                raise ValueError(
                    f"{where} has type {type(item).__name__}; expected a numpy array or torch tensor of shape "
                    "(leads, samples), an ECGRecord, or a dict with 'signal' and 'sampling_rate'"
                )
            if rate is None:
                raise ValueError(
                    f"sampling_rate is required for arrays ({where}): pass the rate of the recording in Hz, "
                    "e.g. sampling_rate=500"
                )
            signal = _check_signal(signal, where)
            rate = check_sampling_rate(rate, f"sampling_rate for {where}")
            if names is not None:
                names = [str(n) for n in names]
                if len(names) != signal.shape[0]:
                    hint = (
                        " (the array looks transposed: expected (leads, samples))"
                        if signal.shape[1] == len(names)
                        else ""
                    )
                    raise ValueError(
                        f"lead_names has {len(names)} names but {where} has {signal.shape[0]} leads (rows){hint}"
                    )
            out.append((signal, rate, names))
        return out

    def _window_starts(self, starts_seconds, n500: int, where: str, pad_to_window: bool) -> np.ndarray:
        """Window starts in seconds -> int64 samples at ``target_sampling_rate``, checked against the record."""
        W = self.window_samples
        if n500 < 1:
            raise ValueError(f"{where} is too short: less than one sample at {self.target_sampling_rate} Hz")
        if n500 < W and not pad_to_window:
            raise ValueError(
                f"{where} lasts {n500 / self.target_sampling_rate:g} s, shorter than the {self.window_seconds:g} s "
                "window; pass pad_to_window=True to zero-pad it (attention_mask marks the padding)"
            )
        if starts_seconds is None:
            return np.zeros(1, dtype=np.int64)
        seconds = np.asarray(starts_seconds, dtype=np.float64).reshape(-1)
        if seconds.size == 0 or not np.isfinite(seconds).all():
            raise ValueError(f"window_starts for {where} must be finite start times in seconds, got {starts_seconds!r}")
        starts = np.round(seconds * self.target_sampling_rate).astype(np.int64)
        last = n500 - 1 if pad_to_window else n500 - W
        bad = (starts < 0) | (starts > last)
        if bad.any():
            raise ValueError(
                f"window_starts for {where}: {seconds[bad][:3].tolist()} s lie outside [0, {last / self.target_sampling_rate:g}] s "
                f"(the record lasts {n500 / self.target_sampling_rate:g} s, the window {self.window_seconds:g} s"
                + ("" if pad_to_window else "; pad_to_window=True allows windows that run past the end") + ")"
            )
        return starts

    def _per_record_starts(self, window_starts, n_items: int) -> list:
        if window_starts is None:
            return [None] * n_items
        if n_items == 1:
            if len(window_starts) and np.ndim(window_starts[0]) == 0:
                return [window_starts]
            if len(window_starts) == 1:
                return list(window_starts)
        if len(window_starts) != n_items or any(np.ndim(s) != 1 for s in window_starts):
            raise ValueError(
                f"window_starts must give one sequence of start times (seconds) per ECG: {n_items} ECGs, got "
                f"{window_starts!r:.80}"
            )
        return list(window_starts)

    def _process_group(self, items, placement, indices, rate, length, starts_of):
        """Steps 1-4 for records of one rate and length, vectorised over all their leads.

        Returns ``(record index per row, window start per row (samples at 500 Hz), segments (rows, leads, W)
        float32, valid samples per row)``; rows follow ``indices``, the windows of a record in the given order."""
        n_leads, W = len(self.lead_order), self.window_samples
        n500 = self.num_target_samples(length, rate)
        slots = np.concatenate([np.full(len(starts_of[index]), slot) for slot, index in enumerate(indices)])
        starts = np.concatenate([starts_of[index] for index in indices])

        # the input rows in model lead order (the arrays themselves where they already are in that order);
        # absent leads are not filtered at all
        sources, present, missing = [], np.zeros((len(indices), n_leads), dtype=bool), {}
        for slot, index in enumerate(indices):
            rows, lead_present = placement[index]
            signal = np.asarray(items[index][0])
            present[slot] = lead_present
            if not (signal.shape[0] == n_leads and (rows == np.arange(n_leads)).all()):
                signal = signal[rows[lead_present]]
            finite = np.isfinite(signal)
            if not finite.all():
                missing[slot] = np.zeros((n_leads, length), dtype=bool)
                missing[slot][lead_present] = ~finite
                signal = np.where(finite, signal, 0.0)
            sources.append(signal)
        if missing:
            logger.info("non-finite samples (NaN, inf) are treated as missing values: the window mean replaces them")
        if n500 != length:  # step 1 (at 500 Hz already, scipy's resample is the identity up to rounding)
            stacked = np.concatenate([np.asarray(source, dtype=np.float64) for source in sources])
            sources = [scipy.signal.resample(stacked, n500, axis=-1)]
        # steps 2 and 3: filter, min and max over the whole record
        keep = (0, n500) if missing else (int(starts.min()), min(int(starts.max()) + W, n500))
        filtered, lo, hi = _zero_phase_fir(
            sources, float(self.target_sampling_rate), self.lowcut, self.highcut, keep=keep
        )
        if not present.all():  # scatter the filtered leads back to their places; absent leads stay 0
            full = np.zeros((len(indices) * n_leads, keep[1] - keep[0]), dtype=filtered.dtype)
            full[present.reshape(-1)] = filtered
            filtered = full
            lo_full, hi_full = np.zeros(len(indices) * n_leads), np.zeros(len(indices) * n_leads)
            lo_full[present.reshape(-1)], hi_full[present.reshape(-1)] = lo, hi
            lo, hi = lo_full, hi_full
        filtered = filtered.reshape(len(indices), n_leads, keep[1] - keep[0])
        lo, hi = lo.reshape(len(indices), n_leads), hi.reshape(len(indices), n_leads)
        missing500 = None
        if missing:  # min and max without the missing samples
            source_index = np.minimum((np.arange(n500) * length) // n500, length - 1)
            missing500 = np.zeros((len(indices), n_leads, n500), dtype=bool)
            for slot, mask in missing.items():
                missing500[slot] = mask[:, source_index]
                lo[slot] = np.where(missing500[slot], np.inf, filtered[slot]).min(axis=-1)
                hi[slot] = np.where(missing500[slot], -np.inf, filtered[slot]).max(axis=-1)
            lo[~np.isfinite(lo)] = 0.0
            hi[~np.isfinite(hi)] = 0.0
        scale = 2.0 / (hi - lo + self.scale_epsilon)
        lo32, scale32 = lo.astype(np.float32), scale.astype(np.float32)

        # step 4: all windows gathered at once, scaled
        n_valid = np.minimum(W, n500 - starts)
        pad = float(self.padding_value)
        segments = np.empty((len(slots), n_leads, W), dtype=np.float32)
        for start in np.unique(starts):
            rows = np.flatnonzero(starts == start)
            valid = min(W, n500 - int(start))
            chosen = slots[rows]
            everything = rows.shape[0] == len(slots) and (chosen == np.arange(len(indices))).all()
            at = int(start) - keep[0]
            block = filtered[:, :, at : at + valid] if everything else filtered[chosen, :, at : at + valid]
            block = (block - lo32[chosen, :, None]) * scale32[chosen, :, None]
            block -= 1.0
            if everything:
                segments[:, :, :valid] = block
                segments[:, :, valid:] = pad
            else:
                segments[rows, :, :valid] = block
                segments[rows, :, valid:] = pad
        if missing500 is not None:  # missing values become the mean of the window (over all its leads)
            for row, (slot, start, valid) in enumerate(zip(slots, starts, n_valid)):
                usable = np.zeros((n_leads, W), dtype=bool)
                usable[present[slot], :valid] = True
                miss = np.zeros((n_leads, W), dtype=bool)
                miss[:, :valid] = missing500[slot, :, start : start + valid]
                miss &= usable
                if miss.any():
                    known = usable & ~miss
                    segments[row][miss] = segments[row][known].mean(dtype=np.float64) if known.any() else pad
        absent = ~present[slots]
        if absent.any():
            segments[absent] = pad
        return np.asarray(indices)[slots], starts, segments, n_valid

    def _stream_segments(self, signal, rate, rows, present, starts, block_windows: int):
        """Steps 1-4 for one long record, piece by piece, with memory that does not grow with its length.

        Pass 1 filters the record in pieces of ``2**17`` samples (with ``3 * taps`` samples of context on each side,
        so that every kept sample equals the whole-record filter's) for the per-lead minimum and maximum; pass 2
        filters the spans of ``block_windows`` windows at a time and cuts them. Yields ``(starts, segments
        (n, leads, W) float32, valid samples (n,))`` per block, windows in the given order. At the target rate
        the signal is only ever read in pieces (a lazy ``signal[:, a:b]`` works); at other rates the whole record
        is resampled first (FFT resampling is global), which costs memory in proportion to its length.
        """
        T, W, n_leads = float(self.target_sampling_rate), self.window_samples, len(self.lead_order)
        length = signal.shape[1]
        n500 = self.num_target_samples(length, rate)
        source_rows = rows[present]
        margin = 3 * _bandpass_taps(T, self.lowcut, self.highcut).shape[0]
        piece = max(2**17, W)
        pad = float(self.padding_value)
        resampled = source_missing = None
        if n500 != length:
            full = np.asarray(np.asarray(signal)[source_rows], dtype=np.float64)
            finite = np.isfinite(full)
            resampled = scipy.signal.resample(np.where(finite, full, 0.0), n500, axis=-1)
            source_missing = None if finite.all() else ~finite
            del full, finite

        def read(a: int, b: int):
            """Present leads at 500 Hz, samples [a, b): (values with missing ones set to 0, missing mask or None)."""
            if resampled is not None:
                if source_missing is None:
                    return resampled[:, a:b], None
                index = np.minimum((np.arange(a, b) * length) // n500, length - 1)
                miss = source_missing[:, index]
                return resampled[:, a:b], (miss if miss.any() else None)
            x = np.asarray(signal[:, a:b])
            if x.shape[0] != source_rows.shape[0] or (source_rows != np.arange(x.shape[0])).any():
                x = x[source_rows]
            finite = np.isfinite(x)
            if finite.all():
                return x, None
            return np.where(finite, x, 0.0), ~finite

        def filtered(a: int, b: int, center):
            ea, eb = max(0, a - margin), min(n500, b + margin)
            x, miss = read(ea, eb)
            out = _zero_phase_fir([x], T, self.lowcut, self.highcut, keep=(a - ea, b - ea), center=center)[0]
            return out, (None if miss is None else miss[:, a - ea : b - ea])

        with np.errstate(over="ignore", invalid="ignore"):
            first, first_missing = read(0, min(piece, n500))
            known = np.ones(first.shape, dtype=bool) if first_missing is None else ~first_missing
            center = np.array(
                [row[k].mean(dtype=np.float64) if k.any() else 0.0 for row, k in zip(first, known)], dtype=np.float64
            )
            del first, first_missing, known
            lo = np.full(source_rows.shape[0], np.inf)
            hi = np.full(source_rows.shape[0], -np.inf)
            for a in range(0, n500, piece):  # pass 1: min and max of the filtered record
                values, miss = filtered(a, min(a + piece, n500), center)
                if miss is not None:
                    lo = np.minimum(lo, np.where(miss, np.inf, values).min(axis=-1))
                    hi = np.maximum(hi, np.where(miss, -np.inf, values).max(axis=-1))
                else:
                    lo = np.minimum(lo, values.min(axis=-1))
                    hi = np.maximum(hi, values.max(axis=-1))
            lo[~np.isfinite(lo)] = 0.0
            hi[~np.isfinite(hi)] = 0.0
            scale32 = (2.0 / (hi - lo + self.scale_epsilon)).astype(np.float32)[:, None]
            lo32 = lo.astype(np.float32)[:, None]

            for begin in range(0, len(starts), block_windows):  # pass 2: the windows, a block at a time
                block = starts[begin : begin + block_windows]
                valid = np.minimum(W, n500 - block)
                segments = np.full((len(block), n_leads, W), pad, dtype=np.float32)

                def cut(run):
                    s0 = int(block[run[0]])
                    s1 = min(int(block[run[-1]]) + W, n500)
                    values, miss = filtered(s0, s1, center)
                    values = (values - lo32) * scale32
                    values -= 1.0
                    for r in run:
                        at, v = int(block[r]) - s0, int(valid[r])
                        window = values[:, at : at + v].copy()
                        if miss is not None:
                            m = miss[:, at : at + v]
                            if m.any():
                                window[m] = window[~m].mean(dtype=np.float64) if (~m).any() else pad
                        segments[r][present, :v] = window

                order = np.argsort(block, kind="stable")
                run = [order[0]]
                for r in order[1:]:
                    if block[r] + W - block[run[0]] > piece:
                        cut(run)
                        run = [r]
                    else:
                        run.append(r)
                cut(run)
                yield block, segments, valid

    def _finish(self, segments: np.ndarray, valid_lengths: np.ndarray, where: Sequence[str]):
        """Step 5 (leads concatenated and decimated) and the attention mask: ``(input_values, attention_mask)``."""
        n_leads, W = len(self.lead_order), self.window_samples
        concatenated = segments.reshape(segments.shape[0], n_leads * W)
        q = self.decimation_factor
        with np.errstate(over="ignore", invalid="ignore"):
            input_values = _decimate(concatenated, q) if q > 1 else concatenated.astype(np.float64)
        finite_rows = np.isfinite(input_values).all(axis=1)
        if not finite_rows.all():  # only for absurd amplitudes (float overflow); never hand back a silent NaN
            bad = sorted({where[i] for i in np.flatnonzero(~finite_rows)})
            raise ValueError(
                f"{', '.join(bad)}: preprocessing overflowed (amplitudes near the float32 limit); expected finite "
                "signals in mV"
            )
        attention_mask = np.ones(input_values.shape, dtype=np.int32)
        if (valid_lengths < W).any():
            if input_values.shape[1] % n_leads:
                raise ValueError("pad_to_window needs window_samples * leads to be a multiple of the decimation factor")
            per_lead_out = input_values.shape[1] // n_leads
            out_valid = -(-valid_lengths // q)  # ceil: an output sample is valid if its input sample is
            per_lead = (np.arange(per_lead_out)[None, :] < out_valid[:, None]).astype(np.int32)
            attention_mask = np.tile(per_lead, (1, n_leads))
        return input_values.astype(np.float32), attention_mask

    @staticmethod
    def _check_options(missing_leads, return_tensors):
        check_missing_leads(missing_leads)
        if return_tensors not in (None, "np", "pt"):
            raise ValueError(f"return_tensors must be None, 'np' or 'pt', got {return_tensors!r}")

    # ------------------------------------------------------------------ main entry
    def __call__(
        self,
        ecg,
        sampling_rate: float | Sequence[float] | None = None,
        lead_names: Sequence[str] | Sequence[Sequence[str]] | None = None,
        window_starts: Sequence[float] | Sequence[Sequence[float]] | None = None,
        pad_to_window: bool = False,
        missing_leads: str = DEFAULT_MISSING_LEADS,
        return_tensors: str | None = None,
    ) -> BatchFeature:
        r"""Preprocess one or several ECG arrays into model inputs.

        Args:
            ecg: one ECG or a batch: a float array or torch tensor of shape ``(leads, samples)`` in mV, a
                ``(records, leads, samples)`` array, an :class:`~hubert_ecg.io.ECGRecord` (or any object with
                ``signal``, ``sampling_rate`` and ``lead_names``), a dict with ``signal`` / ``sampling_rate`` /
                optional ``lead_names``, or a list of any of these (lengths and rates may differ). Non-finite
                samples (NaN, inf) are missing values: they are set to 0 before filtering and to the mean of the
                window afterwards, as in the release. Flat leads (max == min) scale to -1 (the release's ``+ 1e-8``
                keeps the division defined). File names are refused: read them with :func:`hubert_ecg.read_ecg`.
            sampling_rate: rate of the input in Hz, one for all or one per ECG; required for arrays, taken from
                ``ECGRecord``\ s (where a given rate must agree). Any positive rate works.
            lead_names: names of the input rows, one list for all or one per ECG, in any case (``AVR``, ``aVR``);
                rows are reordered to ``lead_order`` by :func:`map_leads`; extra leads (Frank vx, vy, vz, ...) are
                dropped. Without names an array must hold the 12 leads in ``lead_order``.
            window_starts: start times in seconds of the windows to take: for one ECG a sequence, for a batch one
                sequence per ECG. Default: the first window (0 s) of every ECG, as released. The windows are cut
                after the whole record is filtered and scaled, as in the release; :mod:`hubert_ecg.windows`
                chooses them (random, all with a stride).
            pad_to_window: if False, a window must lie inside the record (a record shorter than
                ``window_seconds`` is an error); if True a window may run past the end and is padded with
                ``padding_value`` at the end of every lead, and ``attention_mask`` marks the padding.
            missing_leads: ``"raise"`` (default) or ``"zero"``: missing leads become ``padding_value`` in the
                500 Hz window (the decimation filter of step 5 runs across lead boundaries, so the first and last
                few samples of a zero-filled lead carry a little of its neighbours, as in the release); which leads
                are present is :func:`map_leads`'s ``present``.
            return_tensors: None or ``"np"`` for numpy arrays, ``"pt"`` for torch tensors.

        Returns:
            BatchFeature with ``input_values`` float32 ``(N, input_length)`` = ``(N, 6000)`` at 100 Hz (12 leads x
            5 s, concatenated) and ``attention_mask`` int32 ``(N, 6000)``: 1 on samples from the record, 0 on
            padding (lead by lead, 500 samples each, so a padded window has its padding at the end of every lead).
            Rows: the windows of the first ECG in the given order, then those of the second, ...; N is the number
            of ECGs with the default ``window_starts``.

        Raises:
            ValueError: for a missing ``sampling_rate`` with arrays, arrays that are not 2-D ``(leads, samples)``
                (or 3-D batches), non-numeric or complex data, empty records, file names, lead names that do not
                match the rows, missing leads with ``missing_leads="raise"``, windows outside the record (records
                shorter than the window without ``pad_to_window=True``), or unknown ``missing_leads`` /
                ``return_tensors`` values.
        """
        self._check_options(missing_leads, return_tensors)
        items = self._as_items(ecg, sampling_rate, lead_names)
        where = [f"ecg[{i}]" if len(items) > 1 else "ecg" for i in range(len(items))]
        placement = [
            map_leads(names, signal.shape[0], self.lead_order, missing_leads, where[i])
            for i, (signal, _, names) in enumerate(items)
        ]
        starts_given = self._per_record_starts(window_starts, len(items))
        starts_of = [
            self._window_starts(starts_given[i], self.num_target_samples(signal.shape[1], rate), where[i], pad_to_window)
            for i, (signal, rate, _) in enumerate(items)
        ]

        # group records of equal rate and length so that the heavy filtering runs once per group; long records
        # run piece by piece
        groups: dict[tuple[float, int], list[int]] = {}
        parts = []
        with np.errstate(over="ignore", invalid="ignore"):  # overflow is checked on the output
            for index, (signal, rate, _) in enumerate(items):
                if self.num_target_samples(signal.shape[1], rate) > STREAM_SAMPLES:
                    rows, present = placement[index]
                    for block, segments, valid in self._stream_segments(
                        signal, rate, rows, present, starts_of[index], block_windows=256
                    ):
                        parts.append((np.full(len(block), index), block, segments, valid))
                else:
                    groups.setdefault((rate, signal.shape[1]), []).append(index)
            for (rate, length), indices in groups.items():
                parts.append(self._process_group(items, placement, indices, rate, length, starts_of))
        record_index = np.concatenate([p[0] for p in parts]).astype(np.int64)
        segments = parts[0][2] if len(parts) == 1 else np.concatenate([p[2] for p in parts])
        valid_lengths = np.concatenate([p[3] for p in parts])
        order = np.argsort(record_index, kind="stable")
        if (order != np.arange(order.shape[0])).any():  # rows in input order, windows in the given order
            record_index, segments, valid_lengths = record_index[order], segments[order], valid_lengths[order]
        input_values, attention_mask = self._finish(segments, valid_lengths, [where[i] for i in record_index])
        return BatchFeature(
            data={"input_values": input_values, "attention_mask": attention_mask}, tensor_type=return_tensors
        )

    def iter_windows(
        self,
        ecg,
        window_starts: Sequence[float] | None = None,
        batch_windows: int = 64,
        sampling_rate: float | None = None,
        lead_names: Sequence[str] | None = None,
        pad_to_window: bool = False,
        missing_leads: str = DEFAULT_MISSING_LEADS,
        return_tensors: str | None = None,
    ):
        """The windows of ONE ECG, ``batch_windows`` at a time, with memory that does not grow with its length.

        Same numbers as ``self(ecg, window_starts=[window_starts], ...)`` (to float32 rounding), as a generator of
        BatchFeatures (``input_values`` ``(n <= batch_windows, 6000)``, ``attention_mask``), windows in the given
        order. Records longer than :data:`STREAM_SAMPLES` samples at ``target_sampling_rate`` (or with more than
        ``batch_windows`` windows) are filtered piece by piece in two passes; at the target rate their signal is
        only read in pieces, so a lazy signal (``signal[:, a:b]`` reads from the file) keeps memory flat.

        Raises:
            ValueError: as :meth:`__call__`, before the first window is yielded.
        """
        self._check_options(missing_leads, return_tensors)
        if not isinstance(batch_windows, int) or batch_windows < 1:
            raise ValueError(f"batch_windows must be a positive integer, got {batch_windows!r}")
        if isinstance(ecg, (list, tuple)) and ecg and not isinstance(ecg[0], (int, float, np.number, list, tuple)):
            raise ValueError("iter_windows takes one ECG; call it once per ECG")
        (signal, rate, names), = self._as_items(ecg, sampling_rate, lead_names)
        rows, present = map_leads(names, signal.shape[0], self.lead_order, missing_leads, "ecg")
        n500 = self.num_target_samples(signal.shape[1], rate)
        starts = self._window_starts(window_starts, n500, "ecg", pad_to_window)
        return self._iter_windows(signal, rate, rows, present, starts, n500, batch_windows, return_tensors)

    def _iter_windows(self, signal, rate, rows, present, starts, n500, batch_windows, return_tensors):
        if n500 <= STREAM_SAMPLES and len(starts) <= batch_windows:
            with np.errstate(over="ignore", invalid="ignore"):
                _, _, segments, valid = self._process_group(
                    [(signal, rate, None)], [(rows, present)], [0], rate, signal.shape[1], [starts]
                )
            blocks = [(segments, valid)]
        else:
            blocks = (
                (segments, valid)
                for _, segments, valid in self._stream_segments(signal, rate, rows, present, starts, batch_windows)
            )
        for segments, valid in blocks:
            input_values, attention_mask = self._finish(segments, valid, ["ecg"] * len(valid))
            yield BatchFeature(
                data={"input_values": input_values, "attention_mask": attention_mask}, tensor_type=return_tensors
            )


# ----------------------------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------------------------


def _to_numpy(value) -> np.ndarray | None:
    if isinstance(value, np.ndarray):
        return value
    try:
        import torch

        if isinstance(value, torch.Tensor):
            return value.detach().cpu().numpy()
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    return None


def _as_signal(value):
    """An array for ``value`` (numpy, torch), the object itself for a lazy 2-D signal (``shape``, ``dtype`` and
    ``[:, a:b]`` slicing that reads from a file), or None."""
    array = _to_numpy(value)
    if array is not None:
        return array
    if hasattr(value, "shape") and hasattr(value, "dtype") and hasattr(value, "__getitem__"):
        return value
    return None


def _check_signal(signal, where: str):
    dtype = np.dtype(signal.dtype)
    if dtype == object or not (np.issubdtype(dtype, np.number) or dtype == bool):
        raise ValueError(f"{where} has dtype {dtype}; expected real numbers in mV, shape (leads, samples)")
    if np.issubdtype(dtype, np.complexfloating):
        raise ValueError(f"{where} is complex; expected real numbers in mV, shape (leads, samples)")
    shape = tuple(signal.shape)
    if len(shape) != 2:
        raise ValueError(
            f"{where} has {len(shape)} dimensions (shape {shape}); expected (leads, samples) for one ECG "
            "or (records, leads, samples) for a batch"
        )
    if shape[0] == 0 or shape[1] == 0:
        raise ValueError(f"{where} is empty (shape {shape}); expected (leads, samples) with samples > 0")
    return signal


def _per_item(value, n: int, name: str, scalar_types) -> list:
    if value is None:
        return [None] * n
    if isinstance(value, scalar_types) and scalar_types:
        return [value] * n
    if isinstance(value, (list, tuple, np.ndarray)):
        if len(value) != n:
            raise ValueError(f"{name} has {len(value)} entries for {n} ECGs; expected one for all or one per ECG")
        return list(value)
    if isinstance(value, str):
        raise ValueError(f"{name} must be a number of Hz, got {value!r}")
    raise ValueError(f"{name} must be a number or a list with one entry per ECG, got {type(value).__name__}")
