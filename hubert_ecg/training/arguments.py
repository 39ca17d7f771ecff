"""Command-line arguments of the training commands (``finetune``, ``evaluate``, ``cluster``, ``pretrain``).

Every command takes its arguments as the fields of dataclasses through ``transformers.HfArgumentParser``: an
optional leading YAML or JSON file of ``field: value`` pairs, then ``--field value`` flags that override it.
The ``TrainingArguments`` of ``finetune`` and ``pretrain`` share :class:`PrecisionOnAnyMachine`: ``--bf16`` works
on a machine without a GPU.
"""

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from transformers import HfArgumentParser
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


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """``--help`` states each default once: argparse's ``(default: X)`` is added only where the field's own help
    does not already say what its default is (e.g. ``"(default: the bundled demo model)"`` for a ``None``)."""

    def _get_help_string(self, action):
        help_ = action.help or ""
        if "default" in help_.lower():
            return help_
        return super()._get_help_string(action)


def build_parser(dataclass_types: tuple, prog: str) -> HfArgumentParser:
    """The ``HfArgumentParser`` of a command, with :class:`HelpFormatter` and a help of its own for every
    ``--no_FIELD`` complement that transformers adds to boolean fields that default to True."""
    parser = HfArgumentParser(dataclass_types, prog=prog, formatter_class=HelpFormatter)
    for action in parser._actions:
        negative = [s for s in action.option_strings if s.startswith("--no_")]
        if negative and action.const is False:
            action.help = f"turn off --{negative[0][len('--no_'):]}"
            action.default = argparse.SUPPRESS
    return parser


def parse_args(argv: Sequence[str], dataclass_types: tuple, prog: str) -> tuple:
    """Parse ``argv`` into one instance of each of ``dataclass_types``.

    Args:
        argv: ``[CONFIG.yaml|CONFIG.json] [--field value ...]``.
        dataclass_types: the argument dataclasses, e.g. ``(ModelArguments, DataArguments, TrainingArguments)``.
        prog: the command's name for ``--help`` and messages, e.g. ``"hubert-ecg finetune"``.

    Returns:
        A tuple with one dataclass instance per type, in order.

    Raises:
        ValueError: for a missing or unreadable configuration file, a file that is not a mapping, or a file with
            fields that no dataclass has.
    """
    argv = list(argv)
    parser = build_parser(dataclass_types, prog)
    if argv and argv[0].endswith((".yaml", ".yml", ".json")):
        path = Path(argv.pop(0))
        if not path.is_file():
            raise ValueError(f"configuration file not found: {str(path)!r}")
        try:
            text = path.read_text(encoding="utf-8")
            if path.suffix == ".json":
                values = json.loads(text)
            else:
                import yaml

                values = yaml.safe_load(text)
        except Exception as err:
            raise ValueError(f"cannot read the configuration file {str(path)!r}: {type(err).__name__}: {err}") from None
        values = values or {}
        if not isinstance(values, dict):
            raise ValueError(f"configuration file {str(path)!r} must hold a mapping of argument names to values")
        known = {action.dest for action in parser._actions}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"configuration file {str(path)!r} has unknown fields {unknown}")
        # nested mappings (e.g. `config_overrides: {hidden_size: 128}`) are JSON strings on the command line
        values = {key: json.dumps(value) if isinstance(value, dict) else value for key, value in values.items()}
        parser.set_defaults(**values)
        for action in parser._actions:  # a field given in the file is no longer required on the command line
            if action.dest in values:
                action.required = False
    return tuple(parser.parse_args_into_dataclasses(args=argv))


__all__ = ["parse_args", "build_parser", "HelpFormatter", "PrecisionOnAnyMachine", "accelerator_available"]


def run_command(argv: Sequence[str] | None, arguments_class: type, prog: str, run: Callable) -> int:
    """The ``main`` of a one-dataclass command (``hubert-ecg cluster``, ``hubert-ecg pretrain``).

    Parses ``argv`` (default: ``sys.argv[1:]``) into ``arguments_class`` with :func:`parse_args` and calls
    ``run(arguments)``.

    Returns:
        The exit code: the one ``run`` returns when it returns an int (e.g. 1: some records were skipped), else 0;
        1 when ``run`` raised :class:`~hubert_ecg.io.NoUsableRecords` (the records listed on stderr); 2 when
        parsing or ``run`` raised another ``ValueError`` (bad arguments or data), whose message is printed on
        stderr as ``"{prog}: error: ..."``.
    """
    from hubert_ecg_cli.records import BadRecords, usage_error

    from ..io import NoUsableRecords

    try:
        (args,) = parse_args(list(sys.argv[1:] if argv is None else argv), (arguments_class,), prog)
        code = run(args)
    except NoUsableRecords as error:  # the one bad-record rule: listed, exit 1
        bad = BadRecords(prog, noun="record")
        bad.extend(error.skipped)
        return bad.report(error.total)
    except ValueError as error:
        return usage_error(prog, error)
    return code if isinstance(code, int) else 0
