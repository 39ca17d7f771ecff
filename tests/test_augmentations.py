"""hubert_ecg.augmentations on real PTB-XL records (500 Hz, mV) and their preprocessed 100 Hz windows."""

import numpy as np
import pytest
import torch

from hubert_ecg import read_ecg
from hubert_ecg.augmentations import (
    TRANSFORMS,
    AmplitudeScale,
    BaselineWander,
    Compose,
    GaussianNoise,
    LeadMask,
    LeadSubset,
    OneOf,
    PowerlineNoise,
    RandomApply,
    RandomCrop,
    TimeMask,
    TimeScale,
    TimeShift,
    default_finetuning_chain,
    from_config,
)
from hubert_ecg.leads import LEAD_SETS, STANDARD_LEADS
from hubert_ecg.processing import HuBERTECGFeatureExtractor


@pytest.fixture(scope="module")
def raw(data_dir) -> torch.Tensor:
    """Real 12-lead PTB-XL records, float32 ``(n, 12, 5000)`` in mV at 500 Hz."""
    paths = sorted((data_dir / "ptbxl" / "records500" / "00000").glob("*_hr.hea"))[:16]
    records = [read_ecg(p) for p in paths]
    assert records and all(r.sampling_rate == 500 and r.signal.shape == (12, 5000) for r in records)
    return torch.from_numpy(np.stack([r.signal for r in records]))


@pytest.fixture(scope="module")
def windows(raw) -> torch.Tensor:
    """Their first preprocessed 5 s windows: the model view ``(n, 6000)`` at 100 Hz in [-1, 1]."""
    out = HuBERTECGFeatureExtractor()(list(raw.numpy()), sampling_rate=500, return_tensors="pt")
    assert out["input_values"].shape == (raw.shape[0], 6000)
    return out["input_values"]


def _all_transforms(rate):
    return [
        LeadMask(),
        LeadSubset("3"),
        TimeMask(sampling_rate=rate),
        GaussianNoise(snr_db=[15, 25]),
        BaselineWander(sampling_rate=rate),
        PowerlineNoise(sampling_rate=500) if rate == 500 else AmplitudeScale(per_lead=True),
        AmplitudeScale(),
        TimeShift(sampling_rate=rate),
        TimeScale(),
        OneOf([TimeMask(sampling_rate=rate), GaussianNoise()]),
        RandomApply([TimeShift(sampling_rate=rate), TimeScale()], p=0.5),
    ]


@pytest.mark.parametrize("view", ["raw", "windows"])
def test_shapes_dtypes_and_input_untouched(view, raw, windows):
    x, rate = (raw, 500) if view == "raw" else (windows, 100)
    for x_in in ([x, x.double()] if view == "raw" else [x]):
        before = x_in.clone()
        for t in _all_transforms(rate):
            y = t(x_in, sample_index=torch.arange(len(x_in)), epoch=0, seed=1)
            assert y.shape == x_in.shape and y.dtype == x_in.dtype, t
            assert torch.isfinite(y).all(), t
            assert not torch.equal(y, x_in), t  # every transform changes something on real records
        assert torch.equal(x_in, before)
    crop = RandomCrop(seconds=2.0, sampling_rate=rate)(x, sample_index=range(len(x)))
    assert crop.shape[0] == len(x) and crop.shape[-1] == (12 * 200 if view == "windows" else 1000)


def test_determinism_and_independence_from_batch(raw, windows):
    chain = from_config(
        [
            {"name": "lead_mask", "mask_prob": 0.5},
            {"name": "one_of", "transforms": [{"name": "time_mask"}, {"name": "time_scale"}]},
            {"name": "gaussian_noise", "p": 0.5, "snr_db": [10, 30]},
            {"name": "baseline_wander", "p": 0.5, "amplitude": 0.1},
            {"name": "random_apply", "p": 0.5, "transforms": [{"name": "time_shift"}]},
        ]
    )
    index = torch.arange(100, 100 + len(windows))
    a, mask_a = chain(windows, sample_index=index, epoch=3, seed=7, return_lead_mask=True)
    b = chain(windows, sample_index=index, epoch=3, seed=7)
    assert torch.equal(a, b)
    assert not torch.equal(a, chain(windows, sample_index=index, epoch=4, seed=7))
    assert not torch.equal(a, chain(windows, sample_index=index, epoch=3, seed=8))
    # sample i alone, or in a shuffled batch with other samples, gives the same output
    for i in (0, 5):
        alone, mask_alone = chain(windows[i : i + 1], sample_index=index[i : i + 1], epoch=3, seed=7,
                                  return_lead_mask=True)
        assert torch.equal(alone[0], a[i]) and torch.equal(mask_alone[0], mask_a[i])
    perm = torch.randperm(len(windows), generator=torch.Generator().manual_seed(0))
    shuffled = chain(windows[perm], sample_index=index[perm], epoch=3, seed=7)
    assert torch.equal(shuffled, a[perm])
    # the (batch, 6000) view and the (batch, 12, 500) view agree
    split = chain(windows.reshape(-1, 12, 500), sample_index=index, epoch=3, seed=7)
    assert torch.equal(split.reshape(len(windows), -1), a)


def test_gaussian_noise_snr_within_half_db(raw):
    x = raw.double().repeat(8, 1, 1)  # 128 samples x 12 leads of real signal
    for snr in (5.0, 20.0, 35.0):
        y = GaussianNoise(snr_db=snr)(x, sample_index=torch.arange(len(x)), seed=0)
        noise = y - x
        measured = 10 * torch.log10(x.pow(2).mean(-1) / noise.pow(2).mean(-1))  # (samples, leads)
        assert abs(measured.mean().item() - snr) < 0.5, (snr, measured.mean())
        assert abs(measured.median().item() - snr) < 0.5
    # all-zero leads get no noise
    z = x[:4].clone()
    z[:, 3] = 0
    assert (GaussianNoise(snr_db=0)(z, sample_index=range(4))[:, 3] == 0).all()


def test_lead_mask_rate_and_never_all_masked(windows):
    n = 4000
    x = windows[torch.arange(n) % len(windows)]
    y, kept = LeadMask(mask_prob=0.5)(x, sample_index=torch.arange(n), seed=0, return_lead_mask=True)
    rate = 1 - kept.double().mean().item()
    assert abs(rate - 0.5) < 0.01, rate  # 48000 Bernoulli(0.5) draws: sd 0.0023
    assert kept.any(dim=1).all()
    per_lead = y.reshape(n, 12, 500)
    assert torch.equal((per_lead != 0).any(dim=-1), kept)  # masked leads are zeros, kept leads untouched
    assert torch.equal(per_lead[kept], x.reshape(n, 12, 500)[kept])
    # with a high rate, the at-least-one rule matters and holds
    _, kept = LeadMask(mask_prob=0.95)(x, sample_index=torch.arange(n), return_lead_mask=True)
    assert kept.any(dim=1).all() and (kept.sum(1) == 1).float().mean() > 0.4
    _, kept = LeadMask(mask_prob=1.0, min_leads=2)(x, sample_index=torch.arange(n), return_lead_mask=True)
    assert (kept.sum(1) == 2).all()


@pytest.mark.parametrize("name", sorted(LEAD_SETS))
def test_lead_subsets_zero_exactly_the_other_leads(name, raw):
    y, kept = LeadSubset(name)(raw, return_lead_mask=True)
    expected = torch.tensor([lead in LEAD_SETS[name] for lead in STANDARD_LEADS])
    assert torch.equal(kept, expected.expand_as(kept))
    assert (y[:, ~expected] == 0).all()
    assert torch.equal(y[:, expected], raw[:, expected])


def test_lead_subset_names():  # the sets themselves: tests/test_lead_sets.py (the challenge's)
    assert LeadSubset(["lead ii", "AVR"]).leads == ("II", "aVR")
    with pytest.raises(ValueError, match="unknown lead 'vx'"):
        LeadSubset(["I", "vx"])
    with pytest.raises(ValueError, match="unknown lead set '5'"):
        LeadSubset("5")


def test_powerline_peak_at_50_hz(raw):
    x = raw[:8].double()
    y = PowerlineNoise(sampling_rate=500, frequency=50, amplitude=0.2)(x, sample_index=range(8), seed=2)
    added = (y - x).numpy()
    freqs = np.fft.rfftfreq(x.shape[-1], d=1 / 500)
    spectrum = np.abs(np.fft.rfft(added, axis=-1)).mean(axis=(0, 1))
    assert freqs[spectrum.argmax()] == pytest.approx(50.0)
    assert np.abs(added).max() <= 0.2 + 1e-9  # amplitude in mV
    with pytest.raises(ValueError, match="Nyquist"):
        PowerlineNoise(sampling_rate=100, frequency=50)


def test_baseline_wander_is_low_frequency_in_mv(raw):
    x = raw[:8].double()
    y = BaselineWander(sampling_rate=500, amplitude=0.3, num_components=2)(x, sample_index=range(8))
    added = (y - x).numpy()
    assert np.abs(added).max() <= 2 * 0.3 + 1e-9 and np.abs(added).max() > 0.05
    freqs = np.fft.rfftfreq(x.shape[-1], d=1 / 500)
    power = np.abs(np.fft.rfft(added, axis=-1)) ** 2
    assert power[..., freqs <= 1.0].sum() / power.sum() > 0.95


def test_time_transforms(windows):
    x = windows.reshape(-1, 12, 500)
    index = torch.arange(len(x))
    y = TimeShift(max_seconds=0.1, sampling_rate=100)(x, sample_index=index)
    for i in range(len(x)):  # a whole-sample shift of at most 10 samples, the same on all leads
        matches = [s for s in range(-10, 11) if torch.equal(torch.roll(x[i], s, -1)[:, 20:-20], y[i][:, 20:-20])]
        assert len(matches) == 1
    m = TimeMask(max_seconds=1.0, sampling_rate=100)(x, sample_index=index)
    zero_cols = (m == 0).all(dim=1).sum(-1) - (x == 0).all(dim=1).sum(-1)
    assert (zero_cols >= 0).all() and (zero_cols <= 100).all() and zero_cols.sum() > 0
    s = TimeScale(min_factor=2.0, max_factor=2.0)(x, sample_index=index)
    assert torch.allclose(s[..., ::2][..., :250], x[..., :250])  # stretched by 2: every other sample is the input
    c = RandomCrop(seconds=1.0, sampling_rate=100)(x, sample_index=index)
    for i in range(len(x)):  # the same start on every lead
        starts = [s for s in range(401) if torch.equal(x[i, :, s : s + 100], c[i])]
        assert starts


def test_p_zero_is_identity_and_p_is_a_rate(raw, windows):
    for rate, x in ((500, raw), (100, windows)):
        for t in _all_transforms(rate):
            t.p = 0.0
            assert torch.equal(t(x, sample_index=range(len(x))), x)
    x = windows[torch.arange(2000) % len(windows)]
    y = GaussianNoise(p=0.3)(x, sample_index=torch.arange(2000))
    changed = (y != x).any(dim=1).double().mean().item()
    assert abs(changed - 0.3) < 0.04


def test_from_config_errors_and_defaults():
    chain = from_config({"transforms": [{"name": "powerline", "frequency": [50, 60]}], "p": 0.5}, sampling_rate=500)
    assert isinstance(chain, Compose) and chain.p == 0.5 and chain.transforms[0].sampling_rate == 500
    with pytest.raises(ValueError, match=r"augmentations\[1\]: unknown transform 'gaussian'"):
        from_config([{"name": "lead_mask"}, {"name": "gaussian", "snr_db": 20}])
    with pytest.raises(ValueError, match=r"unknown parameter\(s\) \['snr'\] for 'gaussian_noise'"):
        from_config([{"name": "gaussian_noise", "snr": 20}])
    with pytest.raises(ValueError, match=r"transforms\[0\]: unknown transform 'nope'"):
        from_config([{"name": "one_of", "transforms": [{"name": "nope"}]}])
    with pytest.raises(ValueError, match="p must be in"):
        from_config([{"name": "lead_mask", "p": 2}])
    with pytest.raises(ValueError, match="6000 samples is not a multiple"):
        LeadMask(num_leads=7)(torch.zeros(2, 6000))
    assert set(TRANSFORMS) >= {"lead_mask", "lead_subset", "time_mask", "gaussian_noise", "baseline_wander",
                               "powerline", "amplitude_scale", "time_shift", "time_scale", "random_crop"}


def test_default_chain_keeps_masked_leads_zero(windows):
    y, kept = default_finetuning_chain()(windows, sample_index=torch.arange(len(windows)), return_lead_mask=True)
    per_lead = y.reshape(len(windows), 12, 500)
    assert (per_lead[~kept] == 0).all() and kept.any(1).all()


@pytest.mark.parametrize("name", ["6", "2", "1"])
def test_lead_subset_on_windows_matches_the_feature_extractors_zero_fill(name, raw):
    """LeadSubset after the feature extractor = the feature extractor's zero-fill of missing leads (as at
    inference), except within 0.25 s of a lead boundary, where the release's decimation of the concatenated leads
    mixes neighbouring leads (the zero-fill happens at 500 Hz, before it)."""
    fe = HuBERTECGFeatureExtractor()
    x = raw[:6].numpy()
    full = fe(list(x), sampling_rate=500, return_tensors="pt")["input_values"]
    keep = [STANDARD_LEADS.index(lead) for lead in LEAD_SETS[name]]
    zero_filled = fe(
        [s[keep] for s in x], sampling_rate=500, lead_names=[list(LEAD_SETS[name])] * len(x), missing_leads="zero",
        return_tensors="pt",
    )["input_values"]
    diff = (LeadSubset(name)(full) - zero_filled).abs().reshape(len(x), 12, 500)
    assert diff[..., 25:475].max() < 1e-3
    assert diff.max() > 1e-2  # the boundary effect is real: do the masking where the model's inputs are made


def test_external_callable_is_seeded_per_sample(windows):
    """A callable using torch's and numpy's global generators (as ecg-augmentations transforms do) composes in,
    reproducibly and independently of batch composition, without touching the global generators."""
    from hubert_ecg.augmentations import External

    def jitter(ecg):  # (leads, samples) -> same shape
        return ecg + 0.01 * torch.randn(ecg.shape) + float(np.random.uniform())

    chain = Compose([LeadMask(), jitter])
    assert isinstance(chain.transforms[1], External)
    x = windows[:6]
    torch.manual_seed(0)
    expected_next = torch.rand(1)
    torch.manual_seed(0)
    a = chain(x, sample_index=torch.arange(6), seed=1)
    assert torch.equal(torch.rand(1), expected_next)  # global state restored
    b = chain(x[2:3], sample_index=[2], seed=1)
    assert torch.equal(a[2], b[0]) and not torch.equal(a[2], x[2])
    with pytest.raises(ValueError, match="returned shape"):
        External(lambda e: e[:3])(x, sample_index=range(6))
    with pytest.raises(ValueError, match="neither"):
        Compose([42])


def test_chain_pickles_for_dataloader_workers(windows):
    import pickle

    chain = from_config([{"name": "lead_subset", "leads": "4"}, {"name": "gaussian_noise", "snr_db": 25}])
    copy = pickle.loads(pickle.dumps(chain))
    index = torch.arange(len(windows))
    assert torch.equal(copy(windows, sample_index=index, epoch=2), chain(windows, sample_index=index, epoch=2))
