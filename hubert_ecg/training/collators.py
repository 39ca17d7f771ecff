"""Data collators for the training commands.

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

from ..modeling import compute_time_mask

__all__ = ["DataCollatorForHuBERTECGPretraining"]


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
      never masked.

    The mask follows the model's configuration: ``config.mask_time_prob`` (0.33 as released),
    ``config.mask_time_length`` (1) and ``config.mask_time_min_masks`` (2), on the frame grid of
    ``config.num_frames(samples)`` (93 frames for 6000 samples).

    Args:
        config: the :class:`~hubert_ecg.HuBERTECGConfig` of the model being trained.
        seed: the run's seed; two collators with the same seed give the same mask to the same ``sample_index``.

    Returns (``__call__``):
        dict of tensors: ``input_values`` float32 (batch, samples), ``mask_time_indices`` bool (batch, frames),
        ``labels`` int64 (batch, num_codebooks, frames) when the features have labels, ``attention_mask`` int64
        (batch, samples) when they have one.

    Raises:
        ValueError: for an empty batch, windows of different lengths, a missing or negative ``sample_index``, or
            labels whose frame count differs from ``config.num_frames(samples)``.
    """

    config: Any
    seed: int = 0

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
        return batch
