"""The contrastive objectives: CMSC and NT-Xent against hand-computed examples, gathering negatives over 2 gloo
processes, the contrastive collator, window pairs of real records, and the contrastive head's checkpoints."""

import math

import numpy as np
import pytest
import torch

from hubert_ecg import (
    HuBERTECGConfig,
    HuBERTECGForPreTraining,
    HuBERTECGForSequenceClassification,
    HuBERTECGModel,
)
from hubert_ecg.training.collators import DataCollatorForContrastivePretraining, default_simclr_chain
from hubert_ecg.training.objectives import Objective, cmsc_loss, gather_with_grad, nt_xent_loss
from hubert_ecg.training.pretrain import WindowPairDataset, adjacent_window_pairs

TINY = dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64, conv_dim=[32] * 5,
            classifier_proj_size=16, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4, layerdrop=0.0)


# --------------------------------------------------------------------------------------------- hand-computed losses
def test_cmsc_loss_hand_computed():
    # a_i = b_i = e_i in 2-D: s = I / t, each row's positive has similarity 1/t, its one negative 0
    eye = torch.eye(2)
    for t in (1.0, 0.5, 0.25):
        expected = math.log(1 + math.exp(-1 / t))  # -log(e^{1/t} / (e^{1/t} + 1)), both directions alike
        assert cmsc_loss(eye, eye, torch.tensor([0, 1]), temperature=t).item() == pytest.approx(expected, rel=1e-5)
    # embeddings are L2-normalised: scaling them changes nothing
    assert cmsc_loss(3 * eye, 0.5 * eye, torch.tensor([0, 1]), temperature=0.5).item() == pytest.approx(
        math.log(1 + math.exp(-2)), rel=1e-6)
    # asymmetric: a = [e1, e2], b = [(e1+e2)/sqrt2, e2], t = 1; rows: a1.b = [c, 0], a2.b = [c, 1] (c = 1/sqrt2)
    c = 1 / math.sqrt(2)
    a, b = torch.eye(2), torch.tensor([[c, c], [0.0, 1.0]])
    row = (-math.log(math.exp(c) / (math.exp(c) + 1)) - math.log(math.e / (math.exp(c) + math.e))) / 2
    # columns: b1 against [a1, a2] = [c, c] (positive a1); b2 against [0, 1] (positive a2)
    col = (-math.log(0.5) - math.log(math.e / (1 + math.e))) / 2
    assert cmsc_loss(a, b, torch.tensor([0, 1]), temperature=1.0).item() == pytest.approx((row + col) / 2, rel=1e-6)
    # two pairs of one record: both of its second segments are positives of each first segment (fairseq-signals'
    # patient-id rule); a = b = [e1, e1, e2], groups [0, 0, 1], t = 1
    a = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    groups = torch.tensor([0, 0, 1])
    p_same = math.e / (2 * math.e + 1)  # row of e1: [e, e, 1]
    p_other = math.e / (2 + math.e)  # row of e2: [1, 1, e]
    per_direction = (4 * -math.log(p_same) - math.log(p_other)) / 5  # mean over the 5 positive entries
    assert cmsc_loss(a, a, groups, temperature=1.0).item() == pytest.approx(per_direction, rel=1e-6)


def test_cmsc_loss_refuses_a_segment_without_positive():
    with pytest.raises(ValueError, match="positive"):
        cmsc_loss(torch.eye(2), torch.eye(2), torch.tensor([0, 1]), torch.tensor([0, 2]))


def test_nt_xent_loss_hand_computed():
    # z = [e1, e2, e1, e2], t = 1: each row has its positive at similarity 1 and two negatives at 0 (itself excluded)
    eye = torch.eye(2)
    assert nt_xent_loss(eye, eye, 1.0).item() == pytest.approx(math.log(1 + 2 / math.e), rel=1e-6)
    # views a = [e1, e2], b = [e2, e1], t = 0.5: row a1: positive b1 = e2 (0), negatives a2 (0), b2 = e1 (2)
    flipped = torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    expected = -math.log(1 / (1 + 1 + math.exp(2)))  # every row alike by symmetry
    assert nt_xent_loss(eye, flipped, 0.5).item() == pytest.approx(expected, rel=1e-6)
    # against a direct transcription of the definition on random embeddings
    torch.manual_seed(0)
    a, b, t = torch.randn(5, 3), torch.randn(5, 3), 0.2
    z = torch.nn.functional.normalize(torch.cat([a, b]), dim=1)
    terms = []
    for k in range(10):
        positive = (k + 5) % 10
        denominator = sum(math.exp(float(z[k] @ z[m]) / t) for m in range(10) if m != k)
        terms.append(-math.log(math.exp(float(z[k] @ z[positive]) / t) / denominator))
    assert nt_xent_loss(a, b, t).item() == pytest.approx(np.mean(terms), rel=1e-5)


def test_objective_names():
    assert Objective.parse("hubert") == Objective(hubert=True, contrastive=None)
    assert Objective.parse("cmsc") == Objective(hubert=False, contrastive="cmsc")
    combined = Objective.parse("CMSC+hubert", 0.5)
    assert combined.name == "hubert+cmsc" and combined.contrastive_weight == 0.5
    assert combined.combine(torch.tensor(2.0), torch.tensor(4.0)).item() == 4.0  # 2 + 0.5 * 4
    assert Objective.parse("simclr").combine(None, torch.tensor(3.0)).item() == 3.0
    for bad in ("mae", "cmsc+simclr", "hubert+hubert", ""):
        with pytest.raises(ValueError, match="--objective"):
            Objective.parse(bad)
    with pytest.raises(ValueError, match="contrastive_weight"):
        Objective.parse("hubert+cmsc", -1)
    with pytest.raises(ValueError, match="labels"):
        Objective.parse("hubert+cmsc").combine(None, torch.tensor(1.0))


def test_gather_without_torch_distributed_is_the_tensor_itself():
    # (2 processes: tests/test_pretrain.py::test_two_process_contrastive_run)
    alone = torch.ones(2, 3, requires_grad=True)
    assert gather_with_grad(alone) is alone


# -------------------------------------------------------------------------------------------------- the collator
def _tiny_config(**overrides):
    return HuBERTECGConfig(**{**TINY, "vocab_sizes": [], "contrastive_projection_sizes": [16, 8], **overrides})


def test_pair_collator_stacks_first_then_second_segments():
    config = _tiny_config(vocab_sizes=[5])
    rng = np.random.default_rng(0)
    features = [{"input_values": rng.standard_normal((2, 6000)).astype(np.float32),
                 "labels": rng.integers(0, 5, (2, 1, 93)), "sample_index": 10 + i, "group": 7 - i} for i in range(3)]
    masked = DataCollatorForContrastivePretraining(config, seed=1, views="pairs", mask=True)(features)
    assert masked["input_values"].shape == (6, 6000) and masked["labels"].shape == (6, 1, 93)
    for i, f in enumerate(features):
        np.testing.assert_array_equal(masked["input_values"][i].numpy(), f["input_values"][0])
        np.testing.assert_array_equal(masked["input_values"][3 + i].numpy(), f["input_values"][1])
        np.testing.assert_array_equal(masked["labels"][3 + i].numpy(), f["labels"][1])
    assert masked["contrastive_groups"].tolist() == [7, 6, 5]
    assert masked["mask_time_indices"].any(dim=1).all()  # every segment masked (min 2 spans)
    # the segments' masks differ (seeded from 2 * sample_index + segment) and do not depend on the batch
    assert not torch.equal(masked["mask_time_indices"][0], masked["mask_time_indices"][3])
    alone = DataCollatorForContrastivePretraining(config, seed=1, views="pairs")(features[1:2])
    assert torch.equal(alone["mask_time_indices"][1], masked["mask_time_indices"][4])
    unmasked = DataCollatorForContrastivePretraining(config, seed=1, views="pairs", mask=False)(features)
    assert not unmasked["mask_time_indices"].any()
    with pytest.raises(ValueError, match=r"\(2, samples\)"):
        DataCollatorForContrastivePretraining(config, views="pairs")([{"input_values": np.zeros(6000),
                                                                       "sample_index": 0}])


def test_simclr_collator_makes_two_different_reproducible_views():
    config = _tiny_config()
    time = np.arange(500) / 100.0  # 12 leads x 5 s at 100 Hz of slow waves (a time shift keeps them alike)
    features = [{"input_values": np.tile(np.sin(2 * np.pi * 0.1 * (1 + i) * time), 12).astype(np.float32) * 0.8,
                 "sample_index": i} for i in range(4)]
    collator = DataCollatorForContrastivePretraining(config, seed=3, augmentations=default_simclr_chain(),
                                                     views="augment", mask=False)
    batch = collator(features)
    views = batch["input_values"]
    assert views.shape == (8, 6000) and batch["contrastive_groups"].tolist() == [0, 1, 2, 3]
    for i in range(4):
        assert not torch.equal(views[i], views[4 + i])  # the two views of a window differ
        assert torch.corrcoef(torch.stack([views[i], torch.from_numpy(features[i]["input_values"])]))[0, 1] > 0.5
    again = collator(features[2:3])
    torch.testing.assert_close(again["input_values"][0], views[2])
    torch.testing.assert_close(again["input_values"][1], views[6])
    with pytest.raises(ValueError, match="augmentations"):
        DataCollatorForContrastivePretraining(config, views="augment")


# ------------------------------------------------------------------------------------------------ pairs of windows
def test_adjacent_window_pairs():
    ids = ["a", "a", "b", "a", "c", "c", "c", "c", "c", "d"]
    starts = [0.0, 5.0, 0.0, 10.0, 0.0, 5.0, 10.0, 20.0, 25.0, 0.0]
    pairs, groups = adjacent_window_pairs(ids, starts, 5.0)
    # a: (0, 5) paired, 10 left alone; b, d: one window; c: (0, 5), (20, 25); 10 has no partner left
    assert pairs.tolist() == [[0, 1], [4, 5], [7, 8]]
    assert groups[1] == groups[2] != groups[0]
    pairs, _ = adjacent_window_pairs(ids, starts, 5.0, rows=[3, 1, 9])
    assert pairs.tolist() == [[1, 3]]  # within the rows given (a 5 s and 10 s)


def test_window_pairs_of_real_records(iteration1_windows):
    from hubert_ecg.training.window_dataset import load_window_dataset

    dataset = load_window_dataset(iteration1_windows)
    ids = dataset.data.column("record_id").to_pylist()
    starts = dataset.data.column("window_start").to_pylist()
    pairs, groups = adjacent_window_pairs(ids, starts, 5.0)
    # 10 s PTB-XL / CinC records give one pair each; the long CPSC2021 record its windows two by two
    per_record = {r: ids.count(r) for r in set(ids)}
    assert len(pairs) == sum(n // 2 for n in per_record.values())
    assert all(ids[i] == ids[j] and starts[j] - starts[i] == 5.0 for i, j in pairs)
    items = WindowPairDataset(dataset, [], pairs, groups).__getitems__([0, len(pairs)])
    values = dataset.with_format("numpy")[int(pairs[0][1])]["input_values"]
    np.testing.assert_array_equal(items[0]["input_values"][1], values)
    assert items[1]["sample_index"] == len(pairs) and items[1]["group"] == items[0]["group"]  # wraps around


@pytest.fixture(scope="module")
def iteration1_windows(data_dir, tmp_path_factory):
    from hubert_ecg.training.window_dataset import build_window_dataset

    root = tmp_path_factory.mktemp("pairs")
    records = ["ptbxl/records100/00000/00001_lr", "ptbxl/records100/00000/00002_lr", "cinc2021/E07500",
               "long/cpsc2021/data_8_4"]
    build_window_dataset([str(data_dir / r) for r in records], root / "windows", show_progress=False)
    return root / "windows"


# ------------------------------------------------------------------------------------------- the contrastive head
def test_contrastive_head_checkpoint_and_backbone(tmp_path):
    torch.manual_seed(0)
    model = HuBERTECGForPreTraining(_tiny_config(vocab_sizes=[6])).eval()
    keys = set(model.state_dict())
    assert {"contrastive_head.layers.0.weight", "contrastive_head.layers.2.weight"} <= keys
    signal = torch.rand(2, 6000) * 2 - 1
    attention = torch.ones(2, 6000, dtype=torch.long)
    attention[1, 4000:] = 0
    out = model(signal, attention_mask=attention)
    assert out.contrastive_embeddings.shape == (2, 8)
    # the head sees the padding-aware mean of the last hidden states
    valid = model.frame_mask(attention, out.last_hidden_state.shape[1]).unsqueeze(-1).float()
    pooled = (out.last_hidden_state * valid).sum(1) / valid.sum(1)
    torch.testing.assert_close(out.contrastive_embeddings, model.contrastive_head(pooled))
    model.save_pretrained(tmp_path / "pre")
    again = HuBERTECGForPreTraining.from_pretrained(tmp_path / "pre").eval()
    torch.testing.assert_close(again(signal, attention_mask=attention).contrastive_embeddings,
                               out.contrastive_embeddings)
    backbone = HuBERTECGModel.from_pretrained(tmp_path / "pre").eval()
    torch.testing.assert_close(backbone(signal, attention_mask=attention).last_hidden_state, out.last_hidden_state)
    classifier = HuBERTECGForSequenceClassification.from_pretrained(tmp_path / "pre", num_labels=3)
    for name, value in model.hubert_ecg.state_dict().items():
        torch.testing.assert_close(classifier.hubert_ecg.state_dict()[name], value)
    # without the field: no head and the release's keys
    plain = HuBERTECGForPreTraining(HuBERTECGConfig(**TINY, vocab_sizes=[6]))
    assert plain.contrastive_head is None and set(plain.state_dict()) == keys - {
        k for k in keys if k.startswith("contrastive_head.")}
    with pytest.raises(ValueError, match="vocab_sizes"):
        HuBERTECGConfig(**TINY, vocab_sizes=[])
    with pytest.raises(ValueError, match="contrastive_temperature"):
        _tiny_config(contrastive_temperature=0)
