"""Fast inference for HuBERT-ECG models: the one place for precision, autocast, ``inference_mode`` and compile.

```python
from hubert_ecg.inference import optimize_for_inference, run_model
model = optimize_for_inference(model, dtype="bfloat16")        # or dtype="auto", autocast="bfloat16", compile=True
logits = run_model(model, input_values)                         # (batch, 6000) -> float32 (batch, num_labels)
```

The pipeline (``ECGClassificationPipeline``) and ``benchmarks/inference.py`` call :func:`run_model`, so a model
prepared here runs the same way in both.

Paths, measured side by side in ``benchmarks/inference.py`` (figures in the README):

* ``dtype="bfloat16"``: weights and activations in bfloat16. On CPUs with AMX / AVX512-BF16 (Sapphire Rapids and
  later) the matrix products and convolutions run on the bf16 units through oneDNN; on GPUs on the tensor cores.
  The convolutional positional embedding stays in float32 (in bfloat16 it alone moves the probabilities by
  0.04); with it, probabilities stay within 0.01 of float32 (0.001 on the reference checkpoint,
  ``tests/test_inference.py``; the logits are returned in float32). On CPUs without bf16 units it is *slower* than float32: ``dtype="auto"``
  picks bfloat16 only where the hardware has it.
* ``autocast="bfloat16"``: float32 weights, matrix products in bfloat16 under ``torch.autocast``. The usual GPU
  recipe; on the CPU the per-call weight casts cost more than they save, so prefer ``dtype`` there.
* ``compile=True``: ``torch.compile`` (inductor) of the model; a one-off compilation of about a minute per new
  input shape on a CPU, worth it only for long runs.
* attention is SDPA by default (``attn_implementation="eager"`` agrees to 1e-5), and every call runs under
  ``torch.inference_mode``.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import numpy as np
import torch
from transformers.models.hubert.modeling_hubert import HubertPositionalConvEmbedding

__all__ = [
    "InferenceSettings",
    "cpu_has_bf16",
    "resolve_dtype",
    "optimize_for_inference",
    "inference_context",
    "run_model",
    "sigmoid",
    "softmax",
    "scores_from_logits",
    "output_problem_type",
]

_DTYPES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
}


@dataclass(frozen=True)
class InferenceSettings:
    """How :func:`run_model` runs a model: ``autocast`` (a dtype, or None for no autocast) on ``device_type``."""

    autocast: torch.dtype | None = None
    device_type: str = "cpu"


def cpu_has_bf16() -> bool:
    """True when this CPU has bfloat16 matrix units that oneDNN uses (AVX512-BF16 or AMX-BF16)."""
    try:
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def resolve_dtype(dtype: str | torch.dtype | None, device: str | torch.device | None = None) -> torch.dtype:
    """The torch dtype for a name: ``"float32"``/``"fp32"``, ``"bfloat16"``/``"bf16"``, ``"float16"``/``"fp16"``,
    ``"auto"`` or a ``torch.dtype``; None means float32.

    ``"auto"`` is bfloat16 on a CUDA device that supports it and on a CPU with bf16 units (:func:`cpu_has_bf16`),
    float32 elsewhere.

    Raises:
        ValueError: for another name or dtype, or float16 on the CPU (slow and not supported by every kernel).
    """
    device_type = torch.device(device).type if device is not None else "cpu"
    if dtype is None:
        return torch.float32
    if isinstance(dtype, str) and dtype.lower() == "auto":
        if device_type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.bfloat16 if device_type == "cpu" and cpu_has_bf16() else torch.float32
    resolved = _DTYPES.get(dtype.lower()) if isinstance(dtype, str) else dtype
    if resolved not in (torch.float32, torch.bfloat16, torch.float16):
        raise ValueError(f"dtype must be one of {sorted(_DTYPES)}, 'auto' or a torch float dtype, got {dtype!r}.")
    if resolved == torch.float16 and device_type == "cpu":
        raise ValueError("dtype float16 is not supported on the CPU; use 'bfloat16' or 'float32'.")
    return resolved


def optimize_for_inference(
    model: torch.nn.Module,
    dtype: str | torch.dtype | None = None,
    autocast: str | torch.dtype | None = None,
    compile: bool = False,
    device: str | torch.device | None = None,
) -> torch.nn.Module:
    """Prepare a HuBERT-ECG model for inference, in place, and return it.

    Args:
        model: any HuBERT-ECG model (``HuBERTECGModel``, ``HuBERTECGForSequenceClassification``, ...).
        dtype: precision of weights and activations (see :func:`resolve_dtype`); None keeps the model's.
        autocast: run under ``torch.autocast`` with this lower precision (``"bfloat16"``, or ``"float16"`` on
            CUDA), keeping the weights as they are; None: no autocast.
        compile: compile the model with ``torch.compile`` (default inductor backend).
        device: move the model there first (e.g. ``"cuda"``); None keeps it where it is.

    Returns:
        The same model, in eval mode, with the settings that :func:`run_model` applies.

    Raises:
        ValueError: for an unknown ``dtype`` / ``autocast``, or ``autocast`` set together with a non-float32
            ``dtype``.
    """
    if device is not None:
        model.to(device)
    device_type = next(model.parameters()).device.type
    if dtype is not None:
        model.to(resolve_dtype(dtype, device_type))
    autocast_dtype = None
    if autocast not in (None, False):
        autocast_dtype = resolve_dtype("bfloat16" if autocast is True else autocast, device_type)
        if next(model.parameters()).dtype != torch.float32:
            raise ValueError("autocast needs float32 weights; pass dtype=None or 'float32' with autocast.")
        if autocast_dtype == torch.float32:
            autocast_dtype = None
    if autocast_dtype is not None or next(model.parameters()).dtype != torch.float32:
        for module in model.modules():
            if isinstance(module, HubertPositionalConvEmbedding):
                _keep_float32(module)
    model.eval()
    model._hubert_ecg_inference = InferenceSettings(autocast=autocast_dtype, device_type=device_type)
    if compile:
        model.compile()
    return model


def _keep_float32(module: torch.nn.Module) -> None:
    """Run ``module`` in float32 (weights, input, and no autocast) inside a lower-precision model.

    Used for the convolutional positional embedding (kernel 128, grouped): in bfloat16 it alone moves the
    probabilities of the reference classifier by 0.04, against 0.001 for every other module together; it is about
    5 % of the small model's operations. The state dict keeps its keys and shapes (only ``forward`` is wrapped).
    """
    module.float()
    if getattr(module, "_hubert_ecg_float32", False):
        return
    forward = module.forward

    def forward_float32(hidden_states, *args, **kwargs):
        weight_dtype = next(module.parameters()).dtype  # float32 unless the model was cast again afterwards
        with torch.autocast(hidden_states.device.type, enabled=False):
            return forward(hidden_states.to(weight_dtype), *args, **kwargs).to(hidden_states.dtype)

    module.forward = forward_float32
    module._hubert_ecg_float32 = True


def inference_context(model: torch.nn.Module) -> contextlib.AbstractContextManager:
    """``torch.inference_mode`` plus the autocast chosen by :func:`optimize_for_inference` (if any)."""
    settings = getattr(model, "_hubert_ecg_inference", None)
    stack = contextlib.ExitStack()
    stack.enter_context(torch.inference_mode())
    if settings is not None and settings.autocast is not None:
        stack.enter_context(torch.autocast(settings.device_type, dtype=settings.autocast))
    return stack


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
) -> torch.Tensor:
    """One forward pass in the model's fast path.

    Args:
        model: a HuBERT-ECG model, optionally prepared by :func:`optimize_for_inference`.
        input_values: float (batch, samples), the model input at 100 Hz (6000 samples for 5 s); cast to the
            model's device and dtype.
        attention_mask: optional (batch, samples), 1 for real samples, 0 for right padding.

    Returns:
        float32 tensor on the model's device: ``logits`` (batch, num_labels) for a classifier, the pretraining
        logits of the first codebook (batch, frames, vocab) for ``HuBERTECGForPreTraining``, and
        ``last_hidden_state`` (batch, frames, hidden_size) for the backbone.

    Raises:
        ValueError: if ``input_values`` is not 2-D (batch, samples).
    """
    input_values = torch.as_tensor(input_values)
    if input_values.dim() != 2:
        raise ValueError(f"input_values must have shape (batch, samples), got {tuple(input_values.shape)}.")
    parameter = _input_parameter(model)
    if parameter.dtype != torch.float32 and getattr(model, "_hubert_ecg_inference", None) is None:
        optimize_for_inference(model)  # e.g. pipeline(..., dtype=torch.bfloat16): keep the positional conv in fp32
    input_values = input_values.to(device=parameter.device, dtype=parameter.dtype)
    if attention_mask is not None:
        attention_mask = torch.as_tensor(attention_mask).to(parameter.device)
    with inference_context(model):
        output = model(input_values=input_values, attention_mask=attention_mask)
    if getattr(output, "logits", None) is not None:
        logits = output.logits
        return (logits[0] if isinstance(logits, tuple) else logits).float()
    return output.last_hidden_state.float()


# ----------------------------------------------------------------------------------------------------------------
# logits -> probabilities (the pipeline, evaluation and the Trainer's metrics)
# ----------------------------------------------------------------------------------------------------------------


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Logistic function, numerically stable; float64."""
    x = np.asarray(x, dtype=np.float64)
    return np.exp(-np.logaddexp(0.0, -x))


def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """Softmax along ``axis``; float64."""
    x = np.asarray(x, dtype=np.float64)
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def output_problem_type(config) -> str:
    """``config.problem_type``, or, where unset, transformers' pipeline rule: a single output is a multi-label
    (sigmoid) score, several outputs are single-label (softmax) classes."""
    if config.problem_type is not None:
        return config.problem_type
    return "multi_label_classification" if config.num_labels == 1 else "single_label_classification"


def scores_from_logits(logits: np.ndarray, problem_type: str) -> np.ndarray:
    """Probabilities from logits ``(records, num_labels)``: sigmoid for multi-label, softmax for single-label, the
    logits themselves (float64) for regression."""
    if problem_type == "multi_label_classification":
        return sigmoid(logits)
    if problem_type == "single_label_classification":
        return softmax(logits)
    return np.asarray(logits, dtype=np.float64)
