"""``hubert-ecg convert SRC OUTPUT_DIR [--label_set cardio-learning] [--problem_type T]``.

Converts a checkpoint of the HuBERT-ECG authors into a ``save_pretrained`` directory:
:func:`hubert_ecg.conversion.convert_original_checkpoint`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from .arguments import parse
from .records import usage_error

PROG = "hubert-ecg convert"
#: :data:`hubert_ecg.label_sets.LABEL_SET_NAMES` (tests/test_conversion.py checks they match)
LABEL_SETS = ("cardio-learning",)
#: :data:`hubert_ecg.training.data.PROBLEM_TYPES` (tests/test_conversion.py checks they match)
PROBLEM_TYPES = ("multi_label_classification", "single_label_classification", "regression")
DESCRIPTION = (
    "Convert a checkpoint of the HuBERT-ECG authors (original .pt, hub directory, their 2026 package format, or a "
    "Hub id) into a save_pretrained directory (safetensors) with the feature extractor's configuration, ready for "
    "hubert-ecg predict and pipeline(). Pickled code is never executed. Exit status: 0, or 2 when the checkpoint "
    "cannot be converted (the reason on stderr)."
)

__all__ = ["ConvertArguments", "main"]


@dataclass
class ConvertArguments:
    """The checkpoint to convert, the folder it goes to, and what a legacy checkpoint does not record."""

    src: str = field(metadata={"positional": True, "metavar": "SRC",
                               "help": "original .pt checkpoint (pretraining or fine-tuned), hub directory, or Hub id"})
    output_dir: str = field(metadata={"positional": True, "metavar": "OUTPUT_DIR", "help": "output directory"})
    label_set: Literal[LABEL_SETS] | None = field(default=None, metadata={
        "help": "take the classifier's label names and descriptions from this label set (default: detected for "
                "the Cardio-Learning classifiers)"})
    problem_type: Literal[PROBLEM_TYPES] | None = field(default=None, metadata={
        "help": "for a legacy .pt classifier, which does not record it (default: multi-label)"})


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``hubert-ecg convert``; returns 0, or 2 when the checkpoint cannot be converted."""
    (args,) = parse(argv, (ConvertArguments,), PROG, DESCRIPTION)

    from hubert_ecg.conversion import convert_original_checkpoint

    try:
        model = convert_original_checkpoint(args.src, args.output_dir, label_set=args.label_set,
                                            problem_type=args.problem_type)
    except ValueError as error:
        return usage_error(PROG, error)
    print(f"{args.src} -> {args.output_dir} ({type(model).__name__}, {model.num_parameters():,} parameters)")
    return 0
