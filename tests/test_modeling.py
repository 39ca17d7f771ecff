import numpy as np
import pytest
import torch
from transformers import AutoModel, AutoModelForPreTraining, AutoModelForSequenceClassification

from hubert_ecg import (
    HuBERTECGConfig,
    HuBERTECGForPreTraining,
    HuBERTECGForSequenceClassification,
    HuBERTECGModel,
)

TINY = dict(
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=2,
    intermediate_size=64,
    conv_dim=(32, 32, 32, 32, 32),
    classifier_proj_size=16,
    vocab_sizes=(20, 30),
)


@pytest.mark.parametrize("layout", ["hub_layout", "hub_layout_weight_g"])
@pytest.mark.parametrize("length", ["5s", "10s"])
def test_automodel_matches_reference(reference_dir, expected, layout, length):
    model = AutoModel.from_pretrained(reference_dir / layout).eval()
    assert isinstance(model, HuBERTECGModel)
    with torch.no_grad():
        hidden = model(torch.from_numpy(expected[f"input_values_{length}"])).last_hidden_state
    reference = expected[f"last_hidden_state_{length}"]
    assert hidden.shape == reference.shape
    np.testing.assert_allclose(hidden.numpy(), reference, atol=1e-4, rtol=0)


@pytest.mark.parametrize("length", ["5s", "10s"])
def test_pretraining_logits_match_reference(reference_dir, expected, length):
    model = AutoModelForPreTraining.from_pretrained(reference_dir / "hub_layout").eval()
    assert isinstance(model, HuBERTECGForPreTraining)
    with torch.no_grad():
        out = model(torch.from_numpy(expected[f"input_values_{length}"]))
    assert out.mask_time_indices is None  # eval mode: nothing masked
    for i, logits in enumerate(out.logits):
        np.testing.assert_allclose(
            logits.numpy(), expected[f"pretrain_logits_{length}_codebook{i}"], atol=1e-4, rtol=0
        )


@pytest.mark.parametrize("length", ["5s", "10s"])
def test_classifier_logits_match_reference(finetuned_dir, expected, length):
    model = AutoModelForSequenceClassification.from_pretrained(finetuned_dir).eval()
    with torch.no_grad():
        logits = model(torch.from_numpy(expected[f"input_values_{length}"])).logits
    np.testing.assert_allclose(logits.numpy(), expected[f"classifier_logits_{length}"], atol=1e-4, rtol=0)


def test_original_finetuned_layout_loads_unchanged(reference_dir, tmp_path, expected):
    """A directory holding the fine-tuned keys as released (hubert_ecg.* + classifier.*) loads directly."""
    from safetensors.torch import save_file

    from hubert_ecg.conversion import load_original_checkpoint

    checkpoint = load_original_checkpoint(reference_dir / "original_finetuned.pt")
    assert any(k.startswith("hubert_ecg.") for k in checkpoint["model_state_dict"])
    HuBERTECGConfig.from_pretrained(reference_dir / "hub_layout", num_labels=5, mask_time_prob=0.0).save_pretrained(
        tmp_path
    )
    save_file({k: v.contiguous() for k, v in checkpoint["model_state_dict"].items()}, tmp_path / "model.safetensors")
    model, info = HuBERTECGForSequenceClassification.from_pretrained(tmp_path, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    with torch.no_grad():
        logits = model.eval()(torch.from_numpy(expected["input_values_5s"])).logits
    np.testing.assert_allclose(logits.numpy(), expected["classifier_logits_5s"], atol=1e-4, rtol=0)


def test_frames_hidden_states_and_attentions():
    # attention weights are only materialised by eager attention (as everywhere in transformers)
    model = HuBERTECGModel(HuBERTECGConfig(**TINY, attn_implementation="eager")).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 6000), output_hidden_states=True, output_attentions=True)
    assert out.last_hidden_state.shape == (2, 93, 32)
    assert len(out.hidden_states) == 3 and out.hidden_states[-1].shape == (2, 93, 32)
    assert len(out.attentions) == 2 and out.attentions[0].shape == (2, 2, 93, 93)


def test_sdpa_is_default_and_agrees_with_eager(reference_dir, expected):
    sdpa = AutoModel.from_pretrained(reference_dir / "hub_layout").eval()
    eager = AutoModel.from_pretrained(reference_dir / "hub_layout", attn_implementation="eager").eval()
    assert sdpa.config._attn_implementation == "sdpa"
    x = torch.from_numpy(expected["input_values_10s"])
    with torch.no_grad():
        np.testing.assert_allclose(
            sdpa(x).last_hidden_state.numpy(), eager(x).last_hidden_state.numpy(), atol=1e-5, rtol=0
        )


def test_classification_pools_only_real_frames():
    torch.manual_seed(0)
    model = HuBERTECGForSequenceClassification(HuBERTECGConfig(**TINY, num_labels=3)).eval()
    x = torch.randn(2, 12000)
    mask = torch.ones(2, 12000, dtype=torch.long)
    mask[1, 6000:] = 0
    with torch.no_grad():
        logits = model(x, attention_mask=mask).logits
        hidden = model.hubert_ecg(x, attention_mask=mask).last_hidden_state
    frames = model.frame_mask(mask, hidden.shape[1])
    assert frames[0].all() and frames[1].sum() == 93
    pooled = hidden[1, :93].mean(0)
    np.testing.assert_allclose(logits[1].numpy(), model.classifier(pooled).detach().numpy(), atol=1e-5)


def test_frame_mask_right_padding_matches_hubert_and_handles_per_lead_padding():
    from transformers import HubertConfig, HubertModel

    config = HuBERTECGConfig(**TINY)
    model = HuBERTECGModel(config)
    hubert_fields = {k: v for k, v in TINY.items() if k != "vocab_sizes"}
    hubert = HubertModel(HubertConfig(**hubert_fields, conv_stride=config.conv_stride, conv_kernel=config.conv_kernel))
    lengths = torch.tensor([6000, 5000, 3001, 200])
    mask = (torch.arange(6000)[None] < lengths[:, None]).long()
    ours = model.frame_mask(mask, 93)
    theirs = hubert._get_feature_vector_attention_mask(93, mask)
    assert torch.equal(ours, theirs)
    # shorter than one receptive field (82 samples): no valid frame (Hubert's rule wraps around to all frames)
    assert not model.frame_mask((torch.arange(6000)[None] < 64).long(), 93).any()

    # 2.5 s record padded to 5 s: every lead's 500-sample segment holds 250 real samples then 250 zeros
    per_lead = (torch.arange(500) < 250).long().repeat(12)[None]
    frames = model.frame_mask(per_lead, 93)[0]
    starts = torch.arange(93) * 64
    field_valid = torch.stack([per_lead[0, s : s + 82].all() for s in starts])
    assert torch.equal(frames, field_valid) and 0 < frames.sum() < 93 // 2 + 1


@pytest.mark.parametrize(
    "problem_type,labels,loss_fn",
    [
        ("multi_label_classification", torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]]),
         lambda z, y, c: torch.nn.functional.binary_cross_entropy_with_logits(z, y, pos_weight=torch.tensor(c.pos_weight))),
        ("single_label_classification", torch.tensor([2, 0]),
         lambda z, y, c: torch.nn.functional.cross_entropy(z, y, weight=torch.tensor(c.class_weight))),
        ("regression", torch.tensor([[0.5, 1.0, -1.0], [2.0, 0.0, 1.0]]),
         lambda z, y, c: torch.nn.functional.mse_loss(z, y)),
    ],
)
def test_classification_losses(problem_type, labels, loss_fn):
    config = HuBERTECGConfig(
        **TINY, num_labels=3, problem_type=problem_type, pos_weight=[1.0, 3.0, 0.5], class_weight=[1.0, 2.0, 4.0]
    )
    model = HuBERTECGForSequenceClassification(config).eval()
    out = model(torch.randn(2, 6000), labels=labels)
    expected_loss = loss_fn(out.logits, labels, config)
    assert torch.isclose(out.loss, expected_loss, atol=1e-6)
    out.loss.backward()
    assert model.classifier.weight.grad is not None


def test_pos_weight_changes_the_loss():
    labels = torch.tensor([[1.0, 1.0, 0.0]])
    x = torch.randn(1, 6000)
    torch.manual_seed(0)
    plain = HuBERTECGForSequenceClassification(HuBERTECGConfig(**TINY, num_labels=3)).eval()
    weighted = HuBERTECGForSequenceClassification(HuBERTECGConfig(**TINY, num_labels=3, pos_weight=[5.0, 5.0, 5.0]))
    weighted.load_state_dict(plain.state_dict())
    assert weighted.eval()(x, labels=labels).loss > plain(x, labels=labels).loss


def test_freezing():
    model = HuBERTECGForSequenceClassification(HuBERTECGConfig(**TINY, num_labels=2))
    model.freeze_feature_encoder()
    assert not any(p.requires_grad for p in model.hubert_ecg.feature_extractor.parameters())
    model.freeze_base_model(train_last_n_layers=1)
    trainable = {n.split(".")[0] + "." + ".".join(n.split(".")[1:4]) for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"hubert_ecg.encoder.layers.1", "classifier.weight", "classifier.bias"}
    with pytest.raises(ValueError, match="train_last_n_layers"):
        model.freeze_base_model(train_last_n_layers=3)


def test_pretraining_masks_itself_and_computes_loss():
    torch.manual_seed(0)
    model = HuBERTECGForPreTraining(HuBERTECGConfig(**TINY)).train()
    labels = torch.stack([torch.randint(0, 20, (2, 93)), torch.randint(0, 30, (2, 93))], dim=1)
    out = model(torch.randn(2, 6000), labels=labels)
    assert out.mask_time_indices.shape == (2, 93)
    assert (out.mask_time_indices.sum(-1) >= 2).all()
    assert [logits.shape for logits in out.logits] == [(2, 93, 20), (2, 93, 30)]
    # loss = sum over codebooks of the mean cross-entropy over masked frames
    masked = out.mask_time_indices
    expected_loss = sum(
        torch.nn.functional.cross_entropy(logits[masked], labels[:, i][masked]) for i, logits in enumerate(out.logits)
    )
    assert torch.isclose(out.loss, expected_loss, atol=1e-5)
    out.loss.backward()
    assert model.label_embedding[1].weight.grad is not None


def test_pretraining_uses_given_mask_and_checks_label_shape():
    model = HuBERTECGForPreTraining(HuBERTECGConfig(**TINY)).eval()
    mask = torch.zeros(1, 93, dtype=torch.bool)
    mask[0, 10:20] = True
    x = torch.randn(1, 6000)
    with torch.no_grad():
        masked = model(x, mask_time_indices=mask)
        plain = model(x)
    assert torch.equal(masked.mask_time_indices, mask)
    assert not torch.allclose(masked.last_hidden_state, plain.last_hidden_state)
    with pytest.raises(ValueError, match="labels"):
        model(x, labels=torch.zeros(1, 93, dtype=torch.long), mask_time_indices=mask)
    # a cluster id outside its codebook: a ValueError naming the codebook, its size and the label, not an IndexError
    labels = torch.zeros(1, 2, 93, dtype=torch.long)
    labels[0, 1, 5] = 30  # vocab_sizes = (20, 30)
    with pytest.raises(ValueError, match=r"codebook 1 \(vocab_sizes\[1\] = 30\).*got 30"):
        model(x, labels=labels)
    labels[0, 1, 5], labels[0, 0, 7] = -100, -3
    with pytest.raises(ValueError, match=r"codebook 0 .*got -3"):
        model(x, labels=labels)


def test_new_heads_are_initialised(reference_dir):
    """Heads missing from a checkpoint are initialised by _init_weights (same seed -> same values, std ~ 0.02)."""
    heads = []
    for _ in range(2):
        torch.manual_seed(1)
        model = HuBERTECGForSequenceClassification.from_pretrained(reference_dir / "hub_layout", num_labels=4)
        heads.append(model.classifier.weight.detach().clone())
        assert torch.all(model.classifier.bias == 0)
    assert torch.equal(heads[0], heads[1])
    assert 0.01 < heads[0].std() < 0.03


def test_save_pretrained_writes_safetensors_and_only_the_model_code(reference_dir, tmp_path):
    model = HuBERTECGForSequenceClassification.from_pretrained(
        reference_dir / "hub_layout", id2label={0: "NORM", 1: "MI"}, label2id={"NORM": 0, "MI": 1}
    )
    model.save_pretrained(tmp_path)
    files = {p.name for p in tmp_path.iterdir()}
    assert {"model.safetensors", "config.json"} <= files
    assert {name for name in files if name.endswith(".py")} == {"configuration.py", "modeling.py"}
    assert not any(name.endswith(".bin") for name in files) and "README.md" not in files  # cards: model_card
    reloaded = AutoModelForSequenceClassification.from_pretrained(tmp_path)
    assert reloaded.config.id2label == {0: "NORM", 1: "MI"}


def test_model_code_imports_only_torch_numpy_transformers():
    import ast
    from pathlib import Path

    import hubert_ecg

    package = Path(hubert_ecg.__file__).parent
    for name in ("configuration.py", "modeling.py"):
        tree = ast.parse((package / name).read_text())
        roots = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                roots |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                roots.add("." + (node.module or "") if node.level else node.module.split(".")[0])
        # importlib: the label sets are imported by name, only when a config names one (not a file of the saved code)
        allowed = {"torch", "numpy", "transformers", "huggingface_hub", "dataclasses", "importlib", ".configuration"}
        assert roots <= allowed, (name, roots - allowed)


def test_forwards_take_transformers_keywords_from_arguments_and_config():
    """The forwards take transformers' keyword arguments (``**kwargs``, as every transformers model): output flags and
    ``return_dict`` as arguments or from the config; other keywords go to the attention functions, which ignore those
    they do not use (so, unlike before the forwards took ``**kwargs``, an unknown keyword is not a TypeError)."""
    x = torch.randn(2, 6000)
    config = HuBERTECGConfig(**TINY, num_labels=2)
    classifier = HuBERTECGForSequenceClassification(config).eval()
    pretraining = HuBERTECGForPreTraining(HuBERTECGConfig(**TINY)).eval()
    for module in (classifier, classifier.hubert_ecg, pretraining):
        module.set_attn_implementation("eager")
        plain = module(x)
        assert plain.hidden_states is None and plain.attentions is None
        asked = module(x, output_hidden_states=True, output_attentions=True)
        assert len(asked.hidden_states) == 3 and len(asked.attentions) == 2
        module.config.output_hidden_states = module.config.output_attentions = True
        from_config = module(x)
        assert len(from_config.hidden_states) == 3 and len(from_config.attentions) == 2
        module.config.output_hidden_states = module.config.output_attentions = False
        as_tuple = module(x, return_dict=False)
        assert isinstance(as_tuple, tuple) and all(item is not None for item in as_tuple)
        torch.testing.assert_close(as_tuple[0], plain[0])
        torch.testing.assert_close(module(x, lead_mask=torch.ones(2, 12))[0], plain[0])  # ignored


def test_first_conv_is_a_matrix_product_equal_to_the_convolution(expected):
    """The input convolution (HuBERTECGInputConv) computes what nn.Conv1d computes, gradients included."""
    from hubert_ecg.modeling import HuBERTECGInputConv

    torch.manual_seed(0)
    model = HuBERTECGModel(HuBERTECGConfig(**TINY, conv_bias=True))
    conv = model.feature_extractor.conv_layers[0].conv
    assert isinstance(conv, HuBERTECGInputConv) and conv.kernel_size == (10,) and conv.stride == (4,)
    x = torch.from_numpy(expected["input_values_10s"])[:, None].requires_grad_()
    ours = conv(x)
    theirs = torch.nn.functional.conv1d(x, conv.weight, conv.bias, stride=conv.stride)
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)
    (grad_ours,) = torch.autograd.grad(ours.square().sum(), conv.weight)
    (grad_theirs,) = torch.autograd.grad(theirs.square().sum(), conv.weight)
    # float32 sums of thousands of products, in another order: equal to 1e-4 of the gradient's scale
    torch.testing.assert_close(grad_ours, grad_theirs, rtol=1e-4, atol=1e-4 * grad_theirs.abs().max().item())
    # the same parameters and keys as transformers' HubertModel
    from transformers import HubertConfig, HubertModel

    fields = {k: v for k, v in model.config.to_dict().items() if k in HubertConfig().to_dict()}
    assert set(model.state_dict()) == set(HubertModel(HubertConfig(**fields)).state_dict())


def test_bf16_loading_keeps_the_positional_convolution_in_float32(reference_dir, expected):
    """from_pretrained(dtype=bfloat16): everything in bf16 but the positional convolution
    (_keep_in_fp32_modules_strict), which also runs in float32 under autocast; hidden states stay close."""
    model = AutoModel.from_pretrained(reference_dir / "hub_layout", dtype=torch.bfloat16).eval()
    dtypes = {name: p.dtype for name, p in model.named_parameters()}
    assert {d for n, d in dtypes.items() if "pos_conv_embed" in n} == {torch.float32}
    assert {d for n, d in dtypes.items() if "pos_conv_embed" not in n} == {torch.bfloat16}
    x = torch.from_numpy(expected["input_values_5s"])
    with torch.no_grad():
        hidden = model(x.bfloat16()).last_hidden_state
    assert hidden.dtype == torch.bfloat16
    reference = expected["last_hidden_state_5s"]
    assert np.abs(hidden.float().numpy() - reference).max() < 0.05 * np.abs(reference).max()

    module = model.encoder.pos_conv_embed
    frames = torch.randn(2, 93, 32)
    with torch.no_grad():
        exact = module(frames)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            under_autocast = module(frames.bfloat16())
    assert under_autocast.dtype == torch.bfloat16
    torch.testing.assert_close(under_autocast.float(), exact, atol=0.02 * exact.abs().max().item(), rtol=0)


@pytest.mark.parametrize("build", ["_from_config", "default_dtype"])
def test_models_built_in_bf16_keep_the_positional_convolution_in_float32(build):
    """_from_config(config, dtype=bfloat16) and construction under a bfloat16 default dtype create the positional
    convolution in float32, as from_pretrained keeps it (_keep_in_fp32_modules_strict); the rest is bfloat16."""
    config = HuBERTECGConfig(**TINY, num_labels=2)
    if build == "_from_config":
        model = HuBERTECGForSequenceClassification._from_config(config, dtype=torch.bfloat16)
    else:
        previous = torch.get_default_dtype()
        torch.set_default_dtype(torch.bfloat16)
        try:
            model = HuBERTECGForSequenceClassification(config)
        finally:
            torch.set_default_dtype(previous)
    dtypes = {name: p.dtype for name, p in model.named_parameters()}
    assert {d for n, d in dtypes.items() if "pos_conv_embed" in n} == {torch.float32}
    assert {d for n, d in dtypes.items() if "pos_conv_embed" not in n} == {torch.bfloat16}
    assert torch.get_default_dtype() == torch.float32
    with torch.no_grad():
        assert model.eval()(torch.randn(1, 6000, dtype=torch.bfloat16)).logits.dtype == torch.bfloat16


def _no_dropout(**overrides):
    zero = dict(hidden_dropout=0.0, attention_dropout=0.0, activation_dropout=0.0, feat_proj_dropout=0.0,
                final_dropout=0.0, layerdrop=0.0)
    return HuBERTECGConfig(**TINY, num_labels=3, **zero, **overrides)


@pytest.mark.parametrize("prob", [0.0, 0.33])
def test_finetuning_spec_augment_is_its_own_setting(prob):
    """Two training-mode forwards with every dropout at 0 are equal when fine-tuning masking is off (the default,
    whatever the pretraining mask says) and differ when it is on; eval mode never masks."""
    torch.manual_seed(0)
    model = HuBERTECGForSequenceClassification(_no_dropout(mask_time_prob=0.33, finetune_mask_time_prob=prob))
    x = torch.randn(2, 6000)
    model.train()
    first, second = model(x).logits, model(x).logits
    assert torch.equal(first, second) == (prob == 0.0)
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(x).logits, model(x).logits)


def test_finetuning_masking_default_and_legacy_configs(reference_dir, tmp_path):
    assert HuBERTECGConfig().finetune_mask_time_prob == 0.0
    assert HuBERTECGConfig.from_preset("small").finetune_mask_time_prob == 0.0
    # released checkpoints (no such field; apply_spec_augment true, mask_time_prob 0.33): fine-tuning masked 33 %
    released = HuBERTECGConfig.from_pretrained(reference_dir / "hub_layout")
    assert (released.finetune_mask_time_prob, released.finetune_mask_time_length) == (0.33, 1)
    no_spec_augment = HuBERTECGConfig.from_pretrained(reference_dir / "hub_layout", apply_spec_augment=False)
    assert no_spec_augment.finetune_mask_time_prob == 0
    # a saved setting is kept, including 0
    HuBERTECGConfig.from_preset("small", mask_time_prob=0.5).save_pretrained(tmp_path)
    assert HuBERTECGConfig.from_pretrained(tmp_path).finetune_mask_time_prob == 0.0
    with pytest.raises(ValueError, match="finetune_mask_time_prob"):
        HuBERTECGConfig(finetune_mask_time_prob=1.5)


def test_mixed_precision_training_step_runs_the_positional_convolution_in_float32():
    """Under bf16 autocast (``hubert-ecg finetune --bf16``) the positional convolution sees float32 inputs and
    weights, the rest runs in bf16, and gradients reach every trainable parameter."""
    torch.manual_seed(0)
    model = HuBERTECGForSequenceClassification(_no_dropout()).train()
    seen = {}
    conv = model.hubert_ecg.encoder.pos_conv_embed.conv
    conv.register_forward_hook(lambda module, args, output: seen.update(input=args[0].dtype, output=output.dtype))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(torch.randn(2, 6000), labels=torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]]))
    assert seen == {"input": torch.float32, "output": torch.float32}
    assert out.logits.dtype == torch.bfloat16
    out.loss.backward()
    for name, parameter in model.named_parameters():
        if parameter.requires_grad and "masked_spec_embed" not in name:
            assert parameter.grad is not None and torch.isfinite(parameter.grad).all(), name
