"""Augmentations in the training collators: on the 100 Hz model view, training batches only, seeded per sample."""

import pytest
import torch

from hubert_ecg import HuBERTECGConfig, HuBERTECGFeatureExtractor
from hubert_ecg.augmentations import LeadMask
from hubert_ecg.io import read_ecg
from hubert_ecg.training.collators import (
    DataCollatorForECGClassification,
    DataCollatorForHuBERTECGPretraining,
    lead_mask_prob,
    parse_augmentations,
)

RECORDS = ["ptbxl/records100/00000/00001_lr", "ptbxl/records100/00000/00002_lr", "ptbxl/records100/00000/00003_lr",
           "ptbxl/records500/00000/00008_hr"]
CHAIN = [{"name": "lead_mask", "mask_prob": 0.5}, {"name": "gaussian_noise", "snr_db": [20, 30], "p": 1.0}]


@pytest.fixture(scope="module")
def features(data_dir):
    rows = []
    for i, name in enumerate(RECORDS):
        record = read_ecg(data_dir / name)
        rows.append({"signal": record.signal, "sampling_rate": record.sampling_rate, "lead_names": record.lead_names,
                     "window_start": 0.0 if i % 2 else None, "sample_index": i, "labels": [1.0, 0.0]})
    return rows


def _collate(features, augmentations, window="random", seed=3, epoch=0):
    fixed = [{**f, "window_start": 0.0} for f in features]  # same window: only the augmentations differ
    collator = DataCollatorForECGClassification(HuBERTECGFeatureExtractor(), window=window, seed=seed,
                                                augmentations=augmentations, epoch=epoch)
    return collator(fixed)


def test_training_batches_are_augmented_with_masked_leads_zero(features):
    plain = _collate(features, None)["input_values"]
    chain = parse_augmentations(CHAIN)
    out = _collate(features, chain)["input_values"]
    assert out.shape == plain.shape == (len(features), 6000)
    assert not torch.allclose(out, plain)
    kept = chain.last_lead_mask  # (batch, 12): True = kept
    assert kept is not None and kept.any(dim=1).all() and (~kept).any()
    leads = out.reshape(len(features), 12, 500)
    assert (leads[~kept] == 0).all()  # a masked lead is 0 in the model view (not -1: masked after min-max scaling)
    assert (leads[kept].abs().sum(dim=-1) > 0).all()


def test_evaluation_batches_are_not_augmented(features):
    plain = _collate(features, None, window="first")["input_values"]
    out = _collate(features, parse_augmentations(CHAIN), window="first")["input_values"]
    assert torch.equal(out, plain)


def test_same_seed_epoch_and_index_give_the_same_batch(features):
    a = _collate(features, parse_augmentations(CHAIN), seed=3)["input_values"]
    b = _collate(features, parse_augmentations(CHAIN), seed=3)["input_values"]
    assert torch.equal(a, b)
    # a sample does not depend on its batch-mates
    alone = _collate(features[2:3], parse_augmentations(CHAIN), seed=3)["input_values"]
    assert torch.equal(alone[0], a[2])
    assert not torch.equal(_collate(features, parse_augmentations(CHAIN), seed=4)["input_values"], a)
    assert not torch.equal(_collate(features, parse_augmentations(CHAIN), seed=3, epoch=1)["input_values"], a)


def test_pretraining_collator_augments_reproducibly(features):
    values = _collate(features, None)["input_values"].numpy()
    config = HuBERTECGConfig(mask_time_prob=0.3)
    rows = [{"input_values": v, "sample_index": 10 + i} for i, v in enumerate(values)]
    plain = DataCollatorForHuBERTECGPretraining(config, seed=1)(rows)
    a = DataCollatorForHuBERTECGPretraining(config, seed=1, augmentations=parse_augmentations(CHAIN))(rows)
    b = DataCollatorForHuBERTECGPretraining(config, seed=1, augmentations=parse_augmentations(CHAIN))(rows)
    assert torch.equal(a["input_values"], b["input_values"])
    assert not torch.equal(a["input_values"], plain["input_values"])
    assert torch.equal(a["mask_time_indices"], plain["mask_time_indices"])  # the time mask is not disturbed
    assert torch.equal(plain["input_values"], torch.from_numpy(values))


def test_parse_augmentations_and_lead_mask_prob():
    assert parse_augmentations(None) is None and parse_augmentations("none") is None
    assert lead_mask_prob(parse_augmentations("default")) == 0.5
    assert lead_mask_prob(parse_augmentations('[{"name": "lead_mask", "mask_prob": 0.3}]')) == pytest.approx(0.3)
    assert lead_mask_prob(parse_augmentations([{"name": "gaussian_noise", "snr_db": 20}])) == 0.0
    nested = [{"name": "one_of", "transforms": [{"name": "lead_mask", "mask_prob": 0.25}, {"name": "time_mask"}]}]
    assert lead_mask_prob(parse_augmentations(nested)) == 0.25
    assert lead_mask_prob(None) == 0.0 and isinstance(parse_augmentations([{"name": "lead_mask"}]).transforms[0],
                                                      LeadMask)
    with pytest.raises(ValueError, match=r"augmentations\[1\].*'wobble'"):
        parse_augmentations([{"name": "lead_mask"}, {"name": "wobble"}])
    with pytest.raises(ValueError, match="--augmentations"):
        parse_augmentations("[{oops")
    with pytest.raises(ValueError, match=r"augmentations\[1\] \(lead_mask\).*mask_prob"):
        parse_augmentations([{"name": "time_mask"}, {"name": "lead_mask", "mask_prob": 1.5}])


def test_padding_of_a_short_record_is_not_augmented(features):
    short = [{**features[0], "signal": features[0]["signal"][:, :300]}]  # 3 s at 100 Hz: 2 s of padding per lead
    noise = parse_augmentations([{"name": "gaussian_noise", "snr_db": 10}])
    plain, out = _collate(short, None), _collate(short, noise)
    real = plain["attention_mask"].bool()
    assert real.sum() == 12 * 300
    assert torch.equal(out["input_values"][~real], plain["input_values"][~real])
    assert not torch.equal(out["input_values"][real], plain["input_values"][real])


def test_random_windows_are_seeded_by_record_and_epoch(features):
    """A record's random window comes from (seed, epoch, sample_index): the same alone or in any batch (so a resumed
    run sees the windows of an uninterrupted one), and a new one in the next epoch."""
    rows = [{**f, "window_start": None} for f in features]

    def collate(batch, epoch):
        collator = DataCollatorForECGClassification(HuBERTECGFeatureExtractor(), window="random", seed=5, epoch=epoch)
        return collator(batch)["input_values"]

    together = collate(rows, epoch=0)
    for i, row in enumerate(rows):
        torch.testing.assert_close(collate([row], epoch=0)[0], together[i])
    torch.testing.assert_close(collate(rows[::-1], epoch=0), together.flip(0))
    next_epoch = collate(rows, epoch=1)
    assert sum(not torch.equal(a, b) for a, b in zip(together, next_epoch)) >= len(rows) - 1  # 10 s records: new windows
