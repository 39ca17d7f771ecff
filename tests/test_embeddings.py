"""The ``ecg-feature-extraction`` pipeline: per-record vectors from real records, checked against the model's own
hidden states."""

import numpy as np
import pytest
import torch

import hubert_ecg
from hubert_ecg.embeddings import ECGFeatureExtractionPipeline
from hubert_ecg.modeling import mean_pool, pool_frames
from hubert_ecg.windows import record_windows


@pytest.fixture(scope="module")
def demo():
    return hubert_ecg.demo_model_path()


@pytest.fixture(scope="module")
def pipe(demo):
    from transformers import pipeline

    return pipeline("ecg-feature-extraction", model=demo)


@pytest.fixture(scope="module")
def records(data_dir):
    base = data_dir / "ptbxl" / "records100" / "00000"
    return [str(base / f"{i:05d}_lr") for i in (1, 2, 3)]


def _windows(record, pipe, **kwargs):
    plan = record_windows(record, pipe.feature_extractor, window="all", **kwargs)
    return next(plan.features(pipe.feature_extractor, batch_windows=64, return_tensors="pt"))


def test_the_task_loads_the_backbone_of_a_classifier_checkpoint(pipe):
    assert isinstance(pipe, ECGFeatureExtractionPipeline)
    assert type(pipe.model) is hubert_ecg.HuBERTECGModel


def test_vector_is_the_mean_of_the_hidden_states_over_frames_and_windows(pipe, records):
    vector = pipe(records[0])
    assert vector.shape == (pipe.model.config.hidden_size,) and vector.dtype == np.float32
    x = _windows(records[0], pipe)
    assert x["input_values"].shape[0] == 2  # a 10 s PTB-XL record: two 5 s windows
    with torch.no_grad():
        out = pipe.model(input_values=x["input_values"], output_hidden_states=True)
    frames = pipe.model.config.num_frames(x["input_values"].shape[1])
    assert out.last_hidden_state.shape[1] == frames
    np.testing.assert_allclose(vector, out.last_hidden_state.mean(dim=(0, 1)).numpy(), atol=1e-5)
    for layer in (0, 1, -2):
        np.testing.assert_allclose(pipe(records[0], layer=layer), out.hidden_states[layer].mean(dim=(0, 1)).numpy(),
                                   atol=1e-5)
    np.testing.assert_allclose(pipe(records[0], layer=-1), vector, atol=0)
    assert not np.allclose(pipe(records[0], layer=0), vector, atol=1e-3)


def test_a_classifiers_head_on_the_first_window_vector_gives_the_classification_scores(demo, records):
    """The classifier pools exactly as the embedding does: its linear head on the vector is its logits."""
    from transformers import AutoFeatureExtractor, AutoModelForSequenceClassification, pipeline

    model = AutoModelForSequenceClassification.from_pretrained(demo).eval()
    feature_extractor = AutoFeatureExtractor.from_pretrained(demo)
    embed = ECGFeatureExtractionPipeline(model=model, feature_extractor=feature_extractor)  # its base_model is used
    clf = pipeline("ecg-classification", model=demo)
    for record in records:
        vector = embed(record, window="first")
        with torch.no_grad():
            probabilities = torch.sigmoid(model.classifier(torch.from_numpy(vector))).numpy()
        # the raw sigmoid: the demo model's pipeline scores are Platt-calibrated (config.score_calibration)
        scores = {p["label"]: p["score"] for p in clf(record, window="first", function_to_apply="sigmoid")}
        expected = [scores[model.config.id2label[i]] for i in range(model.config.num_labels)]
        np.testing.assert_allclose(probabilities, expected, atol=1e-5)


def test_padding_frames_are_left_out_of_the_mean(pipe, data_dir):
    """A 3.5 s record is zero-padded to the 5 s window (inside every lead's segment): the vector is the mean over
    the frames computed from real samples only. (The padded samples still reach those frames through the group
    norm of the first convolution, which normalises over the whole window, as in the classifier and the release.)"""
    record = hubert_ecg.read_ecg(data_dir / "ptbxl" / "records100" / "00000" / "00002_lr")
    short = {"signal": np.asarray(record.signal)[:, :350], "sampling_rate": 100, "lead_names": record.lead_names}
    details = pipe([short], return_details=True)[0]
    assert details["error"] is None and any("short record" in f for f in details["flags"])
    x = _windows(short, pipe)
    mask = x["attention_mask"]
    assert int(mask.sum()) == 12 * 350  # 3.5 s of each lead at 100 Hz are real
    with torch.no_grad():
        hidden = pipe.model(input_values=x["input_values"], attention_mask=mask).last_hidden_state[0]
    frames = pipe.model.frame_mask(mask, hidden.shape[0])[0]
    assert 0 < int(frames.sum()) < hidden.shape[0]
    assert details["frames"] == int(frames.sum()) and details["windows"] == 1
    np.testing.assert_allclose(details["embedding"], hidden[frames].mean(dim=0).numpy(), atol=1e-5)
    assert not np.allclose(details["embedding"], hidden.mean(dim=0).numpy(), atol=1e-3)  # the mask matters


def test_vectors_do_not_depend_on_the_batch(pipe, records, data_dir):
    record = hubert_ecg.read_ecg(data_dir / "ptbxl" / "records100" / "00000" / "00003_lr")
    short = {"signal": np.asarray(record.signal)[:, :300], "sampling_rate": 100, "lead_names": record.lead_names}
    inputs = [records[0], short, records[1]]
    alone = [pipe(item) for item in inputs]
    together = pipe(inputs, batch_size=5)
    for a, b in zip(alone, together):
        np.testing.assert_allclose(a, b, atol=1e-5)


def test_unusable_inputs_and_bad_parameters(pipe, records):
    details = pipe.embed_details([records[0], "/no/such/record"], batch_size=4)
    assert details[0]["error"] is None and details[0]["windows"] == 2
    assert details[0]["frames"] == 2 * pipe.model.config.num_frames(pipe.feature_extractor.input_length)
    assert details[1]["embedding"] is None and "not found" in details[1]["error"]
    with pytest.raises(ValueError, match="/no/such/record"):
        pipe("/no/such/record")
    n = pipe.model.config.num_hidden_layers
    for layer in (n + 1, -(n + 2), 1.5, True):
        with pytest.raises(ValueError, match="layer must be an integer"):
            pipe(records[0], layer=layer)
    with pytest.raises(ValueError, match="unknown parameters"):
        pipe(records[0], top_k=2)


def test_pool_frames_sums_the_valid_frames():
    hidden = torch.arange(2 * 3 * 2, dtype=torch.float32).reshape(2, 3, 2)
    mask = torch.tensor([[True, True, False], [True, False, False]])
    sums, counts = pool_frames(hidden, mask)
    np.testing.assert_array_equal(sums.numpy(), [[0 + 2, 1 + 3], [6, 7]])
    np.testing.assert_array_equal(counts.numpy(), [2, 1])
    sums, counts = pool_frames(hidden)
    np.testing.assert_array_equal(sums.numpy(), [[6, 9], [24, 27]])
    np.testing.assert_array_equal(counts.numpy(), [3, 3])
    # the classifier's and the contrastive head's pooling: the mean of the valid frames; none valid gives zeros
    none_valid = torch.tensor([[True, True, False], [False, False, False]])
    np.testing.assert_array_equal(mean_pool(hidden, none_valid).numpy(), [[1, 2], [0, 0]])
    np.testing.assert_array_equal(mean_pool(hidden).numpy(), hidden.mean(dim=1).numpy())


def test_the_classifier_pools_its_valid_frames_only():
    """A padded window's logits are those of the head on the mean of its valid frames (mean_pool), not of all."""
    from hubert_ecg import HuBERTECGConfig, HuBERTECGForSequenceClassification

    torch.manual_seed(0)
    config = HuBERTECGConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                             num_labels=3, classifier_proj_size=32)
    model = HuBERTECGForSequenceClassification(config).eval()
    values = torch.randn(2, 6000)
    mask = torch.ones(2, 6000, dtype=torch.long)
    mask[1, 3000:] = 0
    with torch.no_grad():
        out = model(values, attention_mask=mask, output_hidden_states=True)
        hidden = out.hidden_states[-1]
        frames = model.frame_mask(mask, hidden.shape[1])
        expected = model.head(mean_pool(hidden, frames))
        everything = model.head(hidden.mean(dim=1))
    torch.testing.assert_close(out.logits, expected)
    assert not torch.allclose(out.logits[1], everything[1])
