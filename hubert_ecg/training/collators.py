"""Data collators for the training commands.

:class:`DataCollatorForECGClassification` cuts a random 5 s window from each raw record of a fine-tuning batch and
preprocesses it with the model's feature extractor (the ``Trainer``'s ``data_collator`` in a user's own script, and
the transform behind ``hubert-ecg finetune``).

:class:`DataCollatorForContrastivePretraining` makes the two segments (CMSC: two adjacent windows of a record) or
two augmented views (SimCLR) of every sample of a contrastive pretraining batch (:mod:`~hubert_ecg.training.objectives`).

:class:`DataCollatorForHuBERTECGPretraining` does for HuBERT-ECG what transformers'
``DataCollatorForWav2Vec2Pretraining`` (``examples/pytorch/speech-pretraining/run_wav2vec2_pretraining_no_trainer.py``)
does for wav2vec 2.0: it stacks the windows of a batch and draws the time mask of masked prediction with
transformers' ``_compute_mask_indices``, so that the model receives ``mask_time_indices`` and never draws a mask
itself. Unlike the wav2vec 2.0 example, every sample's mask comes from its own random stream, seeded by
``(seed, sample_index)``: the mask of a window does not depend on its batch-mates, on the DataLoader worker that
collates it, or on a global random state, which is what makes a resumed run see exactly the masks (and hence the
losses) of an uninterrupted one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch

from ..leads import DEFAULT_MISSING_LEADS, check_missing_leads
from ..modeling import compute_time_mask

__all__ = [
    "DataCollatorForContrastivePretraining",
    "DataCollatorForHuBERTECGPretraining",
    "DataCollatorForECGClassification",
    "default_simclr_chain",
    "parse_augmentations",
    "lead_mask_prob",
]


def parse_augmentations(value, where: str = "--augmentations"):
    """The augmentation chain of a training command, on the model view (after the feature extractor, 100 Hz).

    Args:
        value: None, ``""`` or ``"none"`` (no augmentation); ``"default"``
            (:func:`hubert_ecg.augmentations.default_finetuning_chain`); a JSON string; or a list / mapping as
            :func:`hubert_ecg.augmentations.from_config` takes it (from a YAML config), e.g.
            ``[{"name": "lead_mask", "mask_prob": 0.5}, {"name": "gaussian_noise", "snr_db": [20, 30], "p": 0.5}]``.
        where: the argument's name, for messages.

    Returns:
        A :class:`hubert_ecg.augmentations.Compose` at ``sampling_rate=100``, or None.

    Raises:
        ValueError: for invalid JSON or an invalid entry (the message names it, e.g. ``augmentations[1]``).
    """
    import json

    from ..augmentations import Transform, default_finetuning_chain, from_config

    if value is None or isinstance(value, Transform):
        return value
    if isinstance(value, str):
        text = value.strip()
        if text.lower() in ("", "none", "null"):
            return None
        if text.lower() == "default":
            return default_finetuning_chain(sampling_rate=100)
        try:
            value = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(f"{where} must be 'default', 'none' or a JSON list of transforms: {error}") from None
    try:
        return from_config(value, sampling_rate=100)
    except ValueError as error:  # from_config names the entry
        raise ValueError(f"{where}: {error}") from None


def lead_mask_prob(chain) -> float:
    """The per-lead masking probability of the first :class:`~hubert_ecg.augmentations.LeadMask` in ``chain``
    (searched through ``Compose`` / ``RandomApply`` / ``OneOf``), 0.0 when there is none (or no chain): the value a
    trained model records as ``config.lead_mask_prob``."""
    from ..augmentations import LeadMask

    if chain is None:
        return 0.0
    if isinstance(chain, LeadMask):
        return float(chain.mask_prob) if chain.p > 0 else 0.0
    for child in getattr(chain, "transforms", []) or []:
        found = lead_mask_prob(child)
        if found > 0:
            return found
    return 0.0


def default_simclr_chain(sampling_rate: float = 100.0):
    """The default augmentations of SimCLR's two views, on the model view (after the feature extractor, [-1, 1]
    units, 100 Hz).

    Each view: a scale of 0.8-1.2 per lead (p 0.8), Gaussian noise at 15-30 dB (p 0.8), baseline wander of up to
    0.1 (p 0.5), a time shift of up to 0.25 s (p 0.5), a time stretch by 0.9-1.1 (p 0.5) and two zeroed spans of up
    to 0.5 s (p 0.5): the families of transformations that Mehari & Strodthoff (2022, "Self-supervised
    representation learning from 12-lead ECG data") and the TILES-ECG SimCLR setting found to help (noise, scale,
    time masking / cut-out), at strengths a 5 s window survives. No lead masking: the model would be recorded as
    lead-agnostic (``config.lead_mask_prob``); add a ``lead_mask`` entry to the chain for that.

    Returns:
        a :class:`hubert_ecg.augmentations.Compose`.
    """
    from ..augmentations import from_config

    return from_config(
        [
            {"name": "amplitude_scale", "p": 0.8, "min_scale": 0.8, "max_scale": 1.2, "per_lead": True},
            {"name": "gaussian_noise", "p": 0.8, "snr_db": [15, 30]},
            {"name": "baseline_wander", "p": 0.5, "amplitude": 0.1},
            {"name": "time_shift", "p": 0.5, "max_seconds": 0.25},
            {"name": "time_scale", "p": 0.5, "min_factor": 0.9, "max_factor": 1.1},
            {"name": "time_mask", "p": 0.5, "max_seconds": 0.5, "num_masks": 2},
        ],
        sampling_rate=sampling_rate,
    )


def _augment(chain, input_values: torch.Tensor, features: Sequence[dict], seed, epoch: int) -> torch.Tensor:
    """Apply ``chain`` to the collated ``(batch, samples)`` model view, sample ``i`` seeded from
    ``(seed, epoch, features[i]["sample_index"])`` (torch's global generator when a sample has none)."""
    index = [f.get("sample_index") for f in features]
    index = None if any(i is None for i in index) else [int(i) for i in index]
    with torch.no_grad():
        out = chain(input_values, sample_index=index, epoch=int(epoch), seed=None if seed is None else int(seed))
    return out.to(input_values.dtype).contiguous()


@dataclass
class DataCollatorForHuBERTECGPretraining:
    """Stack pretraining samples into a batch and draw each sample's time mask from ``(seed, sample_index)``.

    Each feature is a mapping with

    * ``input_values``: float (samples,) model input, e.g. 6000 values (12 leads x 5 s at 100 Hz);
    * ``labels``: int (num_codebooks, frames) or (frames,) cluster ids, -100 for frames to ignore (optional: without
      labels the batch has none, e.g. for feature extraction);
    * ``sample_index``: int >= 0, the sample's position in the stream of samples the run sees (for training:
      ``epoch * num_training_windows + row``, see :class:`~hubert_ecg.training.pretrain.WindowLabelDataset`);
      it seeds the sample's mask;
    * ``attention_mask``: optional int (samples,), 1 for real samples and 0 for right padding; padded frames are
      never masked;
    * ``source_id`` (optional): int, the sample's source (multi-source pretraining,
      :mod:`~hubert_ecg.training.sources`), passed through as ``source_ids`` for the per-source losses.

    The mask follows the model's configuration: ``config.mask_time_prob`` (0.33 as released),
    ``config.mask_time_length`` (1) and ``config.mask_time_min_masks`` (2), on the frame grid of
    ``config.num_frames(samples)`` (93 frames for 6000 samples).

    Args:
        config: the :class:`~hubert_ecg.HuBERTECGConfig` of the model being trained.
        seed: the run's seed; two collators with the same seed give the same mask to the same ``sample_index``.
        augmentations: optional :mod:`hubert_ecg.augmentations` chain (see :func:`parse_augmentations`) applied to
            the stacked ``input_values`` (the 100 Hz model view, [-1, 1] units), each sample seeded from
            ``(seed, 0, sample_index)`` (``sample_index`` already names the epoch). Give it to the training
            collator only; the evaluation collator must have none (``hubert-ecg pretrain`` gives the Trainer one).

    Returns (``__call__``):
        dict of tensors: ``input_values`` float32 (batch, samples), ``mask_time_indices`` bool (batch, frames),
        ``labels`` int64 (batch, num_codebooks, frames) when the features have labels, ``attention_mask`` int64
        (batch, samples) when they have one, ``source_ids`` int64 (batch,) when they have a ``source_id``.

    Raises:
        ValueError: for an empty batch, windows of different lengths, a missing or negative ``sample_index``, or
            labels whose frame count differs from ``config.num_frames(samples)``.
    """

    config: Any
    seed: int = 0
    augmentations: Any = None

    def num_frames(self, num_samples: int) -> int:
        """Frames of the model for ``num_samples`` input samples (the config's frame geometry)."""
        return int(self.config.num_frames(num_samples))

    def sample_mask(self, sample_index: int, num_frames: int, valid_frames: int | None = None) -> np.ndarray:
        """The time mask of one sample: bool (num_frames,), drawn by ``_compute_mask_indices`` from a random stream
        seeded by ``(seed, sample_index)``. The global numpy random state is left as it was.

        Args:
            sample_index: the sample's index in the run's sample stream (>= 0).
            num_frames: frames of the (padded) window.
            valid_frames: frames that are not padding (default: all); masks fall inside them.
        """
        if self.config.mask_time_prob <= 0 or num_frames == 0:
            return np.zeros(num_frames, dtype=bool)
        key = int(sample_index)
        if key < 0:
            raise ValueError(f"`sample_index` must be a non-negative integer, got {sample_index}")
        frame_mask = None
        if valid_frames is not None and valid_frames < num_frames:
            frame_mask = torch.zeros(1, num_frames, dtype=torch.bool)
            frame_mask[0, :valid_frames] = True
        state = np.random.get_state()
        try:
            # transformers' `_compute_mask_indices` draws from numpy's global generator: seed it for this sample only
            np.random.seed([int(self.seed) & 0xFFFFFFFF, key & 0xFFFFFFFF, key >> 32])
            mask = compute_time_mask(
                1,
                num_frames,
                self.config.mask_time_prob,
                self.config.mask_time_length,
                self.config.mask_time_min_masks,
                frame_mask=frame_mask,
            )
        finally:
            np.random.set_state(state)
        return mask[0].numpy()

    def __call__(self, features: Sequence[dict]) -> dict[str, torch.Tensor]:
        if len(features) == 0:
            raise ValueError("the pretraining collator got an empty batch")
        values = [np.asarray(f["input_values"], dtype=np.float32) for f in features]
        lengths = {v.shape for v in values}
        if len(lengths) != 1 or values[0].ndim != 1:
            raise ValueError(
                f"`input_values` must be 1-D windows of one length (pad them and pass `attention_mask`), got shapes "
                f"{sorted(lengths)}"
            )
        num_samples = values[0].shape[0]
        frames = self.num_frames(num_samples)
        batch = {"input_values": torch.from_numpy(np.stack(values))}

        valid = [None] * len(features)
        if "attention_mask" in features[0]:
            attention = np.stack([np.asarray(f["attention_mask"], dtype=np.int64) for f in features])
            batch["attention_mask"] = torch.from_numpy(attention)
            valid = [self.num_frames(int(row.sum())) for row in attention]

        masks = []
        for feature, valid_frames in zip(features, valid):
            if feature.get("sample_index") is None:
                raise ValueError(
                    "every pretraining sample needs a `sample_index` (its position in the run's sample stream) to "
                    "seed its mask; see WindowLabelDataset"
                )
            masks.append(self.sample_mask(feature["sample_index"], frames, valid_frames))
        batch["mask_time_indices"] = torch.from_numpy(np.stack(masks))
        if self.augmentations is not None:
            batch["input_values"] = _augment(self.augmentations, batch["input_values"], features, self.seed, 0)

        if features[0].get("labels") is not None:
            labels = np.stack([np.asarray(f["labels"], dtype=np.int64) for f in features])
            if labels.ndim == 2:
                labels = labels[:, None, :]
            if labels.shape[-1] != frames:
                raise ValueError(
                    f"labels have {labels.shape[-1]} frames per window but the model gives {frames} for {num_samples} "
                    "samples; cluster with the same feature encoder geometry (config.num_frames)"
                )
            batch["labels"] = torch.from_numpy(labels)
        if features[0].get("source_id") is not None:
            batch["source_ids"] = torch.as_tensor([int(f["source_id"]) for f in features], dtype=torch.int64)
        return batch


@dataclass
class DataCollatorForContrastivePretraining(DataCollatorForHuBERTECGPretraining):
    """Two segments or views of every sample, stacked for one forward pass, for the contrastive objectives.

    Each feature is a mapping with

    * ``input_values``: with ``views="pairs"`` (CMSC) float (2, samples), two adjacent windows of one record; with
      ``views="augment"`` (SimCLR) float (samples,), one window whose two views ``augmentations`` makes;
    * ``labels`` (optional, for ``hubert+...``): int (2, num_codebooks, frames) with pairs (one per segment), or
      (num_codebooks, frames) with views (both views share them: augmentations do not move a frame's content by
      more than the time shift);
    * ``sample_index``: int >= 0 as for :class:`DataCollatorForHuBERTECGPretraining`; segment / view ``v`` of the
      sample is seeded from ``2 * sample_index + v`` (its time mask and augmentations);
    * ``group`` (optional): int, the sample's record (CMSC: segments of one record are positives of each other);
      default ``sample_index``.

    Args:
        config, seed, augmentations: as for :class:`DataCollatorForHuBERTECGPretraining`; ``augmentations`` is
            required with ``views="augment"`` (the two views would be equal without it).
        views: ``"pairs"`` or ``"augment"``.
        mask: draw the time masks of masked prediction (``hubert+...``); False gives an all-False
            ``mask_time_indices``, so that the model masks nothing.

    Returns (``__call__``):
        dict of tensors: ``input_values`` float32 (2B, samples), the first segments (views) of the B samples then
        their second ones; ``mask_time_indices`` bool (2B, frames); ``contrastive_groups`` int64 (B,); ``labels``
        int64 (2B, num_codebooks, frames) when the features have labels; ``source_ids`` int64 (B,) when they have a
        ``source_id`` (one per sample, not per segment).

    Raises:
        ValueError: for an unknown ``views``, ``views="augment"`` without augmentations, or the errors of
            :class:`DataCollatorForHuBERTECGPretraining`.
    """

    views: str = "pairs"
    mask: bool = True

    def __post_init__(self):
        if self.views not in ("pairs", "augment"):
            raise ValueError(f"views must be 'pairs' or 'augment', got {self.views!r}")
        if self.views == "augment" and self.augmentations is None:
            raise ValueError("views='augment' (SimCLR) needs augmentations: the two views would be identical")

    def __call__(self, features: Sequence[dict]) -> dict[str, torch.Tensor]:
        if len(features) == 0:
            raise ValueError("the contrastive pretraining collator got an empty batch")
        segments = []
        for view in (0, 1):
            for feature in features:
                if feature.get("sample_index") is None:
                    raise ValueError("every pretraining sample needs a `sample_index` to seed its views and masks")
                values, labels = feature["input_values"], feature.get("labels")
                if self.views == "pairs":
                    values = np.asarray(values)
                    if values.ndim != 2 or values.shape[0] != 2:
                        raise ValueError(f"views='pairs' needs `input_values` of shape (2, samples), got {values.shape}")
                    values = values[view]
                    labels = None if labels is None else np.asarray(labels)[view]
                segment = {"input_values": values, "labels": labels, "sample_index": 2 * int(feature["sample_index"]) + view}
                if "attention_mask" in feature:
                    mask = np.asarray(feature["attention_mask"])
                    segment["attention_mask"] = mask[view] if self.views == "pairs" else mask
                segments.append(segment)
        batch = super().__call__(segments)
        if not self.mask:
            batch["mask_time_indices"] = torch.zeros_like(batch["mask_time_indices"])
        groups = [f.get("group", f["sample_index"]) for f in features]
        batch["contrastive_groups"] = torch.as_tensor(np.asarray(groups, dtype=np.int64))
        if features[0].get("source_id") is not None:
            batch["source_ids"] = torch.as_tensor([int(f["source_id"]) for f in features], dtype=torch.int64)
        return batch


@dataclass
class DataCollatorForECGClassification:
    """Cut one 5 s window from each raw record of a batch and preprocess it: the fine-tuning collator.

    Give it to the ``Trainer`` as ``data_collator`` with a dataset of raw records (``remove_unused_columns=False``):
    every time a record is drawn for training it gets a new random, time-aligned window (the same start for all
    leads, :func:`hubert_ecg.windows.choose_window_starts`), which is how the release fine-tunes. Evaluation rows
    that carry a ``window_start`` keep that window (0.0: the first 5 s, as the release evaluates).

    Each feature is a mapping with

    * ``signal``: float ``(leads, samples)`` in mV (a list of lists or an array);
    * ``sampling_rate``: Hz;
    * ``lead_names`` (optional): one name per row of ``signal``; or ``lead_mask`` (optional): 12 bools saying which
      of :data:`hubert_ecg.leads.STANDARD_LEADS` the 12 rows hold (the layout of
      :func:`hubert_ecg.training.data.build_dataset`); without either, the rows are the 12 standard leads;
    * ``num_samples`` (optional): the true length when ``signal`` is right-padded;
    * ``window_start`` (optional): the window's start in seconds; default: drawn by ``window``;
    * ``sample_index`` (optional): int >= 0, the record's index in the training set; seeds its window and
      augmentations;
    * ``epoch`` (optional): int >= 0, the epoch the record is drawn in (default: the collator's ``epoch``); with
      ``sample_index`` it seeds the window and augmentations (:class:`~hubert_ecg.training.data.EpochRecords` gives
      both);
    * ``labels`` (optional): multi-hot floats, a class index, or a regression target.

    Records shorter than 5 s are zero-padded (``attention_mask`` marks the padding); leads that are absent are
    zero-filled (``missing_leads="zero"``, as pretraining does) or refused (``"raise"``).

    Args:
        feature_extractor: a :class:`~hubert_ecg.HuBERTECGFeatureExtractor` (the model's ``processing_class``).
        window: ``"random"`` (training) or ``"first"`` (the first 5 s), for rows without ``window_start``.
        missing_leads: ``"zero"`` or ``"raise"``.
        seed: seed of the random windows: a row with a ``sample_index`` gets its window from ``(seed, epoch,
            sample_index)`` (reproducible after a resume); other rows draw from ``(seed, worker seed)``.
        augmentations: optional :mod:`hubert_ecg.augmentations` chain (see :func:`parse_augmentations`) applied
            after the feature extractor to ``input_values`` (the 100 Hz model view, [-1, 1] units; a masked lead
            is 0 there), only when ``window="random"`` (training): a ``"first"`` (evaluation) collator never
            augments. The right padding of short records (``attention_mask`` 0) is left as it was. Sample ``i`` is
            seeded from ``(seed, epoch, sample_index)`` when every feature has a ``sample_index``, else from torch's
            global generator.
        epoch: the epoch that seeds the windows and augmentations of features without an ``epoch`` of their own.

    Returns (``__call__``):
        dict of tensors: ``input_values`` float32 ``(batch, 6000)``, ``attention_mask`` int ``(batch, 6000)`` and
        ``labels`` (int64 class indices, or float32) when the features have labels.

    Raises:
        ValueError: for an empty batch, an unknown ``window`` or ``missing_leads``, or a record the feature
            extractor refuses (missing leads with ``"raise"``, no sampling rate, ...).
    """

    feature_extractor: Any
    window: str = "random"
    missing_leads: str = DEFAULT_MISSING_LEADS
    seed: int | None = None
    augmentations: Any = None
    epoch: int = 0

    def __post_init__(self):
        if self.window not in ("random", "first"):
            raise ValueError(f"window must be 'random' or 'first', got {self.window!r}")
        check_missing_leads(self.missing_leads)
        self._rng = np.random.default_rng(self.seed)
        self._worker = None

    def _generator(self) -> np.random.Generator:
        info = torch.utils.data.get_worker_info()
        if info is not None and self._worker != (info.id, info.seed):  # workers must not repeat each other's windows
            self._worker = (info.id, info.seed)
            self._rng = np.random.default_rng([int(self.seed or 0), int(info.seed) & 0xFFFFFFFF])
        return self._rng

    def _sample_rng(self, feature: dict, rng: np.random.Generator) -> np.random.Generator:
        """The random stream of one record's window: from ``(seed, epoch, sample_index)`` when the row has a
        ``sample_index`` (the same window after a resume, whatever the batch or the worker), else ``rng``."""
        index = feature.get("sample_index")
        if index is None:
            return rng
        epoch = feature.get("epoch")
        epoch = self.epoch if epoch is None else epoch
        return np.random.default_rng([int(self.seed or 0) & 0xFFFFFFFF, int(epoch), int(index)])

    def __call__(self, features: Sequence[dict]) -> dict[str, torch.Tensor]:
        from ..leads import STANDARD_LEADS
        from ..windows import choose_window_starts

        if len(features) == 0:
            raise ValueError("the classification collator got an empty batch")
        rng = self._generator()
        signals, rates, names, starts = [], [], [], []
        for feature in features:
            signal = np.asarray(feature["signal"], dtype=np.float32)
            rate = float(feature["sampling_rate"])
            if feature.get("num_samples") is not None:
                signal = signal[:, : int(feature["num_samples"])]
            lead_names = feature.get("lead_names")
            if lead_names is None and feature.get("lead_mask") is not None:
                present = np.asarray(feature["lead_mask"], dtype=bool)
                signal = signal[present]
                lead_names = [lead for lead, ok in zip(STANDARD_LEADS, present) if ok]
            if feature.get("window_start") is not None:
                start = np.asarray([float(feature["window_start"])])
            else:
                start = choose_window_starts(signal.shape[1], rate, self.feature_extractor, self.window,
                                             pad_to_window=True, rng=self._sample_rng(feature, rng))
            signals.append(signal)
            rates.append(rate)
            names.append(list(lead_names) if lead_names is not None else list(STANDARD_LEADS))
            starts.append(start)
        batch = self.feature_extractor(
            signals, sampling_rate=rates, lead_names=names, window_starts=starts, pad_to_window=True,
            missing_leads=self.missing_leads, return_tensors="pt",
        )
        out = {"input_values": batch["input_values"], "attention_mask": batch["attention_mask"]}
        if self.augmentations is not None and self.window == "random":
            epochs = np.asarray([self.epoch if f.get("epoch") is None else int(f["epoch"]) for f in features])
            augmented = out["input_values"].clone()
            for epoch in np.unique(epochs):  # each sample's stream depends on its epoch, not on its batch-mates
                rows = np.flatnonzero(epochs == epoch)
                augmented[rows] = _augment(self.augmentations, out["input_values"][rows],
                                           [features[i] for i in rows], self.seed or 0, int(epoch))
            keep = out["attention_mask"].bool()  # padding of short records stays as the feature extractor made it
            out["input_values"] = torch.where(keep, augmented, out["input_values"])
        if features[0].get("labels") is not None:
            labels = np.asarray([f["labels"] for f in features])
            labels = labels.astype(np.int64) if np.issubdtype(labels.dtype, np.integer) else labels.astype(np.float32)
            out["labels"] = torch.from_numpy(labels)
        return out
