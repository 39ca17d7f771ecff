"""``ECGClassificationPipeline`` (task ``"ecg-classification"``) and the ``hubert-ecg predict`` command.

```python
import hubert_ecg
from transformers import pipeline
clf = pipeline("ecg-classification", model=hubert_ecg.demo_model_path())
clf("records500/00000/00010_hr")            # [{"label": "NORM", "score": 0.93}, {"label": "CD", ...}, ...]
clf([path_a, record_b, {"signal": x, "sampling_rate": 500, "lead_names": names}], batch_size=64)
```

A ``ChunkPipeline``, as transformers' speech-recognition pipeline is for long audio: ``preprocess`` reads a record
and yields its 5 s windows one by one (:mod:`hubert_ecg.windows` chooses them: by default every window, consecutive;
``stride_seconds`` for overlapping ones), the DataLoader batches windows across records (``batch_size`` = windows
per forward pass, whatever the records' lengths), and ``postprocess`` aggregates each record's window scores by
their mean (default) or maximum. A 24-hour Holter is thus ~17,000 windows in forward passes of ``batch_size``, read
and preprocessed piece by piece. Scores are ``hubert_ecg.modeling.scores_from_logits`` for the model's problem
type (sigmoid for multi-label, softmax for single-label, raw outputs for regression).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from transformers.pipelines.base import ChunkPipeline
from transformers.utils import logging

from .io import MANIFEST_EXTENSIONS
from .leads import DEFAULT_MISSING_LEADS, check_missing_leads
from .leads import lead_set as _lead_set
from .modeling import scores_from_logits
from .onnx_backend import resolve_backend
from .windows import MIN_DURATION, WINDOW_CHOICES, RecordWindows, describe, record_windows

logger = logging.get_logger(__name__)

__all__ = ["ECGClassificationPipeline", "aggregate_windows", "load_feature_extractor"]

_ALL = "all"  # sentinel default of top_k: every label
_AGGREGATIONS = ("mean", "max")
#: windows the feature extractor computes at a time inside ``preprocess`` (bounds memory for long records)
PREPROCESS_BLOCK = 64


def aggregate_windows(window_scores: np.ndarray, aggregation: str = "mean", problem_type: str | None = None) -> np.ndarray:
    """THE window aggregation: ``(windows, labels)`` scores of one record -> ``(labels,)`` by their mean or maximum.

    The scores are those of :func:`hubert_ecg.modeling.scores_from_logits`: for multi-label, the mean (or maximum)
    of each label's sigmoid probability; for single-label, the mean of the softmax probabilities (again a
    distribution over the classes, whose argmax is the record's class); for regression, the mean (or maximum) of
    each output's values. The maximum of softmax probabilities is no distribution, so ``"max"`` is refused for
    ``problem_type="single_label_classification"``.

    Raises:
        ValueError: for another ``aggregation``, ``"max"`` of a single-label classifier, or no window.
    """
    if aggregation not in _AGGREGATIONS:
        raise ValueError(f"aggregation must be 'mean' or 'max', got {aggregation!r}")
    if aggregation == "max" and problem_type == "single_label_classification":
        raise ValueError("aggregation 'max' does not apply to a single-label (multi-class) classifier: the maximum "
                         "of each class's softmax probability over the windows is no distribution; use 'mean'")
    window_scores = np.asarray(window_scores, dtype=np.float64)
    if window_scores.ndim != 2 or window_scores.shape[0] == 0:
        raise ValueError(f"expected window scores of shape (windows >= 1, labels), got {window_scores.shape}")
    return window_scores.max(axis=0) if aggregation == "max" else window_scores.mean(axis=0)


_DEFAULTED: set[str] = set()  # sources already announced as scored with the default feature extractor


def load_feature_extractor(source, config=None, **kwargs):
    """THE feature-extractor loading of every entry point (``pipeline()``, ``predict``, ``evaluate``, ``explain``,
    ``calibrate``, embeddings): ``AutoFeatureExtractor.from_pretrained(source)``, or, when ``source`` holds a
    HuBERT-ECG model (``config.model_type == "hubert_ecg"``) but no ``preprocessor_config.json`` (the authors' own
    checkpoints often ship without one), ``HuBERTECGFeatureExtractor()``: its defaults are the released
    preprocessing. The fallback is logged once per source at info level.

    Args:
        source: hub id or ``save_pretrained`` directory.
        config: the model's config (loaded from ``source`` when None and needed).
        kwargs: passed to ``from_pretrained`` (``revision``, ``token``, ...).

    Raises:
        OSError: as ``AutoFeatureExtractor.from_pretrained`` when ``source`` is not a HuBERT-ECG model, or when its
            ``preprocessor_config.json`` exists but cannot be loaded.
    """
    from transformers import AutoConfig, AutoFeatureExtractor
    from transformers.utils import FEATURE_EXTRACTOR_NAME, cached_file

    from .processing import HuBERTECGFeatureExtractor

    try:
        return AutoFeatureExtractor.from_pretrained(source, **kwargs)
    except OSError:
        source = str(source)
        if Path(source).is_dir():
            present = (Path(source) / FEATURE_EXTRACTOR_NAME).is_file()
        else:
            try:
                present = cached_file(source, FEATURE_EXTRACTOR_NAME, _raise_exceptions_for_missing_entries=False,
                                      _raise_exceptions_for_connection_errors=False, **kwargs) is not None
            except (OSError, ValueError):  # not a hub id (e.g. a directory that no longer exists)
                present = False
        if present:
            raise
        try:
            config = config if config is not None else AutoConfig.from_pretrained(source, **kwargs)
        except (OSError, ValueError):
            config = None
        if getattr(config, "model_type", None) != "hubert_ecg":
            raise
    if source not in _DEFAULTED:
        _DEFAULTED.add(source)
        logger.info(f"{source}: no {FEATURE_EXTRACTOR_NAME}; using HuBERTECGFeatureExtractor() (its defaults are "
                    "the released HuBERT-ECG preprocessing)")
    return HuBERTECGFeatureExtractor()


class _Rows(torch.utils.data.Dataset):
    """A ``datasets.Dataset`` seen as a torch ``Dataset`` of its rows (dicts with ``signal``, ``sampling_rate``, ...)."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, index):
        return self.dataset[index]


class ECGClassificationPipeline(ChunkPipeline):
    """Scores ECGs of any length with a HuBERT-ECG classifier (``HuBERTECGForSequenceClassification``).

    Inputs: one, or a list, a generator, a ``datasets.Dataset`` (rows with ``signal``, ``sampling_rate``, optional
    ``lead_names``) or a ``KeyDataset`` of: a file path in any format :func:`hubert_ecg.read_ecg` reads (WFDB record
    name, ``.hea``/``.dat``, challenge ``.mat``, ``.npy``, ...), an :class:`~hubert_ecg.ECGRecord`, a dict with
    ``signal`` (float array ``(leads, samples)`` in mV), ``sampling_rate`` (Hz) and optional ``lead_names``, or a
    2-D array ``(12, samples)`` with ``sampling_rate=`` given. Any sampling rate and any length of at least 5 s.
    Any subset of the 12 standard leads, named in any spelling (``MLII``, ``AVR``, ``Lead I (Einthoven)``): the
    missing leads are zero-filled (the model input stays 12 leads; the lead mask says which are real) and each such
    record gets a flag naming them. A model whose ``config.lead_mask_prob`` is 0 (trained without random lead
    masking) was not validated on fewer leads: the pipeline then logs one warning, the first time it scores such a
    record; a lead-agnostic model (``lead_mask_prob > 0``) scores them without one.

    Precision and kernels: built without a ``dtype`` (``pipeline("ecg-classification", model=...)``), the pipeline
    runs a float32 PyTorch model with the settings measured fastest on this machine for its shape
    (:func:`hubert_ecg.inference.tune_model`: bfloat16 only where it is clearly faster and keeps every score within
    0.02 of float32; the attention and first-convolution kernels; measured once, cached), changing the model it was
    given in place; ``self.inference_settings`` says what it runs. An explicit ``dtype`` (e.g. ``torch.float32``)
    keeps the model as it is; ``HUBERT_ECG_TUNING=0`` turns measuring off.

    Call parameters:
        batch_size: windows per forward pass (batched across records); ``num_workers``: DataLoader workers for
            reading and preprocessing (transformers runs a ChunkPipeline with at most one).
        top_k: number of labels returned, highest score first; ``None`` or leave out for all labels (classifiers).
        aggregation: ``"mean"`` (default) or ``"max"`` of the per-window scores (:func:`aggregate_windows`; mean
            only for a single-label classifier).
        function_to_apply: ``"sigmoid"``, ``"softmax"`` or ``"none"``; default from the model's problem type,
            with the model's ``config.score_calibration`` applied (an explicit value gives uncalibrated scores).
        window: ``"all"`` (default), ``"first"`` (the first 5 s, as the release evaluates) or ``"random"``
            (``num_windows`` random windows, drawn with ``seed``); ``stride_seconds``: stride of ``"all"``
            (default 5 s: consecutive windows); ``pad_to_window``: score records shorter than 5 s, padded.
        sampling_rate, lead_names: for array inputs.
        missing_leads: ``"zero"`` (default: missing leads are zero-filled) or ``"raise"`` (a record lacking any of
            the 12 leads is an error naming them).
        lead_set: score with these leads only, the others zero-filled as missing: a name of
            :data:`hubert_ecg.leads.LEAD_SETS` (``"12"``, ``"6"``, ``"4"``, ``"3"``, ``"2"``, ``"1"``, as in the
            PhysioNet/CinC Challenge 2021) or a list of lead names; a record with none of them is refused.
        min_duration: seconds (default :data:`hubert_ecg.windows.MIN_DURATION`, 2.5): records shorter than the 5 s
            window but at least this long are scored zero-padded (the attention mask marks the padding); shorter
            ones are refused.
        return_details: False (default) or True: one dict per input instead of the list of scores: ``name``,
            ``predictions`` (the list, or None), ``windows`` (number scored), ``flags`` (list of str) and
            ``error`` (None, or why it was not scored, with ``skip_errors``).
        skip_errors: an unusable input gives ``{"name", "error"}`` (or its details) instead of raising.

    Signal quality is checked before scoring (:func:`hubert_ecg.windows.record_windows`): flat leads are scored as
    missing (zero-filled), saturated leads and short records are scored; each is logged as a warning naming the
    input and listed in ``flags`` (``return_details=True``). A record whose leads are all flat is refused.

    Returns:
        For one input, a list of predictions; for a list, one such list per input; for a generator or dataset, an
        iterator of them. What a prediction is depends on the model's problem type (``config.problem_type_of()``):

        * multi-label (sigmoid): ``{"label": str, "score": float}`` per label, sorted by decreasing score. For a
          model with ``config.label_thresholds`` (``hubert-ecg calibrate``), each label with a threshold also has
          ``"positive"``: whether its score is at or above the threshold (not with an explicit
          ``function_to_apply``). A label without a threshold (calibrated on a manifest that labelled other
          outputs) has no ``"positive"``: its score, no decision (no default cut-off such as 0.5 is assumed).
        * single-label / multi-class (softmax): ``{"label", "score", "positive"}`` per class, sorted by decreasing
          probability (the probabilities sum to 1); ``"positive"`` is True for exactly one class, the record's
          class: the argmax of the window-mean probabilities (no per-label thresholds; not with an explicit
          ``function_to_apply``). ``aggregation="max"`` is refused.
        * regression: ``{"label": str, "value": float}`` per output, in output order (``top_k`` does not apply):
          the model's outputs averaged (or maximised) over the windows, in the unit the model was trained on; no
          thresholds, no calibration.

        Where the model's config has ``label_descriptions`` (label -> readable description, e.g. from
        :func:`hubert_ecg.label_sets.load_label_set`), each prediction of a described label has ``"description"``.

    Raises:
        ValueError: naming the input, for an unreadable or missing file, a record shorter than ``min_duration``,
            missing leads (with ``missing_leads="raise"``), every lead flat, none of the leads of ``lead_set``, or
            unknown parameter values.
    """

    _load_processor = False
    _load_image_processor = False
    # None: pipeline() tries AutoFeatureExtractor and passes None where it fails; __init__ then falls back to
    # load_feature_extractor (the default feature extractor for a HuBERT-ECG model without one, else the error)
    _load_feature_extractor = None
    _load_tokenizer = False

    def __init__(self, model, *args, **kwargs):
        if kwargs.get("feature_extractor") is None and not args and not isinstance(model, str):
            source = getattr(model, "name_or_path", None) or getattr(model.config, "_name_or_path", None)
            if source:
                kwargs["feature_extractor"] = load_feature_extractor(source, model.config)
            elif getattr(model.config, "model_type", None) == "hubert_ecg":
                from .processing import HuBERTECGFeatureExtractor

                kwargs["feature_extractor"] = HuBERTECGFeatureExtractor()
        dtype = kwargs.get("dtype", "auto")  # pipeline() passes "auto" when the caller named no dtype
        super().__init__(model, *args, **kwargs)
        #: the inference settings in use (:class:`hubert_ecg.inference.InferenceSettings`); None for an ONNX model
        self.inference_settings = None
        if isinstance(self.model, torch.nn.Module):
            from .inference import InferenceSettings, tune_model

            measure = dtype is None or (isinstance(dtype, str) and dtype == "auto")
            self.inference_settings = tune_model(self.model) if measure else InferenceSettings(
                dtype=str(self.model.dtype).removeprefix("torch."),
                attn_implementation=getattr(self.model.config, "_attn_implementation", None) or "sdpa",
            )

    def _sanitize_parameters(
        self,
        top_k=_ALL,
        aggregation=None,
        function_to_apply=None,
        window=None,
        stride_seconds=None,
        num_windows=None,
        seed=None,
        pad_to_window=None,
        sampling_rate=None,
        lead_names=None,
        missing_leads=None,
        lead_set=None,
        skip_errors=None,
        min_duration=None,
        return_details=None,
        **kwargs,
    ):
        if kwargs:
            raise ValueError(f"ecg-classification pipeline: unknown parameters {sorted(kwargs)}")
        preprocess, postprocess = {}, {}
        if window is not None and window not in WINDOW_CHOICES:
            raise ValueError(f"window must be one of {WINDOW_CHOICES}, got {window!r}")
        if missing_leads is not None:
            check_missing_leads(missing_leads)
        for name, value in (("window", window), ("stride_seconds", stride_seconds), ("num_windows", num_windows),
                            ("pad_to_window", pad_to_window), ("sampling_rate", sampling_rate),
                            ("lead_names", lead_names), ("missing_leads", missing_leads),
                            ("skip_errors", skip_errors), ("min_duration", min_duration)):
            if value is not None:
                preprocess[name] = value
        if lead_set is not None:
            preprocess["lead_set"] = _lead_set(lead_set)
        if seed is not None or window == "random":
            preprocess["rng"] = np.random.default_rng(seed)
        if top_k != _ALL:
            if top_k is not None and (not isinstance(top_k, int) or top_k < 1):
                raise ValueError(f"top_k must be a positive integer or None (all labels), got {top_k!r}")
            postprocess["top_k"] = top_k
        if aggregation is not None:
            if aggregation not in _AGGREGATIONS:
                raise ValueError(f"aggregation must be 'mean' or 'max', got {aggregation!r}")
            postprocess["aggregation"] = aggregation
        if function_to_apply is not None:
            if function_to_apply not in ("sigmoid", "softmax", "none"):
                raise ValueError(f"function_to_apply must be 'sigmoid', 'softmax' or 'none', got {function_to_apply!r}")
            postprocess["function_to_apply"] = function_to_apply
        if aggregation == "max":
            aggregate_windows(np.zeros((1, 1)), "max", self._problem_type(function_to_apply))  # refused: its error
        if min_duration is not None and (not isinstance(min_duration, (int, float)) or min_duration < 0):
            raise ValueError(f"min_duration must be a number of seconds >= 0, got {min_duration!r}")
        if return_details is not None:
            postprocess["return_details"] = bool(return_details)
        return preprocess, {}, postprocess

    def __call__(self, inputs, **kwargs):
        """Score inputs; see the class docstring. A tuple is scored like a list, a ``datasets.Dataset`` row by row."""
        if isinstance(inputs, tuple):
            inputs = list(inputs)
        elif type(inputs).__module__.startswith("datasets.") and hasattr(inputs, "column_names"):
            inputs = _Rows(inputs)
        self._warned = set()  # each finding of a file logged once per call, whatever the spelling of its path
        return super().__call__(inputs, **kwargs)

    # ------------------------------------------------------------------ steps
    def preprocess(
        self,
        inputs,
        window: str = "all",
        stride_seconds: float | None = None,
        num_windows: int = 1,
        rng: np.random.Generator | None = None,
        pad_to_window: bool = False,
        sampling_rate: float | None = None,
        lead_names: Sequence[str] | None = None,
        missing_leads: str = DEFAULT_MISSING_LEADS,
        lead_set: Sequence[str] | None = None,
        skip_errors: bool = False,
        min_duration: float | None = MIN_DURATION,
    ):
        """One input -> its windows, one dict each: ``input_values`` (1, 6000) float32, ``attention_mask`` (1, 6000),
        ``is_last``, ``name``, ``flags`` (tuple of str, :attr:`RecordWindows.flags`, plus one naming the missing
        leads), ``missing`` (tuple of the model leads zero-filled) and ``error`` (None). With ``skip_errors`` an
        unusable input yields one placeholder whose ``error`` says why (no model call is made for it); otherwise it
        raises ``ValueError`` naming it."""
        name = describe(inputs)
        try:
            plan = inputs if isinstance(inputs, RecordWindows) else record_windows(
                inputs, self.feature_extractor, window=window, stride_seconds=stride_seconds,
                num_windows=num_windows, pad_to_window=pad_to_window, missing_leads=missing_leads, rng=rng,
                sampling_rate=sampling_rate, lead_names=lead_names, min_duration=min_duration, lead_set=lead_set,
                warned=getattr(self, "_warned", None),
            )
            name = plan.name
            order = list(self.feature_extractor.lead_order)
            zero_filled = tuple(lead for lead, ok in zip(order, plan.lead_mask) if not ok)
            missing = tuple(lead for lead in zero_filled if lead not in plan.flat_leads)
            flags = tuple(plan.flags) + ((f"missing leads {', '.join(missing)}: zero-filled",) if missing else ())
            blocks = plan.features(self.feature_extractor, batch_windows=PREPROCESS_BLOCK, return_tensors="pt")
            block = next(blocks)
            if not getattr(self.model, "accepts_padding", True) and not bool(block["attention_mask"].all()):
                raise ValueError(  # a record shorter than the window is zero-padded: a graph without a mask input
                    f"{name}: shorter than the {self.feature_extractor.window_seconds:g} s window, so zero-padded; "
                    "this model (an ONNX graph) takes no attention mask and cannot ignore the padding: score it "
                    "with the PyTorch model")
        except ValueError as err:
            message = str(err)
            if not skip_errors:
                raise ValueError(message if message.startswith(name) else f"{name}: {message}") from None
            reason = message[len(name) + 2:] if message.startswith(f"{name}: ") else message  # the row names it
            length = self.feature_extractor.input_length
            yield {"input_values": torch.zeros(1, length), "attention_mask": torch.zeros(1, length, dtype=torch.int32),
                   "is_last": True, "name": name, "flags": (), "missing": (), "error": reason}
            return
        remaining = len(plan)
        while block is not None:
            for row in range(block["input_values"].shape[0]):
                remaining -= 1
                yield {"input_values": block["input_values"][row : row + 1],
                       "attention_mask": block["attention_mask"][row : row + 1],
                       "is_last": remaining == 0, "name": name, "flags": flags,
                       "missing": zero_filled, "error": None}
            block = next(blocks, None)

    @staticmethod
    def _usable_windows(model_inputs):
        """``(usable, values, mask)`` of a batch of windows: ``usable`` bool ``(batch,)`` marks the rows of readable
        inputs (an unusable input in ``skip_errors`` mode has a placeholder row), ``values`` / ``mask`` those rows;
        ``mask`` is None when it is all ones (full windows: the same result without it)."""
        errors = model_inputs["error"]
        errors = errors if isinstance(errors, list) else [errors]
        values, mask = model_inputs["input_values"], model_inputs["attention_mask"]
        usable = torch.tensor([e is None for e in errors], device=values.device)
        if bool(usable.any()) and not bool(usable.all()):
            values, mask = values[usable], mask[usable]
        if bool(mask.all()):
            mask = None
        return usable, values, mask

    def _forward(self, model_inputs):
        """Windows ``(batch, 6000)`` -> float32 logits ``(batch, num_labels)`` with ``self.model(input_values=...,
        attention_mask=...)``, inputs cast to the model's dtype (``pipeline(..., dtype=torch.bfloat16)``)."""
        usable, values, mask = self._usable_windows(model_inputs)
        logits = torch.full((len(usable), self.model.config.num_labels), float("nan"), device=values.device)
        if bool(usable.any()):
            out = self.model(input_values=values.to(self.model.dtype), attention_mask=mask).logits.float()
            logits[usable] = out
        return {"logits": logits, "is_last": model_inputs["is_last"], "name": model_inputs["name"],
                "flags": model_inputs["flags"], "missing": model_inputs["missing"], "error": model_inputs["error"]}

    def _problem_type(self, function_to_apply: str | None) -> str:
        return {"sigmoid": "multi_label_classification", "softmax": "single_label_classification",
                "none": "regression", None: self.model.config.problem_type_of()}[function_to_apply]

    def postprocess(self, model_outputs, top_k=None, aggregation="mean", function_to_apply=None,
                    return_details=False):
        """The window logits of one record -> its predictions (see the class docstring: ``[{"label", "score"}]``
        sorted by decreasing score for a classifier, ``[{"label", "value"}]`` in output order for a regression; an
        unusable input in ``skip_errors`` mode -> ``{"name", "error"}``); with ``return_details`` a dict ``name``,
        ``predictions``, ``windows``, ``flags``, ``error``."""
        first = model_outputs[0]
        if first["error"] is not None:
            if return_details:
                return {"name": first["name"], "predictions": None, "windows": 0, "flags": [], "error": first["error"]}
            return {"name": first["name"], "error": first["error"]}
        if first["missing"]:
            self._warn_fewer_leads(first["name"], first["missing"])
        logits = torch.cat([out["logits"] for out in model_outputs]).cpu().numpy().astype(np.float64)
        config = self.model.config
        own = function_to_apply is None  # the model's own scores: calibrated, with its thresholds
        model_type, problem_type = config.problem_type_of(), self._problem_type(function_to_apply)
        calibration = config.score_calibration if own and problem_type != "regression" else None
        scores = aggregate_windows(scores_from_logits(logits, problem_type, calibration), aggregation, problem_type)
        id2label = config.id2label
        descriptions = getattr(config, "label_descriptions", None) or {}
        if model_type == "regression":  # values, not probabilities: every output, in output order
            predictions = [{"label": id2label[i], "value": float(scores[i])} for i in range(len(scores))]
        else:
            order = np.argsort(-scores, kind="stable")
            if top_k is not None:
                order = order[:top_k]
            single = own and model_type == "single_label_classification"  # one class per record: the argmax
            thresholds = (config.label_thresholds or {}) if own and not single else {}
            predictions = []
            for rank, i in enumerate(order):
                label = id2label[int(i)]
                predictions.append({"label": label, "score": float(scores[i])})
                if single:
                    predictions[-1]["positive"] = rank == 0
                elif label in thresholds:
                    predictions[-1]["positive"] = bool(scores[i] >= thresholds[label])
        for prediction in predictions:
            if prediction["label"] in descriptions:
                prediction["description"] = descriptions[prediction["label"]]
        if return_details:
            return {"name": first["name"], "predictions": predictions, "windows": len(model_outputs),
                    "flags": list(first["flags"]), "error": None}
        return predictions

    def _warn_fewer_leads(self, name: str, missing: Sequence[str]) -> None:
        """Log, once per pipeline, that a model trained without random lead masking scores fewer than 12 leads."""
        if getattr(self, "_warned_fewer_leads", False) or getattr(self.model.config, "lead_mask_prob", 0.0) > 0:
            return
        self._warned_fewer_leads = True
        logger.warning(
            f"{name}: scored without the leads {', '.join(missing)} (zero-filled). This model was trained without "
            "random lead masking (config.lead_mask_prob = 0): its scores on fewer than 12 leads are not validated. "
            "This warning is shown once per pipeline."
        )

    def predict_details(self, files: Sequence[Any], batch_size: int = 8, **kwargs) -> list[dict]:
        """Score many inputs, never raising for an unusable one.

        Returns:
            One dict per input, in order: ``name`` (the input as given: :func:`hubert_ecg.windows.describe`),
            ``predictions`` (``[{"label", "score"}]``, or None when not scored), ``windows`` (number of 5 s windows
            scored), ``flags`` (list of str: flat or saturated leads, a short record, reader warnings) and
            ``error`` (None, or why the input was not scored).
        """
        files = list(files)
        outputs = self(files, batch_size=max(1, int(batch_size)), skip_errors=True, return_details=True,
                       **kwargs) if files else []
        return [dict(output, name=describe(item, index)) for index, (item, output) in enumerate(zip(files, outputs))]

    def predict_files(self, files: Sequence[Any], batch_size: int = 8, **kwargs):
        """Score many inputs, skipping the unusable ones (see :meth:`predict_details`).

        Returns:
            ``(results, skipped)``: ``results`` a list of ``(name, [{"label", "score"}])`` for the scored inputs,
            ``skipped`` a list of ``(name, reason)`` for the others.
        """
        details = self.predict_details(files, batch_size=batch_size, **kwargs)
        results = [(d["name"], d["predictions"]) for d in details if d["error"] is None]
        skipped = [(d["name"], d["error"]) for d in details if d["error"] is not None]
        return results, skipped


# ----------------------------------------------------------------------------------------------------------------
# hubert-ecg predict
# ----------------------------------------------------------------------------------------------------------------


def load_pipeline(
    model: str | None = None, device: str | int | None = None, dtype: str | None = None, backend: str | None = None
) -> ECGClassificationPipeline:
    """``pipeline("ecg-classification")`` for ``model`` (hub id or directory; None: the bundled demo model).

    An exported model directory (``model.onnx`` beside ``config.json`` and ``preprocessor_config.json``: ``hubert-ecg
    export-onnx MODEL DIR``) or a ``.onnx`` file with those files beside it runs on the CPU with ``backend``
    ``"onnxruntime"`` or ``"openvino"`` (None: onnxruntime when installed, else OpenVINO;
    :class:`hubert_ecg.onnx_backend.ONNXClassifier`); ``device`` must then be None or the CPU, ``dtype`` None or
    float32.

    ``dtype``: None or ``"auto"`` (the default): the settings measured fastest on this machine for this model shape,
    scores within 0.02 of float32 (:func:`hubert_ecg.inference.tuned_settings`, cached); ``"float32"`` (exact) or
    ``"bfloat16"``: the model is loaded in that dtype (``pipeline(..., dtype=)``).

    ``backend``: None (the model's own: torch for a PyTorch model, see above for an exported one), ``"torch"``,
    ``"onnxruntime"`` or ``"openvino"`` (:func:`hubert_ecg.onnx_backend.resolve_backend`).

    Raises:
        ValueError: if the model cannot be loaded (names it), for an unknown ``dtype`` or ``backend``, for an
            exported backend with a model that is not exported (and ``"torch"`` with one that is), for a runtime
            that is not installed (names the extra).
    """
    return load_task_pipeline("ecg-classification", ECGClassificationPipeline, model, device, dtype, backend)


def load_task_pipeline(task: str, pipeline_class, model=None, device=None, dtype=None, backend=None):
    """THE loader of both tasks (:func:`load_pipeline`, :func:`hubert_ecg.embeddings.load_feature_pipeline`):
    ``pipeline(task)`` for a PyTorch model (None: the demo model), or ``pipeline_class`` over an exported model
    (an ``ONNXClassifier`` for ``"ecg-classification"``, an ``ONNXFeatureModel`` otherwise); arguments and errors as
    :func:`load_pipeline`."""
    from transformers import pipeline

    from .demo import demo_model_path
    from .inference import resolve_dtype

    if resolve_runtime(model, backend) != "torch":
        kind = "classifier" if task == "ecg-classification" else "backbone"
        exported, extractor = load_exported_model(model, kind, device, dtype, backend)
        return pipeline_class(model=exported, feature_extractor=extractor, device=-1, task=task)
    source = model or demo_model_path()
    torch_dtype = resolve_dtype(dtype, device if isinstance(device, str) else ("cuda" if device is not None else None))
    try:
        return pipeline(task, model=source, device=device, dtype=torch_dtype or "auto")
    except (OSError, ValueError, KeyError) as err:
        where = "directory" if Path(source).exists() else "hub id (or missing directory)"
        raise ValueError(f"cannot load the model {source!r} ({where}): {type(err).__name__}: {err}") from None


def resolve_runtime(model, backend: str | None = None) -> str:
    """``"torch"``, ``"onnxruntime"`` or ``"openvino"``: :func:`hubert_ecg.onnx_backend.resolve_backend` of ``model``
    (None: the demo model, a PyTorch model), its ``ImportError`` (no runtime installed) as a ``ValueError``."""
    try:
        return resolve_backend(model, backend)
    except ImportError as err:
        raise ValueError(f"{model}: {err}") from None


def launch_device(model, backend: str | None, device, default):
    """The device a process of a launch loads ``model`` on: ``device`` when given; else None for an exported model
    (:func:`resolve_runtime` not ``"torch"``: it runs on the CPU whatever the launch's device), else ``default``
    (the launch's device). Used by ``hubert-ecg predict`` and ``hubert-ecg embed`` with ``--output_dir``.

    Raises:
        ValueError: as :func:`resolve_runtime` (no runtime installed for an exported model).
    """
    if device is not None:
        return device
    return default if resolve_runtime(model, backend) == "torch" else None


def load_exported_model(source, kind: str, device=None, dtype=None, backend: str | None = None):
    """``(model, feature_extractor)`` of an exported model directory or ``.onnx`` file, run on the CPU with
    ``backend`` (None: the default runtime); ``kind`` ``"classifier"``
    (:class:`~hubert_ecg.onnx_backend.ONNXClassifier`) or ``"backbone"`` (:class:`~hubert_ecg.onnx_backend.ONNXFeatureModel`).

    Raises:
        ValueError: for a ``device`` other than the CPU or a ``dtype`` other than float32, a missing graph or
            ``config.json``, a graph of the other kind, a runtime that is not installed, an unreadable graph (each
            naming the path).
    """
    from .onnx_backend import ONNXClassifier, ONNXFeatureModel, resolve_onnx_model

    backend = resolve_runtime(source, backend)
    if device is not None and not (device == -1 or str(device) == "cpu"):
        raise ValueError(f"{source}: an ONNX model runs on the CPU with {backend}; --device {device} is not supported.")
    if dtype not in (None, "auto", "float32"):
        raise ValueError(f"{source}: an ONNX model runs in float32; --dtype {dtype} is not supported.")
    graph, folder = resolve_onnx_model(source)
    model_class = {"classifier": ONNXClassifier, "backbone": ONNXFeatureModel}[kind]
    try:
        model = model_class.from_pretrained(graph, backend=backend)
        extractor = load_feature_extractor(str(folder), model.config)
    except (OSError, KeyError) as err:
        raise ValueError(f"cannot load the ONNX model {str(source)!r}: {type(err).__name__}: {err}") from None
    except Exception as err:  # the runtimes' own errors (an unreadable graph) are not ValueErrors
        if isinstance(err, (ValueError, ImportError)):
            raise ValueError(str(err)) from None
        raise ValueError(f"cannot load the ONNX graph {str(graph)!r} with {backend}: {type(err).__name__}: "
                         f"{err}") from None
    return model, extractor




def expand_inputs(inputs: Sequence[str]) -> list[tuple[str, str | None]]:
    """``hubert-ecg predict``'s inputs -> ``(input, error)`` pairs: a directory gives every record under it
    (:func:`hubert_ecg.io.find_records`; none -> one pair with the error), a manifest (``.csv`` / ``.tsv`` with a
    ``filename`` (or ``path``) column, ``.txt`` one path a line, ``.jsonl``; paths relative to the manifest) its
    records, anything else itself (errors come later, from reading it).

    Raises:
        ValueError: for a manifest that cannot be read or lacks a path column (names it).
    """
    from .io import find_records

    out: list[tuple[str, str | None]] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = find_records(path)
            if not found:
                out.append((item, f"no ECG record under the directory {item!r}"))
            out += [(f, None) for f in found]
        elif path.suffix.lower() in MANIFEST_EXTENSIONS and path.is_file():
            try:
                out += [(f, None) for f in find_records(path)]
            except (OSError, ValueError, UnicodeDecodeError, json.JSONDecodeError) as err:
                raise ValueError(f"cannot read the manifest {item!r}: {err}") from None
        else:
            out.append((item, None))
    return out
