"""``hubert-ecg finetune [CONFIG.yaml|CONFIG.json] [--field value ...]``: fine-tune a classifier with the Trainer.

The command's arguments: :class:`ModelArguments` (where the model starts from and what is trained),
:class:`DataArguments` (the labelled data) and transformers' ``TrainingArguments`` with the release's defaults
(:class:`hubert_ecg.training.finetune.FinetuneTrainingArguments`, declared late: they import torch), from an
optional YAML / JSON file and ``--field value`` flags that override it; then
:func:`hubert_ecg.training.finetune.finetune` does the work. ``--model`` was ``--model_name_or_path`` (still read, with a note; also as a key of the file).
"""

from __future__ import annotations

import logging as std_logging
import shlex
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from .arguments import DEFAULT_MISSING_LEADS, MISSING_LEADS, RecordArguments, parse
from .records import EXIT_BAD_RECORDS, EXIT_OK, usage_error

PROG = "hubert-ecg finetune"
DESCRIPTION = (
    "Fine-tune a HuBERT-ECG classifier with the transformers Trainer, from a checkpoint (--model: hub id, "
    "save_pretrained directory or original .pt) or a preset (--preset), on PTB-XL (--ptbxl_dir), manifests "
    "(--train_csv, --validation_csv) or several sources (--train_sources). The arguments come from an optional "
    "leading YAML / JSON file, then --field value flags that override it. Exit status: 0; 1 when records were "
    "skipped (listed on stderr); 2 for a usage error or bad data."
)
#: the PTB-XL label sets (:data:`hubert_ecg.training.data.PTBXL_LABEL_SETS`; the command's test checks they match)
PTBXL_LABEL_SETS = ("all", "diagnostic", "subdiagnostic", "superdiagnostic", "form", "rhythm")
#: the help of ``--skip_bad_records`` (:data:`hubert_ecg.training.data.BAD_RECORDS_RULE`; checked to match)
BAD_RECORDS_RULE = (
    "unusable records (unreadable, truncated, lacking leads, ...) are skipped and listed on stderr with the reason, "
    "and the command exits with status 1 after finishing with the rest; false: the first one stops the command "
    "(status 2)"
)

__all__ = ["DataArguments", "ModelArguments", "main", "parse_args"]


@dataclass
class ModelArguments:
    """Where the model starts from and what is trained."""

    model: str | None = field(
        default=None,
        metadata={"help": "hub id, local save_pretrained directory, or original .pt checkpoint (converted)",
                  "deprecated": ["--model_name_or_path", "--model-name-or-path"]},
    )
    preset: str | None = field(
        default=None, metadata={"help": "random initialisation from a preset instead: small, base or large"}
    )
    config_overrides: str | None = field(
        default=None,
        metadata={"help": 'JSON object of config fields for --preset, e.g. \'{"hidden_size": 128, "num_hidden_layers": 2}\''},
    )
    freeze_feature_encoder: bool = field(default=True, metadata={"help": "freeze the convolutional feature encoder"})
    train_last_n_layers: int | None = field(
        default=None,
        metadata={"help": "freeze the backbone except its last N transformer blocks (default: all trainable)"},
    )
    layerdrop: float | None = field(default=None, metadata={"help": "probability of dropping a transformer block"})
    hidden_dropout: float | None = field(default=None, metadata={"help": "dropout of the transformer"})
    attention_dropout: float | None = field(default=None, metadata={"help": "dropout of attention probabilities"})
    activation_dropout: float | None = field(default=None, metadata={"help": "dropout after the feed-forward activation"})
    final_dropout: float | None = field(default=None, metadata={"help": "dropout before the classification head"})
    pos_weight: str = field(
        default="auto",
        metadata={"help": "multi-label BCE positive weights: auto (negatives/positives), none, or comma-separated"},
    )
    class_weight: str = field(
        default="auto",
        metadata={"help": "multi-class weights: auto (balanced), none, or comma-separated"},
    )
    finetune_mask_time_prob: float | None = field(
        default=None,
        metadata={
            "help": "SpecAugment while fine-tuning: fraction of the frames replaced by the learned mask embedding in "
            "every training step, 0 = off (default: off with --preset; the checkpoint's setting otherwise, 0.33 for "
            "the released weights)"
        },
    )
    finetune_mask_time_length: int | None = field(
        default=None, metadata={"help": "frames per masked span of that masking (default: the checkpoint's, or 1)"}
    )
    model_license: str | None = field(
        default=None,
        metadata={
            "help": "licence in the model card: from --preset default apache-2.0; from a checkpoint default its "
            "card's licence, else cc-by-nc-4.0 (the released weights')"
        },
    )


@dataclass
class DataArguments:
    """The labelled data: PTB-XL metadata or CSV manifests."""

    ptbxl_dir: str | None = field(
        default=None,
        metadata={"help": "PTB-XL folder (ptbxl_database.csv, scp_statements.csv, records100/500), or several, "
                          "comma-separated (a list in the config file): their records are pooled"},
    )
    ptbxl_folds: str | None = field(
        default=None,
        metadata={"help": "PTB-XL splits by strat_fold, e.g. 'train=1-7,validation=8,test=9' to keep fold 9 a clean "
                          "test set (default: train=1-8, validation=9, test=10)"},
    )
    label_set: Literal[PTBXL_LABEL_SETS] = field(default="superdiagnostic", metadata={"help": "PTB-XL label set"})
    ptbxl_sampling_rate: int = field(default=100, metadata={"help": "PTB-XL records to read: 100 or 500 Hz"})
    train_csv: str | None = field(default=None, metadata={"help": "training manifest (filename, [age, sex], labels)"})
    validation_csv: str | None = field(default=None, metadata={"help": "validation manifest"})
    test_csv: str | None = field(default=None, metadata={"help": "test manifest (evaluated after training)"})
    train_sources: list[str] = field(
        default_factory=list,
        metadata={"help": "several training manifests (same label columns) mixed with probabilities, instead of "
                  "--train_csv: NAME=MANIFEST.csv@PROBABILITY ... (a YAML list of {name, path, probability}; "
                  "no probabilities: equal chances)"},
    )
    validation_sources: list[str] = field(
        default_factory=list,
        metadata={"help": "several validation manifests, NAME=MANIFEST.csv ..., instead of --validation_csv: "
                  "evaluated together (the metrics that choose the model) and per source (eval_NAME_macro_auroc, "
                  "...)"},
    )
    stopping_strategy: str = field(
        default="all_exhausted",
        metadata={"help": "when the mixture of --train_sources ends (datasets.interleave_datasets): all_exhausted "
                  "(every record of every source at least once, smaller sources repeated) or first_exhausted "
                  "(until the first source runs out)"},
    )
    data_dir: str | None = field(default=None, metadata={"help": "folder the manifests' file names are relative to"})
    problem_type: str | None = field(
        default=None,
        metadata={"help": "multi_label_classification, single_label_classification or regression (default: inferred)"},
    )
    num_labels: int | None = field(default=None, metadata={"help": "expected number of labels (checked)"})
    max_train_records: int | None = field(default=None, metadata={"help": "use only the first N training records"})
    train_fraction: float | None = field(
        default=None,
        metadata={"help": "use a random fraction in (0, 1] of the training records, drawn with --seed, with at "
                  "least 2 positives and negatives of every label (label-efficiency studies; hubert-ecg probe "
                  "--train-fraction draws the same records)"},
    )
    max_eval_records: int | None = field(default=None, metadata={"help": "use only the first N validation records"})
    skip_bad_records: bool = field(default=True, metadata={"help": BAD_RECORDS_RULE})
    missing_leads: Literal[MISSING_LEADS] = field(default=DEFAULT_MISSING_LEADS, metadata={
        "help": RecordArguments.__dataclass_fields__["missing_leads"].metadata["help"]})
    threshold: float = field(default=0.5, metadata={"help": "F1 threshold on the probabilities"})
    augmentations: str | None = field(
        default=None,
        metadata={"help": "augmentations of the training windows, after the feature extractor (100 Hz model view): "
                  "'default', 'none', a JSON list such as '[{\"name\": \"lead_mask\", \"mask_prob\": 0.5}]', or "
                  "a YAML list in the config file; the model config records lead_mask_prob"},
    )
    early_stopping_patience: int | None = field(
        default=5, metadata={"help": "evaluations without improvement before stopping (0 or unset: off)"}
    )


def _show_info_messages(level: str = "passive") -> None:
    """Show this package's INFO messages (the start-up summary, ``saved to``) on stderr, as transformers' example
    scripts show theirs: ``--log_level`` passive (default) shows them, warning or error hides them."""
    package = std_logging.getLogger("hubert_ecg")
    if not any(getattr(h, "_hubert_ecg_cli", False) for h in package.handlers):
        handler = _StderrHandler()
        handler.setFormatter(std_logging.Formatter("%(message)s"))
        handler._hubert_ecg_cli = True
        package.addHandler(handler)
    from transformers.utils import logging

    levels = logging.get_log_levels_dict()
    package.setLevel(std_logging.INFO if level in (None, "passive") else levels[level])


class _StderrHandler(std_logging.StreamHandler):
    """A stream handler that writes to the current ``sys.stderr`` (which tests and notebooks replace)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):
        pass


def _late_types():
    from hubert_ecg.training.finetune import FinetuneTrainingArguments

    return (FinetuneTrainingArguments,)


def parse_args(argv: Sequence[str] | None = None) -> tuple:
    """``(ModelArguments, DataArguments, FinetuneTrainingArguments)`` from ``argv``: an optional leading YAML / JSON
    file, then ``--field value`` flags that override it. A usage error exits 2 (``SystemExit``); the command's own
    fields are checked before torch is imported."""
    return parse(argv, (ModelArguments, DataArguments), PROG, DESCRIPTION, late_types=_late_types)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``hubert-ecg finetune``; returns 0 when every record was used, 1 when some were skipped (listed
    on stderr), 2 on bad arguments or data (message on stderr)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    model_args, data_args, training_args = parse_args(argv)
    from hubert_ecg.training.finetune import finetune

    try:
        _show_info_messages(training_args.log_level)
        metrics = finetune(model_args, data_args, training_args, command=f"{PROG} " + shlex.join(argv))
    except ValueError as err:
        return usage_error(PROG, err)
    return EXIT_BAD_RECORDS if metrics.get("skipped_records") else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
