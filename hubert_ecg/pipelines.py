"""``ECGClassificationPipeline`` (task ``"ecg-classification"``) and the ``hubert-ecg predict`` command.

```python
import hubert_ecg
from transformers import pipeline
clf = pipeline("ecg-classification", model=hubert_ecg.demo_model_path())
clf("records500/00000/00010_hr")            # [{"label": "NORM", "score": 0.93}, {"label": "CD", ...}, ...]
clf([path_a, record_b, {"signal": x, "sampling_rate": 500, "lead_names": names}], batch_size=8)
```

A record of any length of at least one window (5 s) is cut into consecutive 5 s windows (the feature extractor's
``window="all"``; ``stride_seconds`` for overlapping ones), every window is scored, and the per-window
probabilities are aggregated by their mean (default) or maximum. Probabilities are the sigmoid of the logits for
multi-label models and their softmax for single-label models; regression models return the raw outputs.
"""

from __future__ import annotations

import argparse
import csv
import io as _io
import json
import os
import sys
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from transformers import Pipeline
from transformers.utils import logging

from .inference import optimize_for_inference, run_model
from .modeling import scores_from_logits
from .io import ECGRecord, read_ecg

logger = logging.get_logger(__name__)

__all__ = ["ECGClassificationPipeline", "predict_main"]

_ALL = "all"  # sentinel default of top_k: every label


def _describe(item: Any, index: int) -> str:
    if isinstance(item, (str, os.PathLike)):
        return str(item)
    if isinstance(item, ECGRecord) and item.record_name:
        return item.record_name
    return f"input[{index}]"


class ECGClassificationPipeline(Pipeline):
    """Scores 12-lead ECGs with a HuBERT-ECG classifier (``HuBERTECGForSequenceClassification``).

    Inputs (one, or a list of them): a file path in any format :func:`hubert_ecg.read_ecg` reads (WFDB record name,
    ``.hea``/``.dat``, challenge ``.mat``, ``.npy``, ...), an :class:`~hubert_ecg.ECGRecord`, a dict with
    ``signal`` (float array ``(leads, samples)`` in mV), ``sampling_rate`` (Hz) and optional ``lead_names``, or a
    2-D array ``(12, samples)`` with ``sampling_rate=`` given. Any sampling rate and any length of at least 5 s.

    Call parameters:
        top_k: number of labels returned, highest score first; ``None`` or leave out for all labels.
        aggregation: ``"mean"`` (default) or ``"max"`` of the per-window probabilities.
        function_to_apply: ``"sigmoid"``, ``"softmax"`` or ``"none"``; default from ``config.problem_type``
            (multi-label: sigmoid; single-label: softmax; regression: none).
        stride_seconds: window stride in seconds (default 5: consecutive, non-overlapping windows).
        sampling_rate, lead_names: for array inputs.
        missing_leads: ``"raise"`` (default) or ``"zero"`` (missing leads are zero-filled).
        batch_size: records per model call (all their windows go in one forward pass).

    Returns:
        For one input, a list of ``{"label": str, "score": float}`` sorted by decreasing score; for a list, one
        such list per input.

    Raises:
        ValueError: naming the input, for an unreadable or missing file, a record shorter than 5 s, missing leads
            (with ``missing_leads="raise"``), or unknown parameter values.
    """

    _load_processor = False
    _load_image_processor = False
    _load_feature_extractor = True
    _load_tokenizer = False

    def _sanitize_parameters(
        self,
        top_k=_ALL,
        aggregation=None,
        function_to_apply=None,
        stride_seconds=None,
        sampling_rate=None,
        lead_names=None,
        missing_leads=None,
        **kwargs,
    ):
        preprocess, postprocess = {}, {}
        for name, value in (("stride_seconds", stride_seconds), ("sampling_rate", sampling_rate),
                            ("lead_names", lead_names), ("missing_leads", missing_leads)):
            if value is not None:
                preprocess[name] = value
        if top_k != _ALL:
            if top_k is not None and (not isinstance(top_k, int) or top_k < 1):
                raise ValueError(f"top_k must be a positive integer or None (all labels), got {top_k!r}")
            postprocess["top_k"] = top_k
        if aggregation is not None:
            if aggregation not in ("mean", "max"):
                raise ValueError(f"aggregation must be 'mean' or 'max', got {aggregation!r}")
            postprocess["aggregation"] = aggregation
        if function_to_apply is not None:
            if function_to_apply not in ("sigmoid", "softmax", "none"):
                raise ValueError(f"function_to_apply must be 'sigmoid', 'softmax' or 'none', got {function_to_apply!r}")
            postprocess["function_to_apply"] = function_to_apply
        return preprocess, {}, postprocess

    # ------------------------------------------------------------------ steps
    def preprocess(self, inputs, stride_seconds=None, sampling_rate=None, lead_names=None, missing_leads="raise"):
        """One input -> ``{"input_values": (windows, 6000) float32, "attention_mask": (windows, 6000),
        "window_start": (windows,) s}``; raises ``ValueError`` naming the file for unusable input."""
        if isinstance(inputs, (str, os.PathLike)):
            inputs = read_ecg(inputs)
        features = self.feature_extractor(
            inputs,
            sampling_rate=sampling_rate,
            lead_names=lead_names,
            window="all",
            stride_seconds=stride_seconds,
            missing_leads=missing_leads,
            return_tensors="pt",
        )
        return {
            "input_values": features["input_values"],
            "attention_mask": features["attention_mask"],
            "window_start": features["window_start"],
        }

    def _model_forward(self, input_values: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
        """The model call: ``input_values`` (windows, 6000) -> float32 logits (windows, num_labels), through
        :func:`hubert_ecg.inference.run_model`: inputs cast to the model's dtype (``pipeline(..., dtype=
        torch.bfloat16)``), ``torch.inference_mode``, and the autocast / compile set by
        :func:`hubert_ecg.inference.optimize_for_inference` (``optimize_for_inference(clf.model, dtype="auto")``)."""
        return run_model(self.model, input_values, attention_mask)

    def _forward(self, model_inputs):
        input_values = model_inputs["input_values"]
        attention_mask = model_inputs.get("attention_mask")
        if attention_mask is not None and bool(attention_mask.all()):
            attention_mask = None  # full windows: the masked mean equals the plain mean
        return {"logits": self._model_forward(input_values, attention_mask), "num_windows": model_inputs["num_windows"]}

    def _scores(self, logits: np.ndarray, function_to_apply: str | None) -> np.ndarray:
        problem_type = {"sigmoid": "multi_label_classification", "softmax": "single_label_classification",
                        "none": "regression", None: self.model.config.problem_type_of()}[function_to_apply]
        return scores_from_logits(logits, problem_type)

    def postprocess(self, model_outputs, top_k=None, aggregation="mean", function_to_apply=None):
        """Window logits (windows, num_labels) of one record -> ``[{"label", "score"}]`` sorted by score."""
        logits = model_outputs["logits"].float().numpy().astype(np.float64)
        scores = self._scores(logits, function_to_apply)
        record_scores = scores.max(axis=0) if aggregation == "max" else scores.mean(axis=0)
        order = np.argsort(-record_scores, kind="stable")
        if top_k is not None:
            order = order[:top_k]
        id2label = self.model.config.id2label
        return [{"label": id2label[int(i)], "score": float(record_scores[i])} for i in order]

    # ------------------------------------------------------------------ batching
    def _run(self, items: Sequence[Any], batch_size: int, preprocess_params: dict, forward_params: dict,
             postprocess_params: dict, on_error: str = "raise"):
        """Score ``items`` in chunks of ``batch_size`` records; returns ``(results, skipped)`` with ``results`` a
        list (``None`` for skipped items) and ``skipped`` ``(name, reason)`` pairs."""
        results: list[Any] = [None] * len(items)
        skipped: list[tuple[str, str]] = []
        for begin in range(0, len(items), batch_size):
            prepared = []
            for index in range(begin, min(begin + batch_size, len(items))):
                try:
                    prepared.append((index, self.preprocess(items[index], **preprocess_params)))
                except ValueError as err:
                    name = _describe(items[index], index)
                    if on_error == "raise":
                        raise ValueError(f"{name}: {err}" if name not in str(err) else str(err)) from None
                    skipped.append((name, str(err)))
            if not prepared:
                continue
            counts = [p["input_values"].shape[0] for _, p in prepared]
            batch = {
                "input_values": torch.cat([p["input_values"] for _, p in prepared]),
                "attention_mask": torch.cat([p["attention_mask"] for _, p in prepared]),
                "num_windows": counts,
            }
            outputs = self.forward(batch, **forward_params)
            for (index, _), logits in zip(prepared, torch.split(outputs["logits"], counts)):
                results[index] = self.postprocess({"logits": logits}, **postprocess_params)
        return results, skipped

    def _parameters(self, kwargs):
        preprocess, forward, postprocess = self._sanitize_parameters(**kwargs)
        return (
            {**self._preprocess_params, **preprocess},
            {**self._forward_params, **forward},
            {**self._postprocess_params, **postprocess},
        )

    def __call__(self, inputs, batch_size: int | None = None, **kwargs):
        """Score one input or a list of inputs; see the class docstring."""
        single = not isinstance(inputs, (list, tuple))
        items = [inputs] if single else list(inputs)
        batch_size = int(batch_size or self._batch_size or 1)
        if batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size}")
        results, _ = self._run(items, batch_size, *self._parameters(kwargs), on_error="raise")
        return results[0] if single else results

    def predict_files(self, files: Sequence[Any], batch_size: int = 8, **kwargs):
        """Score many inputs, skipping the unusable ones.

        Returns:
            ``(results, skipped)``: ``results`` a list of ``(name, [{"label", "score"}])`` for the scored inputs,
            ``skipped`` a list of ``(name, reason)`` for the others.
        """
        results, skipped = self._run(list(files), max(1, int(batch_size)), *self._parameters(kwargs), on_error="skip")
        scored = [(_describe(item, i), r) for i, (item, r) in enumerate(zip(files, results)) if r is not None]
        return scored, skipped


# ----------------------------------------------------------------------------------------------------------------
# hubert-ecg predict
# ----------------------------------------------------------------------------------------------------------------


def load_pipeline(
    model: str | None = None, device: str | int | None = None, dtype: str | None = None
) -> ECGClassificationPipeline:
    """``pipeline("ecg-classification")`` for ``model`` (hub id or directory; None: the bundled demo model).

    ``dtype``: None or ``"float32"`` (exact), ``"bfloat16"`` or ``"auto"`` (bfloat16 where the CPU or GPU has bf16
    units; probabilities within 0.01 of float32), see :func:`hubert_ecg.inference.optimize_for_inference`.

    Raises:
        ValueError: if the model cannot be loaded (names it), or for an unknown ``dtype``.
    """
    import hubert_ecg  # noqa: F401  (registers the model type and the task)
    from transformers import pipeline

    from .demo import demo_model_path

    source = model or demo_model_path()
    try:
        clf = pipeline("ecg-classification", model=source, device=device)
    except (OSError, ValueError, KeyError) as err:
        where = "directory" if Path(source).exists() else "hub id (or missing directory)"
        raise ValueError(f"cannot load the model {source!r} ({where}): {type(err).__name__}: {err}") from None
    if dtype is not None:
        optimize_for_inference(clf.model, dtype=dtype)
    return clf


def _format(results, fmt: str) -> str:
    if fmt == "json":
        return json.dumps([{"file": name, "predictions": preds} for name, preds in results], indent=2)
    if fmt == "csv":
        buffer = _io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["file", "rank", "label", "score"])
        for name, preds in results:
            for rank, p in enumerate(preds, 1):
                writer.writerow([name, rank, p["label"], f"{p['score']:.4f}"])
        return buffer.getvalue().rstrip("\n")
    width = max([len("file")] + [len(name) for name, _ in results])
    lines = [f"{'file':<{width}}  predictions (score)"]
    for name, preds in results:
        lines.append(f"{name:<{width}}  " + "  ".join(f"{p['label']} {p['score']:.3f}" for p in preds))
    return "\n".join(lines)


def predict_main(argv: list[str] | None = None) -> int:
    """``hubert-ecg predict FILES... [--model M] [--top-k K] [--format table|csv|json]``.

    Scores every file (any format :func:`hubert_ecg.read_ecg` reads) and prints one result per file on stdout.
    Unusable files are skipped and listed with the reason on stderr. Returns 0 if at least one file was scored,
    2 if none could be (or the model could not be loaded).
    """
    parser = argparse.ArgumentParser(
        prog="hubert-ecg predict",
        description="Score ECG files with a HuBERT-ECG classifier. Without --model: the bundled demo model "
        "(a demonstration, not a clinical tool).",
    )
    parser.add_argument("files", nargs="+", help="ECG files: WFDB record names or .hea/.dat, .mat, .npy, ...")
    parser.add_argument("--model", default=None, help="hub id or save_pretrained directory (default: demo model)")
    parser.add_argument("--top-k", type=int, default=None, help="labels per file (default: all)")
    parser.add_argument("--format", choices=("table", "csv", "json"), default="table", help="output format")
    parser.add_argument("--aggregation", choices=("mean", "max"), default="mean", help="over the 5 s windows")
    parser.add_argument("--stride", type=float, default=None, help="window stride in seconds (default 5)")
    parser.add_argument("--batch-size", type=int, default=8, help="records per model call")
    parser.add_argument("--device", default=None, help="torch device, e.g. cpu or cuda:0")
    parser.add_argument("--dtype", choices=("float32", "bfloat16", "auto"), default=None,
                        help="model precision (default float32; auto: bfloat16 where the hardware has bf16 units, "
                        "probabilities within 0.01)")
    args = parser.parse_args(argv)
    if args.top_k is not None and args.top_k < 1:
        parser.error("--top-k must be a positive integer")

    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # keep stderr for the notice and the skipped files
    try:
        if args.model is None:
            from .demo import demo_model_path

            print(
                f"hubert-ecg predict: using the bundled demo model ({demo_model_path()}), a small model trained on "
                "a few hundred PTB-XL records for NORM/MI/STTC/CD/HYP: a demonstration, not a clinical tool.",
                file=sys.stderr,
            )
        clf = load_pipeline(args.model, args.device, args.dtype)
    except ValueError as err:
        print(f"hubert-ecg predict: error: {err}", file=sys.stderr)
        return 2
    results, skipped = clf.predict_files(
        args.files, batch_size=args.batch_size, top_k=args.top_k, aggregation=args.aggregation,
        stride_seconds=args.stride,
    )
    if results:
        print(_format(results, args.format))
    if skipped:
        print(f"hubert-ecg predict: skipped {len(skipped)} of {len(args.files)} file(s):", file=sys.stderr)
        for name, reason in skipped:
            print(f"  {name}: {reason}", file=sys.stderr)
    if not results:
        print("hubert-ecg predict: error: no file could be scored", file=sys.stderr)
        return 2
    return 0
