"""HuBERT-ECG configuration.

HuBERT-ECG (Coppola et al., "HuBERT-ECG as a self-supervised foundation model for broad and scalable cardiac
applications", medRxiv, doi 10.1101/2024.11.14.24317328) is transformers' HuBERT architecture applied to a
lead-concatenated 12-lead ECG sampled at 100 Hz. The configuration therefore extends
:class:`transformers.HubertConfig` with the fields of the released checkpoints: one codebook per pretraining
target (``vocab_sizes``, ``ensemble_length``), the temperature of the cosine-similarity logits and the
fine-tuning head options.

This module imports nothing from the rest of the package, so that a saved model directory carries it as remote
code (see ``HuBERTECGConfig.register_for_auto_class``).
"""

import importlib

from huggingface_hub.dataclasses import strict
from transformers import HubertConfig
from transformers.utils import logging

logger = logging.get_logger(__name__)

# The released small / base / large architectures (../shared/reference/released_sizes.json, taken from the
# configurations of the published checkpoints). Backbone parameter counts: 30,209,664 / 92,798,848 / 187,644,736.
_COMMON = dict(
    conv_dim=(512, 512, 512, 512, 512),
    conv_kernel=(10, 3, 3, 2, 2),
    conv_stride=(4, 2, 2, 2, 2),
    conv_bias=False,
    feat_extract_norm="group",
    num_conv_pos_embeddings=128,
    num_conv_pos_embedding_groups=16,
    do_stable_layer_norm=False,
    mask_time_prob=0.33,
    mask_time_length=1,
    mask_time_min_masks=2,
    hidden_dropout=0.1,
    attention_dropout=0.1,
    activation_dropout=0.1,
    feat_proj_dropout=0.0,
    feat_proj_layer_norm=True,
    layer_norm_eps=1e-5,
)
PRESETS: dict[str, dict] = {
    "small": dict(
        _COMMON,
        hidden_size=512,
        num_hidden_layers=8,
        num_attention_heads=8,
        intermediate_size=2048,
        classifier_proj_size=256,
        layerdrop=0.1,
        vocab_sizes=(1000,),
    ),
    "base": dict(
        _COMMON,
        hidden_size=768,
        num_hidden_layers=12,
        num_attention_heads=12,
        intermediate_size=3072,
        classifier_proj_size=256,
        layerdrop=0.1,
        vocab_sizes=(500,),
    ),
    "large": dict(
        _COMMON,
        hidden_size=960,
        num_hidden_layers=16,
        num_attention_heads=12,
        intermediate_size=3840,
        classifier_proj_size=512,
        layerdrop=0.0,
        vocab_sizes=(1000,),
    ),
}

# The modules `save_pretrained` copies next to the weights as remote code (the classes are registered with
# `register_for_auto_class`, which also writes the `auto_map` of config.json): an `auto_map` naming any other code,
# such as the original release's (`hubert_ecg.HuBERTECG`, not shipped with its weights), is dropped on load.
_REMOTE_CODE_MODULES = ("configuration", "modeling")

# What transformers' Hubert used for SpecAugment in training: configs saved without `finetune_mask_time_prob` derive
# the fine-tuning masking from them (HuBERTECGConfig.from_dict).
_LEGACY_MASK_FIELDS = ("apply_spec_augment", "mask_time_prob", "mask_time_length", "mask_time_min_masks")

# The classification heads of the release (legacy ``HuBERTForECGClassification`` and the authors' 2026 package): the
# activation between the two layers of the MLP head.
CLASSIFIER_ACTIVATIONS = ("tanh", "relu", "gelu", "sigmoid")

# ``task_type`` of the authors' 2026 format -> transformers' ``problem_type``.
_TASK_TYPES = {
    "multi_label": "multi_label_classification",
    "multi_class": "single_label_classification",
    "regression": "regression",
}

_PROBABILITIES = (
    "hidden_dropout",
    "activation_dropout",
    "attention_dropout",
    "feat_proj_dropout",
    "final_dropout",
    "layerdrop",
    "mask_time_prob",
    "mask_feature_prob",
    "finetune_mask_time_prob",
    "lead_mask_prob",
)


@strict
class HuBERTECGConfig(HubertConfig):
    r"""Configuration of a HuBERT-ECG model.

    All fields of :class:`transformers.HubertConfig` apply (sizes of the convolutional feature encoder and of the
    transformer, dropouts, time masking). The defaults are the released *small* model; use
    :meth:`from_preset` for ``"small"``, ``"base"`` or ``"large"``.

    The feature encoder downsamples by ``prod(conv_stride)`` = 64 with the released strides: a 5 s window of 12
    leads at 100 Hz is 6000 samples (``input_values`` of shape ``(batch, 6000)``) and gives 93 frames.

    Args:
        vocab_sizes (`list[int]`, defaults to `(1000,)`):
            Number of clusters (codewords) of each pretraining target; one codebook per entry. The paper uses
            100 clusters of MFCC features in the first iteration and 500-1000 clusters of hidden states later.
        ensemble_length (`int`, *optional*):
            Number of codebooks; must equal ``len(vocab_sizes)``. Defaults to ``len(vocab_sizes)``. Kept because
            the published ``config.json`` files carry it.
        logit_temperature (`float`, defaults to 0.1):
            Cosine similarities between projected frames and codewords are divided by this temperature to give
            the pretraining logits (0.1 in the release, as in HuBERT).
        unmasked_loss_weight (`float`, defaults to 0.0):
            Weight of the cross-entropy over unmasked frames added to the masked-frame loss during pretraining
            (0 in the release: masked frames only).
        pos_weight (`list[float]`, *optional*):
            Positive-class weights of the multi-label BCE loss of the classifier, one per label.
        class_weight (`list[float]`, *optional*):
            Class weights of the single-label cross-entropy of the classifier, one per label.
        mask_time_prob, mask_time_length, mask_time_min_masks:
            Time masking of pretraining (:class:`HuBERTECGForPreTraining` and the pretraining data collator): about
            ``mask_time_prob`` of the frames masked in spans of ``mask_time_length`` frames, at least
            ``mask_time_min_masks`` spans; 0.33, 1 and 2 in the release.
        finetune_mask_time_prob (`float`, defaults to 0.0):
            SpecAugment time masking while fine-tuning :class:`HuBERTECGForSequenceClassification`: in training
            mode, about this fraction of the frames is replaced by the learned ``masked_spec_embed``; never in
            eval mode. 0 (off) for a new configuration, as the release does when training from random
            initialisation. A configuration saved without this field (the released checkpoints, models saved by
            earlier versions) gets ``mask_time_prob`` if its ``apply_spec_augment`` is true, else 0: what
            transformers' Hubert did with it, so fine-tuning a released checkpoint masks 33 % of the frames, as
            in the release. ``apply_spec_augment`` plays no other part.
        finetune_mask_time_length (`int`, defaults to 1), finetune_mask_time_min_masks (`int`, defaults to 2):
            Span length (frames) and minimum number of spans of that masking.
        lead_mask_prob (`float`, defaults to 0.0):
            The probability with which each lead was zeroed at random during training (random lead masking, Oh et
            al., CHIL 2022; fairseq-signals ``mask_leads_prob = 0.5``). A record of the model: the model itself
            never masks leads. Greater than 0 marks a lead-agnostic model, whose scores on fewer than 12 leads
            (missing leads zero-filled) the ``ecg-classification`` pipeline takes as validated; with 0 it warns
            once when it scores such a record.
        score_calibration (`dict`, *optional*):
            A calibration of the classifier's scores fitted after training (``hubert-ecg calibrate``), applied by
            :func:`~hubert_ecg.modeling.scores_from_logits` (and so by the pipeline and evaluation) before the
            sigmoid or softmax: ``{"method": "platt", "scale": [a_1, ...], "bias": [b_1, ...]}`` (one pair per label:
            ``sigmoid(a * logit + b)``, Platt 1999) or ``{"method": "temperature", "temperature": T}`` (logits / T,
            Guo et al. 2017). None: the raw sigmoid / softmax.
        label_thresholds (`dict[str, float]`, *optional*):
            A decision threshold per label name on the (calibrated) scores, chosen after training
            (``hubert-ecg calibrate``): the pipeline marks a label ``positive`` when its score is at or above it.
        contrastive_projection_sizes (`list[int]`, defaults to `()`):
            Sizes of the contrastive projection head of :class:`HuBERTECGForPreTraining` (``hubert-ecg pretrain
            --objective cmsc|simclr|hubert+...``): the frames' mean (padding-aware) goes through
            ``Linear(hidden_size, sizes[0])``, then ``ReLU`` and ``Linear(sizes[i - 1], sizes[i])`` for each further
            size, e.g. ``[256, 128]`` (SimCLR's 2-layer head). Empty (the default, and every released model): no
            head, the state-dict keys of the release.
        contrastive_temperature (`float`, defaults to 0.1):
            Temperature of the contrastive losses (cosine similarities divided by it): 0.1 in CMSC (Kiyasseh et al.
            2021, fairseq-signals ``cmsc_criterion.py``).
        classifier_hidden_size (`int`, *optional*):
            The head of :class:`HuBERTECGForSequenceClassification`. None (the default): one ``Linear(hidden_size,
            num_labels)`` (keys ``classifier.weight`` / ``classifier.bias``). N: an MLP, ``Linear(hidden_size, N)``,
            then ``classifier_activation``, then ``Linear(N, num_labels)`` (keys ``classifier.0.*`` and
            ``classifier.2.*``), as the release's ``classifier_hidden_size`` option.
        classifier_activation (`str`, defaults to `"tanh"`):
            Activation of the MLP head: ``"tanh"`` (the release's default), ``"relu"``, ``"gelu"`` or ``"sigmoid"``.
        use_label_embedding (`bool`, defaults to `False`):
            A label-embedding head instead: the logits are the cosine similarities between the pooled vector and
            each row of ``label_embedding.weight`` (num_labels, hidden_size), in [-1, 1], as the release's
            ``use_label_embedding`` option. Excludes ``classifier_hidden_size``.
        label_descriptions (`dict[str, str]`, *optional*):
            A readable description of each label name of ``id2label`` (e.g. ``{"IRBBB": "incomplete right bundle
            branch block"}``), shown by ``hubert-ecg predict`` next to the codes; set from a label set
            (:mod:`hubert_ecg.label_sets`) for the Cardio-Learning classifiers.

    The authors' 2026 package format (``model_type: "hubert_ecg_classification"``, their
    ``HuBERTECGClassificationConfig``) is read by :meth:`from_dict` onto this configuration: ``activation`` ->
    ``classifier_activation``, ``classifier_dropout_prob`` -> ``final_dropout``, ``task_type`` (``multi_label``,
    ``multi_class``, ``regression``) -> ``problem_type``; a model loaded from it saves in this package's format.

    Raises:
        ValueError: at construction and at ``from_pretrained`` when the lengths of ``conv_dim``, ``conv_kernel``
            and ``conv_stride`` differ, ``hidden_size`` is not divisible by ``num_attention_heads`` or by
            ``num_conv_pos_embedding_groups``, ``vocab_sizes`` disagrees with ``ensemble_length`` or is empty without
            a contrastive head (``contrastive_projection_sizes``), a probability lies outside [0, 1],
            ``logit_temperature`` or ``contrastive_temperature`` is not positive, ``score_calibration`` /
            ``label_thresholds`` / ``label_descriptions`` do not fit the labels, or the head options
            (``classifier_hidden_size``, ``classifier_activation``, ``use_label_embedding``) are inconsistent.
    """

    model_type = "hubert_ecg"

    vocab_sizes: list[int] | tuple[int, ...] = (1000,)
    ensemble_length: int | None = None
    logit_temperature: float = 0.1
    unmasked_loss_weight: float | int = 0.0
    pos_weight: list[float] | tuple[float, ...] | None = None
    class_weight: list[float] | tuple[float, ...] | None = None

    # Released small model (released_sizes.json); HubertConfig's speech defaults do not apply to ECGs.
    hidden_size: int = 512
    num_hidden_layers: int = 8
    num_attention_heads: int = 8
    intermediate_size: int = 2048
    conv_dim: list[int] | tuple[int, ...] = (512, 512, 512, 512, 512)
    conv_stride: list[int] | tuple[int, ...] = (4, 2, 2, 2, 2)
    conv_kernel: list[int] | tuple[int, ...] = (10, 3, 3, 2, 2)
    mask_time_prob: float | int = 0.33
    mask_time_length: int = 1
    mask_time_min_masks: int = 2
    finetune_mask_time_prob: float | int = 0.0
    finetune_mask_time_length: int = 1
    finetune_mask_time_min_masks: int = 2
    lead_mask_prob: float | int = 0.0
    score_calibration: dict | None = None
    label_thresholds: dict | None = None
    contrastive_projection_sizes: list[int] | tuple[int, ...] = ()
    contrastive_temperature: float | int = 0.1
    classifier_hidden_size: int | None = None
    classifier_activation: str = "tanh"
    use_label_embedding: bool = False
    label_descriptions: dict | None = None

    def __post_init__(self, **kwargs):
        self.vocab_sizes = [int(v) for v in self.vocab_sizes]
        self.contrastive_projection_sizes = [int(v) for v in self.contrastive_projection_sizes]
        if self.ensemble_length is None:
            self.ensemble_length = len(self.vocab_sizes)
        saved_labels = len(self.id2label) if getattr(self, "id2label", None) else None
        super().__post_init__(**kwargs)
        if saved_labels is not None and saved_labels != self.num_labels:
            # `from_pretrained(classifier, num_labels=N)`: a new head, as transformers re-labels `id2label`; the
            # label weights of the saved head do not apply to it
            for name in ("pos_weight", "class_weight"):
                if getattr(self, name) is not None and len(getattr(self, name)) == saved_labels:
                    logger.warning(f"`{name}` of the {saved_labels} saved labels dropped: num_labels is now "
                                   f"{self.num_labels} (a new classification head)")
                    setattr(self, name, None)
            for name in ("score_calibration", "label_thresholds", "label_descriptions"):
                if getattr(self, name) is not None:
                    logger.warning(f"`{name}` of the {saved_labels} saved labels dropped: num_labels is now "
                                   f"{self.num_labels} (a new classification head)")
                    setattr(self, name, None)
        # Checked here too so that construction and `from_pretrained` raise a plain `ValueError`
        # (the `@strict` validators wrap theirs in huggingface_hub's StrictDataclassClassValidationError).
        self.validate_architecture()

    def validate_architecture(self):
        """Part of the ``@strict`` validation: raises ``ValueError`` on an inconsistent architecture."""
        lengths = {name: len(getattr(self, name)) for name in ("conv_dim", "conv_kernel", "conv_stride")}
        if len(set(lengths.values())) != 1:
            raise ValueError(f"`conv_dim`, `conv_kernel` and `conv_stride` must have the same length, got {lengths}.")
        if self.hidden_size % self.num_attention_heads != 0:
            raise ValueError(
                f"`hidden_size` ({self.hidden_size}) must be divisible by `num_attention_heads` "
                f"({self.num_attention_heads})."
            )
        if self.hidden_size % self.num_conv_pos_embedding_groups != 0:
            raise ValueError(
                f"`hidden_size` ({self.hidden_size}) must be divisible by `num_conv_pos_embedding_groups` "
                f"({self.num_conv_pos_embedding_groups})."
            )
        if any(v < 1 for v in self.vocab_sizes) or (len(self.vocab_sizes) == 0 and not self.contrastive_projection_sizes):
            raise ValueError(
                f"`vocab_sizes` must be a list of positive sizes, non-empty unless the model has a contrastive head "
                f"(`contrastive_projection_sizes`), got {self.vocab_sizes}."
            )
        if any(v < 1 for v in self.contrastive_projection_sizes):
            raise ValueError(
                f"`contrastive_projection_sizes` must be positive sizes, got {self.contrastive_projection_sizes}."
            )
        if self.ensemble_length != len(self.vocab_sizes):
            raise ValueError(
                f"`ensemble_length` ({self.ensemble_length}) must equal len(vocab_sizes) ({len(self.vocab_sizes)})."
            )
        for name in _PROBABILITIES:
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"`{name}` is a probability and must lie in [0, 1], got {value}.")
        for name in ("mask_time_length", "finetune_mask_time_length"):
            if getattr(self, name) < 1:
                raise ValueError(f"`{name}` is a number of frames and must be at least 1, got {getattr(self, name)}.")
        for name in ("logit_temperature", "contrastive_temperature"):
            if not getattr(self, name) > 0:
                raise ValueError(f"`{name}` must be positive, got {getattr(self, name)}.")
        for name in ("pos_weight", "class_weight"):
            weights = getattr(self, name)
            if weights is not None and len(weights) != self.num_labels:
                raise ValueError(f"`{name}` needs one weight per label ({self.num_labels}), got {len(weights)}.")
        calibration = self.score_calibration
        if calibration is not None:
            method = calibration.get("method") if isinstance(calibration, dict) else None
            if method == "platt":
                for key in ("scale", "bias"):
                    if len(calibration.get(key) or ()) != self.num_labels:
                        raise ValueError(f"`score_calibration` ({method}) needs one `{key}` per label "
                                         f"({self.num_labels}), got {calibration.get(key)!r}.")
            elif method == "temperature":
                if not float(calibration.get("temperature", 0)) > 0:
                    raise ValueError(f"`score_calibration` temperature must be positive, got {calibration!r}.")
            else:
                raise ValueError("`score_calibration` must be {'method': 'platt', 'scale': [...], 'bias': [...]} or "
                                 f"{{'method': 'temperature', 'temperature': T}}, got {calibration!r}.")
        for name in ("label_thresholds", "label_descriptions"):
            if getattr(self, name) is not None:
                unknown = sorted(set(getattr(self, name)) - {str(v) for v in self.id2label.values()})
                if unknown:
                    raise ValueError(f"`{name}` names labels the model does not have: {unknown} (labels: "
                                     f"{list(self.id2label.values())}).")
        if self.classifier_hidden_size is not None and not self.classifier_hidden_size >= 1:
            raise ValueError(f"`classifier_hidden_size` must be a positive size or None, got "
                             f"{self.classifier_hidden_size}.")
        if self.classifier_activation not in CLASSIFIER_ACTIVATIONS:
            raise ValueError(f"`classifier_activation` must be one of {CLASSIFIER_ACTIVATIONS}, got "
                             f"{self.classifier_activation!r}.")
        if self.use_label_embedding and self.classifier_hidden_size is not None:
            raise ValueError("`use_label_embedding` and `classifier_hidden_size` exclude each other: a label-embedding "
                             f"head has no hidden layer (got classifier_hidden_size={self.classifier_hidden_size}).")

    @classmethod
    def from_dict(cls, config_dict: dict, **kwargs) -> "HuBERTECGConfig":
        """``PreTrainedConfig.from_dict`` (used by ``from_pretrained``), reading every format of the authors:

        * the fine-tuning masking of configs saved before ``finetune_mask_time_prob`` existed is taken from what
          transformers' Hubert applied to them: ``mask_time_prob`` / ``mask_time_length`` / ``mask_time_min_masks``
          when ``apply_spec_augment`` is true (its default), else 0;
        * the authors' 2026 classification format (``model_type: "hubert_ecg_classification"``) is mapped onto
          this configuration (see the class docstring); with 164 outputs and no label names it is a Cardio-Learning
          classifier and gets that label set;
        * an ``auto_map`` that names code other than the ``configuration.py`` / ``modeling.py`` this package saves
          next to the weights (the original release's points to ``hubert_ecg.HuBERTECG``, which its checkpoints do
          not ship) is dropped: ``save_pretrained`` then writes this package's.

        Keyword ``label_set`` (e.g. ``from_pretrained(path, label_set="cardio-learning")``): take ``id2label`` and
        ``label_descriptions`` from that label set of :mod:`hubert_ecg.label_sets`.

        Raises:
            ValueError: for an unknown ``task_type`` of the 2026 format, or a label set whose size differs from the
                model's outputs.
        """
        config_dict = dict(config_dict)
        label_set = kwargs.pop("label_set", None) or implied_label_set(config_dict)
        if config_dict.get("model_type") == HuBERTECGClassificationConfig.model_type:
            config_dict = _from_2026_classification(config_dict)
        auto_map = config_dict.get("auto_map")
        if auto_map and not all(
            str(entry).split("--")[-1].split(".")[0] in _REMOTE_CODE_MODULES
            for value in auto_map.values()
            for entry in (value if isinstance(value, (list, tuple)) else [value])
            if entry is not None
        ):
            logger.info(f"`auto_map` {auto_map} dropped: it names code that is not saved with HuBERT-ECG models")
            config_dict = {key: value for key, value in config_dict.items() if key != "auto_map"}
        if label_set is not None:
            config_dict.update(_label_set_fields(label_set, config_dict))
        if "finetune_mask_time_prob" not in config_dict and "finetune_mask_time_prob" not in kwargs:
            legacy = {**config_dict, **{k: v for k, v in kwargs.items() if k in _LEGACY_MASK_FIELDS}}
            config_dict = dict(config_dict)
            spec_augment = legacy.get("apply_spec_augment", True)
            mask_prob = legacy.get("mask_time_prob", cls.mask_time_prob)
            config_dict["finetune_mask_time_prob"] = mask_prob if spec_augment else 0.0
            config_dict.setdefault("finetune_mask_time_length", legacy.get("mask_time_length", 1))
            config_dict.setdefault("finetune_mask_time_min_masks", legacy.get("mask_time_min_masks", 2))
        return super().from_dict(config_dict, **kwargs)

    @classmethod
    def get_config_dict(cls, pretrained_model_name_or_path, **kwargs) -> tuple[dict, dict]:
        """``PreTrainedConfig.get_config_dict``, with the authors' 2026 classification format mapped here already, so
        that ``HuBERTECGForSequenceClassification.from_pretrained`` reads it as its own model type (as
        ``AutoConfig`` does through :class:`HuBERTECGClassificationConfig`)."""
        config_dict, kwargs = super().get_config_dict(pretrained_model_name_or_path, **kwargs)
        if kwargs.get("label_set") is None:  # here the name is known: a Cardio-Learning repository or file
            kwargs["label_set"] = implied_label_set(config_dict, origin=str(pretrained_model_name_or_path))
        if config_dict.get("model_type") == HuBERTECGClassificationConfig.model_type:
            config_dict = _from_2026_classification(config_dict)
        return config_dict, kwargs

    @classmethod
    def from_preset(cls, name: str, **overrides) -> "HuBERTECGConfig":
        """Configuration of a released architecture.

        Args:
            name: ``"small"``, ``"base"`` or ``"large"`` (released_sizes.json of the original release).
            **overrides: any config field, e.g. ``vocab_sizes=[100]`` or ``num_labels=5``.

        Raises:
            ValueError: for an unknown preset name.
        """
        if name not in PRESETS:
            raise ValueError(f"Unknown preset {name!r}; expected one of {sorted(PRESETS)}.")
        return cls(**{**PRESETS[name], **overrides})

    @property
    def receptive_field(self) -> int:
        """Input samples seen by one frame of the feature encoder: 82 with the released kernels and strides
        (``inputs_to_logits_ratio``, the hop between frames, is 64)."""
        field, jump = 1, 1
        for kernel, stride in zip(self.conv_kernel, self.conv_stride):
            field += (kernel - 1) * jump
            jump *= stride
        return field

    def num_frames(self, num_samples: int) -> int:
        """Frames produced by the feature encoder for ``num_samples`` input samples (93 for 6000: 5 s, 12 leads at
        100 Hz, as released); 0 when the input is shorter than :attr:`receptive_field`."""
        length = int(num_samples)
        for kernel, stride in zip(self.conv_kernel, self.conv_stride):
            length = max((length - kernel) // stride + 1, 0)
        return length

    def problem_type_of(self, labels_dtype=None) -> str:
        """The problem type that decides the loss and the scores: the one rule of the package.

        ``problem_type`` when it is set; otherwise transformers' rule for sequence classifiers: one output is a
        regression; several outputs are single-label classes when the labels are integers
        (``labels_dtype`` a torch or numpy integer dtype) and multi-label otherwise (also when no labels are given,
        e.g. in a pipeline: ECG diagnoses are multi-label, as in PTB-XL).
        """
        if self.problem_type is not None:
            return self.problem_type
        if self.num_labels == 1:
            return "regression"
        if labels_dtype is not None and ("int" in str(labels_dtype) or str(labels_dtype) == "torch.long"):
            return "single_label_classification"
        return "multi_label_classification"


class HuBERTECGClassificationConfig(HuBERTECGConfig):
    r"""Reader of the authors' 2026 classification format (their ``HuBERTECGClassificationConfig``,
    ``model_type: "hubert_ecg_classification"``), registered with ``AutoConfig`` under that model type.

    It is not a second configuration: :meth:`from_dict` (and so ``AutoConfig.from_pretrained``) returns a
    :class:`HuBERTECGConfig` with the fields mapped (see :meth:`HuBERTECGConfig.from_dict`), so that the Auto classes
    build this package's :class:`HuBERTECGForSequenceClassification` and ``save_pretrained`` writes this package's
    format. Build new configurations with :class:`HuBERTECGConfig`.
    """

    model_type = "hubert_ecg_classification"

    @classmethod
    def from_dict(cls, config_dict: dict, **kwargs) -> HuBERTECGConfig:
        return HuBERTECGConfig.from_dict({**config_dict, "model_type": cls.model_type}, **kwargs)


def _from_2026_classification(config_dict: dict) -> dict:
    """The fields of the authors' 2026 classification config mapped onto :class:`HuBERTECGConfig`."""
    config_dict = dict(config_dict)
    config_dict["model_type"] = HuBERTECGConfig.model_type
    task_type = config_dict.pop("task_type", None)
    if task_type is not None:
        if task_type not in _TASK_TYPES:
            raise ValueError(f"`task_type` of a hubert_ecg_classification config must be one of {sorted(_TASK_TYPES)}, "
                             f"got {task_type!r}.")
        if config_dict.get("problem_type") is None:
            config_dict["problem_type"] = _TASK_TYPES[task_type]
    if "activation" in config_dict:
        config_dict["classifier_activation"] = config_dict.pop("activation")
    if "classifier_dropout_prob" in config_dict:
        config_dict["final_dropout"] = config_dict.pop("classifier_dropout_prob")
    if config_dict.get("use_label_embedding"):
        config_dict["classifier_hidden_size"] = None
    return config_dict


# The outputs of the authors' Cardio-Learning classifiers (164 conditions; their cardio-learning-labels.pkl).
CARDIO_LEARNING_NUM_LABELS = 164


def implied_label_set(config_dict: dict, origin: str | None = None) -> str | None:
    """The label set that a checkpoint of the authors implies, or None.

    ``"cardio-learning"`` for a classifier with 164 outputs and no label names (the authors' Cardio-Learning
    classifiers carry none; they publish the column order instead) that comes from the authors' 2026 package
    (``model_type: "hubert_ecg_classification"``) or whose name is a Cardio-Learning checkpoint's
    (``HuBERT-ECG-SFT-CardioLearning-{size}`` on the Hub, ``hubert_ecg_{size}_cardio_learning`` files): ``origin``
    (a file, directory or Hub id) or the config's own ``_name_or_path``. The one detection rule of the package.
    """
    id2label = config_dict.get("id2label") or {}
    num_labels = len(id2label) or config_dict.get("num_labels")
    if num_labels != CARDIO_LEARNING_NUM_LABELS or config_dict.get("label_descriptions"):
        return None
    if not all(str(name) in (f"LABEL_{key}", str(key)) for key, name in id2label.items()):
        return None  # named labels: the checkpoint's own
    names = (origin, config_dict.get("_name_or_path"))  # the last part of a path or Hub id
    names = [str(n).replace("\\", "/").rstrip("/").rsplit("/", 1)[-1].replace("-", "_").lower() for n in names if n]
    by_name = any("cardio_learning" in n or "cardiolearning" in n for n in names)
    if by_name or config_dict.get("model_type") == HuBERTECGClassificationConfig.model_type:
        logger.info(f"{num_labels} outputs without label names from the authors' Cardio-Learning classifier: its labels "
                    "are the 164 Cardio-Learning codes (hubert_ecg.label_sets, 'cardio-learning').")
        return "cardio-learning"
    return None


def _label_set_fields(name: str, config_dict: dict) -> dict:
    """``id2label``, ``label2id`` and ``label_descriptions`` of the label set ``name`` for a config dict.

    Raises:
        ValueError: if the label set's size differs from the config's number of labels.
    """
    # imported by name when needed: this module stays self-contained as the remote code of saved models
    label_set = importlib.import_module("hubert_ecg.label_sets").load_label_set(name)
    num_labels = len(config_dict.get("id2label") or {}) or config_dict.get("num_labels")
    if num_labels is not None and int(num_labels) != len(label_set.labels):
        raise ValueError(f"label_set={name!r} has {len(label_set.labels)} labels, but the model has {num_labels} "
                         "outputs.")
    id2label = label_set.id2label()
    return {
        "id2label": id2label,
        "label2id": {label: i for i, label in id2label.items()},
        "label_descriptions": dict(label_set.descriptions),
    }


__all__ = ["HuBERTECGConfig", "HuBERTECGClassificationConfig", "PRESETS", "CLASSIFIER_ACTIVATIONS"]
