"""Running HuBERT-ECG models for inference: precision, device, ``inference_mode``, autocast and compile.

Nothing here changes how a model computes: the fast first convolution and the float32 positional convolution are
modules of :mod:`hubert_ecg.modeling`, active wherever the model runs. This module only picks a dtype, moves and
casts a model, and runs it.

```python
from hubert_ecg.inference import optimize_for_inference, run_model
model = optimize_for_inference(model, dtype="bfloat16")         # or dtype="auto", compile=True
logits = run_model(model, input_values)                          # (batch, 6000) -> float32 (batch, num_labels)
```

The transformers way gives the same model: ``AutoModelForSequenceClassification.from_pretrained(path,
dtype=torch.bfloat16)`` or ``pipeline("ecg-classification", model=path, dtype=torch.bfloat16)``.

Paths, measured side by side in ``benchmarks/inference.py`` (figures in the README):

* bfloat16 weights (``dtype="bfloat16"``): the matrix products run on the bf16 units of CPUs with AVX512-BF16 /
  AMX (through oneDNN) and on GPU tensor cores; the positional convolution stays in float32
  (``_keep_in_fp32_modules_strict``). Probabilities stay within 0.01 of float32 (``tests/test_inference.py``).
  On CPUs without bf16 units it is *slower* than float32: ``dtype="auto"`` picks bfloat16 only where the hardware
  has it.
* ``run_model(..., autocast="bfloat16")``: float32 weights, matrix products in bfloat16 under ``torch.autocast``.
  The usual GPU recipe; on the CPU the per-call weight casts cost more than they save.
* ``compile=True``: ``torch.compile`` (inductor); about a minute of compilation per new input shape on a CPU.
* attention is SDPA by default (``attn_implementation="eager"`` agrees to 1e-5).
"""

from __future__ import annotations

import contextlib

import numpy as np
import torch

__all__ = ["cpu_has_bf16", "resolve_dtype", "cast_model", "optimize_for_inference", "run_model"]

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


def resolve_dtype(dtype: str | torch.dtype | None, device: str | torch.device | None = None) -> torch.dtype:
    """The torch dtype for a name: ``"float32"``/``"fp32"``, ``"bfloat16"``/``"bf16"``, ``"float16"``/``"fp16"``,
    ``"auto"`` or a ``torch.dtype``; None means float32.

    ``"auto"`` is bfloat16 on a CUDA device that supports it (else float16) and on a CPU with bf16 units
    (:func:`cpu_has_bf16`), float32 elsewhere.

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
            model's.
        compile: compile the model with ``torch.compile`` (default inductor backend).
        device: move the model there first (e.g. ``"cuda"``); None keeps it where it is.

    Raises:
        ValueError: for an unknown ``dtype``.
    """
    if device is not None:
        model.to(device)
    if dtype is not None:
        cast_model(model, resolve_dtype(dtype, next(model.parameters()).device))
    model.eval()
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
            stack.enter_context(torch.autocast(parameter.device.type, dtype=autocast_dtype))
        output = model(input_values=input_values, attention_mask=attention_mask)
    if getattr(output, "logits", None) is not None:
        logits = output.logits
        return (logits[0] if isinstance(logits, tuple) else logits).float()
    return output.last_hidden_state.float()
