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
  Probabilities stay within 0.01 of float32 (0.0012 on the reference checkpoint, ``tests/test_inference.py``; the
  logits are returned in float32). On CPUs without bf16 units it is *slower* than float32: ``dtype="auto"``
  picks bfloat16 only where the hardware has it.
* The grouped convolution of the positional embedding is checked once on the device before it runs in low
  precision: oneDNN's bf16 kernel (torch 2.13, AMX CPUs) returns wrong values, as large as the output itself, for
  2, 4 or 8 channels per group (the reference checkpoints, the demo model), while 16 or more (the released
  small / base / large models: 32, 48, 64) are right. Where the check fails, that module runs in float32.
* The first convolution of the feature encoder (one input channel, kernel 10, stride 4) runs as one matrix
  product over strided windows of the input: the same numbers, 2-4x faster than the convolution kernel on a CPU.
* ``autocast="bfloat16"``: float32 weights, matrix products in bfloat16 under ``torch.autocast``. The usual GPU
  recipe; on the CPU the per-call weight casts cost more than they save, so prefer ``dtype`` there.
* ``compile=True``: ``torch.compile`` (inductor) of the model; a one-off compilation of about a minute per new
  input shape on a CPU, worth it only for long runs.
* attention is SDPA by default (``attn_implementation="eager"`` agrees to 1e-5), and every call runs under
  ``torch.inference_mode``.
"""

from __future__ import annotations

import contextlib
import types
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from transformers.models.hubert.modeling_hubert import HubertFeatureEncoder, HubertPositionalConvEmbedding
from transformers.utils import logging

logger = logging.get_logger(__name__)

__all__ = [
    "InferenceSettings",
    "cpu_has_bf16",
    "low_precision_conv_is_accurate",
    "keep_positional_conv_accurate",
    "resolve_dtype",
    "optimize_for_inference",
    "inference_context",
    "run_model",
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
    for module in model.modules():
        if isinstance(module, HubertFeatureEncoder):
            _first_conv_as_matmul(module.conv_layers[0].conv)
    keep_positional_conv_accurate(model, autocast_dtype or next(model.parameters()).dtype)
    model.eval()
    model._hubert_ecg_inference = InferenceSettings(autocast=autocast_dtype, device_type=device_type)
    if compile:
        model.compile()
    return model


def keep_positional_conv_accurate(
    model: torch.nn.Module, dtype: torch.dtype, device: str | torch.device | None = None
) -> bool:
    """Run the convolutional positional embedding in float32 where ``dtype`` would compute it wrongly on ``device``.

    For inference in low precision (called by :func:`optimize_for_inference`) and for mixed-precision training
    (``hubert-ecg finetune --bf16``, ``hubert-ecg pretrain --mixed_precision bf16``): see
    :func:`low_precision_conv_is_accurate`. The module keeps its parameters and state-dict keys.

    Args:
        model: any HuBERT-ECG model.
        dtype: the low precision it will run in (weights or autocast); float32 does nothing.
        device: where it will run (default: where its weights are).

    Returns:
        True if the positional embedding was set to run in float32 (a warning says so).
    """
    kept = False
    for module in model.modules():
        if (
            isinstance(module, HubertPositionalConvEmbedding)
            and dtype != torch.float32
            and not low_precision_conv_is_accurate(module.conv, dtype, device=device)
        ):
            _keep_float32(module)
            kept = True
    if kept:
        where = device if device is not None else next(model.parameters()).device
        logger.warning(f"{dtype} grouped convolution is inaccurate on {where} for this model's positional "
                       "embedding: it runs in float32")
    return kept


def low_precision_conv_is_accurate(
    conv: torch.nn.Conv1d, dtype: torch.dtype, tolerance: float = 0.02, device: str | torch.device | None = None
) -> bool:
    """Whether ``conv`` computes correctly in ``dtype`` on its device: a check of the kernel, not of rounding.

    Runs ``conv`` (its own weights and shapes, a fixed random input of 93 and 187 frames: 5 s and 10 s) once with
    inputs and weights rounded to ``dtype`` in ``dtype`` and once on the same rounded values in float32, and
    compares: a correct kernel differs by the output rounding (about 0.4 % of the output's range in bfloat16); a
    wrong one by as much as the output. oneDNN's bfloat16 grouped convolution in torch 2.13 is wrong for 2, 4 or 8
    channels per group on AMX CPUs.

    Args:
        conv: the convolution (e.g. a positional embedding's ``conv``, weight norm included).
        dtype: the low precision to check (bfloat16, or float16 on a GPU).
        tolerance: largest allowed difference, relative to the output's largest magnitude.
        device: where to check (default: where ``conv``'s weight is).

    Returns:
        True when ``max |low - float32| <= tolerance * max |float32|`` for both lengths.
    """
    weight = conv.weight.detach().to(device) if device is not None else conv.weight.detach()
    bias = conv.bias.detach().to(weight.device) if conv.bias is not None else None
    generator = torch.Generator().manual_seed(0)
    options = dict(stride=conv.stride, padding=conv.padding, dilation=conv.dilation, groups=conv.groups)
    with torch.inference_mode(), torch.autocast(weight.device.type, enabled=False):
        low_weight = weight.to(dtype)
        low_bias = bias.to(dtype) if bias is not None else None
        for frames in (93, 187):
            x = torch.randn(2, conv.in_channels, frames, generator=generator).to(device=weight.device, dtype=dtype)
            low = F.conv1d(x, low_weight, low_bias, **options).float()
            exact = F.conv1d(x.float(), low_weight.float(), low_bias.float() if bias is not None else None, **options)
            if not (low - exact).abs().max() <= tolerance * exact.abs().max():
                return False
    return True


def _first_conv_as_matmul(conv: torch.nn.Conv1d) -> None:
    """Run a one-input-channel ``Conv1d`` (the feature encoder's first layer) as a matrix product, in place.

    ``weight (out, 1, kernel) @ windows (batch, kernel, frames)``, the windows a strided view of the input: the same
    sums as the convolution (equal to it on the reference inputs) at a fraction of the cost of the generic kernel,
    which handles one input channel poorly (CPU, batch 64 x 6000 samples, 512 channels: 120 -> 29 ms in bfloat16,
    106 -> 56 ms in float32). Other convolutions, and one already rewritten, are left as they are.
    """
    if (
        getattr(conv, "_hubert_ecg_matmul", False)
        or conv.in_channels != 1
        or conv.groups != 1
        or conv.padding != (0,)
        or conv.dilation != (1,)
    ):
        return
    conv.forward = types.MethodType(_matmul_forward, conv)  # bound: a deepcopy of the model rebinds it
    conv._hubert_ecg_matmul = True


def _matmul_forward(self, hidden_states: torch.Tensor) -> torch.Tensor:  # (batch, 1, samples) -> (batch, out, frames)
    windows = hidden_states[:, 0].unfold(1, self.kernel_size[0], self.stride[0])  # (batch, frames, kernel), a view
    # bmm with the weight expanded over the batch: torch.matmul would fold the batch into rows and copy the result
    # back to (batch, out, frames), 3x slower (it does so whenever the weight requires grad)
    weight = self.weight[:, 0].expand(hidden_states.shape[0], -1, -1)
    output = torch.bmm(weight, windows.transpose(1, 2))
    return output if self.bias is None else output + self.bias[:, None]


def _keep_float32(module: torch.nn.Module) -> None:
    """Run ``module`` in float32 (weights, input, and no autocast) inside a lower-precision model.

    Used for the convolutional positional embedding where its low-precision kernel is wrong on this device
    (:func:`low_precision_conv_is_accurate`). The state dict keeps its keys and shapes (only ``forward`` is wrapped).
    """
    module.float()
    if getattr(module, "_hubert_ecg_float32", False):
        return
    module.forward = types.MethodType(_float32_forward, module)  # bound: a deepcopy of the model rebinds it
    module._hubert_ecg_float32 = True


def _float32_forward(self, hidden_states, *args, **kwargs):
    weight_dtype = next(self.parameters()).dtype  # float32 unless the model was cast again afterwards
    with torch.autocast(hidden_states.device.type, enabled=False):
        output = type(self).forward(self, hidden_states.to(weight_dtype), *args, **kwargs)
    return output.to(hidden_states.dtype)


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
        optimize_for_inference(model)  # e.g. pipeline(..., dtype=torch.bfloat16): check the positional conv
    input_values = input_values.to(device=parameter.device, dtype=parameter.dtype)
    if attention_mask is not None:
        attention_mask = torch.as_tensor(attention_mask).to(parameter.device)
    with inference_context(model):
        output = model(input_values=input_values, attention_mask=attention_mask)
    if getattr(output, "logits", None) is not None:
        logits = output.logits
        return (logits[0] if isinstance(logits, tuple) else logits).float()
    return output.last_hidden_state.float()
