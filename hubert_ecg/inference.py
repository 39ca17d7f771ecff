"""Running HuBERT-ECG models for inference: precision, device, ``inference_mode``, autocast and compile, and the
settings measured fastest on the user's machine.

Nothing here changes what a model computes: the first convolution's two implementations and the float32
positional convolution are modules of :mod:`hubert_ecg.modeling`. This module picks a dtype and the variants,
moves and casts a model, and runs it.

```python
from hubert_ecg.inference import optimize_for_inference, run_model, tuned_settings
model = optimize_for_inference(model, dtype="auto")              # measured on this machine; or "bfloat16", "float32"
logits = run_model(model, input_values)                          # (batch, 6000) -> float32 (batch, num_labels)
```

**Defaults chosen by measurement.** No CPU flag tells whether bfloat16 is faster: it was 3.5x float32 on a CPU
with AMX, 0.73x on one with AVX512-BF16 but no AMX, and about 2x on an AMD EPYC with AVX512-BF16
(docs/performance.md). So ``pipeline("ecg-classification", model=...)`` without a ``dtype``, ``hubert-ecg predict``,
``embed`` and ``optimize_for_inference(dtype="auto")`` time the variants once per machine, torch version and model
shape (:func:`measure_settings`: float32 and bfloat16, SDPA and eager attention, the first convolution as a matrix
product or as a convolution; a few forward passes on random windows), cache the fastest whose scores stay within
0.02 of float32 (:func:`tuning_cache_path`), log the choice once at verbosity info, and apply it
(:func:`tune_model`). An explicit ``dtype`` always wins; ``HUBERT_ECG_TUNING=0`` turns measuring off (float32,
SDPA); ``hubert-ecg tune --reset`` (:func:`clear_tuning_cache`) forgets the measurements.

Other paths, measured side by side in ``benchmarks/inference.py``:

* bfloat16 weights: the positional convolution stays in float32 (``_keep_in_fp32_modules_strict``);
  probabilities within 0.01 of float32 on the reference checkpoint (``tests/test_inference.py``).
* ``run_model(..., autocast="bfloat16")``: float32 weights, matrix products in bfloat16 under ``torch.autocast``.
  The usual GPU recipe; on the CPU the per-call weight casts cost more than they save.
* ``compile=True``: ``torch.compile`` (inductor); about a minute of compilation per new input shape on a CPU.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from transformers.utils import logging

logger = logging.get_logger(__name__)

__all__ = [
    "cpu_has_bf16", "resolve_dtype", "cast_model", "optimize_for_inference", "run_model",
    "InferenceSettings", "measure_settings", "choose_settings", "tuned_settings", "tune_model", "apply_settings",
    "clear_tuning_cache", "tuning_cache_path", "tuning_enabled", "bf16_matmul_speedup",
]

_DTYPES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
}


def cpu_has_bf16() -> bool:
    """True when this CPU has bfloat16 matrix units that oneDNN uses (AVX512-BF16 or AMX-BF16)."""
    try:
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def resolve_dtype(dtype: str | torch.dtype | None, device: str | torch.device | None = None) -> torch.dtype | None:
    """The torch dtype for a name: ``"float32"``/``"fp32"``, ``"bfloat16"``/``"bf16"``, ``"float16"``/``"fp16"`` or a
    ``torch.dtype``. None and ``"auto"`` give None: not fixed, the fastest measured on this machine
    (:func:`tuned_settings`) where the caller measures, else the model's own dtype.

    Raises:
        ValueError: for another name or dtype, or float16 on the CPU (slow and not supported by every kernel).
    """
    device_type = torch.device(device).type if device is not None else "cpu"
    if dtype is None or (isinstance(dtype, str) and dtype.lower() == "auto"):
        return None
    resolved = _DTYPES.get(dtype.lower()) if isinstance(dtype, str) else dtype
    if resolved not in (torch.float32, torch.bfloat16, torch.float16):
        raise ValueError(f"dtype must be one of {sorted(_DTYPES)}, 'auto' or a torch float dtype, got {dtype!r}.")
    if resolved == torch.float16 and device_type == "cpu":
        raise ValueError("dtype float16 is not supported on the CPU; use 'bfloat16' or 'float32'.")
    return resolved


def cast_model(model: torch.nn.Module, dtype: torch.dtype) -> torch.nn.Module:
    """``model.to(dtype)``, then the modules the model lists in ``_keep_in_fp32_modules_strict`` (the positional
    convolution of HuBERT-ECG models) back to float32 for a bfloat16 / float16 ``dtype``: the same model as
    ``from_pretrained(..., dtype=dtype)`` gives. In place; returns ``model``."""
    model.to(dtype)
    if dtype in (torch.bfloat16, torch.float16):
        _float32_where_kept(model)
    return model


def _float32_where_kept(model: torch.nn.Module) -> bool:
    """Cast the modules named in ``model._keep_in_fp32_modules_strict`` to float32; True if one was not."""
    keep = set(getattr(model, "_keep_in_fp32_modules_strict", None) or ())
    cast = False
    for name, module in model.named_modules():
        if name.rsplit(".", 1)[-1] in keep and any(p.dtype != torch.float32 for p in module.parameters()):
            module.float()
            cast = True
    return cast


def optimize_for_inference(
    model: torch.nn.Module,
    dtype: str | torch.dtype | None = None,
    compile: bool = False,
    device: str | torch.device | None = None,
) -> torch.nn.Module:
    """Move, cast and (optionally) compile a model for inference, in place, and return it in eval mode.

    Args:
        model: any HuBERT-ECG model (``HuBERTECGModel``, ``HuBERTECGForSequenceClassification``, ...).
        dtype: precision of the weights (see :func:`resolve_dtype`; cast with :func:`cast_model`); None keeps the
            model's; ``"auto"``: the settings measured fastest on this machine (:func:`tune_model`).
        compile: compile the model with ``torch.compile`` (default inductor backend).
        device: move the model there first (e.g. ``"cuda"``); None keeps it where it is.

    Raises:
        ValueError: for an unknown ``dtype``.
    """
    if device is not None:
        model.to(device)
    model.eval()
    if isinstance(dtype, str) and dtype.lower() == "auto":
        tune_model(model)
    elif dtype is not None:
        cast_model(model, resolve_dtype(dtype, next(model.parameters()).device))
    if compile:
        model.compile()
    return model


def _input_parameter(model: torch.nn.Module) -> torch.nn.Parameter:
    """A weight of the first layer that sees ``input_values`` (its dtype and device are the input's)."""
    for name, parameter in model.named_parameters():
        if "feature_extractor" in name:
            return parameter
    return next(model.parameters())


def run_model(
    model: torch.nn.Module,
    input_values: torch.Tensor | np.ndarray,
    attention_mask: torch.Tensor | np.ndarray | None = None,
    autocast: str | torch.dtype | None = None,
) -> torch.Tensor:
    """One forward pass under ``torch.inference_mode``, without changing the model (mode, dtype, device).

    Args:
        model: a HuBERT-ECG model (put it in eval mode for inference, e.g. with :func:`optimize_for_inference`).
        input_values: float (batch, samples), the model input at 100 Hz (6000 samples for 5 s); cast to the
            device and dtype of the model's first layer.
        attention_mask: optional (batch, samples), 1 for real samples, 0 for padding.
        autocast: run under ``torch.autocast`` with this dtype (``"bfloat16"``, or ``"float16"`` on CUDA); None:
            no autocast.

    Returns:
        float32 tensor on the model's device: ``logits`` (batch, num_labels) for a classifier, the pretraining
        logits of the first codebook (batch, frames, vocab) for ``HuBERTECGForPreTraining``, and
        ``last_hidden_state`` (batch, frames, hidden_size) for the backbone.

    Raises:
        ValueError: if ``input_values`` is not 2-D (batch, samples), or for an unknown ``autocast`` dtype.
    """
    input_values = torch.as_tensor(input_values)
    if input_values.dim() != 2:
        raise ValueError(f"input_values must have shape (batch, samples), got {tuple(input_values.shape)}.")
    parameter = _input_parameter(model)
    input_values = input_values.to(device=parameter.device, dtype=parameter.dtype)
    if attention_mask is not None:
        attention_mask = torch.as_tensor(attention_mask).to(parameter.device)
    with contextlib.ExitStack() as stack:
        stack.enter_context(torch.inference_mode())
        if autocast is not None:
            autocast_dtype = resolve_dtype(autocast, parameter.device)
            if autocast_dtype is None:
                raise ValueError(f"autocast needs a dtype ('bfloat16' or 'float16'), got {autocast!r}.")
            stack.enter_context(torch.autocast(parameter.device.type, dtype=autocast_dtype))
        output = model(input_values=input_values, attention_mask=attention_mask)
    if getattr(output, "logits", None) is not None:
        logits = output.logits
        return (logits[0] if isinstance(logits, tuple) else logits).float()
    return output.last_hidden_state.float()


# ----------------------------------------------------------------------------------------------------------------
# Settings measured on the user's machine
# ----------------------------------------------------------------------------------------------------------------

#: environment variable: "0" / "off" / "false" turns measured settings off (float32, SDPA, matmul first convolution)
TUNING_ENV = "HUBERT_ECG_TUNING"
#: environment variable: the folder of the cache of measured settings (default ``$XDG_CACHE_HOME/hubert_ecg`` or
#: ``~/.cache/hubert_ecg``)
CACHE_ENV = "HUBERT_ECG_CACHE"
_CACHE_FILE = "inference_settings.json"
#: a variant that changes the numbers (bfloat16) is taken only when at least this much faster than float32
LOWER_PRECISION_MIN_SPEEDUP = 1.15
#: an exact variant (attention kernel, first convolution) replaces the default only when this much faster
EXACT_MIN_SPEEDUP = 1.03
#: a variant must keep every score within this of float32 (sigmoid / softmax probabilities; relative error of
#: the mean-pooled hidden state for a backbone)
SCORE_TOLERANCE = 0.02


@dataclass(frozen=True)
class InferenceSettings:
    """How a model runs: ``dtype`` ("float32" | "bfloat16"), ``attn_implementation`` ("sdpa" | "eager"),
    ``input_conv`` ("matmul" | "conv", :class:`hubert_ecg.modeling.HuBERTECGInputConv`), and ``measured``: the
    windows per second of every variant tried, by name (empty for the fixed defaults)."""

    dtype: str = "float32"
    attn_implementation: str = "sdpa"
    input_conv: str = "matmul"
    measured: dict = field(default_factory=dict, compare=False)

    @property
    def name(self) -> str:
        return f"{self.dtype}/{self.attn_implementation}/{self.input_conv}"

    def describe(self) -> str:
        """One line: the choice and, when measured, its speed against float32 SDPA."""
        base = self.measured.get(InferenceSettings().name)
        own = self.measured.get(self.name)
        if not base or not own:
            return f"{self.dtype}, {self.attn_implementation} attention, {self.input_conv} first convolution"
        return (f"{self.dtype}, {self.attn_implementation} attention, {self.input_conv} first convolution: "
                f"{own:.1f} windows/s, {own / base:.2f}x float32 SDPA ({base:.1f})")


def tuning_enabled() -> bool:
    """False when ``HUBERT_ECG_TUNING`` is "0", "off", "false" or "no": models then run as loaded (float32)."""
    return os.environ.get(TUNING_ENV, "1").strip().lower() not in ("0", "off", "false", "no")


def tuning_cache_path() -> Path:
    """The JSON file of measured settings: ``$HUBERT_ECG_CACHE/inference_settings.json``, else under
    ``$XDG_CACHE_HOME/hubert_ecg`` or ``~/.cache/hubert_ecg``."""
    folder = os.environ.get(CACHE_ENV)
    if not folder:
        folder = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "hubert_ecg"
    return Path(folder) / _CACHE_FILE


def clear_tuning_cache() -> bool:
    """Forget every measured setting (they are measured again at next use); True if a cache file was removed."""
    path = tuning_cache_path()
    if path.is_file():
        path.unlink()
        return True
    return False


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _machine_key(device: torch.device) -> str:
    """The machine as the cache knows it: the CPU (name, threads, bf16 units) or the GPU's name, and torch."""
    if device.type == "cuda":
        where = f"cuda:{torch.cuda.get_device_name(device)}"
    else:
        where = f"cpu:{_cpu_name()}:threads={torch.get_num_threads()}:bf16={int(cpu_has_bf16())}"
    return f"{where}|torch={torch.__version__}"


def _shape_key(model: torch.nn.Module) -> str:
    """What the speed of a model depends on: its class and the sizes in its config (not the weights)."""
    c = model.config
    fields = ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "conv_dim",
              "conv_kernel", "conv_stride", "num_conv_pos_embeddings", "num_conv_pos_embedding_groups",
              "do_stable_layer_norm", "num_labels")
    sizes = ",".join(f"{k}={getattr(c, k, None)}" for k in fields)
    return f"{type(model).__name__}({sizes})"


def _load_cache() -> dict:
    path = tuning_cache_path()
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _save_cache(key: str, settings: InferenceSettings) -> None:
    data = _load_cache()
    data[key] = {**asdict(settings), "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    _write_cache(data)


def _write_cache(data: dict) -> None:
    path = tuning_cache_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True), encoding="utf-8")
        os.replace(tmp, path)
    except OSError as err:  # a read-only home: measure again next time, but say so
        logger.warning(f"hubert_ecg: could not cache the measured inference settings in {path}: {err}")


def apply_settings(model: torch.nn.Module, settings: InferenceSettings) -> torch.nn.Module:
    """Run ``model`` with ``settings``: cast it (:func:`cast_model`), set its attention implementation and its
    first convolution's implementation. In place; returns ``model``."""
    from .modeling import HuBERTECGInputConv

    dtype = resolve_dtype(settings.dtype)
    if _input_parameter(model).dtype != dtype:
        cast_model(model, dtype)
    if getattr(model.config, "_attn_implementation", None) != settings.attn_implementation:
        model.set_attn_implementation(settings.attn_implementation)
    for module in model.modules():
        if isinstance(module, HuBERTECGInputConv):
            module.implementation = settings.input_conv
    return model


def _agreement(reference: torch.Tensor, other: torch.Tensor, model: torch.nn.Module) -> float:
    """How far ``other`` is from ``reference``: max |score difference| for a classifier, relative error of the
    mean over frames for hidden states."""
    if reference.dim() == 2 and getattr(model.config, "problem_type_of", None) is not None:
        from .modeling import scores_from_logits

        problem_type = model.config.problem_type_of()
        if problem_type != "regression":
            a = scores_from_logits(reference, problem_type)
            b = scores_from_logits(other, problem_type)
            return float((torch.as_tensor(a) - torch.as_tensor(b)).abs().max())
    a = reference.mean(dim=1) if reference.dim() == 3 else reference
    b = other.mean(dim=1) if other.dim() == 3 else other
    return float((a - b).norm() / a.norm().clamp_min(1e-12))


def measure_settings(
    model: torch.nn.Module, batch_size: int = 8, rounds: int = 3, samples: int = 6000
) -> InferenceSettings:
    """Time the variants of ``model`` on its device and return the fastest that keeps scores within
    ``SCORE_TOLERANCE`` (0.02) of float32.

    Tried, on random 5 s windows (``(batch_size, samples)`` uniform in [-1, 1], the weights of ``model`` itself): float32 and (where
    the device runs it) bfloat16, each with SDPA and eager attention and with both implementations of the first
    convolution (8 variants). After one warm-up pass each, every round times every variant once, in a rotating
    order (so that a neighbour's load falls on all of them alike); a variant's speed is its median over
    ``rounds``. The fastest float32 variant replaces the default (SDPA, matmul) only when at least
    ``EXACT_MIN_SPEEDUP`` (1.03x) faster, and bfloat16 wins only when at least ``LOWER_PRECISION_MIN_SPEEDUP``
    (1.15x) faster than that, so that noise does not flip the choice. ``model`` is left as it was (a bfloat16 copy
    is timed, not ``model``). Takes ``8 * (rounds + 1)`` forward passes.
    """
    import copy

    device = _input_parameter(model).device
    generator = torch.Generator().manual_seed(0)
    # uniform in [-1, 1]: the range of the feature extractor's output (each lead scaled to its maximum)
    inputs = (torch.rand(batch_size, samples, generator=generator) * 2 - 1).to(device)
    was_training = model.training
    model.eval()
    original = InferenceSettings(attn_implementation=getattr(model.config, "_attn_implementation", None) or "sdpa")
    models = {"float32": model}
    if device.type == "cpu" or (device.type == "cuda" and torch.cuda.is_bf16_supported()):
        models["bfloat16"] = cast_model(copy.deepcopy(model), torch.bfloat16)
    variants = [InferenceSettings(dtype=dtype, attn_implementation=attention, input_conv=conv)
                for dtype in models for attention in ("sdpa", "eager") for conv in ("matmul", "conv")]
    times: dict[str, list[float]] = {v.name: [] for v in variants}
    outputs: dict[str, torch.Tensor] = {}

    def run(settings: InferenceSettings) -> tuple[float, torch.Tensor]:
        candidate = apply_settings(models[settings.dtype], settings)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        out = run_model(candidate, inputs)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter() - start, out

    try:
        for settings in variants:  # warm-up; the outputs for the agreement check
            outputs[settings.name] = run(settings)[1]
        for round_ in range(rounds):
            shift = round_ % len(variants)
            for settings in variants[shift:] + variants[:shift]:
                times[settings.name].append(run(settings)[0])
    finally:
        apply_settings(model, original)
        model.train(was_training)
    has_bf16 = models.pop("bfloat16", None) is not None
    speeds = {name: batch_size / float(np.median(t)) for name, t in times.items()}
    error = None
    if has_bf16:
        reference = outputs[InferenceSettings().name]
        error = max(_agreement(reference, outputs[v.name], model) for v in variants if v.dtype == "bfloat16")
    return choose_settings(speeds, error)


def choose_settings(speeds: dict[str, float], bfloat16_error: float | None = None) -> InferenceSettings:
    """The rule of :func:`measure_settings`: ``speeds`` maps variant names (``"float32/sdpa/matmul"``, ...) to
    windows per second; ``bfloat16_error`` is the largest score difference of a bfloat16 variant from float32
    (None: bfloat16 not tried). The fastest float32 variant if ``EXACT_MIN_SPEEDUP`` x the default's speed, else the
    default; the fastest bfloat16 one (by the same rule) instead if ``LOWER_PRECISION_MIN_SPEEDUP`` x that and
    ``bfloat16_error <= SCORE_TOLERANCE``."""

    def fastest(dtype: str) -> InferenceSettings:
        default = InferenceSettings(dtype=dtype)
        names = [name for name in speeds if name.startswith(dtype + "/")]
        best = InferenceSettings(*max(names, key=speeds.__getitem__).split("/"))
        return best if speeds[best.name] >= EXACT_MIN_SPEEDUP * speeds.get(default.name, 0.0) else default

    chosen = fastest("float32")
    if bfloat16_error is not None:
        low = fastest("bfloat16")
        if bfloat16_error > SCORE_TOLERANCE:
            logger.info(f"hubert_ecg: bfloat16 left aside: scores differ from float32 by up to {bfloat16_error:.3f}")
        elif speeds[low.name] >= LOWER_PRECISION_MIN_SPEEDUP * speeds[chosen.name]:
            chosen = low
    return replace(chosen, measured={k: round(v, 2) for k, v in speeds.items()})


def bf16_matmul_speedup(refresh: bool = False) -> float:
    """How much faster this CPU multiplies matrices in bfloat16 than in float32: the ratio of the medians of 5
    ``(4096, 512) @ (512, 2048)`` products (the feed-forward shape of the small model at batch 44), measured once per
    machine and torch version and cached with the inference settings (:func:`tuning_cache_path`). Training uses it
    to decide whether ``--bf16`` on a CPU pays (:class:`hubert_ecg.training.arguments.PrecisionOnAnyMachine`): a
    bf16 flag alone does not tell (0.73x on a CPU with AVX512-BF16 but no AMX, 2-3x on others)."""
    key = f"{_machine_key(torch.device('cpu'))}|bf16_matmul_speedup"
    entry = None if refresh else _load_cache().get(key)
    if entry is not None and "speedup" in entry:
        return float(entry["speedup"])
    rates = {}
    with torch.inference_mode():
        for dtype in (torch.float32, torch.bfloat16):
            a, w = torch.randn(4096, 512, dtype=dtype), torch.randn(2048, 512, dtype=dtype)
            times = []
            for i in range(6):
                start = time.perf_counter()
                torch.nn.functional.linear(a, w)
                if i:
                    times.append(time.perf_counter() - start)
            rates[dtype] = 1.0 / float(np.median(times))
    speedup = rates[torch.bfloat16] / rates[torch.float32]
    data = _load_cache()
    data[key] = {"speedup": round(speedup, 3), "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    _write_cache(data)
    return speedup


_announced: set[str] = set()


def tuned_settings(model: torch.nn.Module, refresh: bool = False) -> InferenceSettings:
    """The settings measured for ``model``'s shape on this machine (:func:`measure_settings`), from the cache
    (:func:`tuning_cache_path`, one entry per machine, torch version, device type and model shape) or measured
    now and cached. ``refresh=True`` measures again. With ``HUBERT_ECG_TUNING=0``: the fixed defaults (float32,
    SDPA, matmul first convolution), nothing measured. Logs the choice once per process at verbosity info."""
    if not tuning_enabled():
        return InferenceSettings()
    device = _input_parameter(model).device
    key = f"{_machine_key(device)}|{_shape_key(model)}"
    entry = None if refresh else _load_cache().get(key)
    if entry is not None:
        settings = InferenceSettings(**{k: entry[k] for k in ("dtype", "attn_implementation", "input_conv")},
                                     measured=entry.get("measured", {}))
    else:
        logger.info("hubert_ecg: measuring the fastest inference settings for this model shape on this machine "
                    f"(once; cached in {tuning_cache_path()})")
        settings = measure_settings(model)
        _save_cache(key, settings)
    if key not in _announced:
        _announced.add(key)
        logger.info(f"hubert_ecg: inference settings measured on this machine: {settings.describe()} "
                    f"(override with dtype=...; HUBERT_ECG_TUNING=0 turns this off; `hubert-ecg tune --reset` "
                    "measures again)")
    return settings


def tune_model(model: torch.nn.Module) -> InferenceSettings:
    """Apply :func:`tuned_settings` to a float32 ``model`` in place (cast, attention, first convolution) and return
    them. A model in another dtype is left as it is (its dtype was chosen by the caller) and gets the fixed
    defaults' description."""
    if _input_parameter(model).dtype != torch.float32:
        return InferenceSettings(dtype=str(_input_parameter(model).dtype).removeprefix("torch."))
    settings = tuned_settings(model)
    apply_settings(model, settings)
    return settings
