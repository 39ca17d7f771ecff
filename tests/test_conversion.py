import os
import pickle

import numpy as np
import pytest
import torch
from transformers import AutoModel

from hubert_ecg import HuBERTECGForPreTraining, HuBERTECGForSequenceClassification, HuBERTECGModel
from hubert_ecg import convert_original_checkpoint
from hubert_ecg_cli import main as cli_main


@pytest.mark.parametrize(
    "source,model_class",
    [
        ("original_pretraining.pt", HuBERTECGForPreTraining),
        ("original_finetuned.pt", HuBERTECGForSequenceClassification),
        ("hub_layout", HuBERTECGForPreTraining),
        ("hub_layout_weight_g", HuBERTECGForPreTraining),
    ],
)
def test_convert_every_layout(reference_dir, tmp_path, expected, source, model_class):
    model = convert_original_checkpoint(reference_dir / source, tmp_path)
    assert type(model) is model_class
    assert (tmp_path / "model.safetensors").is_file() and (tmp_path / "config.json").is_file()
    backbone = AutoModel.from_pretrained(tmp_path).eval()
    assert isinstance(backbone, HuBERTECGModel)
    for length in ("5s", "10s"):
        with torch.no_grad():
            hidden = backbone(torch.from_numpy(expected[f"input_values_{length}"])).last_hidden_state
        np.testing.assert_allclose(hidden.numpy(), expected[f"last_hidden_state_{length}"], atol=1e-4, rtol=0)
    reloaded = model_class.from_pretrained(tmp_path).eval()
    # fine-tuning SpecAugment as the release applied it: the checkpoint's mask_time_prob (0 in the fine-tuned one)
    assert reloaded.config.finetune_mask_time_prob == (0.0 if source == "original_finetuned.pt" else 0.33)
    with torch.no_grad():
        out = reloaded(torch.from_numpy(expected["input_values_5s"]))
    if model_class is HuBERTECGForSequenceClassification:
        assert reloaded.config.num_labels == 5
        np.testing.assert_allclose(out.logits.numpy(), expected["classifier_logits_5s"], atol=1e-4, rtol=0)
    else:
        assert reloaded.config.vocab_sizes == [20, 30]
        np.testing.assert_allclose(out.logits[1].numpy(), expected["pretrain_logits_5s_codebook1"], atol=1e-4, rtol=0)


class _Exploit:
    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


def test_pickle_with_code_is_refused_and_never_run(tmp_path):
    marker = tmp_path / "pwned"
    malicious = tmp_path / "malicious.pt"
    torch.save({"model_state_dict": {}, "model_config": _Exploit(f"touch {marker}")}, malicious)
    with pytest.raises(ValueError, match="refused") as error:
        convert_original_checkpoint(malicious, tmp_path / "out")
    assert "malicious.pt" in str(error.value)
    assert not marker.exists()
    assert not (tmp_path / "out").exists()


def test_pickle_with_builtins_eval_is_refused(tmp_path):
    class EvalExploit:
        def __reduce__(self):
            return (eval, ("1 + 1",))

    path = tmp_path / "eval.pt"
    with open(path, "wb") as handle:
        pickle.dump({"model_config": EvalExploit()}, handle)
    with pytest.raises(ValueError, match="eval.pt"):
        convert_original_checkpoint(path, tmp_path / "out")


def test_bad_sources(tmp_path):
    with pytest.raises(ValueError, match="no such checkpoint"):
        convert_original_checkpoint(tmp_path / "missing.pt", tmp_path / "out")
    (tmp_path / "garbage.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="garbage.pt"):
        convert_original_checkpoint(tmp_path / "garbage.pt", tmp_path / "out")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="model_state_dict"):
        convert_original_checkpoint(tmp_path / "other.pt", tmp_path / "out")
    with pytest.raises(ValueError, match="config.json"):
        convert_original_checkpoint(tmp_path, tmp_path / "out")


def test_cli_convert(reference_dir, tmp_path, capsys):
    assert cli_main(["convert", str(reference_dir / "original_finetuned.pt"), str(tmp_path / "out")]) == 0
    assert "HuBERTECGForSequenceClassification" in capsys.readouterr().out
    assert cli_main(["convert", str(tmp_path / "missing.pt"), str(tmp_path / "out2")]) == 2
    assert "missing.pt" in capsys.readouterr().err
    # both spellings of an option; a value the package does not know is a usage error before anything is read
    assert cli_main(["convert", str(reference_dir / "original_finetuned.pt"), str(tmp_path / "out3"), "--problem-type",
                     "single_label_classification"]) == 0
    assert cli_main(["convert", str(reference_dir / "original_finetuned.pt"), str(tmp_path / "out4"), "--label_set",
                     "nope"]) == 2
    assert "hubert-ecg convert: error:" in capsys.readouterr().err and not (tmp_path / "out4").exists()


def test_the_commands_choices_are_the_packages():
    """The values convert keeps to answer usage errors without the package are the package's own."""
    from hubert_ecg.label_sets import LABEL_SET_NAMES
    from hubert_ecg.training.data import PROBLEM_TYPES
    from hubert_ecg_cli import convert

    assert convert.LABEL_SETS == LABEL_SET_NAMES
    assert convert.PROBLEM_TYPES == PROBLEM_TYPES
