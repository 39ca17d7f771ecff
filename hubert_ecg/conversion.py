"""Convert checkpoints of the original HuBERT-ECG release into ``save_pretrained`` directories, safely.

These kinds of source are handled:

* original ``.pt`` training checkpoints written by the release's scripts: a dict with ``model_state_dict``,
  ``model_config`` (a pickled object of class ``hubert_ecg.HuBERTECGConfig`` whose ``__dict__`` holds the
  config fields) and training state. Pretraining checkpoints hold backbone keys unprefixed plus
  ``final_proj.{i}`` / ``label_embedding.{i}``; fine-tuned ones hold the backbone under ``hubert_ecg.`` and a
  linear head ``classifier.*`` (``finetuning_vocab_size`` outputs).
  Fine-tuned heads are linear (``classifier.*``), an MLP (``classifier.0.*``, ``classifier.2.*``) or a label
  embedding (``label_embedding.weight``).
* hub directories as published (``config.json`` + ``model.safetensors``, positional-convolution weight norm
  named either ``parametrizations.weight.original0/1`` or ``weight_g`` / ``weight_v``), the authors' 2026 package
  format (``model_type: "hubert_ecg_classification"``) among them, and Hub ids of such repositories.

Pickles are read with ``torch.load(weights_only=True)``, which executes no code: the only globals it accepts are
torch's tensor rebuilders, ``collections.OrderedDict`` and the release's config class, which is mapped to an inert
placeholder. A file whose pickle names any other global (``os.system``, ``builtins.eval``, ...) is refused.
"""

import json
import os
import pickle
import tempfile
from pathlib import Path

import torch
from safetensors.torch import save_file
from transformers.utils import logging

from .configuration import HuBERTECGConfig, _label_set_fields, implied_label_set
from .modeling import HuBERTECGForPreTraining, HuBERTECGForSequenceClassification, HuBERTECGModel
from .processing import HuBERTECGFeatureExtractor

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


def _is_classifier(keys) -> bool:
    """A fine-tuned classifier's keys: a ``classifier.*`` head (linear or MLP) or a label-embedding head
    (``label_embedding.weight``; a pretraining model's codebooks are ``label_embedding.{i}.weight``)."""
    return any(key.startswith("classifier.") or key == "label_embedding.weight" for key in keys)


def _head_fields(state_dict: dict, checkpoint: dict, src: Path) -> dict:
    """The head of a legacy fine-tuned checkpoint, from its flags (``linear``, ``use_label_embedding``) and weights.

    The legacy checkpoints do not record the MLP head's activation: it is the release's default, tanh.
    """
    if "label_embedding.weight" in state_dict:
        return {"use_label_embedding": True, "classifier_hidden_size": None}
    if "classifier.weight" in state_dict:
        return {"use_label_embedding": False, "classifier_hidden_size": None}
    if "classifier.0.weight" in state_dict and "classifier.2.weight" in state_dict:
        return {
            "use_label_embedding": False,
            "classifier_hidden_size": int(state_dict["classifier.0.weight"].shape[0]),
            "classifier_activation": "tanh",
        }
    heads = sorted(key for key in state_dict if key.startswith("classifier."))
    raise ValueError(
        f"{src}: unknown classification head {heads} (linear={checkpoint.get('linear')}, "
        f"use_label_embedding={checkpoint.get('use_label_embedding')}): expected classifier.weight (linear), "
        "classifier.0.* and classifier.2.* (MLP) or label_embedding.weight (label embedding)."
    )


def _num_labels(state_dict: dict) -> int:
    """Outputs of a head that :func:`_head_fields` accepted."""
    key = next(k for k in ("label_embedding.weight", "classifier.weight", "classifier.2.weight") if k in state_dict)
    return int(state_dict[key].shape[0])


def _generic_labels(num_labels: int) -> dict:
    return {
        "id2label": {i: f"LABEL_{i}" for i in range(num_labels)},
        "label2id": {f"LABEL_{i}": i for i in range(num_labels)},
    }


def _convert_pt(src: Path, label_set: str | None = None, problem_type: str | None = None):
    checkpoint = load_original_checkpoint(src)
    state_dict = checkpoint["model_state_dict"]
    if _is_classifier(state_dict):
        head = _head_fields(state_dict, checkpoint, src)
        num_labels = _num_labels(state_dict)
        if checkpoint.get("finetuning_vocab_size") not in (None, num_labels):
            logger.warning(f"{src}: finetuning_vocab_size {checkpoint['finetuning_vocab_size']} but {num_labels} "
                           "outputs in the head; the head's weights decide")
        label_set = label_set or implied_label_set({"num_labels": num_labels}, origin=src.name)
        labels = _label_set_fields(label_set, {"num_labels": num_labels}) if label_set else _generic_labels(num_labels)
        config = _config_from_original(
            checkpoint["model_config"],
            **labels,
            **head,
            problem_type=problem_type or "multi_label_classification",
        )
        model_class = HuBERTECGForSequenceClassification
    else:
        if label_set is not None or problem_type is not None:
            raise ValueError(f"{src}: a pretraining checkpoint has no labels; label_set / problem_type apply to "
                             "fine-tuned classifiers.")
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


def _load_checked(model_class, directory, src, **kwargs):
    model, info = model_class.from_pretrained(directory, output_loading_info=True, **kwargs)
    missing = [k for k in info["missing_keys"] if not k.endswith("masked_spec_embed")]
    if missing or info["mismatched_keys"]:
        raise ValueError(
            f"{src}: weights do not fit {model_class.__name__}: missing {missing}, "
            f"mismatched {info['mismatched_keys']}."
        )
    return model


def _convert_directory(src: Path, origin: str, label_set: str | None = None, problem_type: str | None = None):
    if not (src / "config.json").is_file():
        raise ValueError(f"{origin}: a hub directory needs a config.json.")
    weights = src / "model.safetensors"
    if weights.is_file():
        from safetensors import safe_open

        with safe_open(weights, "pt") as handle:
            keys = list(handle.keys())
    else:
        raise ValueError(f"{origin}: expected model.safetensors next to config.json.")
    kwargs = {}
    if _is_classifier(keys):
        model_class = HuBERTECGForSequenceClassification
        config_dict = json.loads((src / "config.json").read_text(encoding="utf-8"))
        label_set = label_set or implied_label_set(config_dict, origin=origin)  # a Hub id's name, not its snapshot
        if label_set is not None:
            kwargs["label_set"] = label_set
        if problem_type is not None:
            kwargs["problem_type"] = problem_type
    elif label_set is not None or problem_type is not None:
        raise ValueError(f"{origin}: not a classifier (no classification head); label_set / problem_type apply to "
                         "fine-tuned classifiers.")
    elif any(key.startswith("final_proj.") for key in keys):
        model_class = HuBERTECGForPreTraining
    else:
        model_class = HuBERTECGModel
    return _load_checked(model_class, src, origin, **kwargs)


def _hub_snapshot(repo_id: str) -> Path:
    """The files of a Hub model repository that a conversion needs (from the local cache when offline)."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    try:
        return Path(snapshot_download(repo_id, allow_patterns=["*.json", "*.safetensors"]))
    except (LocalEntryNotFoundError, HfHubHTTPError, OSError, ValueError) as error:
        raise ValueError(f"{repo_id}: not a local path, and not a Hub model repository that could be read "
                         f"({type(error).__name__}: {error}).") from None


def convert_original_checkpoint(
    src: str | os.PathLike,
    out_dir: str | os.PathLike,
    label_set: str | None = None,
    problem_type: str | None = None,
):
    """Convert a checkpoint of the authors into a ``save_pretrained`` directory of the right class, ready to use.

    Args:
        src: an original ``.pt`` training checkpoint (pretraining, or fine-tuned with a linear, MLP or
            label-embedding head), a directory as published on the Hub (the original remote-code layout with either
            weight-norm naming, or the authors' 2026 package format), or a Hub model id (``owner/name``; read
            through the local cache when ``HF_HUB_OFFLINE=1``).
        out_dir: destination; receives ``config.json``, ``model.safetensors``, the model code for
            ``trust_remote_code`` and ``preprocessor_config.json`` (the source's own, else the released
            preprocessing: :class:`HuBERTECGFeatureExtractor` defaults), so that ``pipeline()`` and ``hubert-ecg
            predict`` load it directly.
        label_set: name a label set of :mod:`hubert_ecg.label_sets` (``"cardio-learning"``) for the classifier's
            ``id2label`` and ``label_descriptions``. Default: detected for the Cardio-Learning classifiers (164
            outputs and a name of the authors' Cardio-Learning checkpoints, or the 2026 format), else the
            checkpoint's own labels (``LABEL_i`` for the legacy ``.pt`` files, which record none).
        problem_type: ``"multi_label_classification"``, ``"single_label_classification"`` or ``"regression"`` for a
            classifier whose checkpoint does not record it (the legacy ``.pt``; default multi-label, as released).

    Returns:
        The loaded model: :class:`HuBERTECGForPreTraining` for pretraining checkpoints and hub repositories with
        ``final_proj``, :class:`HuBERTECGForSequenceClassification` for fine-tuned ones, else
        :class:`HuBERTECGModel`.

    Raises:
        ValueError: for a missing or unreadable source, a pickle that references code (never executed), weights
            that do not fit the configuration, an unknown head, or a label set / problem type that does not apply.
    """
    src_text, out_dir = str(src), Path(out_dir)
    src = Path(src)
    if src.is_dir():
        directory = src
        model = _convert_directory(src, src_text, label_set, problem_type)
    elif src.suffix in (".pt", ".pth", ".bin", ".ckpt"):
        directory = None
        model = _convert_pt(src, label_set, problem_type)
    elif not src.exists() and src_text.count("/") == 1 and not src_text.startswith((".", "/")):
        directory = _hub_snapshot(src_text)
        model = _convert_directory(directory, src_text, label_set, problem_type)
    else:
        raise ValueError(f"{src}: expected an original .pt checkpoint, a hub directory with config.json, or a Hub "
                         "model id (owner/name).")
    model.save_pretrained(out_dir)
    if directory is not None and (directory / "preprocessor_config.json").is_file():
        feature_extractor = HuBERTECGFeatureExtractor.from_pretrained(directory)
    else:
        feature_extractor = HuBERTECGFeatureExtractor()  # the released preprocessing
    feature_extractor.save_pretrained(out_dir)
    logger.info(f"Converted {src_text} -> {out_dir} ({type(model).__name__})")
    return model


__all__ = ["convert_original_checkpoint", "load_original_checkpoint"]
