"""Convert checkpoints of the original HuBERT-ECG release into ``save_pretrained`` directories, safely.

Two kinds of source are handled:

* original ``.pt`` training checkpoints written by the release's scripts: a dict with ``model_state_dict``,
  ``model_config`` (a pickled object of class ``hubert_ecg.HuBERTECGConfig`` whose ``__dict__`` holds the
  config fields) and training state. Pretraining checkpoints hold backbone keys unprefixed plus
  ``final_proj.{i}`` / ``label_embedding.{i}``; fine-tuned ones hold the backbone under ``hubert_ecg.`` and a
  linear head ``classifier.*`` (``finetuning_vocab_size`` outputs).
* hub directories as published (``config.json`` + ``model.safetensors``, positional-convolution weight norm
  named either ``parametrizations.weight.original0/1`` or ``weight_g`` / ``weight_v``).

Pickles are read with ``torch.load(weights_only=True)``, which executes no code: the only globals it accepts are
torch's tensor rebuilders, ``collections.OrderedDict`` and the release's config class, which is mapped to an inert
placeholder. A file whose pickle names any other global (``os.system``, ``builtins.eval``, ...) is refused.
"""

import argparse
import os
import pickle
import sys
import tempfile
from pathlib import Path

import torch
from safetensors.torch import save_file
from transformers.utils import logging

from .configuration import HuBERTECGConfig
from .modeling import HuBERTECGForPreTraining, HuBERTECGForSequenceClassification, HuBERTECGModel

logger = logging.get_logger(__name__)

_ORIGINAL_CONFIG_CLASS = "hubert_ecg.HuBERTECGConfig"


class _PickledOriginalConfig:
    """Inert stand-in for the release's ``hubert_ecg.HuBERTECGConfig``: unpickling only fills its ``__dict__``."""


def load_original_checkpoint(path: str | os.PathLike) -> dict:
    """Read an original ``.pt`` checkpoint without executing pickled code.

    Returns:
        The checkpoint dict, with ``model_config`` replaced by a plain dict of config fields.

    Raises:
        ValueError: if the file is missing, is not a torch checkpoint, names a global other than torch's tensor
            rebuilders and the release's config class, or lacks ``model_state_dict`` / ``model_config``.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such checkpoint file.")
    try:
        with torch.serialization.safe_globals([(_PickledOriginalConfig, _ORIGINAL_CONFIG_CLASS)]):
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise ValueError(
            f"{path}: refused to load. Its pickle references code other than tensors and the release's "
            f"{_ORIGINAL_CONFIG_CLASS}, which could execute arbitrary commands; nothing was run. Details: {error}"
        ) from None
    except (RuntimeError, EOFError, OSError) as error:
        raise ValueError(f"{path}: not a readable torch checkpoint ({error}).") from None
    if not isinstance(checkpoint, dict) or "model_state_dict" not in checkpoint or "model_config" not in checkpoint:
        raise ValueError(
            f"{path}: expected an original HuBERT-ECG training checkpoint, a dict with 'model_state_dict' and "
            f"'model_config'."
        )
    config = checkpoint["model_config"]
    checkpoint["model_config"] = dict(vars(config)) if isinstance(config, _PickledOriginalConfig) else dict(config)
    return checkpoint


def _config_from_original(fields: dict, **overrides) -> HuBERTECGConfig:
    fields = {k: v for k, v in fields.items() if not k.startswith("_")}
    for stale in ("auto_map", "architectures", "transformers_version", "torch_dtype", "model_type"):
        fields.pop(stale, None)
    fields.update(overrides)
    return HuBERTECGConfig.from_dict(fields)


def _convert_pt(src: Path):
    checkpoint = load_original_checkpoint(src)
    state_dict = checkpoint["model_state_dict"]
    fine_tuned = any(key.startswith("classifier.") for key in state_dict)
    if fine_tuned:
        if not checkpoint.get("linear", True) or checkpoint.get("use_label_embedding", False):
            raise ValueError(
                f"{src}: only the linear classification head of the release is supported "
                f"(this checkpoint has linear={checkpoint.get('linear')}, "
                f"use_label_embedding={checkpoint.get('use_label_embedding')})."
            )
        num_labels = int(checkpoint.get("finetuning_vocab_size", state_dict["classifier.weight"].shape[0]))
        config = _config_from_original(
            checkpoint["model_config"],
            id2label={i: f"LABEL_{i}" for i in range(num_labels)},
            label2id={f"LABEL_{i}": i for i in range(num_labels)},
            problem_type="multi_label_classification",
        )
        model_class = HuBERTECGForSequenceClassification
    else:
        vocab_sizes = checkpoint.get("pretraining_vocab_sizes") or checkpoint["model_config"].get("vocab_sizes")
        config = _config_from_original(
            checkpoint["model_config"], vocab_sizes=list(vocab_sizes), ensemble_length=len(vocab_sizes)
        )
        model_class = HuBERTECGForPreTraining
    # Let transformers' own loader rename keys (prefixes, weight_g/weight_v) from a temporary save_pretrained layout.
    with tempfile.TemporaryDirectory() as tmp:
        config.save_pretrained(tmp)
        save_file({k: v.contiguous() for k, v in state_dict.items()}, os.path.join(tmp, "model.safetensors"))
        model = _load_checked(model_class, tmp, src)
    return model


def _load_checked(model_class, directory, src):
    model, info = model_class.from_pretrained(directory, output_loading_info=True)
    missing = [k for k in info["missing_keys"] if not k.endswith("masked_spec_embed")]
    if missing or info["mismatched_keys"]:
        raise ValueError(
            f"{src}: weights do not fit {model_class.__name__}: missing {missing}, "
            f"mismatched {info['mismatched_keys']}."
        )
    return model


def _convert_directory(src: Path):
    if not (src / "config.json").is_file():
        raise ValueError(f"{src}: a hub directory needs a config.json.")
    weights = src / "model.safetensors"
    if weights.is_file():
        from safetensors import safe_open

        with safe_open(weights, "pt") as handle:
            keys = list(handle.keys())
    else:
        raise ValueError(f"{src}: expected model.safetensors next to config.json.")
    if any(key.startswith("classifier.") for key in keys):
        model_class = HuBERTECGForSequenceClassification
    elif any(key.startswith("final_proj.") for key in keys):
        model_class = HuBERTECGForPreTraining
    else:
        model_class = HuBERTECGModel
    return _load_checked(model_class, src, src)


def convert_original_checkpoint(src: str | os.PathLike, out_dir: str | os.PathLike):
    """Convert an original HuBERT-ECG checkpoint into a ``save_pretrained`` directory of the right class.

    Args:
        src: an original ``.pt`` training checkpoint (pretraining or fine-tuned) or a hub directory
            (``config.json`` + ``model.safetensors``, either weight-norm naming).
        out_dir: destination; receives ``config.json``, ``model.safetensors`` and the model code for
            ``trust_remote_code``.

    Returns:
        The loaded model: :class:`HuBERTECGForPreTraining` for pretraining checkpoints and hub repositories with
        ``final_proj``, :class:`HuBERTECGForSequenceClassification` for fine-tuned ones, else
        :class:`HuBERTECGModel`.

    Raises:
        ValueError: for a missing or unreadable source, a pickle that references code (never executed), or
            weights that do not fit the configuration.
    """
    src, out_dir = Path(src), Path(out_dir)
    if src.is_dir():
        model = _convert_directory(src)
    elif src.suffix in (".pt", ".pth", ".bin", ".ckpt"):
        model = _convert_pt(src)
    else:
        raise ValueError(f"{src}: expected an original .pt checkpoint or a hub directory with config.json.")
    model.save_pretrained(out_dir)
    logger.info(f"Converted {src} -> {out_dir} ({type(model).__name__})")
    return model


def convert_main(argv: list[str]) -> int:
    """``hubert-ecg convert SRC OUT_DIR``: see :func:`hubert_ecg.convert_original_checkpoint`."""
    parser = argparse.ArgumentParser(
        prog="hubert-ecg convert",
        description="Convert an original HuBERT-ECG .pt checkpoint or hub directory into a save_pretrained "
        "directory (safetensors). Pickled code is never executed.",
    )
    parser.add_argument("src", help="original .pt checkpoint (pretraining or fine-tuned) or hub directory")
    parser.add_argument("out_dir", help="output directory")
    args = parser.parse_args(argv)

    try:
        model = convert_original_checkpoint(args.src, args.out_dir)
    except ValueError as error:
        print(f"hubert-ecg convert: error: {error}", file=sys.stderr)
        return 2
    print(f"{args.src} -> {args.out_dir} ({type(model).__name__}, {model.num_parameters():,} parameters)")
    return 0


__all__ = ["convert_original_checkpoint", "load_original_checkpoint", "convert_main"]
