"""Attributions: which samples of which leads made a classifier score a label (``hubert-ecg explain``: :mod:`hubert_ecg_cli.explain`).

```python
from hubert_ecg.explain import explain
exp = explain("records500/00000/00010_hr", label="MI", method="integrated_gradients")   # the demo model
exp.values            # (12, 1000): the record's 10 s at 100 Hz, one row per lead (I, II, ..., V6)
exp.window_values     # (2, 12, 500): the two 5 s windows the model saw
exp.delta             # (2,): integrated gradients' convergence delta per window
exp.lead_importance   # (12,): how much each lead contributes
```

The model sees 5 s windows at 100 Hz: ``input_values`` ``(6000,)`` = 12 leads x 500 samples concatenated in the
order of ``feature_extractor.lead_order`` (:mod:`hubert_ecg.processing`). An attribution of one window is that
vector reshaped to ``(12, 500)``: row ``l``, column ``j`` is lead ``lead_order[l]`` at ``window_start + j / 100``
s of the record (the decimation to 100 Hz is zero-phase, so sample ``j`` sits at that time). Longer records are
cut into windows as the pipeline cuts them (:func:`hubert_ecg.windows.record_windows`, every 5 s by default) and the
window attributions are put back on the record's time axis (overlapping windows are averaged).

Methods (``method=``), all of the label's **logit** (the score before the sigmoid or softmax; monotonic in it):

* ``"integrated_gradients"``: Sundararajan et al. 2017 (captum, the optional ``[explain]`` extra) in ``n_steps``
  steps, with the convergence delta: ``sum(attributions) - (logit(x) - logit(baseline))`` (0 for an exact
  integral). The default baseline is the input blurred along time (a Gaussian of ``blur_seconds`` = 0.2 s per lead:
  no P, QRS or T waves left; Sturmfels et al., "Visualizing the impact of feature attribution baselines", Distill
  2020). The all-zero baseline (``baseline="zeros"``) is a poor one for this model: the feature encoder's group
  norm makes it scale-invariant except within ~1 % of zero, so the whole integral sits in the first few steps
  (on a PTB-XL record: a delta of 2.4 logits with 32 steps and 0.4 with 128, against 4e-6 with the blurred baseline
  and 32 steps).
* ``"saliency"``: the absolute gradient of the logit with respect to the input (Simonyan et al. 2014; captum's
  ``Saliency``).
* ``"occlusion"``: per lead, patches of ``occlusion_seconds`` set to zero; a sample's attribution is the drop of
  the logit when its patch is zeroed. ``lead_importance`` is then the drop of the label's score when the whole lead
  is zeroed: which leads matter (captum's ``Occlusion`` on the ``(leads, samples)`` view, so that no patch spans two
  leads; the same values as the loop it replaced, in the same time: 1.1 s for two windows of the demo model).

Every method but ``"attention_rollout"`` needs captum, the optional ``[explain]`` extra.
* ``"attention_rollout"``: Abnar & Zuidema 2020: attention averaged over heads, plus the identity, multiplied
  through the layers, averaged over the frames the classifier pools; a frame's relevance is spread over the
  ``config.receptive_field`` samples it is computed from. Needs ``attn_implementation="eager"`` (switched on for
  the call and back); independent of the label.

:func:`deletion_drop` measures faithfulness: the drop of the label's score when the most attributed samples are
zeroed, against as many random samples.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Sequence

import numpy as np
import torch

__all__ = ["METHODS", "Explanation", "attribute", "explain", "deletion_drop"]

METHODS = ("integrated_gradients", "saliency", "occlusion", "attention_rollout")
_EXTRA_HINT = 'pip install "hubert-ecg[explain]"'


@dataclass
class Explanation:
    """Attributions of one record for one label (see the module docstring).

    Attributes:
        name: the record, as messages name it.
        label, label_index: the label explained (``config.id2label``).
        method: one of :data:`METHODS`.
        lead_names: the rows of the arrays: the model's leads (``feature_extractor.lead_order``, the 12 standard
            leads I, II, III, aVR, aVL, aVF, V1-V6).
        sampling_rate: Hz of the arrays (the model input's, 100).
        window_starts: float64 ``(windows,)`` seconds from the start of the record.
        window_values: float32 ``(windows, leads, samples_per_window)`` = ``(windows, 12, 500)``: each window's
            attribution in the model input's layout (padding of a short record: 0).
        values: float32 ``(leads, ceil(duration * sampling_rate))``: the windows' attributions on the record's
            time axis (sample ``k`` at ``k / sampling_rate`` s); the mean where windows overlap; NaN where no
            window was explained and on leads the record lacks (or that are flat).
        scores: float64 ``(windows,)``: the label's score in each window (``scores_from_logits`` with the model's
            ``config.score_calibration``, as the pipeline reports it).
        lead_importance: float64 ``(leads,)``: occlusion: the drop of the label's score when the lead is zeroed,
            mean over windows; other methods: each lead's share of the positive attribution (sums to 1).
        delta: float64 ``(windows,)``: integrated gradients' convergence delta (in logits), else None.
        lead_mask: bool ``(leads,)``: leads present in the record (and not flat).
    """

    name: str
    label: str
    label_index: int
    method: str
    lead_names: list[str]
    sampling_rate: float
    window_starts: np.ndarray
    window_values: np.ndarray
    values: np.ndarray
    scores: np.ndarray
    lead_importance: np.ndarray
    delta: np.ndarray | None
    lead_mask: np.ndarray

    @property
    def score(self) -> float:
        """The label's score over the windows explained (their mean, as the pipeline aggregates by default)."""
        return float(np.mean(self.scores))


def _label_index(config, label) -> int:
    """``label`` (a name of ``config.id2label``, any case, or an index) -> its index.

    Raises:
        ValueError: for an unknown label (lists the model's labels).
    """
    names = {int(i): str(n) for i, n in config.id2label.items()}
    if isinstance(label, (int, np.integer)) and not isinstance(label, bool):
        if int(label) in names:
            return int(label)
    elif isinstance(label, str):
        for i, name in names.items():
            if name == label:
                return i
        for i, name in names.items():
            if name.lower() == label.lower():
                return i
    raise ValueError(f"label {label!r} is not one of the model's labels {[names[i] for i in sorted(names)]}")


def _logits(model, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    return model(input_values=x.to(model.dtype), attention_mask=mask).logits.float()


def _captum(name: str, method: str):
    """The captum attribution class ``name`` (``captum.attr``), or the ImportError naming the extra."""
    try:
        import captum.attr
    except ImportError:
        raise ImportError(f"method {method!r} needs captum: {_EXTRA_HINT}") from None
    return getattr(captum.attr, name)


def _occlusion(model, x, mask, index: int, num_leads: int, patch: int, batch: int):
    """captum's ``Occlusion`` on the ``(n, leads, samples)`` view of the input: the logit drop per (lead, patch) of
    ``patch`` samples set to zero, and the score drop per whole lead zeroed."""
    from .modeling import scores_from_logits

    Occlusion = _captum("Occlusion", "occlusion")
    n, length = x.shape
    problem = model.config.problem_type_of()

    def logits(inputs, m=None):
        return _logits(model, inputs.reshape(len(inputs), length), m)

    def scores(inputs, m=None):
        return torch.as_tensor(scores_from_logits(logits(inputs, m), problem))

    view = x.reshape(n, num_leads, length // num_leads)
    extra = {"additional_forward_args": (mask,) if mask is not None else None,
             "perturbations_per_eval": max(1, batch // n), "baselines": 0.0, "target": index}
    with torch.no_grad():
        values = Occlusion(logits).attribute(view, sliding_window_shapes=(1, patch), strides=(1, patch), **extra)
        whole = Occlusion(scores).attribute(view, sliding_window_shapes=(1, view.shape[2]),
                                            strides=(1, view.shape[2]), **extra)
    return values, whole[:, :, 0].double().cpu().numpy()


def _rollout(model, x, mask, num_leads: int) -> torch.Tensor:
    """Attention rollout over the frames, spread back onto the input samples: ``(n, leads, samples_per_lead)``."""
    previous = model.config._attn_implementation
    if previous != "eager":
        model.set_attn_implementation("eager")
    try:
        with torch.no_grad():
            out = model(input_values=x.to(model.dtype), attention_mask=mask, output_attentions=True)
    finally:
        if previous != "eager":
            model.set_attn_implementation(previous)
    attentions = [a.float().mean(dim=1) for a in out.attentions]  # (n, frames, frames) per layer
    n, frames = attentions[0].shape[:2]
    eye = torch.eye(frames)
    rollout = eye.expand(n, frames, frames)
    for a in attentions:
        a = 0.5 * a + 0.5 * eye
        a = a / a.sum(dim=-1, keepdim=True)
        rollout = a @ rollout
    valid = torch.ones(n, frames) if mask is None else model.frame_mask(mask, frames).float()
    relevance = (rollout * valid[:, :, None]).sum(dim=1) / valid.sum(dim=1, keepdim=True).clamp(min=1.0)
    relevance = relevance * valid  # (n, frames)
    length = x.shape[1]
    hop, field = int(model.config.inputs_to_logits_ratio), int(model.config.receptive_field)
    total = torch.zeros(n, length)
    count = torch.zeros(length)
    for f in range(frames):
        a, b = f * hop, min(f * hop + field, length)
        total[:, a:b] += relevance[:, f : f + 1]
        count[a:b] += 1
    return (total / count.clamp(min=1.0)).reshape(n, num_leads, length // num_leads)


def _baseline(x: torch.Tensor, baseline, num_leads: int, sigma: float) -> torch.Tensor:
    """The baseline of integrated gradients for inputs ``x`` ``(n, 6000)``."""
    if isinstance(baseline, str):
        if baseline == "zeros":
            return torch.zeros_like(x)
        if baseline == "blur":
            from scipy.ndimage import gaussian_filter1d

            leads = x.detach().cpu().double().numpy().reshape(x.shape[0], num_leads, -1)
            blurred = gaussian_filter1d(leads, float(sigma), axis=-1, mode="nearest")
            return torch.as_tensor(blurred.reshape(x.shape), dtype=x.dtype, device=x.device)
        raise ValueError(f"baseline must be 'blur', 'zeros' or an array, got {baseline!r}")
    b = torch.as_tensor(np.asarray(baseline), dtype=x.dtype, device=x.device)
    if tuple(b.shape) != tuple(x.shape):
        raise ValueError(f"baseline must have the shape of input_values {tuple(x.shape)}, got {tuple(b.shape)}")
    return b


def attribute(
    model,
    input_values: torch.Tensor | np.ndarray,
    label: str | int,
    method: str = "integrated_gradients",
    attention_mask: torch.Tensor | np.ndarray | None = None,
    num_leads: int = 12,
    n_steps: int = 32,
    occlusion_seconds: float = 0.5,
    sampling_rate: float = 100.0,
    batch_size: int = 64,
    baseline: str | np.ndarray = "blur",
    blur_seconds: float = 0.2,
) -> dict[str, Any]:
    """Attributions of ``label`` for a batch of model inputs (the tensor-level core of :func:`explain`).

    Args:
        model: a ``HuBERTECGForSequenceClassification`` (put in eval mode here).
        input_values: float ``(n, 6000)``: windows from ``HuBERTECGFeatureExtractor``.
        label: a label name of ``model.config.id2label`` (any case) or its index.
        method: one of :data:`METHODS`.
        attention_mask: optional ``(n, 6000)``, 0 on padding (its attributions are set to 0).
        num_leads: leads concatenated in a row (12).
        n_steps: integration steps of integrated gradients.
        occlusion_seconds: patch length of occlusion, in seconds at ``sampling_rate`` (the input's, 100 Hz).
        batch_size: forward passes at a time (integrated gradients' ``internal_batch_size``, occlusion variants).
        baseline: of integrated gradients: ``"blur"`` (each lead blurred with a Gaussian of ``blur_seconds``),
            ``"zeros"``, or an array of the shape of ``input_values``.

    Returns:
        dict with ``values`` float32 ``(n, num_leads, 6000 // num_leads)``, ``scores`` float64 ``(n,)`` (the
        label's score), ``delta`` float64 ``(n,)`` for integrated gradients else None, ``lead_importance``
        float64 ``(n, num_leads)`` (see :attr:`Explanation.lead_importance`).

    Raises:
        ValueError: for an unknown ``method`` or ``label``, or inputs that are not ``(n, k * num_leads)``.
        ImportError: for a method other than attention rollout without captum (``pip install "hubert-ecg[explain]"``).
    """
    from .modeling import scores_from_logits

    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    index = _label_index(model.config, label)
    x = torch.as_tensor(np.asarray(input_values) if not torch.is_tensor(input_values) else input_values)
    if x.ndim == 1:
        x = x[None]
    if x.ndim != 2 or x.shape[1] % num_leads:
        raise ValueError(f"input_values must have shape (n, {num_leads} * samples), got {tuple(x.shape)}")
    device = next(model.parameters()).device
    x = x.to(device, torch.float32)
    mask = None
    if attention_mask is not None:
        mask = torch.as_tensor(np.asarray(attention_mask) if not torch.is_tensor(attention_mask) else attention_mask)
        mask = mask.to(device)
        if tuple(mask.shape) != tuple(x.shape):
            raise ValueError(f"attention_mask must have the shape of input_values {tuple(x.shape)}, got {tuple(mask.shape)}")
        if bool(mask.all()):
            mask = None
    model.eval()
    n, per_lead = x.shape[0], x.shape[1] // num_leads
    with torch.no_grad():
        logits = _logits(model, x, mask)
    # the label's score as the pipeline reports it (with the model's calibration, if any)
    scores = scores_from_logits(logits, model.config.problem_type_of(), model.config.score_calibration)[:, index]
    delta = None
    lead_importance = None
    if method == "integrated_gradients":
        IntegratedGradients = _captum("IntegratedGradients", method)

        def forward(inputs, m=None):
            return _logits(model, inputs, m)

        ig = IntegratedGradients(forward)
        values, delta_t = ig.attribute(
            x, baselines=_baseline(x, baseline, num_leads, blur_seconds * sampling_rate), target=index,
            n_steps=int(n_steps),
            additional_forward_args=(mask,) if mask is not None else None,
            internal_batch_size=max(1, int(batch_size)), return_convergence_delta=True,
        )
        values = values.detach().reshape(n, num_leads, per_lead)
        delta = delta_t.detach().cpu().double().numpy()
    elif method == "saliency":
        Saliency = _captum("Saliency", method)
        with torch.enable_grad():
            values = Saliency(lambda inputs, m=None: _logits(model, inputs, m)).attribute(
                x.clone().requires_grad_(True), target=index, abs=True,
                additional_forward_args=(mask,) if mask is not None else None)
        values = values.detach().reshape(n, num_leads, per_lead)
    elif method == "occlusion":
        patch = max(1, int(round(float(occlusion_seconds) * sampling_rate)))
        values, lead_importance = _occlusion(model, x, mask, index, num_leads, patch, max(1, int(batch_size)))
    else:
        values = _rollout(model, x, mask, num_leads)
    values = values.float().cpu()
    if mask is not None:
        values = values * mask.reshape(n, num_leads, per_lead).cpu().to(values.dtype)
    values = values.numpy().astype(np.float32)
    if lead_importance is None:
        positive = np.clip(values, 0.0, None).sum(axis=2).astype(np.float64)
        lead_importance = positive / np.clip(positive.sum(axis=1, keepdims=True), 1e-30, None)
    return {"values": values, "scores": np.asarray(scores, dtype=np.float64), "delta": delta,
            "lead_importance": lead_importance}


def _load_model(model):
    """None / hub id / directory / pipeline / model -> (model, feature_extractor)."""
    from .processing import HuBERTECGFeatureExtractor

    if model is None or isinstance(model, str):
        from .pipelines import load_pipeline

        clf = load_pipeline(model)
        return clf.model, clf.feature_extractor
    if hasattr(model, "model") and hasattr(model, "feature_extractor"):  # an ECGClassificationPipeline
        return model.model, model.feature_extractor
    if not hasattr(model, "config") or not hasattr(model.config, "id2label"):
        raise ValueError(
            f"model must be None (the demo model), a hub id or directory, a pipeline or a "
            f"HuBERTECGForSequenceClassification, got {type(model).__name__}"
        )
    return model, HuBERTECGFeatureExtractor()


def explain(
    source: Any,
    model: Any = None,
    label: str | int | None = None,
    method: str = "integrated_gradients",
    *,
    start: float = 0.0,
    duration: float | None = None,
    stride_seconds: float | None = None,
    sampling_rate: float | None = None,
    lead_names: Sequence[str] | None = None,
    feature_extractor=None,
    n_steps: int = 32,
    occlusion_seconds: float = 0.5,
    batch_size: int = 64,
    baseline: str = "blur",
    lead_set: Any = None,
) -> Explanation:
    """Attributions of one record for one label, on the record's time axis (see the module docstring).

    Args:
        source: a file path (any format :func:`hubert_ecg.read_ecg` reads), an ``ECGRecord``, a dict or an array
            with ``sampling_rate`` (:func:`hubert_ecg.windows.load_record`); any length of at least 2.5 s (shorter
            than 5 s: zero-padded, as the pipeline scores it); fewer than 12 leads are zero-filled.
        model: None (the bundled demo model, as ``hubert-ecg predict``), a hub id or ``save_pretrained``
            directory, an ``ECGClassificationPipeline``, or a ``HuBERTECGForSequenceClassification`` (then the
            default ``HuBERTECGFeatureExtractor()`` unless ``feature_extractor`` is given).
        label: a label name (any case) or index; None: the label with the highest score over the windows.
        method: one of :data:`METHODS`.
        start, duration: seconds: explain the windows inside ``[start, start + duration]`` (default: from 0 to the
            end); at least the window nearest to ``start``.
        stride_seconds: between windows (default 5 s: consecutive windows, as the pipeline).
        sampling_rate, lead_names: for arrays and ``.npy`` files.
        n_steps, occlusion_seconds, batch_size, baseline: as :func:`attribute`.
        lead_set: explain the record as the pipeline's ``lead_set=`` scores it: a name of
            :data:`hubert_ecg.leads.LEAD_SETS` or a list of lead names; the other leads are zero-filled as missing
            (their ``values`` NaN).

    Returns:
        :class:`Explanation`.

    Raises:
        ValueError: naming the record, for an unreadable or too short record, every lead flat, ``start`` outside
            the record, none of the leads of ``lead_set``; or an unknown ``label`` / ``method`` / ``lead_set``, a
            model that cannot be loaded.
        ImportError: for a method other than attention rollout without captum.
    """
    from .windows import record_windows

    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    model, default_fe = _load_model(model)
    fe = feature_extractor or default_fe
    if lead_set is not None:
        from .leads import lead_set as _lead_set

        lead_set = _lead_set(lead_set)
    plan = record_windows(source, fe, window="all", stride_seconds=stride_seconds, missing_leads="zero",
                          sampling_rate=sampling_rate, lead_names=lead_names, lead_set=lead_set)
    if not 0.0 <= float(start) < plan.duration:
        raise ValueError(f"{plan.name}: start must lie in [0, {plan.duration:g}) s (the record's duration), got {start!r}")
    starts = plan.window_starts
    end = np.inf if duration is None else float(start) + float(duration)
    keep = (starts >= float(start) - 1e-9) & (starts + fe.window_seconds <= end + 1e-9)
    if not keep.any():
        keep = np.zeros(len(starts), dtype=bool)
        keep[int(np.argmin(np.abs(starts - float(start))))] = True
    plan = replace(plan, window_starts=starts[keep])
    if label is None:
        with torch.no_grad():
            model.eval()
            from .modeling import scores_from_logits

            device = next(model.parameters()).device
            mean = np.mean(np.concatenate([
                scores_from_logits(_logits(model, b["input_values"].to(device), b["attention_mask"].to(device)),
                                   model.config.problem_type_of(), model.config.score_calibration)
                for b in plan.features(fe, batch_windows=batch_size, return_tensors="pt")
            ]), axis=0)
        label = int(np.argmax(mean))
    index = _label_index(model.config, label)
    num_leads = len(fe.lead_order)
    parts = [
        attribute(model, b["input_values"], index, method, attention_mask=b["attention_mask"], num_leads=num_leads,
                  n_steps=n_steps, occlusion_seconds=occlusion_seconds, sampling_rate=fe.sampling_rate,
                  batch_size=batch_size, baseline=baseline)
        for b in plan.features(fe, batch_windows=max(1, min(batch_size, 8)), return_tensors="pt")
    ]
    window_values = np.concatenate([p["values"] for p in parts])
    rate = float(fe.sampling_rate)
    per_lead = window_values.shape[2]
    total = np.zeros((num_leads, int(np.ceil(plan.duration * rate))), dtype=np.float64)
    count = np.zeros(total.shape[1])
    for s, v in zip(plan.window_starts, window_values):
        k0 = int(round(s * rate))
        k1 = min(total.shape[1], k0 + per_lead)
        total[:, k0:k1] += v[:, : k1 - k0]
        count[k0:k1] += 1
    with np.errstate(invalid="ignore", divide="ignore"):
        values = np.where(count > 0, total / count, np.nan)
    values[~np.asarray(plan.lead_mask, dtype=bool)] = np.nan
    deltas = [p["delta"] for p in parts]
    return Explanation(
        name=plan.name, label=str(model.config.id2label[index]), label_index=index, method=method,
        lead_names=list(fe.lead_order), sampling_rate=rate, window_starts=np.asarray(plan.window_starts),
        window_values=window_values, values=values.astype(np.float32),
        scores=np.concatenate([p["scores"] for p in parts]),
        lead_importance=np.concatenate([p["lead_importance"] for p in parts]).mean(axis=0),
        delta=None if deltas[0] is None else np.concatenate(deltas), lead_mask=np.asarray(plan.lead_mask, bool),
    )


def deletion_drop(
    model,
    input_values: torch.Tensor | np.ndarray,
    attributions: np.ndarray,
    label: str | int,
    fraction: float = 0.1,
    seed: int | None = 0,
    attention_mask: torch.Tensor | np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Faithfulness by deletion: the drop of ``label``'s score when the ``fraction`` most attributed samples of each
    window are set to 0 (a missing lead's value), and when as many random samples are.

    Args:
        input_values: float ``(n, 6000)``; attributions: ``(n, 6000)`` or ``(n, leads, samples)`` (from
            :func:`attribute`); the largest values are deleted first.
        fraction: share of the samples deleted, in (0, 1).
        seed: of the random deletion.

    Returns:
        dict with float64 ``(n,)`` arrays ``score`` (before), ``drop_top`` and ``drop_random`` (score before minus
        score after).

    Raises:
        ValueError: for a ``fraction`` outside (0, 1) or attributions whose size does not match the inputs.
    """
    from .modeling import scores_from_logits

    if not 0.0 < float(fraction) < 1.0:
        raise ValueError(f"fraction must lie in (0, 1), got {fraction!r}")
    index = _label_index(model.config, label)
    x = torch.as_tensor(np.asarray(input_values), dtype=torch.float32)
    a = np.asarray(attributions, dtype=np.float64).reshape(x.shape[0], -1)
    if a.shape != tuple(x.shape):
        raise ValueError(f"attributions must have {tuple(x.shape)} values per window layout, got {a.shape}")
    mask = None if attention_mask is None else torch.as_tensor(np.asarray(attention_mask))
    k = max(1, int(round(float(fraction) * x.shape[1])))
    rng = np.random.default_rng(seed)
    top = x.clone()
    rand = x.clone()
    for row in range(x.shape[0]):
        top[row, torch.as_tensor(np.argsort(-a[row], kind="stable")[:k])] = 0.0
        rand[row, torch.as_tensor(rng.choice(x.shape[1], size=k, replace=False))] = 0.0
    device = next(model.parameters()).device
    model.eval()
    problem = model.config.problem_type_of()
    with torch.no_grad():
        def score(v):
            m = None if mask is None else mask.to(device)
            return scores_from_logits(_logits(model, v.to(device), m), problem)[:, index]

        before, after_top, after_rand = score(x), score(top), score(rand)
    return {"score": before, "drop_top": before - after_top, "drop_random": before - after_rand}
