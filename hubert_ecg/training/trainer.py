"""The one ``Trainer`` of ``hubert-ecg finetune`` and ``hubert-ecg pretrain``, its sampler and its checkpoints.

:class:`HuBERTECGTrainer` is transformers' ``Trainer`` with everything it needs given to its constructor (the
evaluation collator, the pretraining objective, the names of the data sources); nothing is set on it afterwards.

* The epoch reaches the data only through the training sampler's ``set_epoch`` (:class:`EpochShuffleSampler`, which
  the Trainer calls at every epoch): item ``epoch * len(dataset) + position`` names both the record and the epoch, so
  the random windows, masks and augmentations seeded from it are the same with or without DataLoader workers
  (persistent or not) and after a resume.
* Metrics per data source come from ``Trainer.evaluate`` with a dict of evaluation datasets, one prefix each: the
  entry under ``""`` (:data:`POOLED`) is scored as ``eval_...`` (the metrics that choose the model), an entry
  ``NAME`` as ``eval_NAME_...``, as transformers names them (:class:`EarlyStoppingOnPooledMetric` watches the
  pooled entry only).
* One rule finds the checkpoint to resume from (:func:`resolve_checkpoint`): the highest ``checkpoint-N`` that is
  complete (:func:`is_complete_checkpoint`), so a run killed while writing a checkpoint resumes from the one before.
* Checkpoints are rotated by the Trainer itself (``save_total_limit`` with ``load_best_model_at_end``: the best and
  the last are always kept).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Sequence

import torch
from transformers import EarlyStoppingCallback, Trainer
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR
from transformers.utils import logging

from .objectives import Objective, contrastive_loss

logger = logging.get_logger(__name__)

__all__ = [
    "POOLED",
    "EpochShuffleSampler",
    "EarlyStoppingOnPooledMetric",
    "HuBERTECGTrainer",
    "checkpoints",
    "is_complete_checkpoint",
    "last_checkpoint",
    "resolve_checkpoint",
]

POOLED = ""  # the key of the evaluation dataset scored with the bare prefix (eval_loss, eval_macro_auroc, ...)
TRAINER_STATE = "trainer_state.json"
_WEIGHTS = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")


class EpochShuffleSampler(torch.utils.data.Sampler):
    """Epoch ``e`` yields ``e * num_samples + p`` for a permutation ``p`` of ``range(num_samples)`` seeded by
    ``seed + e`` (``torch.randperm``: the order of transformers' seedable random sampler): the same order on every
    process and after a resume. The Trainer sets the epoch (``set_epoch``) before each epoch; the dataset reads the
    epoch back from the index (``index // num_samples``), in whichever process or DataLoader worker loads it.

    Args:
        num_samples: the length of the training dataset (> 0).
        seed: the data seed.
    """

    def __init__(self, num_samples: int, seed: int):
        self.num_samples = int(num_samples)
        self.seed = int(seed)
        self.epoch = 0

    def set_epoch(self, epoch: int):
        """The epoch whose permutation (seeded by ``seed + epoch``) the next iteration yields."""
        self.epoch = int(epoch)

    def __len__(self):
        return self.num_samples

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        order = torch.randperm(self.num_samples, generator=generator)
        yield from (order + self.epoch * self.num_samples).tolist()


def checkpoints(output_dir: str | os.PathLike) -> list[Path]:
    """The Trainer's ``checkpoint-N`` folders in ``output_dir`` (complete or not), by step; empty when there is none
    or ``output_dir`` does not exist."""
    found = [p for p in Path(output_dir).glob(f"{PREFIX_CHECKPOINT_DIR}-*")
             if p.is_dir() and p.name.rsplit("-", 1)[-1].isdigit()]
    return sorted(found, key=lambda p: int(p.name.rsplit("-", 1)[-1]))


def is_complete_checkpoint(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a checkpoint the Trainer finished writing: the model weights are there and
    ``trainer_state.json`` (written after the weights, optimizer, scheduler and random states) parses and names the
    folder's step. A process killed while writing a checkpoint (``kill -9``) leaves one that is not complete."""
    path = Path(path)
    state_file = path / TRAINER_STATE
    if not state_file.is_file() or not any((path / name).is_file() for name in _WEIGHTS):
        return False
    try:
        state = json.loads(state_file.read_text())
    except (OSError, ValueError):
        return False
    step = path.name.rsplit("-", 1)[-1]
    return not step.isdigit() or state.get("global_step") == int(step)


def last_checkpoint(output_dir: str | os.PathLike) -> str | None:
    """The complete ``checkpoint-N`` folder of ``output_dir`` (:func:`is_complete_checkpoint`) with the highest step,
    or None."""
    complete = [path for path in checkpoints(output_dir) if is_complete_checkpoint(path)]
    return str(complete[-1]) if complete else None


def resolve_checkpoint(resume: str | None, output_dir: str | os.PathLike) -> str | None:
    """The checkpoint ``--resume_from_checkpoint`` names: None for None / ``none`` / ``no`` / ``false`` (a fresh
    run), the last complete checkpoint of ``output_dir`` for ``auto`` (None when there is none yet, so the same
    command starts or resumes a run), else the folder given.

    Raises:
        ValueError: for a folder that is not a complete checkpoint (:func:`is_complete_checkpoint`).
    """
    if resume is None or str(resume).strip().lower() in ("", "none", "no", "false"):
        return None
    if str(resume) == "auto":
        return last_checkpoint(output_dir)
    if not is_complete_checkpoint(resume):
        raise ValueError(f"--resume_from_checkpoint {resume} is not a complete checkpoint folder (model weights and "
                         f"a {TRAINER_STATE} of its step)")
    return str(resume)


class EarlyStoppingOnPooledMetric(EarlyStoppingCallback):
    """transformers' early stopping, on the pooled evaluation only: the evaluations of single sources (whose metrics
    are ``eval_NAME_...``) neither count nor warn that the metric is missing."""

    def on_evaluate(self, args, state, control, metrics, **kwargs):
        name = args.metric_for_best_model
        if (name if name.startswith("eval_") else f"eval_{name}") not in metrics:
            return
        super().on_evaluate(args, state, control, metrics, **kwargs)


class HuBERTECGTrainer(Trainer):
    """transformers' ``Trainer`` for fine-tuning and pretraining HuBERT-ECG.

    The differences from the plain Trainer:

    * training order: :class:`EpochShuffleSampler`, whose items ``epoch * len(train_dataset) + position`` carry the
      epoch, so the training dataset must accept them (:class:`~hubert_ecg.training.data.EpochRecords`,
      :class:`~hubert_ecg.training.pretrain.WindowLabelDataset`, :class:`~hubert_ecg.training.pretrain.WindowPairDataset`);
      a dataset without length (:class:`~hubert_ecg.training.sources.StreamingWindows`, already split across the
      processes) gets a plain DataLoader that accelerate does not shard again;
    * evaluation and test batches are collated by ``eval_data_collator`` (e.g. the training collator without its
      augmentations);
    * ``eval_dataset`` may be a dict (:meth:`evaluate`): the entry under :data:`POOLED` gives ``eval_...``, every
      other ``eval_NAME_...``;
    * with an ``objective`` (pretraining) the loss is the objective's (:meth:`compute_loss`): the model's
      masked-prediction loss as it is (a mean over each batch's masked frames, so ``num_items_in_batch`` is not
      passed), the contrastive loss of the gathered embeddings, or their weighted sum; the parts are logged
      (``hubert_loss``, ``cmsc_loss`` ...); with ``source_names`` every source's mean per-sample loss is logged as
      ``loss/<source>`` and ``eval_loss/<source>``. Without an objective (fine-tuning) the loss is the model's;
    * ``create_model_card(card=...)`` (``push_to_hub(card=...)`` passes it on) writes the package's card
      (:mod:`hubert_ecg.model_card`) as ``README.md`` instead of transformers' generic card.

    Args:
        *args, **kwargs: those of ``transformers.Trainer``; ``data_collator`` collates the training batches.
        eval_data_collator: collates evaluation and test batches (default: ``data_collator``).
        objective: the pretraining objective (:class:`~hubert_ecg.training.objectives.Objective`); None for
            fine-tuning.
        source_names: the names of the sources whose batches carry ``source_ids`` (index into this list), for the
            per-source losses of pretraining.
    """

    def __init__(self, *args, eval_data_collator=None, objective: Objective | None = None,
                 source_names: Sequence[str] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        if self.args.dataloader_pin_memory and self.args.device.type == "cpu":
            # pinned memory speeds up host-to-GPU copies only; on the CPU every DataLoader would warn that it is unused
            self.args.dataloader_pin_memory = False
        if self.args.disable_tqdm:  # every progress bar: transformers' (writing the model) and datasets' (mapping)
            import datasets
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()
            datasets.disable_progress_bars()
        self.eval_data_collator = eval_data_collator if eval_data_collator is not None else self.data_collator
        self.objective = objective
        if objective is not None:
            self.model_accepts_loss_kwargs = False
        self.source_names = list(source_names or [])
        self._loss_parts: dict[str, list[torch.Tensor]] = {}
        self._source_losses: dict[str, torch.Tensor] = {}  # "train" / "eval": (2, num_sources) sums and counts

    # ---------------------------------------------------------------------------------------------------- data

    def _get_train_sampler(self, train_dataset=None):
        dataset = train_dataset if train_dataset is not None else self.train_dataset
        seed = self.args.data_seed if self.args.data_seed is not None else self.args.seed
        return EpochShuffleSampler(len(dataset), seed)

    def get_train_dataloader(self):
        """The Trainer's training DataLoader (:class:`EpochShuffleSampler` order); a
        :class:`~hubert_ecg.training.sources.StreamingWindows` (already split across the processes) gets a plain
        DataLoader in the main process that accelerate does not shard again."""
        from .sources import StreamingWindows

        if isinstance(self.train_dataset, StreamingWindows):
            return torch.utils.data.DataLoader(self.train_dataset, batch_size=self._train_batch_size,
                                               collate_fn=self.data_collator, num_workers=0,
                                               pin_memory=self.args.dataloader_pin_memory)
        return super().get_train_dataloader()

    def get_eval_dataloader(self, eval_dataset=None):
        """Evaluation batches of ``eval_dataset`` (a dataset, the name of an entry of the Trainer's dict, or None: the
        Trainer's ``eval_dataset``), collated by ``eval_data_collator``. With persistent workers the DataLoader of
        each of the Trainer's own datasets is kept for the next evaluation, as the Trainer does; one given here is
        not.

        Raises:
            ValueError: when there is no evaluation dataset.
        """
        own = eval_dataset is None or isinstance(eval_dataset, str)
        key = eval_dataset if isinstance(eval_dataset, str) else "eval"
        cached = getattr(self, "_eval_dataloaders", {})
        if own and self.args.dataloader_persistent_workers and key in cached:
            return cached[key]
        if isinstance(eval_dataset, str):
            eval_dataset = self.eval_dataset[eval_dataset]
        elif eval_dataset is None:
            eval_dataset = self.eval_dataset
        if eval_dataset is None:
            raise ValueError("Trainer: evaluation requires an eval_dataset.")
        loader = self._evaluation_dataloader(eval_dataset, "Evaluation")
        if own and self.args.dataloader_persistent_workers:
            self._eval_dataloaders = {**cached, key: loader}
        return loader

    def get_test_dataloader(self, test_dataset):
        """Test batches, collated by ``eval_data_collator``."""
        return self._evaluation_dataloader(test_dataset, "test")

    def _evaluation_dataloader(self, dataset, description: str):
        import datasets

        collator = self.eval_data_collator
        if isinstance(dataset, datasets.Dataset):
            dataset = self._remove_unused_columns(dataset, description=description)
        else:
            collator = self._get_collator_with_removed_columns(collator, description=description)
        params = dict(batch_size=self.args.eval_batch_size, collate_fn=collator,
                      num_workers=self.args.dataloader_num_workers, pin_memory=self.args.dataloader_pin_memory,
                      persistent_workers=self.args.dataloader_persistent_workers,
                      prefetch_factor=self.args.dataloader_prefetch_factor,
                      multiprocessing_context=self.args.dataloader_multiprocessing_context,
                      in_order=self.args.dataloader_in_order)
        if not isinstance(dataset, torch.utils.data.IterableDataset):
            params.update(sampler=self._get_eval_sampler(dataset), drop_last=self.args.dataloader_drop_last)
        return self.accelerator.prepare(torch.utils.data.DataLoader(dataset, **params))

    # ---------------------------------------------------------------------------------------------- evaluation

    def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix: str = "eval") -> dict[str, float]:
        """The Trainer's evaluation; a dict of datasets (given, or the Trainer's ``eval_dataset``) is evaluated entry
        by entry, the entry under :data:`POOLED` (``""``) with ``metric_key_prefix`` alone (``eval_loss``, the
        metrics that choose the model), every other entry ``NAME`` with ``{metric_key_prefix}_NAME`` (one log line
        and one ``on_evaluate`` each).

        Returns:
            the metrics of every entry in one dict.
        """
        override = eval_dataset is not None
        datasets = eval_dataset if override else self.eval_dataset
        if not isinstance(datasets, dict):
            return super().evaluate(eval_dataset, ignore_keys=ignore_keys, metric_key_prefix=metric_key_prefix)
        metrics = {}
        for name, dataset in datasets.items():
            prefix = metric_key_prefix if name == POOLED else f"{metric_key_prefix}_{name}"
            metrics.update(super().evaluate(dataset if override else name, ignore_keys=ignore_keys,
                                            metric_key_prefix=prefix))
        return metrics

    def evaluation_loop(self, dataloader, description, prediction_loss_only=None, ignore_keys=None,
                        metric_key_prefix: str = "eval"):
        """The Trainer's evaluation loop; with several sources its metrics get ``<prefix>_loss/<source>``."""
        self._source_losses.pop("eval", None)
        output = super().evaluation_loop(dataloader, description, prediction_loss_only=prediction_loss_only,
                                         ignore_keys=ignore_keys, metric_key_prefix=metric_key_prefix)
        output.metrics.update(self._source_means("eval", f"{metric_key_prefix}_loss/"))
        return output

    # ---------------------------------------------------------------------------------------------------- loss

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        """The model's loss without an ``objective``; with one, the objective's
        (:class:`~hubert_ecg.training.objectives.Objective`): the model's masked-prediction loss for ``hubert``; for
        the contrastive objectives, the contrastive loss of the ``contrastive_embeddings`` gathered over processes
        (batch key ``contrastive_groups``), plus ``contrastive_weight`` times it to the masked-prediction loss for
        ``hubert+...``. The parts are logged (``hubert_loss``, ``cmsc_loss`` ...).

        With several sources (batch key ``source_ids``), every sample's loss
        (:func:`~hubert_ecg.training.objectives.per_sample_masked_loss`, plus ``contrastive_weight`` times its
        :func:`~hubert_ecg.training.objectives.per_sample_contrastive_loss` share) is added to its source's tally,
        logged as ``loss/<source>`` (training) and ``eval_loss/<source>`` (evaluation)."""
        if self.objective is None:
            return super().compute_loss(model, inputs, return_outputs=return_outputs,
                                        num_items_in_batch=num_items_in_batch)
        inputs = dict(inputs)
        source_ids = inputs.pop("source_ids", None)
        if self.objective.contrastive is None:
            if source_ids is None:
                return super().compute_loss(model, inputs, return_outputs=return_outputs,
                                            num_items_in_batch=num_items_in_batch)
            loss, outputs = super().compute_loss(model, inputs, return_outputs=True)
            self._add_source_losses(model, source_ids, self._per_sample_hubert(model, inputs, outputs, 1))
            return (loss, outputs) if return_outputs else loss
        from .objectives import per_sample_contrastive_loss

        groups = inputs.pop("contrastive_groups")
        outputs = model(**inputs)
        temperature = self.accelerator.unwrap_model(model).config.contrastive_temperature
        contrastive = contrastive_loss(self.objective.contrastive, outputs.contrastive_embeddings, groups,
                                       temperature)
        loss = self.objective.combine(outputs.loss, contrastive)
        if model.training:
            if self.objective.hubert:
                self._loss_parts.setdefault("hubert_loss", []).append(outputs.loss.detach().float())
            self._loss_parts.setdefault(f"{self.objective.contrastive}_loss", []).append(contrastive.detach().float())
        if source_ids is not None:
            shares = per_sample_contrastive_loss(self.objective.contrastive, outputs.contrastive_embeddings, groups,
                                                 temperature)
            hubert = self._per_sample_hubert(model, inputs, outputs, 2) if self.objective.hubert else None
            self._add_source_losses(model, source_ids, self.objective.combine(hubert, shares))
        return (loss, outputs) if return_outputs else loss

    def _per_sample_hubert(self, model, inputs, outputs, segments: int) -> torch.Tensor:
        """Per-sample masked-prediction losses; with ``segments=2`` (contrastive batches of 2B segments), the mean
        of each sample's two segments."""
        from .objectives import per_sample_masked_loss

        config = self.accelerator.unwrap_model(model).config
        frame_mask = None
        if inputs.get("attention_mask") is not None:
            frame_mask = self.accelerator.unwrap_model(model).frame_mask(inputs["attention_mask"],
                                                                         outputs.logits[0].shape[1])
        losses = per_sample_masked_loss(outputs.logits, inputs["labels"], outputs.mask_time_indices,
                                        config.unmasked_loss_weight, frame_mask)
        return losses.reshape(segments, -1).mean(0)

    def _add_source_losses(self, model, source_ids: torch.Tensor, losses: torch.Tensor) -> None:
        key = "train" if model.training else "eval"
        tally = self._source_losses.get(key)
        if tally is None:
            tally = self._source_losses[key] = torch.zeros(2, len(self.source_names), dtype=torch.float64,
                                                           device=losses.device)
        ids = source_ids.to(losses.device).long()
        tally[0].index_add_(0, ids, losses.detach().double())
        tally[1].index_add_(0, ids, torch.ones_like(losses, dtype=torch.float64))

    def _source_means(self, key: str, prefix: str) -> dict[str, float]:
        """``{prefix<source>: mean loss}`` of the tally ``key`` since its last reset, summed over processes (every
        process calls it at the same point), then reset; sources without a sample are left out."""
        if not self.source_names:
            return {}
        tally = self._source_losses.pop(key, None)
        if tally is None:
            tally = torch.zeros(2, len(self.source_names), dtype=torch.float64, device=self.args.device)
        if self.args.world_size > 1:
            tally = self.accelerator.reduce(tally.to(self.args.device), reduction="sum")
        sums, counts = tally.cpu().tolist()
        return {f"{prefix}{name}": s / c for name, s, c in zip(self.source_names, sums, counts) if c > 0}

    def log(self, logs: dict[str, float], *args, **kwargs) -> None:
        """The Trainer's log, with the loss parts added to a training log: their means since the last one, averaged
        over processes like ``loss`` (so that ``loss = hubert_loss + contrastive_weight * cmsc_loss``), and with
        several sources ``loss/<source>``: the mean per-sample loss of that source's samples since the last log, over
        all processes."""
        if "loss" in logs and self._loss_parts:
            names = sorted(self._loss_parts)
            means = torch.stack([torch.stack(self._loss_parts[k]).mean() for k in names])
            if self.args.world_size > 1:  # every process logs at the same steps
                means = self.accelerator.reduce(means, reduction="mean")
            logs = {**logs, **dict(zip(names, means.tolist()))}
            self._loss_parts = {}
        if "loss" in logs and self.source_names:
            logs = {**logs, **self._source_means("train", "loss/")}
        super().log(logs, *args, **kwargs)

    # ------------------------------------------------------------------------------------------------- outputs

    def create_model_card(self, card: Any = None, **kwargs) -> None:
        """Write ``card`` (a ``huggingface_hub.ModelCard`` from :mod:`hubert_ecg.model_card`) as ``README.md`` in the
        output directory instead of transformers' generic card; nothing without one. ``Trainer.push_to_hub(card=...)``
        calls this before the upload."""
        if self.is_world_process_zero() and card is not None:
            card.save(Path(self.args.output_dir) / "README.md")
