"""``hubert-ecg pretrain [CONFIG.yaml|CONFIG.json] [--field value ...]``: one pretraining run on the Trainer.

The arguments are :class:`hubert_ecg.training.pretrain.PretrainArguments`, transformers ``TrainingArguments`` with
the objective, data and model of one run: they import torch, so they are declared late (:func:`parse`'s
``late_types``); ``--help`` and a usage error still need no model. Then
:func:`hubert_ecg.training.pretrain.run_pretraining` does the work. ``--model`` was ``--model_name_or_path`` (still
read, with a note; also as a key of the file).
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Sequence

from .arguments import parse
from .records import run_reporting

PROG = "hubert-ecg pretrain"
DESCRIPTION = (
    "Pretrain HuBERT-ECG with the transformers Trainer: HuBERT masked prediction of `hubert-ecg cluster` labels "
    "(--labels_dirs), CMSC, SimCLR or a sum of HuBERT and one of them (--objective), on one window dataset "
    "(--windows_dir, or --data to build it) or several sources (--sources); on one CPU or under accelerate launch / "
    "torchrun. The arguments come from an optional leading YAML / JSON file, then --field value flags that override "
    "it. Rerunning the same command resumes from the last checkpoint. Exit status: 0; 1 when no record could be "
    "used (listed on stderr); 2 for a usage error or bad data."
)

__all__ = ["main", "parse_args"]


def _late_types():
    from hubert_ecg.training.pretrain import PretrainArguments

    return (PretrainArguments,)


def parse_args(argv: Sequence[str] | None = None):
    """The :class:`hubert_ecg.training.pretrain.PretrainArguments` of ``argv`` (an optional leading YAML / JSON file,
    then ``--field value`` flags); a usage error exits 2 (``SystemExit``)."""
    (args,) = parse(argv, (), PROG, DESCRIPTION, late_types=_late_types)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``hubert-ecg pretrain``; returns the exit code: 0; 1 when no record could be used (listed on
    stderr); 2 on bad arguments or data."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    from hubert_ecg.training.pretrain import run_pretraining

    return run_reporting(PROG, lambda: run_pretraining(args, command=f"{PROG} " + shlex.join(argv)))


if __name__ == "__main__":
    sys.exit(main())
