"""The pretraining collator: masks from (seed, sample_index), on the config's frame grid, as the release draws them."""

import numpy as np
import pytest
import torch
from transformers.models.hubert.modeling_hubert import _compute_mask_indices

from hubert_ecg import HuBERTECGConfig
from hubert_ecg.training.collators import DataCollatorForHuBERTECGPretraining


def _features(indices, samples=6000, frames=93, codebooks=2):
    rng = np.random.default_rng(0)
    return [{"input_values": rng.normal(size=samples).astype(np.float32),
             "labels": rng.integers(0, 8, size=(codebooks, frames)), "sample_index": i} for i in indices]


def test_batch_and_masks_as_released():
    config = HuBERTECGConfig()
    collator = DataCollatorForHuBERTECGPretraining(config, seed=3)
    batch = collator(_features(range(64)))
    assert batch["input_values"].shape == (64, 6000) and batch["input_values"].dtype == torch.float32
    assert batch["labels"].shape == (64, 2, 93) and batch["labels"].dtype == torch.int64
    mask = batch["mask_time_indices"]
    assert mask.shape == (64, config.num_frames(6000)) and mask.dtype == torch.bool
    # mask_time_prob 0.33, spans of 1: int(0.33 * 93 + u) = 30 or 31 masked frames in every window, as
    # `_compute_mask_indices` draws them for the release
    counts = mask.sum(1)
    assert set(counts.tolist()) <= {30, 31} and len(set(counts.tolist())) == 2
    reference = _compute_mask_indices((64, 93), mask_prob=0.33, mask_length=1, min_masks=2)
    assert set(reference.sum(1).tolist()) <= {30, 31}
    # every frame gets masked by some window: positions are spread, not fixed
    assert mask.any(0).all()


def test_a_sample_has_its_own_mask_whatever_the_batch():
    collator = DataCollatorForHuBERTECGPretraining(HuBERTECGConfig(), seed=3)
    together = collator(_features([5, 17, 40]))["mask_time_indices"]
    alone = collator(_features([17]))["mask_time_indices"]
    reordered = collator(_features([40, 5, 17]))["mask_time_indices"]
    torch.testing.assert_close(alone[0], together[1])
    torch.testing.assert_close(reordered[[1, 2, 0]], together)
    # another sample index (another epoch of the same window) or another seed: another mask
    assert not torch.equal(together[0], together[1])
    other_seed = DataCollatorForHuBERTECGPretraining(HuBERTECGConfig(), seed=4)(_features([5]))["mask_time_indices"]
    assert not torch.equal(other_seed[0], together[0])
    # indices past 2**32 (long runs over large datasets) are fine and distinct
    big = collator(_features([2**32 + 5, 5]))["mask_time_indices"]
    assert not torch.equal(big[0], big[1]) and torch.equal(big[1], together[0])


def test_global_random_state_is_left_alone():
    np.random.seed(123)
    expected = np.random.rand(3)
    np.random.seed(123)
    DataCollatorForHuBERTECGPretraining(HuBERTECGConfig(), seed=0)(_features(range(4)))
    np.testing.assert_array_equal(np.random.rand(3), expected)


def test_frame_grid_and_mask_settings_come_from_the_config():
    # a feature encoder with one stride fewer: twice the frames
    config = HuBERTECGConfig(conv_dim=[32] * 4, conv_kernel=[10, 3, 3, 2], conv_stride=[4, 2, 2, 2],
                             mask_time_prob=0.5, mask_time_length=3, mask_time_min_masks=1)
    frames = config.num_frames(6000)
    assert frames == 186
    batch = DataCollatorForHuBERTECGPretraining(config, seed=0)(_features(range(8), frames=frames))
    mask = batch["mask_time_indices"].numpy()
    assert mask.shape == (8, frames)
    # spans of 3: int(0.5 * 186 / 3 + u) = 31 or 32 span starts, overlapping spans merge
    assert (mask.sum(1) <= 32 * 3).all() and (mask.sum(1) > 0.3 * frames).all()
    runs = np.diff(np.concatenate([np.zeros((8, 1)), mask, np.zeros((8, 1))], axis=1), axis=1)
    lengths = np.flatnonzero(runs.reshape(-1) == -1) - np.flatnonzero(runs.reshape(-1) == 1)
    assert (lengths >= 3).all()
    none = DataCollatorForHuBERTECGPretraining(HuBERTECGConfig(mask_time_prob=0.0), seed=0)(_features(range(2)))
    assert not none["mask_time_indices"].any()


def test_padding_is_never_masked():
    config = HuBERTECGConfig()
    features = _features(range(16))
    for feature in features:
        feature["attention_mask"] = np.r_[np.ones(3000, np.int64), np.zeros(3000, np.int64)]
    batch = DataCollatorForHuBERTECGPretraining(config, seed=1)(features)
    valid = config.num_frames(3000)
    assert batch["attention_mask"].shape == (16, 6000)
    assert not batch["mask_time_indices"][:, valid:].any() and batch["mask_time_indices"][:, :valid].any()


def test_errors_name_the_problem():
    collator = DataCollatorForHuBERTECGPretraining(HuBERTECGConfig(), seed=0)
    features = _features(range(2))
    del features[1]["sample_index"]
    with pytest.raises(ValueError, match="sample_index"):
        collator(features)
    with pytest.raises(ValueError, match="frames per window"):
        collator(_features(range(2), frames=90))
    with pytest.raises(ValueError, match="one length"):
        collator(_features([0]) + _features([1], samples=5000))
    with pytest.raises(ValueError, match="empty"):
        collator([])
