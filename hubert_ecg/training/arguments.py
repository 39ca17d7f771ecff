"""What the ``TrainingArguments`` of ``finetune`` and ``pretrain`` share: :class:`PrecisionOnAnyMachine`, ``--bf16``
on a machine without a GPU. The commands' parsing is :mod:`hubert_ecg_cli.arguments`.
"""

import os

from transformers.utils import logging

logger = logging.get_logger(__name__)


def accelerator_available() -> bool:
    """True when torch sees a GPU or another accelerator (CUDA / ROCm, MPS, XPU, ...: ``torch.accelerator``) or an
    XLA device (TPU): where transformers' ``TrainingArguments`` picks its device and checks bf16 itself."""
    import torch
    from transformers.utils import is_torch_xla_available

    if is_torch_xla_available():
        return True
    accelerator = getattr(torch, "accelerator", None)
    return bool(accelerator.is_available()) if accelerator is not None else torch.cuda.is_available()


class PrecisionOnAnyMachine:
    """Mixin placed before ``TrainingArguments`` in the training commands' argument dataclasses: ``--bf16`` (and
    ``--bf16_full_eval``) on a machine without a GPU or other accelerator, where transformers would raise "Your setup
    doesn't support bf16/gpu", trains on the CPU instead:

    * a CPU on which bfloat16 matrix products are measured at least 1.15x faster than float32
      (:func:`hubert_ecg.inference.bf16_matmul_speedup`, measured once per machine and cached) keeps bf16 (CPU
      autocast) and ``use_cpu`` is set;
    * on another CPU it trains in fp32, ``use_cpu`` set: a bf16 flag does not tell (bf16 was 0.73x fp32 on an
      Intel CPU with AVX512-BF16 but no AMX, and is emulated, slower still, on CPUs without bf16 units).

    Either way one line on stderr says so (from the first process of a multi-process run). With an accelerator
    present nothing changes: the flags go to transformers as given.
    """

    def __post_init__(self):
        if self.bf16 or self.bf16_full_eval:
            note = _bf16_without_accelerator(self)
            if note and int(os.environ.get("RANK", "0") or 0) == 0:
                logger.warning(note)
        super().__post_init__()


def _bf16_without_accelerator(args) -> str | None:
    """Apply :class:`PrecisionOnAnyMachine`'s rule to ``args`` (bf16 asked for); returns the note, or None when
    nothing was changed (an accelerator present, or ``use_cpu`` given on a CPU with bf16 units)."""
    if accelerator_available():
        return None
    from ..inference import LOWER_PRECISION_MIN_SPEEDUP, bf16_matmul_speedup

    speedup = bf16_matmul_speedup()
    if speedup >= LOWER_PRECISION_MIN_SPEEDUP:
        if args.use_cpu:
            return None
        args.use_cpu = True
        return (f"no GPU found: training on the CPU in bf16 mixed precision (bf16 matrix products measured "
                f"{speedup:.2f}x fp32 on this CPU)")
    args.use_cpu = True
    args.bf16 = args.bf16_full_eval = False
    return (f"no GPU found and bf16 matrix products are not faster on this CPU (measured {speedup:.2f}x fp32): "
            "--bf16 ignored, training on the CPU in fp32")


__all__ = ["PrecisionOnAnyMachine", "accelerator_available"]
