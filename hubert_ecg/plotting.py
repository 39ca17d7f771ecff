"""12-lead ECG plots on ECG paper, with an optional attribution overlay (``hubert-ecg plot``: :mod:`hubert_ecg_cli.plot`).

```python
from hubert_ecg.plotting import plot_ecg, save_figure
fig = plot_ecg("records500/00000/00010_hr")          # any input hubert_ecg.windows.load_record takes
save_figure(fig, "ecg.png")                           # .png, .svg or .pdf
```

The layout is the standard one of a 12-lead printout: 3 rows x 4 columns of 2.5 s each (I, aVR, V1, V4 /
II, aVL, V2, V5 / III, aVF, V3, V6: column ``c`` shows the record from ``start + 2.5 c`` s), under them a 10 s
rhythm strip of lead II, on ECG paper at 25 mm/s and 10 mm/mV with a 1 mm / 5 mm grid and a 1 mV calibration
pulse at the start of every row. The figure is drawn to scale: a millimetre of the paper is a millimetre of the
PNG at its nominal size (``dpi`` pixels per inch), of the SVG and of the PDF. Leads the record lacks are labelled
and left empty; a record shorter than 10 s leaves the rest of its rows empty; a longer one is shown from
``start`` for 10 s.

matplotlib draws it (the ``[plot]`` extra; imported on first use). The ``ecg_plot`` package (PyPI ``ecg-plot``)
was considered and not used: it draws through pyplot's global state, has no rhythm strip and no consecutive
2.5 s columns, and no way to draw an attribution overlay (see ``docs/visualisation.md``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

__all__ = ["LAYOUT", "RHYTHM_LEAD", "PAPER_SPEED", "GAIN", "attribution_scale", "plot_ecg", "save_figure"]

#: the 3 x 4 layout of a standard 12-lead printout, by rows; column ``c`` shows 2.5 s from ``start + 2.5 c``.
LAYOUT = (("I", "aVR", "V1", "V4"), ("II", "aVL", "V2", "V5"), ("III", "aVF", "V3", "V6"))
#: the lead of the 10 s rhythm strip (the first lead of the record when it has no lead II).
RHYTHM_LEAD = "II"
#: paper speed in mm/s and gain in mm/mV of a standard printout.
PAPER_SPEED = 25.0
GAIN = 10.0
COLUMN_SECONDS = 2.5
STRIP_SECONDS = 10.0
ROW_HEIGHT_MM = 30.0  # 3 mV a row
_LEFT_MM = 10.0  # the calibration pulses
_FORMATS = (".png", ".svg", ".pdf")
_PAPER = "#fff4f2"
_MINOR = "#f6c7bf"
_MAJOR = "#e8887a"


def _load(source: Any, sampling_rate: float | None, lead_names: Sequence[str] | None, start: float):
    """Any input of :func:`hubert_ecg.windows.load_record` -> (the 10 s from ``start``: float64 ``(leads,
    samples)`` mV, rate Hz, standard names (None for non-standard leads), record name, duration s). Long records are
    opened lazily: only the samples drawn are read."""
    from .leads import normalize_lead_name
    from .windows import describe, load_record

    name = describe(source)
    try:
        record = load_record(source, sampling_rate=sampling_rate, lead_names=lead_names, lazy=True)
    except ValueError as err:
        message = str(err)
        raise ValueError(message if name in message else f"{name}: {message}") from None
    rate = float(record.sampling_rate)
    duration = record.signal.shape[1] / rate
    if not (0.0 <= float(start) < duration):
        raise ValueError(f"{name}: start must lie in [0, {duration:g}) s (the record's duration), got {start!r}")
    name = record.record_name or name
    first = int(round(start * rate))
    signal = np.asarray(record.signal[:, first : first + int(np.ceil(STRIP_SECONDS * rate)) + 1], dtype=np.float64)
    standard = [normalize_lead_name(n) for n in record.lead_names]
    return signal, rate, standard, name, duration


def _grid(ax, width: float, height: float) -> None:
    from matplotlib.collections import LineCollection

    for step, color, lw in ((1.0, _MINOR, 0.25), (5.0, _MAJOR, 0.6)):
        xs = np.arange(0.0, width + 1e-9, step)
        ys = np.arange(0.0, height + 1e-9, step)
        segments = [((x, 0.0), (x, height)) for x in xs] + [((0.0, y), (width, y)) for y in ys]
        ax.add_collection(LineCollection(segments, colors=color, linewidths=lw, zorder=0))


def attribution_scale(attribution: np.ndarray, rate: float, start: float = 0.0,
                      smoothing: float = 0.1) -> tuple[np.ndarray, float]:
    """The overlay's colour scale, as :func:`plot_ecg` draws it: the attribution ``(leads, samples)`` at ``rate`` Hz
    averaged over ``smoothing`` seconds (NaN kept), and the value drawn darkest: the 99.5th percentile of its
    positive values in the 10 s from ``start`` (1.0 where none is positive). Zero and negative values are not drawn.

    Returns:
        ``(smoothed, scale)``: float64 ``(leads, samples)`` and a float in the attribution's unit.
    """
    heat = np.asarray(attribution, dtype=np.float64)
    width_samples = int(round(float(smoothing) * float(rate)))
    if width_samples > 1:
        from scipy.ndimage import uniform_filter1d

        finite = np.isfinite(heat)
        heat = np.where(finite, uniform_filter1d(np.where(finite, heat, 0.0), width_samples, axis=1,
                                                 mode="nearest"), np.nan)
    a0, a1 = int(start * rate), int(np.ceil((start + STRIP_SECONDS) * rate))
    shown = heat[:, a0:a1]
    positive = shown[np.isfinite(shown) & (shown > 0)]
    return heat, float(np.percentile(positive, 99.5)) if positive.size else 1.0


def plot_ecg(
    source: Any,
    *,
    sampling_rate: float | None = None,
    lead_names: Sequence[str] | None = None,
    start: float = 0.0,
    title: str | None = None,
    attribution: np.ndarray | None = None,
    attribution_rate: float | None = None,
    attribution_leads: Sequence[str] | None = None,
    attribution_label: str | None = None,
    attribution_smoothing: float = 0.1,
    lead_set: Sequence[str] | None = None,
    dpi: int = 100,
):
    """Draw a record in the standard 12-lead layout (see the module docstring) and return the matplotlib Figure.

    Args:
        source: a file path (any format :func:`hubert_ecg.read_ecg` reads), an :class:`~hubert_ecg.ECGRecord`, a
            dict with ``signal`` / ``sampling_rate`` / ``lead_names`` or an array ``(leads, samples)`` in mV
            (:func:`hubert_ecg.windows.load_record`). Lead names in any spelling (``AVR``, ``MLII``); non-standard
            leads are not drawn.
        sampling_rate, lead_names: for arrays (and ``.npy`` files), as :func:`hubert_ecg.windows.load_record`.
        start: seconds from the start of the record of the first column and of the rhythm strip.
        title: text above the plot (default: the record's name, rate and duration).
        attribution: optional float ``(leads, samples)`` on the record's time axis (sample ``k`` at
            ``k / attribution_rate`` s; NaN where not computed), e.g. :attr:`hubert_ecg.explain.Explanation.
            values`: drawn as a blue heat band behind each lead, its opacity proportional to the positive
            attribution, averaged over ``attribution_smoothing`` seconds for display (attributions are spiky) and
            normalised by the 99.5th percentile of what is shown (1 and above: the darkest).
        attribution_rate: Hz of ``attribution`` (required with it).
        attribution_leads: names of the rows of ``attribution`` (default: the 12 standard leads in order).
        attribution_label: what the overlay attributes (e.g. ``"MI, integrated gradients"``), shown in the title.
        attribution_smoothing: seconds of the moving average applied to the overlay (0: none).
        lead_set: draw only these leads (standard names, e.g. :data:`hubert_ecg.leads.LEAD_SETS` ``["6"]``), as the
            pipeline's ``lead_set=`` scores them; the record's other leads are labelled ``(not in lead set)``.
        dpi: pixels per inch of raster output (a PNG of a 10 s record is 11.8 x 6.8 in).

    Returns:
        ``matplotlib.figure.Figure`` (not registered with pyplot: close it by dropping it).

    Raises:
        ValueError: naming the input, for an unreadable record (as :func:`hubert_ecg.read_ecg`), ``start`` outside
            the record, a record without any standard lead (or none of ``lead_set``), or an ``attribution`` whose
            shape does not match ``attribution_leads`` or that comes without ``attribution_rate``.
    """
    from .leads import STANDARD_LEADS

    start = float(start)
    signal, rate, standard, name, duration = _load(source, sampling_rate, lead_names, start)
    rows_of, left_out = _drawn_leads(standard, name, lead_set)
    heat, heat_rows, scale = _attribution_heat(attribution, attribution_rate, attribution_leads, start,
                                               attribution_smoothing)

    width = _LEFT_MM + STRIP_SECONDS * PAPER_SPEED
    n_rows = len(LAYOUT) + 1
    height = n_rows * ROW_HEIGHT_MM
    fig, ax = _paper(width, height, dpi)

    def baseline_of(row: int) -> float:
        return height - (row + 0.5) * ROW_HEIGHT_MM

    def draw(lead: str, row: int, t0: float, seconds: float, x0: float) -> None:
        y0 = baseline_of(row)
        text = lead if lead in rows_of else f"{lead} (not in lead set)" if lead in left_out else f"{lead} (absent)"
        ax.text(x0 + 1.0, y0 + ROW_HEIGHT_MM * 0.33, text, fontsize=8,
                fontweight="bold", color="black" if lead in rows_of else "#888888", zorder=4)
        if lead not in rows_of:
            return
        i0 = int(round((t0 - start) * rate))
        i1 = min(signal.shape[1], int(round((t0 - start + seconds) * rate)))
        if i1 <= i0:
            return
        x = signal[rows_of[lead], i0:i1]
        finite = np.isfinite(x)
        centre = float(np.median(x[finite])) if finite.any() else 0.0
        t = np.arange(i0, i1) / rate + start - t0
        if heat is not None and lead in heat_rows:
            h0, h1 = int(round(t0 * attribution_rate)), int(round((t0 + seconds) * attribution_rate))
            band = heat[heat_rows[lead], h0:min(h1, heat.shape[1])]
            if band.size:
                _draw_heat_band(ax, band, scale, attribution_rate, x0, y0)
        ax.plot(x0 + t * PAPER_SPEED, y0 + (x - centre) * GAIN, color="black", linewidth=0.6, zorder=3,
                clip_on=True)

    for row, leads in enumerate(LAYOUT):
        y0 = baseline_of(row)
        ax.plot([1, 3, 3, 8, 8, 10], [y0, y0, y0 + GAIN, y0 + GAIN, y0, y0], color="black", linewidth=0.8, zorder=3)
        for col, lead in enumerate(leads):
            x0 = _LEFT_MM + col * COLUMN_SECONDS * PAPER_SPEED
            draw(lead, row, start + col * COLUMN_SECONDS, COLUMN_SECONDS, x0)
            if col:
                ax.plot([x0, x0], [y0 - 3, y0 + 3], color="black", linewidth=0.8, zorder=3)
    rhythm = RHYTHM_LEAD if RHYTHM_LEAD in rows_of else next(lead for lead in STANDARD_LEADS if lead in rows_of)
    y0 = baseline_of(len(LAYOUT))
    ax.plot([1, 3, 3, 8, 8, 10], [y0, y0, y0 + GAIN, y0 + GAIN, y0, y0], color="black", linewidth=0.8, zorder=3)
    draw(rhythm, len(LAYOUT), start, STRIP_SECONDS, _LEFT_MM)

    if title is None:
        title = f"{name}   {rate:g} Hz, {duration:g} s" + (f", from {start:g} s" if start else "")
    title += f"   {PAPER_SPEED:g} mm/s, {GAIN:g} mm/mV"
    if attribution_label:
        title += f"   attribution: {attribution_label}"
    fig.text(0.01, 1.0 - 6.0 / (height + 12.0), title, fontsize=9, va="center")
    return fig


def _drawn_leads(standard, name: str, lead_set: Sequence[str] | None):
    """``(rows_of, left_out)``: the standard leads drawn (name -> signal row) and those left out by ``lead_set``."""
    from .leads import STANDARD_LEADS

    rows_of = {lead: i for i, lead in enumerate(standard) if lead is not None}
    if not rows_of:
        raise ValueError(f"{name} has none of the standard leads {list(STANDARD_LEADS)} (its leads: {standard})")
    left_out = set()
    if lead_set is not None:
        from .leads import lead_set as _lead_set

        chosen = _lead_set(lead_set)
        left_out = {lead for lead in rows_of if lead not in chosen}
        rows_of = {lead: i for lead, i in rows_of.items() if lead in chosen}
        if not rows_of:
            raise ValueError(f"{name} has none of the leads of the lead set {list(chosen)} (its leads: {standard})")
    return rows_of, left_out


def _attribution_heat(attribution, attribution_rate, attribution_leads, start: float, smoothing: float):
    """``(heat, heat_rows, scale)``: the smoothed overlay, its rows by lead and its scale (all None without one)."""
    from .leads import STANDARD_LEADS

    if attribution is None:
        return None, None, None
    heat = np.asarray(attribution, dtype=np.float64)
    names = list(attribution_leads) if attribution_leads is not None else list(STANDARD_LEADS)
    if heat.ndim != 2 or heat.shape[0] != len(names):
        raise ValueError(f"attribution must have shape ({len(names)} leads, samples), got {heat.shape}")
    if attribution_rate is None or not float(attribution_rate) > 0:
        raise ValueError(f"attribution_rate must be a positive number of Hz with attribution, got {attribution_rate!r}")
    heat_rows = {lead: i for i, lead in enumerate(names)}
    heat, scale = attribution_scale(heat, attribution_rate, start, smoothing)
    return heat, heat_rows, scale


def _paper(width: float, height: float, dpi: int):
    """``(fig, ax)``: a Figure with the ECG paper (background and grid) of ``width`` x ``height`` mm drawn."""
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    fig = Figure(figsize=(width / 25.4, (height + 12.0) / 25.4), dpi=dpi)
    ax = fig.add_axes((0.0, 0.0, 1.0, height / (height + 12.0)))
    ax.set_xlim(0.0, width)
    ax.set_ylim(0.0, height)
    ax.set_axis_off()
    ax.add_patch(Rectangle((0, 0), width, height, facecolor=_PAPER, edgecolor="none", zorder=-1))
    _grid(ax, width, height)
    return fig, ax


def _draw_heat_band(ax, band: np.ndarray, scale: float, attribution_rate: float, x0: float, y0: float) -> None:
    """None; draws the attribution ``band`` as a blue heat band behind a lead's trace at ``(x0, y0)``."""
    alpha = np.clip(np.nan_to_num(band, nan=0.0) / scale, 0.0, 1.0) * 0.7
    rgba = np.zeros((1, band.size, 4))
    rgba[..., 0], rgba[..., 1], rgba[..., 2], rgba[..., 3] = 0.1, 0.35, 0.95, alpha
    ax.imshow(rgba, extent=(x0, x0 + band.size / attribution_rate * PAPER_SPEED,
                            y0 - ROW_HEIGHT_MM / 2, y0 + ROW_HEIGHT_MM / 2),
              aspect="auto", interpolation="nearest", zorder=1)


def save_figure(fig, path: str | Path) -> Path:
    """Write ``fig`` to ``path`` as PNG, SVG or PDF, chosen by the extension; returns the path.

    Raises:
        ValueError: for another extension (names the path and the formats).
    """
    path = Path(path)
    if path.suffix.lower() not in _FORMATS:
        raise ValueError(f"cannot write {str(path)!r}: expected a file name ending in {', '.join(_FORMATS)}")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format=path.suffix.lower()[1:], facecolor="white")
    return path
