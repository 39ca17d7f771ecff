"""Fine-tuning HuBERT-ECG classifiers with the transformers Trainer: the library of ``hubert-ecg finetune``.

:func:`finetune` takes three argument objects: the model arguments and the data arguments (their attributes are
the fields of :class:`hubert_ecg_cli.finetune.ModelArguments` and :class:`hubert_ecg_cli.finetune.DataArguments`:
the command's, any object with those attributes will do) and :class:`FinetuneTrainingArguments` (transformers
``TrainingArguments`` with the release's defaults). The command itself, its arguments and its ``main`` are
:mod:`hubert_ecg_cli.finetune`.

Defaults follow the original fine-tuning script (medRxiv doi 10.1101/2024.11.14.24317328): AdamW with learning
rate 1e-5, betas (0.9, 0.98), eps 1e-9, weight decay 0.01, 8 % linear warm-up then linear decay; the convolutional
feature encoder frozen; BCE with ``pos_weight`` (negatives / positives per label on the training set) for
multi-label, class-weighted cross-entropy for multi-class, MSE for regression; the best checkpoint and early
stopping on the validation macro AUROC.

The model starts from a hub id or local ``save_pretrained`` directory (``--model``), an original
``.pt`` checkpoint (converted on the fly), or a randomly initialised preset (``--preset small|base|large`` with
``--config_overrides '{"hidden_size": 128, ...}'``). The output directory receives ``config.json`` (with
``id2label``), ``model.safetensors``, ``preprocessor_config.json``, a ``README.md`` model card
(:mod:`hubert_ecg.model_card`: evaluation results, licence, the command) and ``metrics.json``. With
``--push_to_hub`` the Trainer's own push uploads them (``--hub_model_id``, ``--hub_strategy``, default ``end``:
one commit at the end of training).

SpecAugment (``--finetune_mask_time_prob``): in every training step about that fraction of the frames of each
window is replaced by the model's learned mask embedding. Off by default from random initialisation (as in the
release); a checkpoint keeps its own setting (0.33 for the released weights) unless the flag is given.

What it says: a start-up summary (records read per split, labels, problem type, initialisation, device, precision,
trainable parameters) and a last ``saved to DIR`` line through the package's logger (stderr; ``--log_level warning``
hides them); the Trainer's log lines as JSON numbers; a final block of the saved model's metrics titled with the
epoch and step they come from (the best checkpoint's). Transformers' rotation keeps ``--save_total_limit``
checkpoints (2), among them always the best and the last; ``--resume_from_checkpoint auto`` continues from the last
complete one (:func:`~hubert_ecg.training.trainer.resolve_checkpoint`), with the windows and augmentations of an
uninterrupted run: record ``i`` of epoch ``e`` is seeded by ``(seed, e, i)``, the epoch carried by the training
sampler's indices (:class:`~hubert_ecg.training.data.EpochRecords`), also into DataLoader workers.
With ``--validation_sources`` the validation metrics come pooled (``eval_...``) and per source (``eval_NAME_...``),
one ``Trainer.evaluate`` entry each.
Unusable records follow :data:`~hubert_ecg.training.data.BAD_RECORDS_RULE` (skipped and listed, exit status 1).
"""

from __future__ import annotations

import json
import math
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from transformers import TrainingArguments, set_seed
from transformers.trainer_callback import PrinterCallback, ProgressCallback
from transformers.utils import logging

from .arguments import PrecisionOnAnyMachine
from .sources import STOPPING_STRATEGIES, parse_sources
from .trainer import POOLED, EarlyStoppingOnPooledMetric, HuBERTECGTrainer, checkpoints, resolve_checkpoint

logger = logging.get_logger(__name__)

__all__ = ["FinetuneTrainingArguments", "build_model", "finetune", "load_data"]


@dataclass
class FinetuneTrainingArguments(PrecisionOnAnyMachine, TrainingArguments):
    """transformers ``TrainingArguments`` with the release's fine-tuning defaults; ``--bf16`` on a machine without a
    GPU trains on the CPU (:class:`~hubert_ecg.training.arguments.PrecisionOnAnyMachine`)."""

    output_dir: str | None = field(default="hubert-ecg-finetuned", metadata={"help": "output directory"})
    learning_rate: float = field(default=1e-5, metadata={"help": "AdamW learning rate (release: 1e-5)"})
    adam_beta1: float = field(default=0.9, metadata={"help": "AdamW beta1"})
    adam_beta2: float = field(default=0.98, metadata={"help": "AdamW beta2 (release: 0.98)"})
    adam_epsilon: float = field(default=1e-9, metadata={"help": "AdamW epsilon (release: 1e-9)"})
    weight_decay: float = field(default=0.01, metadata={"help": "AdamW weight decay (release: 0.01)"})
    warmup_steps: float = field(default=0.08, metadata={"help": "warm-up steps, or a ratio of the total in [0, 1) (release: 0.08)"})
    lr_scheduler_type: str = field(default="linear", metadata={"help": "schedule after warm-up"})
    eval_strategy: str = field(default="epoch", metadata={"help": "when to evaluate: epoch, steps or no"})
    save_strategy: str = field(default="epoch", metadata={"help": "when to save: epoch, steps or no"})
    logging_strategy: str = field(default="epoch", metadata={"help": "when to log"})
    load_best_model_at_end: bool = field(default=True, metadata={"help": "keep the best checkpoint"})
    metric_for_best_model: str | None = field(default="macro_auroc", metadata={"help": "model selection metric"})
    greater_is_better: bool | None = field(default=True, metadata={"help": "whether larger is better"})
    save_total_limit: int | None = field(
        default=2,
        metadata={"help": "checkpoints kept by transformers' rotation: with load_best_model_at_end the best and the "
                          "last (to resume from) are always among them"},
    )
    remove_unused_columns: bool = field(default=False, metadata={"help": "must stay False (on-the-fly transform)"})
    per_device_train_batch_size: int = field(default=16, metadata={"help": "batch size"})
    per_device_eval_batch_size: int = field(default=32, metadata={"help": "evaluation batch size"})
    resume_from_checkpoint: str | None = field(
        default=None,
        metadata={"help": "checkpoint directory to resume from, or 'auto': the last complete checkpoint-N in "
                          "output_dir (none yet: a fresh run)"},
    )
    hub_strategy: str = field(
        default="end",
        metadata={"help": "with --push_to_hub: end (one commit of the final model and card), every_save, checkpoint "
                          "or all_checkpoints"},
    )


def _weights(spec: str, default: np.ndarray | None, n: int, name: str) -> list[float] | None:
    spec = (spec or "none").strip().lower()
    if spec == "none":
        return None
    if spec == "auto":
        return None if default is None else [float(w) for w in default]
    try:
        weights = [float(w) for w in spec.split(",")]
    except ValueError:
        raise ValueError(f"--{name} must be auto, none or comma-separated numbers, got {spec!r}") from None
    if len(weights) != n:
        raise ValueError(f"--{name} has {len(weights)} weights for {n} labels")
    return weights


def _folds_text(folds) -> str:
    """``(1, 2, 3, 5)`` -> ``"1-3, 5"``."""
    folds, runs = sorted(folds), []
    for fold in folds:
        if runs and fold == runs[-1][1] + 1:
            runs[-1][1] = fold
        else:
            runs.append([fold, fold])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)


def load_data(data_args, label_names=None, num_labels=None, seed: int = 0):
    """``(splits dict name -> Dataset, label_names, problem_type, skipped)`` from PTB-XL, the manifests or the
    sources of ``data_args`` (the attributes of :class:`hubert_ecg_cli.finetune.DataArguments`); ``skipped`` maps
    each split to the :class:`~hubert_ecg.training.data.Skipped` records of that split (empty unless
    ``skip_bad_records``). ``data_args.train_fraction`` keeps the training records of
    :func:`~hubert_ecg.training.data.label_fraction` drawn with ``seed`` (of each source). Several sources
    (``train_sources``, ``validation_sources``) are combined by :func:`~hubert_ecg.training.data.mix_sources`: the
    training sources mixed with their probabilities (``seed``, ``stopping_strategy``), the validation sources
    concatenated; both datasets then have a ``source`` column.

    Raises:
        ValueError: when no data source or several are given, for bad source entries, or as
            :mod:`hubert_ecg.training.data` raises (the first unusable record without ``skip_bad_records``, no
            usable record in a split, manifests whose labels differ).
    """
    from . import data

    on_error = "skip" if data_args.skip_bad_records else "raise"
    num_labels = num_labels if num_labels is not None else data_args.num_labels
    if sum(map(bool, (data_args.ptbxl_dir, data_args.train_csv, data_args.train_sources))) != 1:
        raise ValueError("give exactly one data source: --ptbxl_dir, --train_csv (with --validation_csv) or "
                         "--train_sources (with --validation_csv or --validation_sources)")
    if data_args.validation_csv and data_args.validation_sources:
        raise ValueError("give --validation_csv or --validation_sources, not both")
    if data_args.stopping_strategy not in STOPPING_STRATEGIES:
        raise ValueError(f"--stopping_strategy must be one of {STOPPING_STRATEGIES}, got "
                         f"{data_args.stopping_strategy!r}")
    specs = {}  # split -> the sources of a split given by --train_sources / --validation_sources
    if data_args.ptbxl_dir:
        records = data.read_ptbxl(data_args.ptbxl_dir, data_args.label_set, data_args.ptbxl_sampling_rate)
        if num_labels is not None and len(records.label_names) != num_labels:
            raise ValueError(
                f"PTB-XL label set {data_args.label_set!r} has {len(records.label_names)} labels but num_labels="
                f"{num_labels}"
            )
        parts = {split: [part] for split, part in
                 data.split_by_fold(records, data.parse_fold_splits(data_args.ptbxl_folds)).items()}
    else:
        parts = {}
        problem_type = data_args.problem_type
        for split, option, given in (
            ("train", "--train_sources", data_args.train_sources or data_args.train_csv),
            ("validation", "--validation_sources", data_args.validation_sources or data_args.validation_csv),
            ("test", "", data_args.test_csv),
        ):
            if not given:
                continue
            if isinstance(given, str):
                paths = [given]
            else:
                specs[split] = parse_sources(given, option)
                paths = [spec.path for spec in specs[split]]
            parts[split] = []
            for csv in paths:
                parts[split].append(data.read_manifest(csv, data_args.data_dir, num_labels=num_labels,
                                                       problem_type=problem_type, label_names=label_names))
                label_names, problem_type = parts[split][-1].label_names, parts[split][-1].problem_type
                if problem_type == "single_label_classification":
                    num_labels = len(label_names)
    if "train" not in parts or "validation" not in parts:
        raise ValueError(f"fine-tuning needs a training and a validation split, found {sorted(parts)}")
    names, problem_type = parts["train"][0].label_names, parts["train"][0].problem_type
    for split, limit in (("train", data_args.max_train_records), ("validation", data_args.max_eval_records)):
        if limit:
            parts[split] = [part.select(np.arange(len(part)) < limit) for part in parts[split]]
    if data_args.train_fraction is not None:
        try:
            parts["train"] = [part.select(data.label_fraction(part.labels, part.problem_type,
                                                              data_args.train_fraction, seed))
                              for part in parts["train"]]
        except ValueError as error:
            raise ValueError(f"--train_fraction: {error}") from None
    skipped = {split: data.Skipped() for split in parts}
    datasets = {}
    for split, split_parts in parts.items():
        built = [data.build_dataset(part, on_error, skipped[split], data_args.missing_leads) for part in split_parts]
        if split not in specs:
            datasets[split] = built[0]
        else:
            datasets[split] = data.mix_sources(
                built, [spec.name for spec in specs[split]],
                [spec.probability for spec in specs[split]] if split == "train" else None,
                seed, data_args.stopping_strategy,
            )
    return datasets, names, problem_type, skipped


def build_model(model_args, label_names, problem_type, pos_weight, class_weight):
    """The classifier to fine-tune, its feature extractor and a description of where it started. ``model_args``: the
    attributes of :class:`hubert_ecg_cli.finetune.ModelArguments` (``model``, ``preset``, ``config_overrides``, ...).

    Raises:
        ValueError: when neither or both of ``model`` and ``preset`` are given, for bad
            ``config_overrides``, or a model directory that is not a HuBERT-ECG model.
    """
    from transformers import AutoConfig

    from ..configuration import HuBERTECGConfig
    from ..modeling import HuBERTECGForSequenceClassification
    from ..processing import HuBERTECGFeatureExtractor

    if bool(model_args.model) == bool(model_args.preset):
        raise ValueError("give exactly one of --model (hub id, directory, .pt) and --preset")
    n = len(label_names)
    overrides = {
        name: getattr(model_args, name)
        for name in ("layerdrop", "hidden_dropout", "attention_dropout", "activation_dropout", "final_dropout",
                     "finetune_mask_time_prob", "finetune_mask_time_length")
        if getattr(model_args, name) is not None
    }
    head = dict(
        id2label={i: str(name) for i, name in enumerate(label_names)},
        label2id={str(name): i for i, name in enumerate(label_names)},
        problem_type=problem_type,
    )
    feature_extractor = None
    if model_args.preset:
        try:
            extra = json.loads(model_args.config_overrides) if model_args.config_overrides else {}
        except json.JSONDecodeError as err:
            raise ValueError(f"--config_overrides must be a JSON object: {err}") from None
        if not isinstance(extra, dict):
            raise ValueError("--config_overrides must be a JSON object of config fields")
        config = HuBERTECGConfig.from_preset(model_args.preset, **{**extra, **overrides}, **head)
        config.pos_weight, config.class_weight = pos_weight, class_weight
        config.validate_architecture()
        model = HuBERTECGForSequenceClassification(config)
        source = f"random initialisation ({model_args.preset} preset{', ' + json.dumps(extra) if extra else ''})"
        base_model = None
    else:
        src = model_args.model
        base_model = src
        tmp = None
        if Path(src).is_file():
            from ..conversion import convert_original_checkpoint

            tmp = tempfile.TemporaryDirectory()
            convert_original_checkpoint(src, tmp.name)
            src = tmp.name
        try:
            config = AutoConfig.from_pretrained(src)
        except OSError as err:
            raise ValueError(f"cannot load a model config from {model_args.model!r}: {err}") from None
        if config.model_type != HuBERTECGConfig.model_type:
            raise ValueError(f"{model_args.model!r} is a {config.model_type!r} model, not hubert_ecg")
        for key, value in {**overrides, **head}.items():
            setattr(config, key, value)
        config.pos_weight, config.class_weight = pos_weight, class_weight
        # fine-tuning changes the logits: a calibration and thresholds fitted to the checkpoint no longer apply
        # (hubert-ecg calibrate fits new ones)
        config.score_calibration = config.label_thresholds = None
        config.validate_architecture()
        model = HuBERTECGForSequenceClassification.from_pretrained(src, config=config, ignore_mismatched_sizes=True)
        if (Path(src) / "preprocessor_config.json").is_file():
            feature_extractor = HuBERTECGFeatureExtractor.from_pretrained(src)
        source = f"checkpoint `{model_args.model}`"
        if tmp is not None:
            tmp.cleanup()
    if feature_extractor is None:
        feature_extractor = HuBERTECGFeatureExtractor()
    if model_args.train_last_n_layers is not None:
        model.freeze_base_model(model_args.train_last_n_layers)
    if model_args.freeze_feature_encoder:
        model.freeze_feature_encoder()
    assert model.config.num_labels == n
    return model, feature_extractor, source, base_model


def finetune(model_args, data_args, training_args: FinetuneTrainingArguments,
             command: str | None = None) -> dict:
    """Fine-tune, evaluate on validation (and test when given) and save to ``training_args.output_dir``.

    ``model_args`` and ``data_args`` have the attributes of :class:`hubert_ecg_cli.finetune.ModelArguments` and
    :class:`hubert_ecg_cli.finetune.DataArguments`; ``command`` is the command line written on the model card.

    Returns:
        The final metrics: ``eval_*`` on the validation split (best checkpoint) and ``test_*`` if a test split
        exists.

    Raises:
        ValueError: for bad arguments, missing files, label columns that do not match, unreadable records
            (unless ``skip_bad_records``).
    """
    from .collators import lead_mask_prob, parse_augmentations

    augmentations = parse_augmentations(data_args.augmentations, "--augmentations")  # fail before reading data
    if data_args.train_fraction is not None and not 0 < data_args.train_fraction <= 1:
        raise ValueError(f"--train_fraction must lie in (0, 1], got {data_args.train_fraction}")
    datasets, label_names, problem_type, skipped = load_data(data_args, seed=training_args.seed)
    pos_weight, class_weight = _loss_weights(model_args, datasets, label_names, problem_type)

    set_seed(training_args.seed)  # a new head (and a preset's whole model) starts from the seed: runs repeat
    model, feature_extractor, source, base_model = build_model(
        model_args, label_names, problem_type, pos_weight, class_weight
    )
    model.config.lead_mask_prob = lead_mask_prob(augmentations)  # > 0: trained lead-agnostic (checkpoints too)
    if problem_type == "regression" and training_args.metric_for_best_model == "macro_auroc":
        training_args.metric_for_best_model, training_args.greater_is_better = "loss", False

    trainer, evaluation = _make_trainer(model, feature_extractor, datasets, augmentations, problem_type,
                                        data_args, training_args)
    if trainer.is_world_process_zero():
        logger.info(_startup_summary(datasets, skipped, label_names, problem_type, source, trainer))
    checkpoint = resolve_checkpoint(training_args.resume_from_checkpoint, training_args.output_dir)
    if checkpoint:
        logger.warning(f"resuming from {checkpoint}")
    trainer.train(resume_from_checkpoint=checkpoint)
    metrics, title = _final_metrics(trainer, evaluation)
    n_skipped = sum(len(s) for s in skipped.values())
    metrics.update({f"{split}_records": _record_count(ds) for split, ds in datasets.items()},
                   skipped_records=n_skipped)
    if trainer.is_world_process_zero():
        _print_metrics(title, metrics)

    card = _finetuned_model_card(model, model_args, data_args, training_args, datasets, label_names, problem_type,
                                 metrics, title, source, base_model, command)
    model.config.pos_weight = pos_weight
    _write_outputs(trainer, training_args, metrics, skipped, n_skipped, card)
    return metrics


def _loss_weights(model_args, datasets, label_names, problem_type):
    """``(pos_weight, class_weight)``: the loss weights of the arguments, ``auto`` from the training labels."""
    train_labels = np.asarray(datasets["train"]["labels"])
    pos_default = class_default = None
    if problem_type == "multi_label_classification":
        positives = train_labels.sum(axis=0)
        negatives = len(train_labels) - positives
        pos_default = np.where(positives > 0, negatives / np.maximum(positives, 1), 1.0)
    elif problem_type == "single_label_classification":
        counts = np.bincount(train_labels.astype(int), minlength=len(label_names)).astype(float)
        class_default = np.where(counts > 0, len(train_labels) / (len(label_names) * np.maximum(counts, 1)), 1.0)
    pos_weight = _weights(model_args.pos_weight, pos_default, len(label_names), "pos_weight") \
        if problem_type == "multi_label_classification" else None
    class_weight = _weights(model_args.class_weight, class_default, len(label_names), "class_weight") \
        if problem_type == "single_label_classification" else None
    return pos_weight, class_weight


def _make_trainer(model, feature_extractor, datasets, augmentations, problem_type, data_args, training_args):
    """``(trainer, evaluation datasets by split)``: the Trainer on the preprocessed splits, its callbacks in place."""
    from .data import ECGTransform, EpochRecords, with_preprocessing
    from .metrics import make_compute_metrics

    # record i of epoch e (the sampler's item e * N + i) gets its random window and augmentations from (seed, e, i):
    # the same with DataLoader workers and after a resume
    train = EpochRecords(datasets["train"], ECGTransform(feature_extractor, window="random", seed=training_args.seed,
                                                         augmentations=augmentations))
    evaluation = {"validation": _evaluation_datasets(datasets["validation"], feature_extractor)}
    if "test" in datasets:
        evaluation["test"] = with_preprocessing(datasets["test"], feature_extractor, window="first")
    callbacks = []
    if data_args.early_stopping_patience and training_args.load_best_model_at_end and \
            training_args.eval_strategy != "no":
        callbacks.append(EarlyStoppingOnPooledMetric(early_stopping_patience=data_args.early_stopping_patience))
    trainer = HuBERTECGTrainer(
        model=model,
        args=training_args,
        train_dataset=train,
        eval_dataset=evaluation["validation"],
        processing_class=feature_extractor,
        compute_metrics=make_compute_metrics(problem_type, data_args.threshold),
        callbacks=callbacks,
    )
    for plain, numeric in ((ProgressCallback, _NumericProgressCallback), (PrinterCallback, _NumericPrinterCallback)):
        if trainer.pop_callback(plain) is not None:  # the Trainer's log lines with numbers as numbers
            trainer.add_callback(numeric)
    return trainer, evaluation


def _finetuned_model_card(model, model_args, data_args, training_args, datasets, label_names, problem_type,
                          metrics, title, source, base_model, command):
    """The model card of the fine-tuned model: its data, evaluation results, licence and command."""
    from ..model_card import EvalResult, card_license, create_model_card
    from .data import parse_fold_splits

    manifests = [data_args.train_csv] if data_args.train_csv else \
        [spec.path for spec in parse_sources(data_args.train_sources)]
    dataset_name = "PTB-XL" if data_args.ptbxl_dir else " + ".join(Path(str(m)).stem for m in manifests)
    eval_results = [
        EvalResult(
            task_type="ecg-classification" if problem_type != "regression" else "ecg-regression",
            dataset_type="ptb-xl" if data_args.ptbxl_dir else "csv",
            dataset_name=dataset_name,
            dataset_config=data_args.label_set if data_args.ptbxl_dir else None,
            dataset_split=split,
            metric_type=metric,
            metric_name=f"{metric.replace('_', ' ')}",
            metric_value=float(metrics[f"{prefix}_{metric}"]),
        )
        for prefix, split in (("eval", "validation"), ("test", "test"))
        for metric in ("macro_auroc", "micro_auroc", "macro_auprc", "macro_f1", "accuracy", "mae", "rmse", "r2",
                       "pearson_r")
        if isinstance(metrics.get(f"{prefix}_{metric}"), (int, float)) and not math.isnan(metrics[f"{prefix}_{metric}"])
    ]
    folds = parse_fold_splits(data_args.ptbxl_folds)
    split_text = (
        f"PTB-XL `{data_args.label_set}` labels, strat_fold {_folds_text(folds['train'])} for training "
        f"({len(datasets['train'])} records), fold {_folds_text(folds['validation'])} for validation and model "
        f"selection ({len(datasets['validation'])} records)"
        + (f", fold {_folds_text(folds['test'])} as a held-out test set ({len(datasets['test'])} records)"
           if "test" in datasets else "")
        if data_args.ptbxl_dir else
        _manifests_text(data_args, datasets)
    )
    if data_args.train_fraction is not None:
        split_text += (f"; the training records are a random {data_args.train_fraction:g} of the training split "
                       f"(seed {training_args.seed})")
    masking = model.config.finetune_mask_time_prob
    return create_model_card(
        model,
        license=card_license(base_model, model_args.model_license),
        title=f"HuBERT-ECG classifier ({', '.join(label_names)})",
        base_model=base_model,
        datasets=["PTB-XL (CC BY 4.0)"] if data_args.ptbxl_dir else [str(m) for m in manifests],
        eval_results=eval_results,
        command=command,
        notes=f"Fine-tuned from {source} on {split_text}, SpecAugment "
        + (f"on ({masking:.0%} of the frames masked per training step)" if masking > 0 else "off")
        + f"; the metrics are those of the {title}. They are at a threshold of {data_args.threshold} where one "
        "applies; the validation split also chose the best checkpoint, so its figures are optimistic.",
    )


def _write_outputs(trainer, training_args, metrics, skipped, n_skipped, card) -> None:
    """None; writes ``metrics.json``, saves (or pushes) the model and its card, and lists the skipped records."""
    out = Path(training_args.output_dir)
    if trainer.is_world_process_zero():
        out.mkdir(parents=True, exist_ok=True)
        listed = [{"split": split, "file": path, "reason": reason}
                  for split, part in skipped.items() for path, reason in part.items]
        (out / "metrics.json").write_text(json.dumps(
            {**{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in metrics.items()},
             "skipped": listed}, indent=2))
    if training_args.push_to_hub:  # saves model, feature extractor and card, then uploads output_dir (no checkpoints)
        trainer.push_to_hub(commit_message="Upload fine-tuned HuBERT-ECG classifier", card=card)
    else:
        trainer.save_model(training_args.output_dir)  # model and feature extractor (the processing_class)
        trainer.create_model_card(card=card)
    if trainer.is_world_process_zero():
        logger.info(_saved_line(out, trainer))
        if n_skipped:
            lines = [f"hubert-ecg finetune: skipped {n_skipped} record(s):"]
            lines += [f"  {split}: {line}" for split, part in skipped.items() for line in part.lines()]
            print("\n".join(lines), file=sys.stderr)


def _manifests_text(data_args, datasets) -> str:
    """The training and validation data of manifests or sources, for the model card."""
    def described(split: str, csv, values) -> str:
        if csv:
            return f"`{csv}` ({len(datasets[split])} records)"
        sources = ", ".join(f"`{s.name}` (`{s.path}`" + (f", probability {s.probability:.2f})" if split == "train"
                                                          else ")") for s in parse_sources(values))
        mixed = f", mixed by interleave_datasets ({data_args.stopping_strategy})" if split == "train" else ""
        return f"the sources {sources}{mixed}: {len(datasets[split])} records"

    return (f"training {described('train', data_args.train_csv, data_args.train_sources)}, validation "
            f"{described('validation', data_args.validation_csv, data_args.validation_sources)}")


def _record_count(dataset) -> int:
    """The records of a split: its distinct ``record_name`` values (a training mix of sources draws some records
    more than once an epoch, or leaves some out)."""
    if "record_name" in (dataset.column_names or []):
        return len(set(dataset["record_name"]))
    return len(dataset)


def _startup_summary(datasets, skipped, label_names, problem_type, source, trainer) -> str:
    """The lines logged before training: records read per split, labels, problem type, initialisation, device,
    precision and trainable parameters."""
    model, args = trainer.model, trainer.args
    def counted(split, ds):
        count = _record_count(ds)
        return (f"{split} {count}" + (f" ({len(ds)} draws per epoch, mixed)" if len(ds) != count else "")
                + (f" ({len(skipped[split])} skipped, listed at the end)" if len(skipped[split]) else ""))

    read = ", ".join(counted(split, ds) for split, ds in datasets.items())
    names = ", ".join(label_names[:12]) + (f", ... ({len(label_names)} in all)" if len(label_names) > 12 else "")
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    precision = "bf16 mixed precision" if args.bf16 else "fp16 mixed precision" if args.fp16 else "fp32"
    return "\n".join([
        "hubert-ecg finetune",
        f"  records read: {read}",
        f"  labels ({len(label_names)}): {names}",
        f"  problem type: {problem_type}",
        f"  initialisation: {source}",
        f"  device: {args.device}, precision: {precision}",
        f"  trainable parameters: {trainable:,} of {total:,}",
        f"  output: {args.output_dir}",
    ])


def _evaluation_datasets(records, feature_extractor):
    """The first 5 s of every record, preprocessed on access; with a ``source`` column, a dict: all the records under
    :data:`~hubert_ecg.training.trainer.POOLED` (``eval_...``, the metrics that choose the model) and each source's
    under its name (``eval_NAME_...``)."""
    from .data import with_preprocessing

    pooled = with_preprocessing(records, feature_extractor, window="first")
    if "source" not in records.column_names:
        return pooled
    sources = np.asarray(records["source"])
    return {POOLED: pooled, **{
        str(name): with_preprocessing(records.select(np.flatnonzero(sources == name)), feature_extractor,
                                      window="first")
        for name in dict.fromkeys(sources.tolist())}}


def _final_metrics(trainer: HuBERTECGTrainer, evaluation: dict) -> tuple[dict, str]:
    """The metrics of the model that is saved, and a title naming the epoch and step it comes from.

    With ``load_best_model_at_end`` the saved model is the best checkpoint: its validation metrics are the ones logged
    when it was evaluated during training (first windows, so the same numbers), labelled with its epoch and step;
    otherwise the last model is evaluated. A test split is scored with ``Trainer.predict`` (no log line that would
    carry the last epoch). With several validation sources, the best checkpoint's evaluation has one log entry per
    source besides the pooled one: their metrics are merged."""
    state = trainer.state
    best_step = state.best_global_step if trainer.args.load_best_model_at_end and state.best_model_checkpoint else None
    entries = [e for e in state.log_history if best_step and e.get("step") == best_step
               and any(k.startswith("eval_") for k in e)]
    if any("eval_loss" in e for e in entries):
        metrics = {k: v for e in entries for k, v in e.items() if k.startswith("eval_") and isinstance(v, (int, float))}
        epoch = float(next(e for e in entries if "eval_loss" in e)["epoch"])
        step, which = int(best_step), "best checkpoint"
    else:
        metrics = {k: v for k, v in trainer.evaluate(evaluation["validation"], metric_key_prefix="eval").items()
                   if k.startswith("eval_") and isinstance(v, (int, float))}
        epoch, step, which = float(state.epoch or 0.0), int(state.global_step), "last model"
    if "test" in evaluation:
        test = trainer.predict(evaluation["test"], metric_key_prefix="test").metrics
        metrics.update({k: v for k, v in test.items() if isinstance(v, (int, float))})
    metrics = {"epoch": round(epoch, 4), "step": step, **metrics}
    title = f"{which} (epoch {epoch:g}, step {step} of {state.global_step})"
    return metrics, title


def _print_metrics(title: str, metrics: dict) -> None:
    """The final block on stdout, as ``Trainer.log_metrics`` prints it, under a title naming its epoch."""
    from transformers.trainer_pt_utils import metrics_format

    shown = metrics_format({k: v for k, v in metrics.items() if not k.endswith("_per_second")})
    width = max(len(k) for k in shown)
    value_width = max(len(str(v)) for v in shown.values())
    print(f"***** final metrics: {title} *****")
    for key, value in shown.items():
        print(f"  {key:<{width}} = {value!s:>{value_width}}")


def _saved_line(out: Path, trainer: HuBERTECGTrainer) -> str:
    """``saved to DIR`` with what is in it and the checkpoints kept."""
    files = [name for name in ("model.safetensors", "config.json", "preprocessor_config.json", "README.md",
                               "metrics.json") if (out / name).is_file()]
    best = Path(trainer.state.best_model_checkpoint).name if trainer.state.best_model_checkpoint else None
    kept = [path.name for path in checkpoints(out)]
    text = ", ".join(
        name + (" (best, last)" if name == best and name == kept[-1] else " (best)" if name == best
                else " (last)" if name == kept[-1] else "")
        for name in kept
    )
    line = f"saved to {out}: {', '.join(files)}"
    return line + (f"; checkpoints kept: {text}" if kept else "")


def _numbers(logs: dict) -> dict:
    """Log values as numbers (floats to 4 significant digits), not the strings transformers' callbacks print."""
    return {k: (float(f"{v:.4g}") if isinstance(v, float) else v) for k, v in logs.items() if k != "total_flos"}


class _NumericProgressCallback(ProgressCallback):
    """transformers' progress bars, with the log lines as JSON numbers."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        if state.is_world_process_zero and self.training_bar is not None:
            self.training_bar.write(json.dumps(_numbers(logs or {})))


class _NumericPrinterCallback(PrinterCallback):
    """transformers' printer (``--disable_tqdm``), with the log lines as JSON numbers."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        if state.is_local_process_zero and logs is not None:
            print(json.dumps(_numbers(logs)))
