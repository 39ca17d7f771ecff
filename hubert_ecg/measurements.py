"""Global ECG measurements of a record: rate, PR, QRS, QT, QTc and frontal axes, with neurokit2 underneath.

``measure(record)`` takes an :class:`hubert_ecg.io.ECGRecord` (mV) and returns one JSON-able dict: heart rate, RR,
PR, QRS duration, QT, QTc (Bazett and Fridericia) and the frontal P / QRS / T axes, each ``{"value", "unit"}``, and,
where the record carries the device's own measurements (``record.metadata["measurements"]``, written by the clinical
readers), the device's values and the difference (ours - device). The wave boundaries come from neurokit2's
delineation (the ``[clinical]`` extra, imported on first use); how they are combined into one value per record, and
how well that agrees with the devices, is in ``docs/measurements.md``.

Sits beside the model in the data flow: it reads an ``ECGRecord`` and imports only :mod:`hubert_ecg.leads`.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

from .leads import STANDARD_LEADS, normalize_lead_name

__all__ = ["measure", "METHODS", "DEFAULT_METHOD", "QUANTITIES"]

#: neurokit2's delineation methods that give every boundary the intervals need (P onset, QRS onset and offset,
#: T offset). Its "peak" method gives no QRS onset or offset and "cwt" rarely a QRS offset (docs/measurements.md).
METHODS = ("prominence", "dwt", "cwt", "peak")
#: chosen by agreement with the devices' values on the clinical fixtures (docs/measurements.md, "Method")
DEFAULT_METHOD = "prominence"

#: name -> unit, in output order
QUANTITIES = {
    "heart_rate": "bpm",
    "rr_interval": "ms",
    "pr_interval": "ms",
    "qrs_duration": "ms",
    "qt_interval": "ms",
    "qtc_bazett": "ms",
    "qtc_fridericia": "ms",
    "p_axis": "deg",
    "qrs_axis": "deg",
    "t_axis": "deg",
}

# The device's names (the clinical readers' schema) -> ours; "qtc" is matched by its "formula" (Bazett without one).
_DEVICE_NAMES = {
    "heart_rate": "heart_rate",
    "rr_interval": "rr_interval",
    "pr_interval": "pr_interval",
    "qrs_duration": "qrs_duration",
    "qt_interval": "qt_interval",
    "p_axis": "p_axis",
    "qrs_axis": "qrs_axis",
    "t_axis": "t_axis",
}
_UNIT_ALIASES = {"bpm": "bpm", "/min": "bpm", "1/min": "bpm", "beats/min": "bpm", "ms": "ms", "msec": "ms",
                 "deg": "deg", "degree": "deg", "degrees": "deg", "°": "deg"}

#: QRS peak-to-peak over the sample-to-sample noise below which a lead's detected "beats" are taken as noise:
#: white noise gives 28-39, the 81 PTB-XL fold-9 records at 500 Hz 260 or more in their best lead
MIN_QRS_TO_NOISE = 100.0
MIN_DURATION = 2.0  # seconds: two beats at 60 bpm; shorter records are refused
FLAT_MV = 0.05  # a lead whose peak-to-peak is below this (mV) carries no ECG
# Search windows around each R peak (ms) in which a delineated boundary is taken as that beat's own, and the
# per-beat values kept (outside them a boundary belongs to another beat or is a delineation error): wide enough
# for first-degree AV block (PR up to 500 ms), bundle branch block (QRS up to 250 ms) and long QT (up to 750 ms).
_QRS_SEARCH_MS = 200
_P_SEARCH_MS = 550
_T_SEARCH_MS = 800
_KEEP_MS = {"pr_interval": (40, 500), "qrs_duration": (30, 250), "qt_interval": (150, 750)}
#: The record's onsets (P, QRS) are this quantile of the leads' onsets, its offsets (QRS, T) the opposite quantile:
#: between the median lead and the earliest onset / latest offset over all leads that electrocardiographs measure
#: globally, so that up to a quarter of the leads may be misdelineated (docs/measurements.md, "Method").
ONSET_QUANTILE = 0.25


def _neurokit():
    try:
        import neurokit2
    except ImportError:
        raise ImportError(
            'hubert_ecg.measure needs neurokit2 (the [clinical] extra): pip install "hubert-ecg[clinical]"'
        ) from None
    return neurokit2


def _quantity(value: float | None, unit: str, digits: int = 1) -> dict[str, Any]:
    if value is None or not np.isfinite(value):
        return {"value": None, "unit": unit}
    return {"value": round(float(value), digits), "unit": unit}


def _qrs_to_noise(cleaned: np.ndarray, rpeaks: np.ndarray, fs: float) -> float:
    """Median peak-to-peak of the +-50 ms around each R peak over the noise's standard deviation (estimated from
    the sample-to-sample differences, robustly: 1.4826 * MAD / sqrt(2)); 0 without peaks."""
    if len(rpeaks) == 0:
        return 0.0
    half = max(1, int(round(0.05 * fs)))
    amplitude = float(np.median([np.ptp(cleaned[max(0, r - half):r + half + 1]) for r in rpeaks]))
    noise = 1.4826 * float(np.median(np.abs(np.diff(cleaned)))) / math.sqrt(2)
    return amplitude / noise if noise > 0 else math.inf


def _pick(candidates: np.ndarray, low: float, high: float, last: bool) -> float:
    """The last (or first) of the sorted ``candidates`` inside ``[low, high]``, NaN if none."""
    inside = candidates[(candidates >= low) & (candidates <= high)]
    if inside.size == 0:
        return np.nan
    return float(inside[-1] if last else inside[0])


def _boundaries(waves: dict, rpeaks: np.ndarray, fs: float, n_samples: int) -> dict[str, np.ndarray]:
    """Per beat (one row per R peak): P onset, QRS onset, QRS offset and T offset in samples (NaN where missing).

    neurokit2's lists are not always one entry per beat ("cwt" drops beats), so each boundary is matched to the beat
    whose search window holds it rather than by position.
    """
    def samples(key):
        values = np.asarray(waves.get(key, []), dtype=float)
        return np.sort(values[np.isfinite(values)])

    p_on, q_on, q_off, t_off = (samples(k) for k in ("ECG_P_Onsets", "ECG_R_Onsets", "ECG_R_Offsets",
                                                       "ECG_T_Offsets"))
    ms = fs / 1000.0
    out = {key: np.full(len(rpeaks), np.nan) for key in ("p_on", "qrs_on", "qrs_off", "t_off")}
    for i, r in enumerate(rpeaks):
        previous = rpeaks[i - 1] if i > 0 else -np.inf
        following = rpeaks[i + 1] if i + 1 < len(rpeaks) else np.inf
        out["qrs_on"][i] = _pick(q_on, r - _QRS_SEARCH_MS * ms, r, last=True)
        out["qrs_off"][i] = _pick(q_off, r, r + _QRS_SEARCH_MS * ms, last=False)
        before = out["qrs_on"][i] if np.isfinite(out["qrs_on"][i]) else r
        out["p_on"][i] = _pick(p_on, max(previous, r - _P_SEARCH_MS * ms), before, last=True)
        out["t_off"][i] = _pick(t_off, r, min(following, r + _T_SEARCH_MS * ms), last=False)
    return out


def _median(values) -> float:
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    return float(np.median(values)) if values.size else np.nan


def _quartile(values, q: float) -> float:
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    return float(np.quantile(values, q)) if values.size else np.nan


def _axis(net_lead_i: float, net_avf: float) -> float:
    """Frontal axis in degrees, (-180, 180]: lead I points to 0 deg, aVF to +90 deg (the hexaxial system)."""
    if not (np.isfinite(net_lead_i) and np.isfinite(net_avf)) or (net_lead_i == 0 and net_avf == 0):
        return np.nan
    return math.degrees(math.atan2(net_avf, net_lead_i))


def _net_amplitude(beat: np.ndarray, start: int, stop: int, baseline: float) -> float:
    """Largest positive plus largest negative deflection from ``baseline`` within ``beat[start:stop]`` (mV)."""
    if not (0 <= start < stop <= beat.size):
        return np.nan
    window = beat[start:stop] - baseline
    return float(max(window.max(), 0.0) + min(window.min(), 0.0))


def measure(record, method: str = DEFAULT_METHOD) -> dict[str, Any]:
    """Global measurements of an ECG record, with the device's own values and the difference where it has them.

    How (details and the agreement figures in ``docs/measurements.md``): every standard lead of the record
    (``I, II, ..., V6``, any spelling :func:`hubert_ecg.leads.normalize_lead_name` knows; flat leads and leads with
    missing samples are left out) is cleaned (``nk.ecg_clean``) and its R peaks found (``nk.ecg_peaks``). The beats
    are those of the first lead among II, V5, I, V1, ... whose beat count is the median over the leads; every lead is
    delineated (``nk.ecg_delineate(method=...)``) on those common beats. Each lead's P onset, QRS onset, QRS offset
    and T offset is the median over beats of its distance from the R peak; the record's onsets are the first quartile
    over leads and its offsets the third (:data:`ONSET_QUANTILE`: a global boundary, as electrocardiographs measure
    over all leads, that up to a quarter of the leads cannot move). PR = QRS onset - P onset, QRS = QRS offset - QRS
    onset, QT = T offset - QRS onset; a value outside the physiological bounds (PR 40-500, QRS 30-250, QT 150-750
    ms) is a failed delineation and is not reported. RR is the mean of the beats' RR intervals (ms) and the heart
    rate 60000 / RR (bpm), as electrocardiographs report the ventricular rate; QTc: Bazett QT / sqrt(RR in s),
    Fridericia QT / cbrt(RR in s).
    The frontal axes are ``atan2(aVF, I)`` of the net amplitudes (largest positive plus largest negative deflection
    from the PR-segment baseline) of the P wave, QRS complex and T wave of the median beat of lead I and aVF (aVF
    from II - I/2 where the record lacks it), within the record's boundaries.

    Args:
        record: an :class:`hubert_ecg.io.ECGRecord`, signal ``(leads, samples)`` in mV at any rate (500 Hz or more
            gives 2 ms boundaries; 100 Hz records are measured to the sample, 10 ms).
        method: neurokit2's delineation method, one of :data:`METHODS` (default :data:`DEFAULT_METHOD`).

    Returns:
        A JSON-able dict: ``record`` (its name), ``method``, ``beats`` (the number of beats used), ``leads`` (the
        leads measured), each of :data:`QUANTITIES` as ``{"value": float | None, "unit": "bpm" | "ms" | "deg"}``
        (None where not derivable, the reason in ``notes``), ``notes`` (list of str) and, where
        ``record.metadata["measurements"]`` holds the device's values, ``device`` (those values as given) and
        ``difference`` (name -> ``{"value": ours - device | None, "unit", "compared_with"}``; the device's ``qtc`` is
        compared with our QTc of its ``formula`` (Bazett or Fridericia), Bazett where it names none).

    Raises:
        ValueError: naming the record, for a record shorter than 2 s (too short for two beats), a flat record (every
            standard lead under 0.05 mV peak to peak), a record without standard leads, no beat found (no QRS
            complex standing out of the noise, :data:`MIN_QRS_TO_NOISE`), a single beat, or an unknown method.
        ImportError: without neurokit2 (``pip install "hubert-ecg[clinical]"``).
    """
    name = getattr(record, "record_name", None) or "record"
    if method not in METHODS:
        raise ValueError(f"measure({name!r}): method must be one of {', '.join(METHODS)}, got {method!r}")
    fs = float(record.sampling_rate)
    signal = np.asarray(record.signal, dtype=float)
    duration = signal.shape[1] / fs
    if duration < MIN_DURATION:
        raise ValueError(
            f"cannot measure {name!r}: it is {duration:g} s long, too short for two beats "
            f"(measurements need at least {MIN_DURATION:g} s)"
        )
    notes: list[str] = []
    rows = _usable_leads(record, signal, name, notes)
    leads = [lead for lead in STANDARD_LEADS if lead in rows]

    nk = _neurokit()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # neurokit2's warnings about short signals and missing waves: see notes
        cleaned = {lead: np.asarray(nk.ecg_clean(rows[lead], sampling_rate=fs), dtype=float) for lead in leads}
        rpeaks = _common_beats(nk, cleaned, fs, name, duration)
        per_lead: dict[str, dict[str, np.ndarray]] = {}
        for lead in leads:
            try:
                _, waves = nk.ecg_delineate(cleaned[lead], rpeaks, sampling_rate=fs, method=method)
            except (ValueError, IndexError, ZeroDivisionError, KeyError) as err:
                notes.append(f"lead {lead}: no delineation ({type(err).__name__})")
                continue
            per_lead[lead] = _boundaries(waves, rpeaks, fs, signal.shape[1])

    values, fiducials = _intervals(per_lead, rpeaks, fs, method, notes)
    values.update(_frontal_axes(rows, cleaned, rpeaks, fiducials, fs, notes))

    result: dict[str, Any] = {"record": name, "method": method, "beats": int(len(rpeaks)), "leads": leads}
    for key, unit in QUANTITIES.items():
        result[key] = _quantity(values.get(key), unit, digits=0 if unit == "deg" else 1)
    if fs < 250:
        notes.append(f"sampled at {fs:g} Hz: boundaries are quantised to {1000 / fs:g} ms")
    result["notes"] = notes
    device = (getattr(record, "metadata", None) or {}).get("measurements")
    if device:
        result["device"], result["difference"] = _compare(result, device, notes)
    return result


def _usable_leads(record, signal: np.ndarray, name: str, notes: list[str]) -> dict[str, np.ndarray]:
    """The record's standard leads (first of each name) without missing samples and not flat, by standard name; the
    leads left out noted.

    Raises:
        ValueError: for a flat record or one without standard leads.
    """
    rows: dict[str, np.ndarray] = {}
    for row, lead in zip(signal, record.lead_names):
        standard = normalize_lead_name(lead)
        if standard is None or standard in rows:
            continue
        if not np.isfinite(row).all():
            notes.append(f"lead {lead} left out: it has missing samples")
            continue
        if np.ptp(row) < FLAT_MV:
            notes.append(f"lead {lead} left out: flat (under {FLAT_MV:g} mV peak to peak)")
            continue
        rows[standard] = row
    if not rows:
        if any(normalize_lead_name(lead) for lead in record.lead_names):
            raise ValueError(
                f"cannot measure {name!r}: the record is flat (every standard lead is under {FLAT_MV:g} mV peak to "
                "peak or has missing samples)"
            )
        raise ValueError(f"cannot measure {name!r}: none of its leads ({', '.join(record.lead_names)}) is a standard "
                         "lead (I, II, III, aVR, aVL, aVF, V1-V6)")
    return rows


def _common_beats(nk, cleaned: dict[str, np.ndarray], fs: float, name: str, duration: float) -> np.ndarray:
    """The R peaks every lead is delineated on: those of the first lead among II, V5, I, V1, ... whose beat count is
    the median over the leads whose QRS complexes stand out of their noise.

    Raises:
        ValueError: when no lead has QRS complexes standing out of its noise, or for a single beat.
    """
    peaks = {}
    for lead, row in cleaned.items():
        try:
            _, info = nk.ecg_peaks(row, sampling_rate=fs)
            peaks[lead] = np.asarray(info["ECG_R_Peaks"], dtype=int)
        except (ValueError, IndexError, ZeroDivisionError):
            peaks[lead] = np.zeros(0, dtype=int)
    # beats only where QRS complexes stand out of the noise (a detector finds "peaks" in noise too)
    standing = {lead: p for lead, p in peaks.items() if _qrs_to_noise(cleaned[lead], p, fs) >= MIN_QRS_TO_NOISE}
    if not standing:
        raise ValueError(
            f"cannot measure {name!r}: no beat found (no lead has QRS complexes standing out of its noise: "
            f"peak-to-peak under {MIN_QRS_TO_NOISE:g} times the sample-to-sample noise)"
        )
    counts = sorted(len(p) for p in standing.values())
    median_count = counts[(len(counts) - 1) // 2]
    preference = ("II", "V5", "I", "V1", "V6", "V4", "aVF", "III", "V2", "V3", "aVL", "aVR")
    reference = next(lead for lead in preference if lead in standing and len(standing[lead]) == median_count)
    rpeaks = standing[reference]
    if len(rpeaks) < 2:
        raise ValueError(
            f"cannot measure {name!r}: a single beat found in its {duration:g} s (measurements need at least "
            "two beats)"
        )
    return rpeaks


def _intervals(per_lead: dict, rpeaks: np.ndarray, fs: float, method: str,
               notes: list[str]) -> tuple[dict[str, float], dict[str, float]]:
    """Heart rate, RR, PR, QRS, QT and QTc (NaN where not derivable, the reason noted), and the record's fiducials
    (samples from the R peak: each lead's median over beats, then a quartile over the leads)."""
    to_ms = 1000.0 / fs
    rr = float(np.mean(np.diff(rpeaks))) * to_ms
    values: dict[str, float] = {"heart_rate": 60000.0 / rr, "rr_interval": rr}
    # each lead's boundaries: median over beats of (boundary - R peak); the record's: a quartile over the leads
    per_lead_fiducials = {key: [_median(bounds[key] - rpeaks) for bounds in per_lead.values()]
                          for key in ("p_on", "qrs_on", "qrs_off", "t_off")}
    fiducials = {key: _quartile(leads_values, ONSET_QUANTILE if key in ("p_on", "qrs_on") else 1 - ONSET_QUANTILE)
                 for key, leads_values in per_lead_fiducials.items()}
    spans = {"pr_interval": ("p_on", "qrs_on"), "qrs_duration": ("qrs_on", "qrs_off"),
             "qt_interval": ("qrs_on", "t_off")}
    reasons = {"pr_interval": "no P wave onset found (no P waves: atrial fibrillation or flutter, a paced or "
                              "junctional rhythm, or noise)",
               "qrs_duration": f"no QRS onset and offset found by the {method!r} delineation",
               "qt_interval": f"no QRS onset and T wave end found by the {method!r} delineation"}
    for key, (start, stop) in spans.items():
        value = (fiducials[stop] - fiducials[start]) * to_ms
        low, high = _KEEP_MS[key]
        if not np.isfinite(value):
            notes.append(f"{key}: {reasons[key]}")
        elif not low <= value <= high:
            notes.append(f"{key}: the delineation gave {value:.0f} ms, outside {low}-{high} ms: not reported")
            value = np.nan
        values[key] = value
    rr_s = rr / 1000.0
    values["qtc_bazett"] = values["qt_interval"] / math.sqrt(rr_s)
    values["qtc_fridericia"] = values["qt_interval"] / rr_s ** (1 / 3)
    if not np.isfinite(values["qt_interval"]):
        fiducials["t_off"] = np.nan
    return values, fiducials


def _frontal_axes(rows, cleaned, rpeaks: np.ndarray, fiducials: dict[str, float], fs: float,
                  notes: list[str]) -> dict[str, float]:
    """The P, QRS and T axes (degrees, NaN where not derivable, noted) from the median beat of lead I and aVF (or
    II - I/2) within the record's boundaries."""
    values = {key: np.nan for key in ("p_axis", "qrs_axis", "t_axis")}
    axis_rows = _axis_leads(rows, cleaned, notes)
    if axis_rows is None or not np.isfinite(fiducials["qrs_on"]):
        return values
    lead_i, avf = (_median_beat(row, rpeaks, fs) for row in axis_rows)
    before = int(round(0.6 * fs))  # the median beat starts 600 ms before its R peak
    at = {key: before + int(round(v)) if np.isfinite(v) else None for key, v in fiducials.items()}
    gap = max(1, int(round(0.010 * fs)))  # baseline: the 10 ms just before the QRS onset (PR segment)
    windows = {"p_axis": (at["p_on"], at["qrs_on"] - gap if at["qrs_on"] is not None else None),
               "qrs_axis": (at["qrs_on"], at["qrs_off"]),
               "t_axis": (at["qrs_off"], at["t_off"])}
    for key, (start, stop) in windows.items():
        if start is None or stop is None:
            notes.append(f"{key}: the {key[:-5].upper()} wave was not delineated")
            continue
        nets = []
        for beat in (lead_i, avf):
            baseline = float(np.median(beat[max(0, at["qrs_on"] - gap):at["qrs_on"] + 1]))
            nets.append(_net_amplitude(beat, start, stop, baseline))
        values[key] = _axis(*nets)
        if not np.isfinite(values[key]):
            notes.append(f"{key}: no net deflection in lead I or aVF")
    return values


def _axis_leads(rows, cleaned, notes) -> tuple[np.ndarray, np.ndarray] | None:
    """Cleaned lead I and aVF (aVF = II - I/2 where absent), or None with a note."""
    if "I" in cleaned and "aVF" in cleaned:
        return cleaned["I"], cleaned["aVF"]
    if "I" in cleaned and "II" in cleaned:
        return cleaned["I"], cleaned["II"] - cleaned["I"] / 2
    notes.append("p_axis, qrs_axis, t_axis: need leads I and aVF (or I and II)")
    return None


def _median_beat(signal: np.ndarray, rpeaks: np.ndarray, fs: float) -> np.ndarray:
    """Sample-wise median of the beats from 600 ms before to 800 ms after each R peak (beats cut by the record's
    edges left out; with none whole, the edge-padded beats)."""
    before, after = int(round(0.6 * fs)), int(round(0.8 * fs))
    whole = [signal[r - before:r + after] for r in rpeaks if r - before >= 0 and r + after <= signal.size]
    if not whole:
        padded = np.pad(signal, (before, after), mode="edge")
        whole = [padded[r:r + before + after] for r in rpeaks]
    return np.median(np.stack(whole), axis=0)


def _compare(result: dict, device: dict, notes: list[str]) -> tuple[dict, dict]:
    """The device block (JSON-able copy) and ours - device per quantity the device gives."""
    shown, difference = {}, {}
    for key, entry in device.items():
        if not isinstance(entry, dict) or "value" not in entry:
            continue
        shown[key] = {k: (float(v) if isinstance(v, (int, float, np.number)) and not isinstance(v, bool) else v)
                      for k, v in entry.items()}
        unit = _UNIT_ALIASES.get(str(entry.get("unit", "")).strip().lower(), str(entry.get("unit", "")))
        value = entry.get("value")
        if key == "qtc":
            formula = str(entry.get("formula") or "").lower()
            if not formula or "bazett" in formula:
                ours_key = "qtc_bazett"
            elif "frid" in formula or "fred" in formula:
                ours_key = "qtc_fridericia"
            else:
                notes.append(f"device qtc ({entry.get('formula')}): not compared, we compute Bazett and Fridericia")
                difference[key] = {"value": None, "unit": "ms", "compared_with": None}
                continue
        elif key in _DEVICE_NAMES:
            ours_key = _DEVICE_NAMES[key]
        else:  # atrial_rate and others we do not measure
            difference[key] = {"value": None, "unit": unit, "compared_with": None}
            continue
        ours = result[ours_key]
        if unit == "s" and ours["unit"] == "ms" and value is not None:
            value, unit = float(value) * 1000.0, "ms"
        if value is None or ours["value"] is None or unit != ours["unit"]:
            if value is not None and ours["value"] is not None:
                notes.append(f"device {key} in {entry.get('unit')!r}: not compared with ours in {ours['unit']}")
            difference[key] = {"value": None, "unit": ours["unit"], "compared_with": ours_key}
            continue
        diff = ours["value"] - float(value)
        if ours["unit"] == "deg":  # the shorter way round the circle
            diff = (diff + 180.0) % 360.0 - 180.0
        difference[key] = {"value": round(diff, 1), "unit": ours["unit"], "compared_with": ours_key}
    return shown, difference
