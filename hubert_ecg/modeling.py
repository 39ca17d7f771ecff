"""HuBERT-ECG models built on transformers' Hubert modules.

The released weights are exactly transformers' ``HubertModel`` (convolutional feature encoder, feature
projection, transformer encoder with a convolutional positional embedding) applied to a lead-concatenated
12-lead ECG at 100 Hz, plus the pretraining heads of the release (``final_proj.{i}``, ``label_embedding.{i}``).
This module therefore subclasses the Hubert modules instead of rewriting them, and adds:

* :class:`HuBERTECGModel`: the backbone, ``input_values`` (batch, samples) -> ``last_hidden_state``
  (batch, frames, hidden_size); 6000 samples (5 s of 12 leads at 100 Hz) give 93 frames.
* :class:`HuBERTECGForSequenceClassification`: mean over frames -> dropout -> linear, as fine-tuned in the
  release (multi-label, multi-class or regression), with optional SpecAugment time masking in training.
* :class:`HuBERTECGForPreTraining`: HuBERT masked prediction with one codebook per target, and optionally a
  contrastive projection head (:class:`HuBERTECGContrastiveHead`, ``config.contrastive_projection_sizes``) whose
  output the contrastive objectives of ``hubert-ecg pretrain`` (CMSC, SimCLR) compare.

Two modules differ from transformers' Hubert ones, with the same parameters and state-dict keys, in training and
inference alike:

* :class:`HuBERTECGInputConv`: the feature encoder's first convolution (one input channel, kernel 10, stride 4)
  computed as one batched matrix product over strided windows of the input: the same sums as the convolution, a
  fraction of the time of the generic kernel, which handles one input channel poorly (CPU, batch 64 x 6000
  samples, 512 channels: 120 -> 29 ms in bfloat16, 106 -> 56 ms in float32).
* :class:`HuBERTECGPositionalConvEmbedding`: the grouped positional convolution computed in the dtype of its own
  weights, with autocast off. The models list it in ``_keep_in_fp32_modules_strict``, so
  ``from_pretrained(..., dtype=torch.bfloat16)`` (and ``pipeline(..., dtype=torch.bfloat16)``) keeps it in
  float32 while the rest runs in bfloat16; under ``torch.autocast`` (mixed-precision training) it runs in float32
  as well. Reason: oneDNN's bfloat16 grouped convolution (torch 2.13, CPUs with AMX) returns wrong values, as large
  as the output itself, for 2, 4 or 8 channels per group (the reference checkpoints, the demo model).

This module imports only torch, numpy, transformers and ``.configuration`` so that ``save_pretrained`` can copy it
next to the weights as remote code (``trust_remote_code=True`` then loads a directory without this package).
"""

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from transformers import initialization as init
from transformers.modeling_outputs import BaseModelOutput, ModelOutput, SequenceClassifierOutput
from transformers.models.hubert.modeling_hubert import (
    HubertEncoder,
    HubertEncoderStableLayerNorm,
    HubertFeatureEncoder,
    HubertModel,
    HubertPositionalConvEmbedding,
    HubertPreTrainedModel,
    _compute_mask_indices,
)
from transformers.processing_utils import Unpack
from transformers.utils import TransformersKwargs
from transformers.utils.generic import can_return_tuple, merge_with_config_defaults
from transformers.utils.output_capturing import capture_outputs

from .configuration import HuBERTECGConfig, _label_set_fields, implied_label_set


# config.classifier_activation -> the module between the two layers of the MLP classification head
_CLASSIFIER_ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU, "gelu": nn.GELU, "sigmoid": nn.Sigmoid}


class HuBERTECGInputConv(nn.Conv1d):
    """The feature encoder's first convolution (one input channel) as a batched matrix product.

    A ``nn.Conv1d`` (same parameters, same state-dict keys ``weight`` / ``bias``) whose forward, for one input
    channel, no padding, no dilation and one group, computes ``weight (out, kernel) @ windows (kernel, frames)`` per
    batch item, the windows a strided view of the input (``Tensor.unfold``): the same sums as the convolution, in
    float32 equal to it to rounding (1e-6 on the reference inputs). Other layouts use the convolution.

    ``implementation`` (an instance attribute, not saved): ``"matmul"`` (the default) or ``"conv"`` (the generic
    convolution kernel). Which is faster depends on the CPU and the dtype: :func:`hubert_ecg.inference.tuned_settings`
    measures both on the user's machine (the matrix product: 120 -> 29 ms in bfloat16 on a CPU with AMX; the
    figures of other machines are in docs/performance.md).

    Shapes: input (batch, 1, samples) -> output (batch, out_channels, frames), frames =
    ``(samples - kernel_size) // stride + 1``.
    """

    #: "matmul" (batched matrix product over strided windows) or "conv" (nn.Conv1d's kernel); same numbers
    implementation = "matmul"

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if (
            self.implementation != "matmul"
            or self.in_channels != 1
            or self.groups != 1
            or self.padding != (0,)
            or self.dilation != (1,)
            or self.padding_mode != "zeros"
        ):
            return super().forward(input)
        windows = input[:, 0].unfold(1, self.kernel_size[0], self.stride[0])  # (batch, frames, kernel), a view
        # bmm with the weight expanded over the batch: torch.matmul would fold the batch into rows and copy the
        # result back to (batch, out, frames), 3x slower (it does so whenever the weight requires grad)
        weight = self.weight[:, 0].expand(input.shape[0], -1, -1)
        output = torch.bmm(weight, windows.transpose(1, 2))
        return output if self.bias is None else output + self.bias[:, None]


class HuBERTECGFeatureEncoder(HubertFeatureEncoder):
    """transformers' Hubert feature encoder with :class:`HuBERTECGInputConv` as its first convolution (same keys)."""

    def __init__(self, config: HuBERTECGConfig):
        super().__init__(config)
        first = self.conv_layers[0]
        conv = first.conv
        first.conv = HuBERTECGInputConv(
            conv.in_channels,
            conv.out_channels,
            kernel_size=conv.kernel_size,
            stride=conv.stride,
            bias=conv.bias is not None,
        )


class HuBERTECGPositionalConvEmbedding(HubertPositionalConvEmbedding):
    """transformers' convolutional positional embedding, created in float32 and computed in the dtype of its own
    weights.

    The parameters are created in float32 whatever the default dtype (``_from_config(config, dtype=torch.bfloat16)``
    and direct construction under a bfloat16 default build the rest of the model in bfloat16), as
    ``from_pretrained(..., dtype=torch.bfloat16)`` keeps them through ``_keep_in_fp32_modules_strict``. The input
    (batch, frames, hidden_size) is cast to the weights' dtype and the output back to the input's, with autocast off:
    the module is computed in float32 in a bfloat16 model and under bfloat16 / float16 autocast, because oneDNN's
    bfloat16 grouped convolution (torch 2.13, AMX CPUs) is wrong for 2, 4 or 8 channels per group. Same parameters and
    keys as transformers' module.
    """

    def __init__(self, config: HuBERTECGConfig):
        # float32 whatever the default dtype: `_from_config(config, dtype=...)` sets it while the model is built
        default_dtype = torch.get_default_dtype()
        torch.set_default_dtype(torch.float32)
        try:
            super().__init__(config)
        finally:
            torch.set_default_dtype(default_dtype)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        dtype = next(self.parameters()).dtype
        with torch.autocast(hidden_states.device.type, enabled=False):
            output = super().forward(hidden_states.to(dtype))
        return output.to(hidden_states.dtype)


class HuBERTECGEncoder(HubertEncoder):
    """transformers' Hubert encoder with :class:`HuBERTECGPositionalConvEmbedding` (same keys): built by
    ``HubertEncoder.__init__``, then only ``pos_conv_embed`` is replaced."""

    def __init__(self, config: HuBERTECGConfig):
        super().__init__(config)
        self.pos_conv_embed = HuBERTECGPositionalConvEmbedding(config)


class HuBERTECGEncoderStableLayerNorm(HubertEncoderStableLayerNorm):
    """transformers' pre-norm Hubert encoder (``do_stable_layer_norm=True``) with
    :class:`HuBERTECGPositionalConvEmbedding` (same keys): built by ``HubertEncoderStableLayerNorm.__init__``, then
    only ``pos_conv_embed`` is replaced."""

    def __init__(self, config: HuBERTECGConfig):
        super().__init__(config)
        self.pos_conv_embed = HuBERTECGPositionalConvEmbedding(config)


def compute_time_mask(
    batch_size: int,
    num_frames: int,
    mask_prob: float,
    mask_length: int,
    min_masks: int,
    frame_mask: torch.Tensor | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """A random SpecAugment time mask (transformers' ``_compute_mask_indices``).

    Args:
        batch_size, num_frames: shape of the mask.
        mask_prob: about this fraction of the (valid) frames is masked, in spans of ``mask_length`` frames.
        mask_length: frames per span.
        min_masks: at least this many spans per row.
        frame_mask: optional bool (batch_size, num_frames), True for frames of real samples: spans fall within the
            first ``frame_mask.sum(-1)`` frames of each row.
        device: where the mask lives.

    Returns:
        Bool tensor (batch_size, num_frames), True where a frame is masked.
    """
    mask = _compute_mask_indices(
        (batch_size, num_frames),
        mask_prob=mask_prob,
        mask_length=mask_length,
        attention_mask=None if frame_mask is None else frame_mask.long().cpu(),
        min_masks=min_masks,
    )
    return torch.from_numpy(np.asarray(mask, dtype=bool)).to(device)


def pool_frames(
    hidden_states: torch.Tensor, frame_mask: torch.Tensor | None = None, dtype: torch.dtype | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """THE pooling of frames, used by the classifier, the contrastive head and the embeddings: per window, the sum
    of its valid frames and their number.

    Args:
        hidden_states: float ``(windows, frames, hidden_size)``.
        frame_mask: bool ``(windows, frames)``, True for frames computed from real samples only
            (:meth:`HuBERTECGPreTrainedModel.frame_mask`); None: every frame is valid.
        dtype: the dtype of the sums (default: that of ``hidden_states``); the embeddings sum in float64.

    Returns:
        ``(sums, counts)``: ``(windows, hidden_size)`` and int64 ``(windows,)``. A window's vector is
        ``sums / counts`` (:func:`mean_pool`); a record's, over its windows, ``sums.sum(0) / counts.sum()``.
    """
    hidden = hidden_states if dtype is None else hidden_states.to(dtype)
    if frame_mask is None:
        return hidden.sum(dim=1), torch.full((hidden.shape[0],), hidden.shape[1], dtype=torch.int64,
                                             device=hidden.device)
    mask = frame_mask.to(device=hidden.device)
    return (hidden * mask.unsqueeze(-1).to(hidden.dtype)).sum(dim=1), mask.sum(dim=1).to(torch.int64)


def mean_pool(hidden_states: torch.Tensor, frame_mask: torch.Tensor | None = None) -> torch.Tensor:
    """The mean of each window's valid frames, ``(windows, frames, hidden_size)`` -> ``(windows, hidden_size)`` in
    the dtype of ``hidden_states`` (:func:`pool_frames`; a window without a valid frame gives zeros)."""
    sums, counts = pool_frames(hidden_states, frame_mask)
    return sums / counts.clamp(min=1).unsqueeze(-1).to(sums.dtype)


class HuBERTECGPreTrainedModel(HubertPreTrainedModel):
    """Base class: the HuBERT-ECG config, the ``hubert_ecg`` prefix of the released fine-tuned checkpoints,
    weight initialisation of every parameter (Hubert's modules plus the heads defined here), and the positional
    convolution kept in float32 when loading in bfloat16 / float16 (``_keep_in_fp32_modules_strict``)."""

    config: HuBERTECGConfig
    config_class = HuBERTECGConfig
    base_model_prefix = "hubert_ecg"
    main_input_name = "input_values"
    _keep_in_fp32_modules_strict = ["pos_conv_embed"]
    # The losses are means over the batch (frames, labels), not sums for the Trainer to divide by
    # `num_items_in_batch`: the Trainer must neither pass it nor skip its division by the gradient accumulation steps
    # (it would infer the opposite from the `**kwargs` of the forwards).
    accepts_loss_kwargs = False

    @torch.no_grad()
    def _init_weights(self, module):
        super()._init_weights(module)  # Linear, Embedding, norms, convolutions, masked_spec_embed
        if isinstance(module, HuBERTECGForSequenceClassification):
            if module.config.use_label_embedding:
                init.normal_(module.label_embedding.weight, mean=0.0, std=self.config.initializer_range)
            else:
                for layer in (module.classifier,) if isinstance(module.classifier, nn.Linear) else module.classifier:
                    if isinstance(layer, nn.Linear):
                        init.normal_(layer.weight, mean=0.0, std=self.config.initializer_range)
                        init.zeros_(layer.bias)

    def frame_mask(self, attention_mask: torch.Tensor, num_frames: int) -> torch.Tensor:
        """Frame-level mask from a sample-level ``attention_mask``.

        A frame is valid when every sample of its receptive field (``config.receptive_field``: 82 samples, hop
        ``config.inputs_to_logits_ratio`` = 64 with the released convolutions) is valid. For right padding this is
        exactly transformers' Hubert rule; unlike that rule it also holds for the padding inside every lead's
        segment that the feature extractor produces for records shorter than the window (``pad_to_window=True``).

        Args:
            attention_mask: (batch, samples), 1 for real samples, 0 for padding.
            num_frames: number of frames of the feature encoder's output.

        Returns:
            Bool tensor (batch, num_frames), True for frames computed from real samples only.
        """
        mask = attention_mask.to(torch.float32).unsqueeze(1)
        for kernel, stride in zip(self.config.conv_kernel, self.config.conv_stride):
            mask = -F.max_pool1d(-mask, kernel_size=kernel, stride=stride)  # min-pool: all samples valid
        return mask.squeeze(1)[:, :num_frames] > 0.5

    def _get_feature_vector_attention_mask(self, feature_vector_length: int, attention_mask: torch.Tensor):
        # used by HubertModel.forward: padding anywhere in the input, not only at the end
        return self.frame_mask(attention_mask, feature_vector_length)


class HuBERTECGModel(HuBERTECGPreTrainedModel, HubertModel):
    r"""The HuBERT-ECG backbone: transformers' ``HubertModel`` with the HuBERT-ECG configuration. Built by
    ``HubertModel.__init__``, with its feature encoder and encoder replaced by :class:`HuBERTECGFeatureEncoder` and
    :class:`HuBERTECGEncoder` (same parameters and keys as ``HubertModel``).

    ``forward(input_values, attention_mask=None, mask_time_indices=None, **kwargs)``:

    * ``input_values``: float (batch, samples), the 12 leads I, II, III, aVR, aVL, aVF, V1-V6 of a window
      concatenated at 100 Hz after the released preprocessing (see ``HuBERTECGFeatureExtractor``); 6000
      samples for 5 s.
    * ``attention_mask``: optional (batch, samples), 1 for real samples and 0 for zero padding.
    * ``mask_time_indices``: optional bool (batch, frames): frames replaced by ``masked_spec_embed`` (in training
      and in eval mode alike). The backbone draws no time mask itself: the pretraining data collator (or
      :class:`HuBERTECGForPreTraining`) and :class:`HuBERTECGForSequenceClassification` (``config.
      finetune_mask_time_prob``) do. Feature masking (``config.mask_feature_prob``, 0 in the release) applies in
      training as in transformers' Hubert.
    * ``**kwargs`` (transformers' ``TransformersKwargs``): ``output_hidden_states`` and ``output_attentions``
      (default: the config's), ``return_dict`` (default ``config.return_dict``; ``False`` gives a tuple of the
      outputs that are not None); the rest goes to the attention functions, which ignore keywords they do not use,
      as in every transformers model (an unknown keyword is therefore not an error).

    Returns a ``BaseModelOutput`` with ``last_hidden_state`` (batch, frames, hidden_size), frames =
    ``config.num_frames(samples)`` (93 for 6000 samples), and ``hidden_states`` (num_hidden_layers + 1 tensors of
    that shape: the encoder layers' input, then each layer's output) / ``attentions`` (num_hidden_layers tensors
    (batch, heads, frames, frames)) when asked, recorded by transformers' ``capture_outputs``. Attention is SDPA by
    default; ``attn_implementation="eager"`` agrees to 1e-5 and is needed for ``output_attentions``.
    """

    # Checkpoints of the release store their heads next to the backbone: loading only the backbone is fine.
    _keys_to_ignore_on_load_unexpected = [r"^final_proj\.", r"^label_embedding\.", r"^classifier\."]

    def __init__(self, config: HuBERTECGConfig):
        # the legacy `config.gradient_checkpointing` flag is consumed (deleted) by the post_init of HubertModel.__init__,
        # before the modules it applies to are replaced: keep it for the post_init below
        gradient_checkpointing = getattr(config, "gradient_checkpointing", False)
        # HubertModel.__init__ builds every module of transformers' Hubert (feature encoder, feature projection,
        # masked_spec_embed, encoder); the two that differ are replaced (same parameters and keys)
        super().__init__(config)
        self.feature_extractor = HuBERTECGFeatureEncoder(config)
        encoder_class = HuBERTECGEncoderStableLayerNorm if config.do_stable_layer_norm else HuBERTECGEncoder
        self.encoder = encoder_class(config)
        # the learned mask embedding exists where some masking can happen: HubertModel's rule plus fine-tuning
        if not hasattr(self, "masked_spec_embed") and config.finetune_mask_time_prob > 0:
            self.masked_spec_embed = nn.Parameter(torch.Tensor(config.hidden_size).uniform_())
        if gradient_checkpointing:
            config.gradient_checkpointing = True
        self.post_init()  # initialises the new modules (those of HubertModel.__init__ are already initialised)

    def _mask_hidden_states(
        self,
        hidden_states: torch.Tensor,
        mask_time_indices: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Replace the frames of ``mask_time_indices`` by ``masked_spec_embed``; in training, zero the features
        drawn with ``config.mask_feature_prob`` (if > 0). Unlike transformers' Hubert, ``apply_spec_augment`` plays
        no part and no time mask is drawn here (see the class docstring)."""
        if mask_time_indices is not None:
            if not hasattr(self, "masked_spec_embed"):
                raise ValueError(
                    "mask_time_indices given, but this model has no `masked_spec_embed` (mask_time_prob, "
                    "finetune_mask_time_prob and mask_feature_prob are all 0 in its config)."
                )
            hidden_states[mask_time_indices.to(hidden_states.device, torch.bool)] = self.masked_spec_embed.to(
                hidden_states.dtype
            )
        if self.config.mask_feature_prob > 0 and self.training:
            batch_size, sequence_length, hidden_size = hidden_states.shape
            mask_feature_indices = compute_time_mask(
                batch_size,
                hidden_size,
                self.config.mask_feature_prob,
                self.config.mask_feature_length,
                self.config.mask_feature_min_masks,
                device=hidden_states.device,
            )
            hidden_states[mask_feature_indices[:, None].expand(-1, sequence_length, -1)] = 0
        return hidden_states

    @merge_with_config_defaults
    @capture_outputs(tie_last_hidden_states=False)
    def forward(
        self,
        input_values: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        mask_time_indices: torch.Tensor | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> tuple | BaseModelOutput:
        r"""``last_hidden_state`` (batch, frames, hidden_size) for ``input_values`` (batch, samples); see the class
        docstring."""
        extract_features = self.feature_extractor(input_values).transpose(1, 2)  # (batch, frames, conv_dim[-1])
        if attention_mask is not None:
            attention_mask = self.frame_mask(attention_mask, extract_features.shape[1])
        hidden_states = self.feature_projection(extract_features)
        hidden_states = self._mask_hidden_states(hidden_states, mask_time_indices=mask_time_indices)
        encoder_outputs = self.encoder(hidden_states, attention_mask=attention_mask, **kwargs)
        # hidden_states / attentions are recorded by `capture_outputs` (`_can_record_outputs` of HubertPreTrainedModel)
        return BaseModelOutput(last_hidden_state=encoder_outputs.last_hidden_state)


class HuBERTECGForSequenceClassification(HuBERTECGPreTrainedModel):
    r"""HuBERT-ECG with the fine-tuning heads of the release: mean over frames -> dropout -> head.

    The head follows the config: a linear layer (the default; keys ``classifier.*``), an MLP
    (``config.classifier_hidden_size`` N: ``Linear(hidden_size, N)``, ``config.classifier_activation``,
    ``Linear(N, num_labels)``; keys ``classifier.0.*``, ``classifier.2.*``) or a label embedding
    (``config.use_label_embedding``: cosine similarity with each row of ``label_embedding.weight`` (num_labels,
    hidden_size)), the three heads of the original release and of the authors' 2026 package.

    The pooled mean ignores padded frames when ``attention_mask`` is given. The loss follows
    ``config.problem_type`` (inferred as in transformers when unset): ``"multi_label_classification"``:
    ``BCEWithLogitsLoss`` with ``config.pos_weight``; ``"single_label_classification"``: cross-entropy with the
    optional ``config.class_weight``; ``"regression"``: MSE. Labels live in ``config.id2label`` / ``label2id``.

    ``forward(input_values, attention_mask=None, labels=None, ...)`` returns a ``SequenceClassifierOutput`` with
    ``logits`` (batch, num_labels) and ``loss`` when ``labels`` are given: float multi-hot (batch, num_labels)
    for multi-label, int class indices (batch,) for single-label, float (batch,) or (batch, num_labels) for
    regression.

    **SpecAugment in fine-tuning** (``config.finetune_mask_time_prob``, ``finetune_mask_time_length``,
    ``finetune_mask_time_min_masks``): in training mode, about that fraction of the frames of every window is
    replaced by the learned ``masked_spec_embed`` before the transformer, in spans of ``finetune_mask_time_length``
    frames, at least ``finetune_mask_time_min_masks`` spans; never in eval mode. 0 (off) for a new configuration,
    as the release does when training from random initialisation; a checkpoint keeps its own setting (configs saved
    before this field existed: ``mask_time_prob`` if ``apply_spec_augment``, i.e. 0.33 for the released weights).
    The pretraining mask (``mask_time_prob``, ...) is a separate setting of :class:`HuBERTECGForPreTraining`.

    The original fine-tuned checkpoints (backbone under ``hubert_ecg.``, head ``classifier.*``) load unchanged.
    Other keywords of ``forward`` (``output_hidden_states``, ``output_attentions``, ``return_dict``) are handled as
    by the backbone; see :class:`HuBERTECGModel`.
    """

    # pretraining heads and the mask embedding that the authors' checkpoints keep next to a fine-tuned backbone
    _keys_to_ignore_on_load_unexpected = [
        r"^hubert_ecg\.final_proj\.",
        r"^hubert_ecg\.label_embedding\.",
        r"^hubert_ecg\.masked_spec_embed$",
    ]

    def __init__(self, config: HuBERTECGConfig):
        super().__init__(config)
        self.hubert_ecg = HuBERTECGModel(config)
        self.dropout = nn.Dropout(config.final_dropout)
        if config.use_label_embedding:
            self.label_embedding = nn.Embedding(config.num_labels, config.hidden_size)
        elif config.classifier_hidden_size is not None:
            self.classifier = nn.Sequential(
                nn.Linear(config.hidden_size, config.classifier_hidden_size),
                _CLASSIFIER_ACTIVATIONS[config.classifier_activation](),
                nn.Linear(config.classifier_hidden_size, config.num_labels),
            )
        else:
            self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *args, **kwargs):
        """``PreTrainedModel.from_pretrained``; a Cardio-Learning classifier named as the authors name them (a Hub id
        ``.../HuBERT-ECG-SFT-CardioLearning-{size}``, a ``hubert_ecg_{size}_cardio_learning`` directory) gets the
        164 condition codes and their descriptions as ``id2label`` / ``label_descriptions`` (the rule:
        :func:`~hubert_ecg.configuration.implied_label_set`; the checkpoints carry no label names). ``AutoConfig``
        does not see the name, so the model applies it here."""
        loaded = super().from_pretrained(pretrained_model_name_or_path, *args, **kwargs)
        model = loaded[0] if isinstance(loaded, tuple) else loaded  # (model, loading_info)
        name = implied_label_set(model.config.to_dict(), origin=str(pretrained_model_name_or_path))
        if kwargs.get("label_set") is None and name is not None:
            for key, value in _label_set_fields(name, {"num_labels": model.config.num_labels}).items():
                setattr(model.config, key, value)
        return loaded

    def head(self, pooled: torch.Tensor) -> torch.Tensor:
        """Logits (batch, num_labels) of the configured head for pooled vectors (batch, hidden_size), dropout
        already applied: the linear layer, the MLP, or the cosine similarity with every row of
        ``label_embedding.weight`` (in [-1, 1])."""
        if self.config.use_label_embedding:
            return F.cosine_similarity(pooled.unsqueeze(1), self.label_embedding.weight.unsqueeze(0), dim=-1)
        return self.classifier(pooled)

    def freeze_feature_encoder(self):
        """Stop gradients through the convolutional feature encoder (as in the release's fine-tuning)."""
        self.hubert_ecg.feature_extractor._freeze_parameters()

    def freeze_base_model(self, train_last_n_layers: int = 0):
        """Freeze the backbone except its last ``train_last_n_layers`` transformer blocks; the head stays trainable.

        Args:
            train_last_n_layers: number of final transformer blocks left trainable, 0 to train the head only.

        Raises:
            ValueError: if ``train_last_n_layers`` is negative or exceeds ``config.num_hidden_layers``.
        """
        n_layers = self.config.num_hidden_layers
        if not 0 <= train_last_n_layers <= n_layers:
            raise ValueError(f"`train_last_n_layers` must lie in [0, {n_layers}], got {train_last_n_layers}.")
        for param in self.hubert_ecg.parameters():
            param.requires_grad = False
        for layer in self.hubert_ecg.encoder.layers[n_layers - train_last_n_layers :]:
            for param in layer.parameters():
                param.requires_grad = True

    def compute_loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Loss of ``logits`` (batch, num_labels) against ``labels`` for the configured problem type."""
        problem_type = self.config.problem_type_of(labels.dtype)
        if problem_type == "regression":
            if self.config.num_labels == 1:
                return F.mse_loss(logits.squeeze(-1), labels.to(logits.dtype).view(-1))
            return F.mse_loss(logits, labels.to(logits.dtype))
        if problem_type == "single_label_classification":
            weight = None
            if self.config.class_weight is not None:
                weight = torch.tensor(self.config.class_weight, dtype=logits.dtype, device=logits.device)
            return F.cross_entropy(logits.view(-1, self.config.num_labels), labels.view(-1).long(), weight=weight)
        pos_weight = None
        if self.config.pos_weight is not None:
            pos_weight = torch.tensor(self.config.pos_weight, dtype=logits.dtype, device=logits.device)
        return F.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype), pos_weight=pos_weight)

    @can_return_tuple
    def forward(
        self,
        input_values: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> tuple | SequenceClassifierOutput:
        r"""Logits (batch, num_labels) for ``input_values`` (batch, samples) and optional ``attention_mask``
        (batch, samples); the loss when ``labels`` are given (see the class docstring). ``**kwargs`` go to the
        backbone (:class:`HuBERTECGModel`)."""
        mask_time_indices = None
        if self.training and self.config.finetune_mask_time_prob > 0:
            num_frames = self.config.num_frames(input_values.shape[-1])
            mask_time_indices = compute_time_mask(
                input_values.shape[0],
                num_frames,
                self.config.finetune_mask_time_prob,
                self.config.finetune_mask_time_length,
                self.config.finetune_mask_time_min_masks,
                frame_mask=None if attention_mask is None else self.frame_mask(attention_mask, num_frames),
                device=input_values.device,
            )
        outputs = self.hubert_ecg(
            input_values, attention_mask=attention_mask, mask_time_indices=mask_time_indices, return_dict=True, **kwargs
        )
        hidden_states = outputs.last_hidden_state
        frame_mask = None if attention_mask is None else self.frame_mask(attention_mask, hidden_states.shape[1])
        pooled = mean_pool(hidden_states, frame_mask)
        logits = self.head(self.dropout(pooled))

        loss = self.compute_loss(logits, labels) if labels is not None else None
        return SequenceClassifierOutput(
            loss=loss, logits=logits, hidden_states=outputs.hidden_states, attentions=outputs.attentions
        )


def scores_from_logits(logits, problem_type: str, calibration: dict | None = None) -> np.ndarray:
    """Scores from classifier logits ``(..., num_labels)``, float64: the sigmoid for
    ``"multi_label_classification"``, the softmax over labels for ``"single_label_classification"``, the logits
    themselves for ``"regression"``. The one rule of the package (pipeline, evaluation, Trainer metrics); use
    ``config.problem_type_of()`` for the problem type of a model.

    ``calibration`` (a model's ``config.score_calibration``) first maps the logits: ``"platt"``, ``a * logit + b``
    per label (Platt 1999); ``"temperature"``, ``logit / T`` (Guo et al. 2017). Neither changes the ranking of the
    records for a label, so AUROC and AUPRC are unchanged.

    Raises:
        ValueError: for another ``problem_type``, an unknown calibration method, or a calibration of a regression.
    """
    logits = torch.as_tensor(np.asarray(logits, dtype=np.float64) if not torch.is_tensor(logits) else logits)
    logits = logits.detach().to("cpu", torch.float64)
    if calibration:
        method = calibration.get("method")
        if problem_type == "regression":
            raise ValueError("score calibration applies to classifiers, not to a regression")
        if method == "platt":
            scale = torch.as_tensor(calibration["scale"], dtype=torch.float64)
            logits = logits * scale + torch.as_tensor(calibration["bias"], dtype=torch.float64)
        elif method == "temperature":
            logits = logits / float(calibration["temperature"])
        else:
            raise ValueError(f"unknown score calibration method {method!r}: expected 'platt' or 'temperature'")
    if problem_type == "multi_label_classification":
        return torch.sigmoid(logits).numpy()
    if problem_type == "single_label_classification":
        return torch.softmax(logits, dim=-1).numpy()
    if problem_type == "regression":
        return logits.numpy()
    raise ValueError(
        "problem_type must be 'multi_label_classification', 'single_label_classification' or 'regression', "
        f"got {problem_type!r}."
    )


@dataclass
class HuBERTECGForPreTrainingOutput(ModelOutput):
    r"""Output of :class:`HuBERTECGForPreTraining`.

    Args:
        loss: scalar, cross-entropy over masked frames summed over codebooks (when ``labels`` are given).
        logits: tuple with one (batch, frames, vocab_sizes[i]) tensor per codebook: cosine similarity between the
            projected frame and every codeword, divided by ``config.logit_temperature``.
        mask_time_indices: bool (batch, frames), the frames that were masked (None when nothing was masked).
        last_hidden_state: (batch, frames, hidden_size).
        hidden_states, attentions: as in ``BaseModelOutput`` when asked.
        contrastive_embeddings: (batch, contrastive_projection_sizes[-1]), the contrastive head's projection of the
            frames' mean (not normalised); None without a head.
    """

    loss: torch.FloatTensor | None = None
    logits: tuple[torch.FloatTensor, ...] | None = None
    mask_time_indices: torch.BoolTensor | None = None
    last_hidden_state: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None
    contrastive_embeddings: torch.FloatTensor | None = None


class HuBERTECGContrastiveHead(nn.Module):
    r"""Projection head of the contrastive objectives: ``Linear(hidden_size, sizes[0])``, then ``ReLU`` and
    ``Linear(sizes[i - 1], sizes[i])`` for each further size of ``config.contrastive_projection_sizes`` (``[256,
    128]``: SimCLR's 2-layer head, Chen et al. 2020). Keys ``contrastive_head.layers.{0, 2, ...}``.

    ``forward(pooled)``: (batch, hidden_size) -> (batch, sizes[-1]).
    """

    def __init__(self, config: HuBERTECGConfig):
        super().__init__()
        layers, size = [], config.hidden_size
        for i, out in enumerate(config.contrastive_projection_sizes):
            if i > 0:
                layers.append(nn.ReLU())
            layers.append(nn.Linear(size, out))
            size = out
        self.layers = nn.Sequential(*layers)

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.layers(pooled)


class HuBERTECGForPreTraining(HuBERTECGPreTrainedModel):
    r"""HuBERT-ECG masked prediction of cluster targets, with the released heads.

    For each codebook ``i`` the frames are projected by ``final_proj[i]`` (hidden_size -> classifier_proj_size)
    and compared with the codewords ``label_embedding[i].weight`` (vocab_sizes[i], classifier_proj_size) by cosine
    similarity divided by ``config.logit_temperature`` (0.1 in the release).

    In training mode, with no ``mask_time_indices`` given, frames are masked with ``config.mask_time_prob``
    (0.33), ``mask_time_length`` (1) and ``mask_time_min_masks`` (2), as released; in eval mode nothing is masked
    unless a mask is passed.

    ``forward(input_values, attention_mask=None, labels=None, mask_time_indices=None, ...)``:
    ``labels`` are int cluster ids (batch, num_codebooks, frames), or (batch, frames) with one codebook; -100
    marks frames to ignore. The loss is, per codebook, the mean cross-entropy over masked (valid) frames, plus
    ``config.unmasked_loss_weight`` times the mean over unmasked frames, summed over codebooks. Without any
    mask, all valid frames count as masked. Other keywords (``output_hidden_states``, ``output_attentions``,
    ``return_dict``) are passed to the backbone, as in :class:`HuBERTECGForSequenceClassification`.

    With ``config.contrastive_projection_sizes`` (e.g. ``[256, 128]``) the model also has a
    :class:`HuBERTECGContrastiveHead` (``contrastive_head``): the mean of the last hidden states over the valid
    frames (``attention_mask``-aware, as the classifier pools) is projected to ``contrastive_embeddings`` (batch,
    sizes[-1]), which the contrastive losses of :mod:`hubert_ecg.training.objectives` compare (across processes,
    which is why the loss is not computed here). ``vocab_sizes`` may then be empty (a contrastive-only model, no
    codebook heads; ``logits`` is an empty tuple). Without that field (the default) the model and its keys are the
    release's. Either way the backbone (``hubert_ecg.*``) loads into :class:`HuBERTECGModel` and
    :class:`HuBERTECGForSequenceClassification`.
    """

    def __init__(self, config: HuBERTECGConfig):
        super().__init__(config)
        self.hubert_ecg = HuBERTECGModel(config)
        self.final_proj = nn.ModuleList(
            [nn.Linear(config.hidden_size, config.classifier_proj_size) for _ in config.vocab_sizes]
        )
        self.label_embedding = nn.ModuleList(
            [nn.Embedding(size, config.classifier_proj_size) for size in config.vocab_sizes]
        )
        self.contrastive_head = HuBERTECGContrastiveHead(config) if config.contrastive_projection_sizes else None
        self.post_init()

    def freeze_feature_encoder(self):
        """Stop gradients through the convolutional feature encoder."""
        self.hubert_ecg.feature_extractor._freeze_parameters()

    def compute_mask(self, batch_size: int, num_frames: int, frame_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Random pretraining time mask with ``config.mask_time_prob``, ``mask_time_length`` and
        ``mask_time_min_masks`` (see :func:`compute_time_mask`).

        Returns:
            Bool tensor (batch_size, num_frames), True where a frame is masked.
        """
        return compute_time_mask(
            batch_size,
            num_frames,
            self.config.mask_time_prob,
            self.config.mask_time_length,
            self.config.mask_time_min_masks,
            frame_mask=frame_mask,
            device=self.device,
        )

    def codebook_logits(self, hidden_states: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Logits (batch, frames, vocab_sizes[i]) of every codebook for hidden states (batch, frames, hidden)."""
        logits = []
        for proj, embedding in zip(self.final_proj, self.label_embedding):
            projected = F.normalize(proj(hidden_states), dim=-1, eps=1e-8)
            codewords = F.normalize(embedding.weight, dim=-1, eps=1e-8)
            logits.append(projected @ codewords.T / self.config.logit_temperature)
        return tuple(logits)

    @can_return_tuple
    def forward(
        self,
        input_values: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        mask_time_indices: torch.Tensor | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> tuple | HuBERTECGForPreTrainingOutput:
        r"""Codebook logits for ``input_values`` (batch, samples); the loss when ``labels`` are given; see the class
        docstring. ``**kwargs`` go to the backbone (:class:`HuBERTECGModel`)."""
        num_frames = self.config.num_frames(input_values.shape[-1])
        frame_mask = None if attention_mask is None else self.frame_mask(attention_mask, num_frames)
        if mask_time_indices is None and self.training and self.config.mask_time_prob > 0:
            mask_time_indices = self.compute_mask(input_values.shape[0], num_frames, frame_mask)

        outputs = self.hubert_ecg(
            input_values, attention_mask=attention_mask, mask_time_indices=mask_time_indices, return_dict=True, **kwargs
        )
        logits = self.codebook_logits(outputs.last_hidden_state)
        contrastive_embeddings = None
        if self.contrastive_head is not None:
            contrastive_embeddings = self.contrastive_head(mean_pool(outputs.last_hidden_state, frame_mask))

        loss = None
        if labels is not None:
            loss = self.compute_loss(logits, labels, mask_time_indices, frame_mask)

        return HuBERTECGForPreTrainingOutput(
            loss=loss,
            logits=logits,
            mask_time_indices=mask_time_indices,
            last_hidden_state=outputs.last_hidden_state,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
            contrastive_embeddings=contrastive_embeddings,
        )

    def compute_loss(
        self,
        logits: tuple[torch.Tensor, ...],
        labels: torch.Tensor,
        mask_time_indices: torch.Tensor | None = None,
        frame_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Masked-prediction loss; see the class docstring.

        Raises:
            ValueError: if ``labels`` do not have shape (batch, num_codebooks, frames) (or (batch, frames) for one
                codebook), or a label other than -100 lies outside its codebook's range [0, vocab_sizes[i]).
        """
        if len(logits) == 0:
            raise ValueError("`labels` were given to a model without codebook heads (`vocab_sizes` is empty).")
        if labels.dim() == 2:
            labels = labels.unsqueeze(1)
        batch, frames = logits[0].shape[:2]
        if labels.shape != (batch, len(logits), frames):
            raise ValueError(
                f"`labels` must have shape (batch, num_codebooks, frames) = {(batch, len(logits), frames)}, "
                f"got {tuple(labels.shape)}."
            )
        valid = labels != -100
        for i, codebook_logits in enumerate(logits):
            size = codebook_logits.shape[-1]
            bad = valid[:, i] & ((labels[:, i] < 0) | (labels[:, i] >= size))
            if bad.any():
                raise ValueError(
                    f"`labels` of codebook {i} (vocab_sizes[{i}] = {size}) must lie in [0, {size - 1}] or be -100 "
                    f"(ignored), got {labels[:, i][bad][0].item()}."
                )
        if frame_mask is not None:
            valid = valid & frame_mask.unsqueeze(1)
        masked = mask_time_indices if mask_time_indices is not None else torch.ones_like(valid[:, 0])
        masked = masked.to(valid.device).bool().unsqueeze(1)

        loss = logits[0].new_zeros(())
        for i, codebook_logits in enumerate(logits):
            per_frame = F.cross_entropy(
                codebook_logits.transpose(1, 2), labels[:, i].clamp(min=0), reduction="none"
            )  # (batch, frames)
            on_masked = valid[:, i] & masked[:, 0]
            loss = loss + (per_frame * on_masked).sum() / on_masked.sum().clamp(min=1)
            if self.config.unmasked_loss_weight > 0:
                on_unmasked = valid[:, i] & ~masked[:, 0]
                loss = loss + self.config.unmasked_loss_weight * (
                    (per_frame * on_unmasked).sum() / on_unmasked.sum().clamp(min=1)
                )
        return loss


__all__ = [
    "scores_from_logits",
    "compute_time_mask",
    "pool_frames",
    "mean_pool",
    "HuBERTECGInputConv",
    "HuBERTECGFeatureEncoder",
    "HuBERTECGPositionalConvEmbedding",
    "HuBERTECGEncoder",
    "HuBERTECGEncoderStableLayerNorm",
    "HuBERTECGPreTrainedModel",
    "HuBERTECGModel",
    "HuBERTECGForSequenceClassification",
    "HuBERTECGForPreTraining",
    "HuBERTECGForPreTrainingOutput",
    "HuBERTECGContrastiveHead",
]
