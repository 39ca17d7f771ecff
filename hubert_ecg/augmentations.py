"""ECG augmentations on torch: batched, per-sample random, reproducible from ``(seed, epoch, sample index)``.

Every transform takes a batch in one call, either

* ``(batch, leads, samples)``: a raw signal in mV at its own ``sampling_rate`` (before the feature extractor), or a
  preprocessed window split per lead, or
* ``(batch, leads * samples)``: the model's concatenated view (``input_values``: 12 leads x 500 samples at 100 Hz,
  scaled to [-1, 1] by the feature extractor, leads one after the other). It is reshaped to
  ``(batch, num_leads, samples)`` internally and returned in its own shape.

Randomness: ``transform(x, sample_index=..., epoch=..., seed=...)`` gives sample ``i`` its own
``torch.Generator`` seeded from ``(seed, epoch, sample_index[i])`` (numpy ``SeedSequence``), and a chain
(:class:`Compose`) draws every transform's parameters from that one per-sample stream in order. A sample's output
therefore depends only on its own index, the epoch and the seed: the same alone or in any batch, the same after a
resume. Without ``sample_index`` the per-sample seeds come from torch's global generator (``torch.manual_seed``).

Each transform has a probability ``p`` (drawn per sample); ``p=0`` is the identity. Amplitude parameters are in the
units of the signal they are applied to: mV before the feature extractor, the model's [-1, 1] scale after it.
Time parameters are in seconds and frequencies in Hz, converted with the transform's ``sampling_rate`` (Hz; 100 for
the model view, the record's own rate for raw signals).

Chains are built from YAML/JSON-like lists with :func:`from_config`::

    from_config([{"name": "lead_mask", "p": 1.0, "mask_prob": 0.5}, {"name": "gaussian_noise", "snr_db": 20}])
"""

from __future__ import annotations

import inspect
import math
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch

from .leads import LEAD_SETS, STANDARD_LEADS, normalize_lead_name

__all__ = [
    "Transform",
    "Compose",
    "RandomApply",
    "OneOf",
    "LeadMask",
    "LeadSubset",
    "TimeMask",
    "GaussianNoise",
    "BaselineWander",
    "PowerlineNoise",
    "AmplitudeScale",
    "TimeShift",
    "TimeScale",
    "RandomCrop",
    "External",
    "TRANSFORMS",
    "from_config",
    "sample_generators",
    "default_finetuning_chain",
]


# --------------------------------------------------------------------------------------------------- randomness
def sample_generators(
    batch_size: int, sample_index=None, epoch: int = 0, seed: int | None = 0
) -> list[torch.Generator]:
    """One CPU ``torch.Generator`` per sample, seeded from ``(seed, epoch, sample_index[i])``.

    Args:
        batch_size: number of samples.
        sample_index: int ``(batch,)`` tensor/array/list of the samples' dataset indices (non-negative), or None for
            seeds drawn from torch's global generator (not reproducible across batch compositions).
        epoch: the epoch (non-negative int).
        seed: the run's seed (non-negative int); None behaves like ``sample_index=None``.

    Raises:
        ValueError: for a ``sample_index`` of the wrong length or negative values.
    """
    if sample_index is None or seed is None:
        seeds = torch.randint(0, 2**62, (batch_size,)).tolist()
    else:
        index = np.asarray(
            sample_index.detach().cpu().numpy() if isinstance(sample_index, torch.Tensor) else sample_index
        ).reshape(-1)
        if index.shape[0] != batch_size:
            raise ValueError(f"sample_index has {index.shape[0]} entries for a batch of {batch_size}")
        if (index < 0).any() or int(epoch) < 0 or int(seed) < 0:
            raise ValueError("sample_index, epoch and seed must be non-negative integers")
        seeds = []
        for i in index.tolist():
            state = np.random.SeedSequence([int(seed), int(epoch), int(i)]).generate_state(2, np.uint32)
            seeds.append((int(state[0]) << 31) ^ int(state[1]))
    gens = []
    for s in seeds:
        g = torch.Generator()
        g.manual_seed(s)
        gens.append(g)
    return gens


def _rand(gens: Sequence[torch.Generator], *shape: int) -> torch.Tensor:
    """Uniform [0, 1) float32 ``(batch, *shape)``, row ``i`` from ``gens[i]``."""
    if not gens:
        return torch.empty((0, *shape))
    return torch.stack([torch.rand(shape, generator=g) for g in gens])


def _randn(gens: Sequence[torch.Generator], *shape: int) -> torch.Tensor:
    if not gens:
        return torch.empty((0, *shape))
    return torch.stack([torch.randn(shape, generator=g) for g in gens])


def _uniform(gens, low: float, high: float, *shape: int) -> torch.Tensor:
    return low + (high - low) * _rand(gens, *shape)


def _as_range(value, name: str, where: str) -> tuple[float, float]:
    """A number or a ``[low, high]`` pair -> ``(low, high)`` floats."""
    if isinstance(value, (int, float)):
        return float(value), float(value)
    try:
        low, high = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: {name} must be a number or a [low, high] pair, got {value!r}") from None
    if low > high:
        raise ValueError(f"{where}: {name} range [{low}, {high}] has low > high")
    return low, high


# ------------------------------------------------------------------------------------------------------ base
class Transform:
    """Base class: per-sample probability ``p``, layout handling and the per-sample generators.

    Subclasses implement ``_apply(x, gens, state) -> x`` on a float ``(n, leads, samples)`` tensor holding only the
    samples drawn to be transformed (``gens`` their generators). ``state`` carries ``"lead_mask"`` (bool
    ``(n, leads)``, True = lead kept) between transforms of a chain.
    """

    name = "transform"

    def __init__(self, p: float = 1.0, num_leads: int = 12):
        if not 0.0 <= float(p) <= 1.0:
            raise ValueError(f"{type(self).__name__}: p must be in [0, 1], got {p!r}")
        if int(num_leads) < 1:
            raise ValueError(f"{type(self).__name__}: num_leads must be >= 1, got {num_leads!r}")
        self.p = float(p)
        self.num_leads = int(num_leads)
        #: bool ``(batch, leads)`` after the last call: True for leads not zeroed by a lead transform.
        self.last_lead_mask: torch.Tensor | None = None

    # layout --------------------------------------------------------------------------------------------------
    def _to_3d(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, ...]]:
        if not isinstance(x, torch.Tensor):
            raise ValueError(f"{type(self).__name__}: expected a torch.Tensor, got {type(x).__name__}")
        if x.ndim == 3:
            return x, tuple(x.shape)
        if x.ndim == 2:
            if x.shape[1] % self.num_leads:
                raise ValueError(
                    f"{type(self).__name__}: a 2-D input is the concatenated (batch, leads * samples) view; "
                    f"{x.shape[1]} samples is not a multiple of num_leads={self.num_leads}"
                )
            return x.reshape(x.shape[0], self.num_leads, -1), tuple(x.shape)
        raise ValueError(
            f"{type(self).__name__}: expected (batch, leads, samples) or (batch, leads * samples), got shape "
            f"{tuple(x.shape)}"
        )

    @staticmethod
    def _from_3d(y: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
        return y.reshape(y.shape[0], -1) if len(shape) == 2 else y

    # call ----------------------------------------------------------------------------------------------------
    def __call__(
        self,
        x: torch.Tensor,
        sample_index=None,
        epoch: int = 0,
        seed: int | None = 0,
        return_lead_mask: bool = False,
    ):
        """Transform a batch.

        Args:
            x: float tensor ``(batch, leads, samples)`` or ``(batch, leads * samples)``.
            sample_index: int ``(batch,)`` dataset indices of the samples (see :func:`sample_generators`).
            epoch, seed: with ``sample_index``, the rest of each sample's seed.
            return_lead_mask: also return the bool ``(batch, leads)`` lead mask (True = kept).

        Returns:
            the transformed tensor, same shape (except :class:`RandomCrop`) and dtype; the input is not modified.
        """
        x3, shape = self._to_3d(x)
        if not x3.is_floating_point():
            raise ValueError(f"{type(self).__name__}: expected a floating-point tensor, got {x3.dtype}")
        gens = sample_generators(x3.shape[0], sample_index, epoch, seed)
        state = {"lead_mask": torch.ones(x3.shape[:2], dtype=torch.bool, device=x3.device)}
        y = self._run(x3, gens, state)
        self.last_lead_mask = state["lead_mask"]
        y = self._from_3d(y, shape)
        return (y, state["lead_mask"]) if return_lead_mask else y

    def _run(self, x: torch.Tensor, gens: list, state: dict) -> torch.Tensor:
        """Coin per sample (``p``), then ``_apply`` on the chosen samples only."""
        if self.p <= 0.0 or x.shape[0] == 0:
            return x
        if self.p >= 1.0:
            return self._apply(x, gens, state)
        chosen = (_rand(gens) < self.p).to(x.device)
        idx = torch.nonzero(chosen).flatten()
        if idx.numel() == 0:
            return x
        sub_state = {k: v[idx] for k, v in state.items()}
        out = self._apply(x[idx], [gens[i] for i in idx.tolist()], sub_state)
        y = x.clone()
        y[idx] = out.to(y.dtype)
        for k, v in sub_state.items():
            state[k] = state[k].clone()
            state[k][idx] = v
        return y

    def _apply(self, x: torch.Tensor, gens: list, state: dict) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("last_"))
        return f"{type(self).__name__}({args})"


def _zero_leads(x: torch.Tensor) -> torch.Tensor:
    """bool ``(n, leads, 1)``: leads that are exactly zero (zero-filled or masked), kept zero by additive noise."""
    return (x == 0).all(dim=-1, keepdim=True)


# ------------------------------------------------------------------------------------------------- lead transforms
class LeadMask(Transform):
    """Random lead masking (fairseq-signals ``RandomLeadsMask``; Oh et al., CHIL 2022): lead-agnostic training.

    Every lead of every sample is zeroed independently with probability ``mask_prob``; at least ``min_leads``
    leads are kept (when more would be masked, the masked leads with the largest draws are restored). The input
    stays ``leads`` rows. Run it AFTER the feature extractor (on ``input_values``): there zeros are the model's
    zero-fill (``padding_value``); a zeroed raw lead would come out of the feature extractor's min-max scaling as
    about -1, not 0. (The feature extractor's own zero-fill of missing leads happens at 500 Hz, before the
    decimation of the concatenated leads, so it differs from zeros in the model view within about 0.2 s of each
    lead boundary.)
    Shapes: ``(batch, leads, samples)`` or ``(batch, leads * samples)``. The mask (bool ``(batch, leads)``, True
    = kept) is returned with ``return_lead_mask=True`` and kept in ``last_lead_mask``.
    """

    name = "lead_mask"

    def __init__(self, p: float = 1.0, mask_prob: float = 0.5, min_leads: int = 1, num_leads: int = 12):
        super().__init__(p, num_leads)
        if not 0.0 <= float(mask_prob) <= 1.0:
            raise ValueError(f"LeadMask: mask_prob must be in [0, 1], got {mask_prob!r}")
        if not 1 <= int(min_leads) <= self.num_leads:
            raise ValueError(f"LeadMask: min_leads must be in [1, {self.num_leads}], got {min_leads!r}")
        self.mask_prob = float(mask_prob)
        self.min_leads = int(min_leads)

    def _apply(self, x, gens, state):
        u = _rand(gens, x.shape[1]).to(x.device)
        masked = u < self.mask_prob
        # restore the masked leads with the largest draws until min_leads are kept
        kept = (~masked).sum(dim=1)
        need = (self.min_leads - kept).clamp(min=0)
        if bool((need > 0).any()):
            score = torch.where(masked, u, torch.full_like(u, -1.0))
            order = score.argsort(dim=1, descending=True)
            rank = torch.empty_like(order)
            rank.scatter_(1, order, torch.arange(x.shape[1], device=x.device).expand_as(order))
            masked = masked & ~(rank < need[:, None])
        state["lead_mask"] = state["lead_mask"] & ~masked
        return x * (~masked)[:, :, None].to(x.dtype)


class LeadSubset(Transform):
    """Keep a fixed lead set and zero exactly the other leads (evaluation or training on fewer leads).

    ``leads`` is a key of :data:`LEAD_SETS` (``"12"``, ``"6"``, ``"4"``, ``"3"``, ``"2"``, ``"1"``) or a list of lead
    names in any spelling (``"AVR"``, ``"lead II"``), matched against ``lead_order`` (:data:`STANDARD_LEADS`).
    Run it after the feature extractor, as :class:`LeadMask`. Shapes as :class:`LeadMask`.

    Raises:
        ValueError: for an unknown lead set or lead name.
    """

    name = "lead_subset"

    def __init__(self, leads="12", p: float = 1.0, lead_order: Sequence[str] = STANDARD_LEADS):
        super().__init__(p, len(lead_order))
        if isinstance(leads, (str, int)) and str(leads) in LEAD_SETS:
            names = LEAD_SETS[str(leads)]
        elif isinstance(leads, str):
            raise ValueError(f"LeadSubset: unknown lead set {leads!r}; expected one of {sorted(LEAD_SETS)} or names")
        else:
            names = []
            for name in leads:
                std = normalize_lead_name(name)
                if std is None or std not in lead_order:
                    raise ValueError(f"LeadSubset: unknown lead {name!r}; expected names of {list(lead_order)}")
                names.append(std)
        self.leads = tuple(names)
        self.lead_order = tuple(lead_order)
        self.keep = torch.tensor([lead in self.leads for lead in self.lead_order])

    def _apply(self, x, gens, state):
        keep = self.keep.to(x.device)
        state["lead_mask"] = state["lead_mask"] & keep[None, :]
        return x * keep[None, :, None].to(x.dtype)


# ------------------------------------------------------------------------------------------------- time / noise
class TimeMask(Transform):
    """Zero ``num_masks`` random time spans per sample, the same span on all leads.

    Span lengths are uniform in ``[0, max_seconds]`` s at ``sampling_rate`` Hz (100 for the model view). Run it after
    the feature extractor (zeros before it are rescaled by its min-max scaling). Shapes: ``(batch, leads,
    samples)`` or ``(batch, leads * samples)``.
    """

    name = "time_mask"

    def __init__(self, p: float = 1.0, max_seconds: float = 0.5, num_masks: int = 1, sampling_rate: float = 100.0,
                 num_leads: int = 12):
        super().__init__(p, num_leads)
        if float(max_seconds) < 0 or int(num_masks) < 1 or float(sampling_rate) <= 0:
            raise ValueError("TimeMask: expected max_seconds >= 0, num_masks >= 1 and sampling_rate > 0")
        self.max_seconds, self.num_masks, self.sampling_rate = float(max_seconds), int(num_masks), float(sampling_rate)

    def _apply(self, x, gens, state):
        n = x.shape[-1]
        r = _rand(gens, self.num_masks, 2).to(x.device)
        length = (r[..., 0] * min(self.max_seconds * self.sampling_rate, n)).round()
        start = (r[..., 1] * (n - length + 1)).floor()
        t = torch.arange(n, device=x.device)[None, None, :]
        inside = ((t >= start[..., None]) & (t < (start + length)[..., None])).any(dim=1)
        return x * (~inside)[:, None, :].to(x.dtype)


class GaussianNoise(Transform):
    """Add white Gaussian noise at a signal-to-noise ratio in dB, per sample and lead.

    The noise power of each lead is ``mean(x**2) / 10**(snr_db / 10)`` (the power of that lead of that sample), so
    all-zero (masked) leads stay zero. ``snr_db`` is a number or a ``[low, high]`` range drawn per sample (dB).
    Before or after the feature extractor. Shapes: ``(batch, leads, samples)`` or ``(batch, leads * samples)``.
    """

    name = "gaussian_noise"

    def __init__(self, p: float = 1.0, snr_db=20.0, num_leads: int = 12):
        super().__init__(p, num_leads)
        self.snr_db = _as_range(snr_db, "snr_db", "GaussianNoise")

    def _apply(self, x, gens, state):
        snr = _uniform(gens, *self.snr_db, 1).to(x.device)  # (n, 1)
        noise = _randn(gens, x.shape[1], x.shape[2]).to(device=x.device, dtype=x.dtype)
        power = x.double().pow(2).mean(dim=-1, keepdim=True)  # (n, leads, 1)
        scale = (power / torch.pow(10.0, snr[:, :, None].double() / 10.0)).sqrt()
        return x + (noise * scale.to(x.dtype))


class BaselineWander(Transform):
    """Add baseline wander: a sum of ``num_components`` low-frequency sinusoids per sample and lead.

    Frequencies uniform in ``[min_frequency, max_frequency]`` Hz (below 0.5 Hz: respiration, movement), random
    phases, amplitudes uniform in ``[0, amplitude]`` each, in signal units (mV before the feature extractor, where it
    belongs: the feature extractor's 0.05 Hz high-pass removes part of it; in [-1, 1] units after it).
    All-zero (masked) leads stay zero. ``sampling_rate`` in Hz. Shapes as :class:`GaussianNoise`.
    """

    name = "baseline_wander"

    def __init__(self, p: float = 1.0, amplitude: float = 0.1, min_frequency: float = 0.05,
                 max_frequency: float = 0.5, num_components: int = 2, sampling_rate: float = 100.0,
                 num_leads: int = 12):
        super().__init__(p, num_leads)
        if not 0 <= float(min_frequency) <= float(max_frequency) or float(sampling_rate) <= 0:
            raise ValueError("BaselineWander: expected 0 <= min_frequency <= max_frequency and sampling_rate > 0")
        if float(amplitude) < 0 or int(num_components) < 1:
            raise ValueError("BaselineWander: expected amplitude >= 0 and num_components >= 1")
        self.amplitude, self.num_components = float(amplitude), int(num_components)
        self.min_frequency, self.max_frequency = float(min_frequency), float(max_frequency)
        self.sampling_rate = float(sampling_rate)

    def _apply(self, x, gens, state):
        k, leads = self.num_components, x.shape[1]
        r = _rand(gens, leads, k, 3).to(x.device).double()
        freq = self.min_frequency + (self.max_frequency - self.min_frequency) * r[..., 0]
        phase = 2 * math.pi * r[..., 1]
        amp = self.amplitude * r[..., 2]
        t = torch.arange(x.shape[-1], device=x.device, dtype=torch.float64) / self.sampling_rate
        wave = (amp[..., None] * torch.sin(2 * math.pi * freq[..., None] * t + phase[..., None])).sum(dim=2)
        return x + (wave.to(x.dtype) * (~_zero_leads(x)).to(x.dtype))


class PowerlineNoise(Transform):
    """Add powerline interference: a ``frequency`` Hz sinusoid (50 or 60; a list picks one per sample).

    Amplitude uniform in ``[0, amplitude]`` per sample (mV before the feature extractor, where it belongs: the
    model view at 100 Hz cannot hold 50 Hz, its Nyquist frequency), the same phase on all leads with per-lead
    amplitude factors in [0.5, 1]. ``sampling_rate`` (Hz) is required and must exceed ``2 * frequency``.
    All-zero leads stay zero. Shapes: ``(batch, leads, samples)``.

    Raises:
        ValueError: for a frequency at or above the Nyquist frequency of ``sampling_rate``.
    """

    name = "powerline"

    def __init__(self, sampling_rate: float, p: float = 1.0, frequency=50.0, amplitude: float = 0.05,
                 num_leads: int = 12):
        super().__init__(p, num_leads)
        freqs = [float(frequency)] if isinstance(frequency, (int, float)) else [float(f) for f in frequency]
        if not freqs or float(sampling_rate) <= 0:
            raise ValueError("PowerlineNoise: expected a frequency and sampling_rate > 0")
        for f in freqs:
            if not 0 < f < float(sampling_rate) / 2:
                raise ValueError(
                    f"PowerlineNoise: frequency {f} Hz must be below the Nyquist frequency "
                    f"{float(sampling_rate) / 2} Hz of sampling_rate={sampling_rate}; apply it to the raw signal"
                )
        self.frequency, self.amplitude, self.sampling_rate = tuple(freqs), float(amplitude), float(sampling_rate)

    def _apply(self, x, gens, state):
        r = _rand(gens, 3 + x.shape[1]).to(x.device).double()
        freqs = torch.tensor(self.frequency, dtype=torch.float64, device=x.device)
        freq = freqs[(r[:, 0] * len(self.frequency)).long().clamp(max=len(self.frequency) - 1)]
        amp = self.amplitude * r[:, 1]
        phase = 2 * math.pi * r[:, 2]
        lead_factor = 0.5 + 0.5 * r[:, 3:]
        t = torch.arange(x.shape[-1], device=x.device, dtype=torch.float64) / self.sampling_rate
        wave = amp[:, None] * torch.sin(2 * math.pi * freq[:, None] * t + phase[:, None])
        noise = lead_factor[:, :, None] * wave[:, None, :]
        return x + noise.to(x.dtype) * (~_zero_leads(x)).to(x.dtype)


class AmplitudeScale(Transform):
    """Multiply by a factor uniform in ``[min_scale, max_scale]`` (one per sample, or per lead with ``per_lead``).

    Dimensionless. Before the feature extractor it is undone by the feature extractor's min-max scaling (unless
    ``per_lead``); after it, values may leave [-1, 1]. Shapes as :class:`GaussianNoise`.
    """

    name = "amplitude_scale"

    def __init__(self, p: float = 1.0, min_scale: float = 0.8, max_scale: float = 1.2, per_lead: bool = False,
                 num_leads: int = 12):
        super().__init__(p, num_leads)
        self.min_scale, self.max_scale = _as_range([min_scale, max_scale], "scale", "AmplitudeScale")
        self.per_lead = bool(per_lead)

    def _apply(self, x, gens, state):
        scale = _uniform(gens, self.min_scale, self.max_scale, x.shape[1] if self.per_lead else 1)
        return x * scale[:, :, None].to(device=x.device, dtype=x.dtype)


class TimeShift(Transform):
    """Shift all leads by the same whole number of samples, uniform in ``[-max_seconds, max_seconds]`` s.

    Samples shifted in are zeros (the model's padding value after the feature extractor, where it belongs; on a raw
    signal they are 0 mV). ``sampling_rate`` in Hz (100 for the model view). Shapes: ``(batch, leads, samples)``
    or ``(batch, leads * samples)`` (shifted per lead).
    """

    name = "time_shift"

    def __init__(self, p: float = 1.0, max_seconds: float = 0.1, sampling_rate: float = 100.0, num_leads: int = 12):
        super().__init__(p, num_leads)
        if float(max_seconds) < 0 or float(sampling_rate) <= 0:
            raise ValueError("TimeShift: expected max_seconds >= 0 and sampling_rate > 0")
        self.max_seconds, self.sampling_rate = float(max_seconds), float(sampling_rate)

    def _apply(self, x, gens, state):
        n = x.shape[-1]
        m = int(round(self.max_seconds * self.sampling_rate))
        shift = ((_rand(gens) * (2 * m + 1)).floor().long() - m).clamp(-m, m).to(x.device)  # (n,)
        src = torch.arange(n, device=x.device)[None, :] - shift[:, None]
        valid = (src >= 0) & (src < n)
        out = torch.gather(x, 2, src.clamp(0, n - 1)[:, None, :].expand_as(x))
        return out * valid[:, None, :].to(x.dtype)


class TimeScale(Transform):
    """Resample by a factor uniform in ``[min_factor, max_factor]`` (linear interpolation), then crop/pad to length.

    A factor above 1 stretches the signal (slower heart rate; the end is cropped), below 1 compresses it (zeros
    padded at the end). All leads alike. Before or after the feature extractor (dimensionless). Shapes:
    ``(batch, leads, samples)`` or ``(batch, leads * samples)`` (per lead).
    """

    name = "time_scale"

    def __init__(self, p: float = 1.0, min_factor: float = 0.9, max_factor: float = 1.1, num_leads: int = 12):
        super().__init__(p, num_leads)
        self.min_factor, self.max_factor = _as_range([min_factor, max_factor], "factor", "TimeScale")
        if self.min_factor <= 0:
            raise ValueError("TimeScale: factors must be positive")

    def _apply(self, x, gens, state):
        n = x.shape[-1]
        factor = _uniform(gens, self.min_factor, self.max_factor, 1).to(x.device).double()  # (n, 1)
        pos = torch.arange(n, device=x.device, dtype=torch.float64)[None, :] / factor
        lo = pos.floor().long()
        frac = (pos - lo).to(x.dtype)
        valid = lo <= n - 1
        lo_c, hi_c = lo.clamp(0, n - 1), (lo + 1).clamp(0, n - 1)
        a = torch.gather(x, 2, lo_c[:, None, :].expand_as(x))
        b = torch.gather(x, 2, hi_c[:, None, :].expand_as(x))
        return (a + (b - a) * frac[:, None, :]) * valid[:, None, :].to(x.dtype)


class RandomCrop(Transform):
    """Random time-aligned crop of ``seconds`` s (the same start on all leads), as the random 5 s training window.

    ``sampling_rate`` in Hz. Output ``(batch, leads, round(seconds * sampling_rate))`` (or the concatenated
    view of that). Samples not drawn (``p < 1``) take the first window (start 0). Run it on the raw signal before
    the feature extractor (or on a longer preprocessed view).

    Raises:
        ValueError: when the input is shorter than the crop.
    """

    name = "random_crop"

    def __init__(self, seconds: float = 5.0, sampling_rate: float = 100.0, p: float = 1.0, num_leads: int = 12):
        super().__init__(p, num_leads)
        if float(seconds) <= 0 or float(sampling_rate) <= 0:
            raise ValueError("RandomCrop: expected seconds > 0 and sampling_rate > 0")
        self.seconds, self.sampling_rate = float(seconds), float(sampling_rate)

    def _run(self, x, gens, state):
        n, w = x.shape[-1], int(round(self.seconds * self.sampling_rate))
        if w > n:
            raise ValueError(f"RandomCrop: input has {n} samples per lead, fewer than the crop's {w}")
        r = _rand(gens, 2).to(x.device)
        start = torch.where(r[:, 0] < self.p, (r[:, 1] * (n - w + 1)).floor().long().clamp(max=n - w), 0)
        idx = start[:, None] + torch.arange(w, device=x.device)[None, :]
        return torch.gather(x, 2, idx[:, None, :].expand(x.shape[0], x.shape[1], w))


class External(Transform):
    """Adapter for any per-record callable, e.g. a transform of the ``ecg-augmentations`` package (an optional
    extra, never imported here): ``fn`` takes one ``(leads, samples)`` float tensor and returns an array or tensor of
    the same shape.

    ``fn`` is called once per chosen sample with torch's and numpy's global generators seeded from that sample's
    stream (and restored afterwards), so a callable drawing from them is reproducible and independent of batch
    composition like the other transforms. Units and placement are ``fn``'s. Slow for large batches (a Python
    loop). A plain callable given to :class:`Compose` / :class:`OneOf` is wrapped in this.

    Raises:
        ValueError: when ``fn`` is not callable or returns another shape.
    """

    name = "external"

    def __init__(self, fn: Callable, p: float = 1.0, num_leads: int = 12):
        super().__init__(p, num_leads)
        if not callable(fn):
            raise ValueError(f"External: fn must be callable, got {fn!r}")
        self.fn = fn

    def _apply(self, x, gens, state):
        out = []
        for row, g in zip(x, gens):
            s = int(torch.randint(0, 2**31 - 1, (1,), generator=g))
            np_state = np.random.get_state()
            try:
                with torch.random.fork_rng(devices=[]):
                    torch.manual_seed(s)
                    np.random.seed(s)
                    y = self.fn(row.clone())
            finally:
                np.random.set_state(np_state)
            y = torch.as_tensor(np.asarray(y) if not isinstance(y, torch.Tensor) else y)
            if tuple(y.shape) != tuple(row.shape):
                raise ValueError(f"External: {self.fn!r} returned shape {tuple(y.shape)} for {tuple(row.shape)}")
            out.append(y.to(device=x.device, dtype=x.dtype))
        return torch.stack(out)


def _wrap(t) -> Transform:
    if isinstance(t, Transform):
        return t
    if callable(t):
        return External(t)
    raise ValueError(f"{t!r} is neither a hubert_ecg.augmentations.Transform nor a callable")


# ------------------------------------------------------------------------------------------------- composition
class Compose(Transform):
    """Apply ``transforms`` in order (plain callables are wrapped in :class:`External`), every sample drawing from
    its one stream; ``p`` gates the whole chain."""

    name = "compose"

    def __init__(self, transforms: Sequence[Transform], p: float = 1.0, num_leads: int = 12):
        super().__init__(p, num_leads)
        self.transforms = [_wrap(t) for t in transforms]

    def _apply(self, x, gens, state):
        for t in self.transforms:
            x = t._run(x, gens, state)
        return x


class RandomApply(Compose):
    """Apply the chain ``transforms`` to each sample with probability ``p`` (drawn per sample)."""

    name = "random_apply"

    def __init__(self, transforms: Sequence[Transform], p: float = 0.5, num_leads: int = 12):
        super().__init__(transforms, p, num_leads)


class OneOf(Transform):
    """Apply one of ``transforms`` per sample, chosen with ``weights`` (default equal); ``p`` gates the choice."""

    name = "one_of"

    def __init__(self, transforms: Sequence[Transform], p: float = 1.0, weights=None, num_leads: int = 12):
        super().__init__(p, num_leads)
        self.transforms = [_wrap(t) for t in transforms]
        if not self.transforms:
            raise ValueError("OneOf: expected a non-empty list of transforms")
        w = np.ones(len(self.transforms)) if weights is None else np.asarray(weights, dtype=float)
        if w.shape != (len(self.transforms),) or (w < 0).any() or w.sum() <= 0:
            raise ValueError(f"OneOf: weights must be {len(self.transforms)} non-negative numbers, got {weights!r}")
        self.weights = (w / w.sum()).tolist()

    def _apply(self, x, gens, state):
        edges = torch.tensor(np.cumsum(self.weights)[:-1], dtype=torch.float32)
        choice = torch.bucketize(_rand(gens), edges, right=True).to(x.device)
        y = x.clone()
        for k, t in enumerate(self.transforms):
            idx = torch.nonzero(choice == k).flatten()
            if idx.numel() == 0:
                continue
            sub_state = {key: v[idx] for key, v in state.items()}
            y[idx] = t._run(x[idx], [gens[i] for i in idx.tolist()], sub_state).to(y.dtype)
            for key, v in sub_state.items():
                state[key] = state[key].clone()
                state[key][idx] = v
        return y


# --------------------------------------------------------------------------------------------------- config
TRANSFORMS: dict[str, type] = {
    cls.name: cls
    for cls in (LeadMask, LeadSubset, TimeMask, GaussianNoise, BaselineWander, PowerlineNoise, AmplitudeScale,
                TimeShift, TimeScale, RandomCrop)
}
_CONTAINERS = {"compose": Compose, "random_apply": RandomApply, "one_of": OneOf}


def _build(spec: Any, defaults: Mapping[str, Any], where: str) -> Transform:
    if not isinstance(spec, Mapping) or "name" not in spec:
        raise ValueError(f"{where}: expected a mapping with a 'name', got {spec!r}")
    spec = dict(spec)
    name = spec.pop("name")
    if name in _CONTAINERS:
        children = spec.pop("transforms", None)
        if not isinstance(children, (list, tuple)):
            raise ValueError(f"{where} ({name}): expected a 'transforms' list")
        cls = _CONTAINERS[name]
        built = [_build(c, defaults, f"{where}.transforms[{i}]") for i, c in enumerate(children)]
        allowed = set(inspect.signature(cls.__init__).parameters) - {"self", "transforms"}
        unknown = sorted(set(spec) - allowed)
        if unknown:
            raise ValueError(f"{where}: unknown parameter(s) {unknown} for {name!r}; expected {sorted(allowed)}")
        return cls(built, **spec)
    if name not in TRANSFORMS:
        raise ValueError(
            f"{where}: unknown transform {name!r}; expected one of {sorted(TRANSFORMS) + sorted(_CONTAINERS)}"
        )
    cls = TRANSFORMS[name]
    allowed = set(inspect.signature(cls.__init__).parameters) - {"self"}
    unknown = sorted(set(spec) - allowed)
    if unknown:
        raise ValueError(f"{where}: unknown parameter(s) {unknown} for {name!r}; expected {sorted(allowed)}")
    kwargs = {k: v for k, v in defaults.items() if k in allowed and k not in spec}
    kwargs.update(spec)
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as error:  # a transform's own checks: name the entry that failed them
        raise ValueError(f"{where} ({name}): {error}") from None


def from_config(config, sampling_rate: float = 100.0, num_leads: int = 12) -> Compose:
    """Build a :class:`Compose` from a YAML/JSON-like config.

    Args:
        config: a list of transform specs, or a mapping with a ``transforms`` list (and optional ``p``). A spec is a
            mapping with ``name`` (a key of :data:`TRANSFORMS`, or ``compose`` / ``random_apply`` / ``one_of`` with
            their own ``transforms`` list) and the transform's parameters, e.g.
            ``[{"name": "lead_mask", "p": 1.0, "mask_prob": 0.5}, {"name": "gaussian_noise", "snr_db": 20}]``.
        sampling_rate: Hz, given to every transform that takes one and does not set it (100: the model view).
        num_leads: leads of the concatenated view.

    Raises:
        ValueError: naming the entry (its place in the list and its name) with an unknown transform or parameter,
            or a value the transform refuses.
    """
    if isinstance(config, Mapping):
        config = dict(config)
        transforms = config.pop("transforms", None)
        p = config.pop("p", 1.0)
        if config or not isinstance(transforms, (list, tuple)):
            raise ValueError(f"augmentations: expected a list or {{'transforms': [...], 'p': ...}}, got keys "
                             f"{sorted(config)}")
    elif isinstance(config, (list, tuple)):
        transforms, p = config, 1.0
    else:
        raise ValueError(f"augmentations: expected a list of transforms, got {type(config).__name__}")
    defaults = {"sampling_rate": sampling_rate, "num_leads": num_leads}
    return Compose([_build(s, defaults, f"augmentations[{i}]") for i, s in enumerate(transforms)], p=p,
                   num_leads=num_leads)


def default_finetuning_chain(sampling_rate: float = 100.0) -> Compose:
    """The default fine-tuning chain on the model view (after the feature extractor, [-1, 1] units, 100 Hz).

    Lead masking (0.5 per lead), Gaussian noise at 20-30 dB (p 0.5), baseline wander of up to 0.05 (p 0.3) and a
    time shift of up to 0.1 s (p 0.5).
    """
    return from_config(
        [
            {"name": "lead_mask", "p": 1.0, "mask_prob": 0.5},
            {"name": "gaussian_noise", "p": 0.5, "snr_db": [20, 30]},
            {"name": "baseline_wander", "p": 0.3, "amplitude": 0.05},
            {"name": "time_shift", "p": 0.5, "max_seconds": 0.1},
        ],
        sampling_rate=sampling_rate,
    )
