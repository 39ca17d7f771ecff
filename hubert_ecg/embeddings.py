"""``ECGFeatureExtractionPipeline`` (task ``"ecg-feature-extraction"``): one embedding vector per ECG record.

```python
import hubert_ecg
from transformers import pipeline
embed = pipeline("ecg-feature-extraction", model=hubert_ecg.demo_model_path())   # a classifier dir gives its backbone
embed("records100/00000/00001_lr")            # np.ndarray float32 (hidden_size,)
embed([path_a, path_b], layer=2, batch_size=64)   # one vector per record, from hidden layer 2
```

What ``pipeline("feature-extraction")`` is for text, for ECGs: the records are read, checked and cut into 5 s
windows exactly as the ``ecg-classification`` pipeline does (:class:`hubert_ecg.pipelines.ECGClassificationPipeline`,
whose ``preprocess`` this class inherits: :func:`hubert_ecg.windows.record_windows`), the backbone
(:class:`hubert_ecg.HuBERTECGModel`) encodes each window into frames, and a record's vector is the mean of the
**valid frames of all its windows** (:func:`hubert_ecg.modeling.pool_frames`): every frame computed from real samples only counts once,
the frames touched by zero padding (a record shorter than 5 s, a padded last window) count zero
(:meth:`hubert_ecg.HuBERTECGPreTrainedModel.frame_mask`). With full windows this is the mean over windows of each
window's mean over frames. ``layer`` picks a hidden state (0: the encoder's input after the feature projection and the
positional convolution; ``num_hidden_layers`` or -1: the last layer, the default).

The ``hubert-ecg embed`` command (which writes these vectors to Parquet) is :mod:`hubert_ecg_cli.embed`, on
:mod:`hubert_ecg.training.probe`.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from .modeling import pool_frames
from .pipelines import ECGClassificationPipeline

__all__ = ["ECGFeatureExtractionPipeline", "load_feature_pipeline"]


class ECGFeatureExtractionPipeline(ECGClassificationPipeline):
    """Embeds ECGs of any length: one float32 vector ``(hidden_size,)`` per record, the mean of the hidden states of
    the valid frames of all its 5 s windows (see the module docstring).

    The model: a :class:`~hubert_ecg.HuBERTECGModel` (``pipeline("ecg-feature-extraction", model=...)`` loads one
    with ``AutoModel``: a classifier or pretraining checkpoint gives its backbone), or any HuBERT-ECG model object
    (its ``base_model``, the backbone, is used).

    Inputs, reading, windows and signal quality are those of :class:`~hubert_ecg.pipelines.ECGClassificationPipeline`
    (same call parameters: ``window``, ``stride_seconds``, ``num_windows``, ``seed``, ``pad_to_window``,
    ``sampling_rate``, ``lead_names``, ``missing_leads``, ``lead_set``, ``min_duration``, ``skip_errors``,
    ``batch_size`` = windows per forward pass, across records), plus:

    Call parameters:
        layer: None (default: the last hidden state) or the index of a hidden state, ``0 .. num_hidden_layers``
            (0: after the feature projection and the positional convolution, before the first transformer layer;
            negative counts from the end, -1 the last).
        return_details: False (default) or True: one dict per input: ``name``, ``embedding`` (the vector, or
            None), ``windows`` (number embedded), ``frames`` (valid frames averaged), ``flags`` (list of str) and
            ``error`` (None, or why it was not embedded, with ``skip_errors``).

    Returns:
        For one input, a float32 ``np.ndarray`` ``(hidden_size,)``; for a list, one per input; for a generator or
        dataset, an iterator of them. With ``skip_errors`` an unusable input gives ``{"name", "error"}``.

    Raises:
        ValueError: as the classification pipeline, naming the input; for a ``layer`` out of range or not an int;
            for unknown parameters.
    """

    _PARENT_PREPROCESS = ("window", "stride_seconds", "num_windows", "seed", "pad_to_window", "sampling_rate",
                          "lead_names", "missing_leads", "lead_set", "skip_errors", "min_duration")

    def _sanitize_parameters(self, layer=None, return_details=None, **kwargs):
        unknown = sorted(set(kwargs) - set(self._PARENT_PREPROCESS))
        if unknown:
            raise ValueError(f"ecg-feature-extraction pipeline: unknown parameters {unknown}")
        preprocess, _, _ = super()._sanitize_parameters(**kwargs)
        forward, postprocess = {}, {}
        if layer is not None and self.check_layer(layer) is not None:
            forward["layer"] = self.check_layer(layer)
        if return_details is not None:
            postprocess["return_details"] = bool(return_details)
        return preprocess, forward, postprocess

    def check_layer(self, layer) -> int | None:
        """``layer`` as an index into the backbone's ``hidden_states`` (``num_hidden_layers + 1`` of them); for an
        exported backbone (:class:`~hubert_ecg.onnx_backend.ONNXFeatureModel`) None (its last hidden state).

        Raises:
            ValueError: for a non-integer or a layer outside ``-(num_hidden_layers + 1) .. num_hidden_layers``;
                for an exported backbone, any layer but the last.
        """
        n = int(self.model.config.num_hidden_layers)
        if isinstance(layer, bool) or not isinstance(layer, (int, np.integer)) or not -(n + 1) <= int(layer) <= n:
            raise ValueError(
                f"layer must be an integer from {-(n + 1)} to {n} (hidden states 0..{n} of this model with "
                f"{n} layers; negative counts from the end), got {layer!r}"
            )
        if getattr(self.model, "last_layer_only", False):  # an exported backbone: its graph gives last_hidden_state
            if int(layer) not in (-1, n):
                raise ValueError(f"layer {layer}: this exported model ({self.model.name_or_path}) gives the last "
                                 f"hidden state only (layer -1 or {n}); use the PyTorch model for other layers")
            return None
        return int(layer)

    def _forward(self, model_inputs, layer: int | None = None):
        """Windows ``(batch, 6000)`` -> per window the float64 sum of the valid frames' hidden states ``(batch,
        hidden_size)`` and their number ``(batch,)`` (:func:`hubert_ecg.modeling.pool_frames`); inputs cast to the model's dtype."""
        usable, values, mask = self._usable_windows(model_inputs)
        backbone = self.model.base_model
        hidden_size = int(self.model.config.hidden_size)
        sums = torch.zeros((len(usable), hidden_size), dtype=torch.float64, device=values.device)
        counts = torch.zeros((len(usable),), dtype=torch.int64, device=values.device)
        if bool(usable.any()):
            out = backbone(input_values=values.to(self.model.dtype), attention_mask=mask,
                           output_hidden_states=layer is not None, return_dict=True)
            hidden = out.last_hidden_state if layer is None else out.hidden_states[layer]
            frames = None if mask is None else backbone.frame_mask(mask, hidden.shape[1])
            sums[usable], counts[usable] = pool_frames(hidden, frames, dtype=torch.float64)
        return {"frame_sum": sums, "frame_count": counts, "is_last": model_inputs["is_last"],
                "name": model_inputs["name"], "flags": model_inputs["flags"], "missing": model_inputs["missing"],
                "error": model_inputs["error"]}

    def postprocess(self, model_outputs, return_details: bool = False):
        """The pooled windows of one record -> its vector float32 ``(hidden_size,)`` (an unusable input in
        ``skip_errors`` mode -> ``{"name", "error"}``); with ``return_details`` a dict ``name``, ``embedding``,
        ``windows``, ``frames``, ``flags``, ``error``."""
        first = model_outputs[0]
        if first["error"] is not None:
            if return_details:
                return {"name": first["name"], "embedding": None, "windows": 0, "frames": 0, "flags": [],
                        "error": first["error"]}
            return {"name": first["name"], "error": first["error"]}
        if first["missing"]:
            self._warn_fewer_leads(first["name"], first["missing"])
        total = torch.cat([out["frame_sum"].reshape(1, -1) for out in model_outputs]).sum(dim=0)
        frames = int(sum(int(out["frame_count"].reshape(-1)[0]) for out in model_outputs))
        if frames == 0:  # cannot happen for records of at least receptive_field samples per lead
            reason = "no frame of any window is free of padding: nothing to average"
            if return_details:
                return {"name": first["name"], "embedding": None, "windows": len(model_outputs), "frames": 0,
                        "flags": list(first["flags"]), "error": reason}
            return {"name": first["name"], "error": reason}
        vector = (total / frames).cpu().numpy().astype(np.float32)
        if return_details:
            return {"name": first["name"], "embedding": vector, "windows": len(model_outputs), "frames": frames,
                    "flags": list(first["flags"]), "error": None}
        return vector

    def embed_details(self, inputs: Sequence, batch_size: int = 16, **kwargs) -> list[dict]:
        """Embed many inputs, never raising for an unusable one: one dict per input, in order (see
        ``return_details``; ``name`` is the input as given, :func:`hubert_ecg.windows.describe`)."""
        return self.predict_details(inputs, batch_size=batch_size, **kwargs)


def load_feature_pipeline(
    model: str | None = None, device: str | int | None = None, dtype: str | None = None, backend: str | None = None
) -> ECGFeatureExtractionPipeline:
    """``pipeline("ecg-feature-extraction")`` for ``model`` (hub id or directory of any HuBERT-ECG checkpoint; None: the
    bundled demo model's backbone); ``dtype`` as :func:`hubert_ecg.pipelines.load_pipeline`.

    An exported backbone (a directory of ``hubert-ecg export-onnx MODEL DIR --task feature-extraction``, or its
    ``.onnx`` file with ``config.json`` beside it) runs on the CPU with ``backend`` ``"onnxruntime"`` or
    ``"openvino"`` (None: onnxruntime when installed, else OpenVINO; :class:`hubert_ecg.onnx_backend.ONNXFeatureModel`):
    the same vectors as the PyTorch backbone within 1e-4, for the last layer only; a record shorter than the 5 s
    window (zero-padded) is refused as one bad record (the graph takes no attention mask).

    Raises:
        ValueError: if the model cannot be loaded (names it), for an unknown ``dtype`` or ``backend``, an exported
            backend with a model that is not exported (``"torch"`` with one that is), an exported classifier (logits
            only: export with ``--task feature-extraction``), a runtime that is not installed (names the extra).
    """
    from .pipelines import load_task_pipeline

    return load_task_pipeline("ecg-feature-extraction", ECGFeatureExtractionPipeline, model, device, dtype, backend)
