import json

import pytest
import torch
from transformers import AutoConfig

import hubert_ecg  # noqa: F401  (registers hubert_ecg with the Auto classes)
from hubert_ecg import HuBERTECGConfig, HuBERTECGForPreTraining, HuBERTECGModel


@pytest.mark.parametrize("name,count", [("small", 30_209_664), ("base", 92_798_848), ("large", 187_644_736)])
def test_presets_match_released_sizes(reference_dir, name, count):
    released = json.loads((reference_dir / "released_sizes.json").read_text())[name]
    config = HuBERTECGConfig.from_preset(name)
    for field, value in released["config"].items():
        got = getattr(config, field)
        assert (list(got) if isinstance(got, tuple) else got) == value, field
    with torch.device("meta"):
        backbone = HuBERTECGModel(config)
        pretraining = HuBERTECGForPreTraining(config)
    n_backbone = sum(p.numel() for p in backbone.parameters())
    n_heads = sum(p.numel() for p in pretraining.parameters()) - n_backbone
    assert n_backbone == released["backbone_parameters"] == count
    assert n_heads == released["pretraining_head_parameters"]


def test_frames_per_window_is_93():
    assert HuBERTECGConfig().num_frames(6000) == 93


def test_published_config_json_loads_unchanged(reference_dir):
    config = AutoConfig.from_pretrained(reference_dir / "hub_layout")
    assert isinstance(config, HuBERTECGConfig)
    assert config.vocab_sizes == [20, 30] and config.ensemble_length == 2
    assert config.hidden_size == 32 and config.num_hidden_layers == 2
    assert list(config.conv_stride) == [4, 2, 2, 2, 2]
    # the release's auto_map names remote code its checkpoints do not ship (hubert_ecg.HuBERTECG): dropped on load
    assert getattr(config, "auto_map", None) is None


def test_save_pretrained_writes_the_auto_map_of_the_saved_code_and_loading_keeps_it(tmp_path):
    """No auto_map is forced on configs: save_pretrained writes one for the classes it saves (register_for_auto_class),
    pointing at the configuration.py / modeling.py it copies, and loading keeps it."""
    config = HuBERTECGConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                             conv_dim=(32,) * 5, num_conv_pos_embedding_groups=2, vocab_sizes=[5])
    assert getattr(config, "auto_map", None) is None
    HuBERTECGForPreTraining(config).save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())["auto_map"]
    assert saved == {"AutoConfig": "configuration.HuBERTECGConfig",
                     "AutoModelForPreTraining": "modeling.HuBERTECGForPreTraining"}
    assert {p.name for p in tmp_path.glob("*.py")} == {"configuration.py", "modeling.py"}
    assert AutoConfig.from_pretrained(tmp_path).auto_map == saved
    # a hub copy's entries carry the repository ("owner/name--module.Class"): kept as well
    hub = dict(json.loads((tmp_path / "config.json").read_text()), auto_map={
        "AutoConfig": "owner/name--configuration.HuBERTECGConfig"})
    assert HuBERTECGConfig.from_dict(hub).auto_map == hub["auto_map"]


BAD_FIELDS = [
    ({"conv_dim": [32, 32]}, "same length"),
    ({"hidden_size": 36, "num_attention_heads": 8}, "num_attention_heads"),
    ({"hidden_size": 40, "num_attention_heads": 4}, "num_conv_pos_embedding_groups"),
    ({"vocab_sizes": []}, "vocab_sizes"),
    ({"vocab_sizes": [10, 20], "ensemble_length": 1}, "ensemble_length"),
    ({"mask_time_prob": 1.2}, "mask_time_prob"),
    ({"hidden_dropout": -0.1}, "hidden_dropout"),
    ({"logit_temperature": 0.0}, "logit_temperature"),
    ({"num_labels": 3, "pos_weight": [1.0, 2.0]}, "pos_weight"),
    ({"finetune_mask_time_prob": -0.5}, "finetune_mask_time_prob"),
    ({"finetune_mask_time_length": 0}, "finetune_mask_time_length"),
]


@pytest.mark.parametrize("fields,message", BAD_FIELDS)
def test_invalid_config_raises_value_error_at_construction(fields, message):
    with pytest.raises(ValueError, match=message):
        HuBERTECGConfig(**fields)


@pytest.mark.parametrize("fields,message", BAD_FIELDS[:6])
def test_invalid_config_raises_value_error_at_from_pretrained(reference_dir, tmp_path, fields, message):
    config = json.loads((reference_dir / "hub_layout" / "config.json").read_text())
    config.update(fields)
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=message):
        AutoConfig.from_pretrained(tmp_path)


def test_unknown_preset():
    with pytest.raises(ValueError, match="huge"):
        HuBERTECGConfig.from_preset("huge")


def test_save_and_reload_round_trip(tmp_path):
    config = HuBERTECGConfig.from_preset("small", vocab_sizes=[100, 500], num_labels=5)
    config.save_pretrained(tmp_path)
    loaded = AutoConfig.from_pretrained(tmp_path)
    assert loaded.vocab_sizes == [100, 500] and loaded.ensemble_length == 2 and loaded.num_labels == 5


def test_a_new_head_drops_the_saved_label_weights(tmp_path):
    """`from_pretrained(classifier, num_labels=N)` re-heads a model (transformers re-labels id2label); the saved
    head's pos_weight does not apply to the new labels, while a config built inconsistent is still refused."""
    saved = HuBERTECGConfig(num_labels=5, pos_weight=[1.0, 2.0, 3.0, 4.0, 5.0])
    saved.save_pretrained(tmp_path)
    assert HuBERTECGConfig.from_pretrained(tmp_path).pos_weight == [1.0, 2.0, 3.0, 4.0, 5.0]
    reheaded = HuBERTECGConfig.from_pretrained(tmp_path, num_labels=4)
    assert reheaded.num_labels == 4 and reheaded.pos_weight is None
    with pytest.raises(ValueError, match="pos_weight"):
        HuBERTECGConfig(num_labels=4, pos_weight=[1.0, 2.0, 3.0, 4.0, 5.0])
