"""ONNX export of HuBERT-ECG classifiers and backbones, checked against PyTorch with onnxruntime.

```python
from hubert_ecg.export import export_onnx
report = export_onnx("path/to/classifier", "classifier.onnx")   # or a HuBERTECGForSequenceClassification
report["max_abs_diff"]                                            # max |logit(onnx) - logit(torch)|, < 1e-4
export_onnx("path/to/classifier", "backbone-onnx/", task="feature-extraction")   # its backbone, for embeddings
```

or ``hubert-ecg export-onnx MODEL OUT.onnx|OUT_DIR [--task feature-extraction] [--opset 17] [--samples 6000]
[--no_check]`` (:mod:`hubert_ecg_cli.export_onnx`).

An output path that does not end in ``.onnx`` is an exported model DIRECTORY: ``OUT/model.onnx`` beside the
model's ``config.json`` (labels, problem type, calibration, thresholds, label descriptions) and
``preprocessor_config.json``, which ``hubert-ecg predict --model OUT`` (a classifier) and ``hubert-ecg embed
--model OUT`` (a backbone) run with onnxruntime or OpenVINO (``--backend``; :mod:`hubert_ecg.onnx_backend`).

The graph has one input ``input_values``: float32 ``(batch, samples)``, the 12 leads concatenated at 100 Hz after
the released preprocessing (``HuBERTECGFeatureExtractor``; 6000 samples for a 5 s window), and one output: for a
classifier (task ``"sequence-classification"``) ``logits``: float32 ``(batch, num_labels)``; for a backbone (task
``"feature-extraction"``: a ``HuBERTECGModel``, a pretraining model's backbone, or a classifier's with ``--task
feature-extraction``) ``last_hidden_state``: float32 ``(batch, frames, hidden_size)`` (93 frames for 6000
samples). The batch dimension is dynamic (``"batch"``); the number of samples is fixed at export time. Probabilities
are the sigmoid (multi-label) or softmax (single-label) of the logits, as in the pipeline. The model is exported in
float32 with eager attention (the SDPA kernels have no better ONNX form, and the two agree to 1e-5).

``onnx`` and ``onnxruntime`` are optional: ``pip install "hubert-ecg[onnx]"``.
"""

from __future__ import annotations

import logging
import os
import time
import warnings
from pathlib import Path

import numpy as np
import torch

__all__ = ["export_onnx", "check_onnx", "DEFAULT_OPSET", "INT8_SCORE_ATOL", "TASKS"]

DEFAULT_OPSET = 17  # LayerNormalization is a native op from opset 17
#: largest accepted max |score difference| of an int8 graph against PyTorch float32 (issue 21)
INT8_SCORE_ATOL = 0.02
_INSTALL_HINT = 'ONNX export needs the optional dependencies: pip install "hubert-ecg[onnx]"'


def _require(module: str):
    """Import an optional dependency or raise an ``ImportError`` naming the extra to install."""
    try:
        return __import__(module)
    except ImportError as error:
        raise ImportError(f"{_INSTALL_HINT} ({module} is not installed: {error})") from None


#: ``task`` of :func:`export_onnx` -> the graph's output
TASKS = {"sequence-classification": "logits", "feature-extraction": "last_hidden_state"}


def _is_classifier_checkpoint(path: str) -> bool:
    """True when the ``config.json`` of ``path`` names a sequence classifier (``architectures``), or has labels."""
    from .configuration import HuBERTECGConfig

    try:
        config = HuBERTECGConfig.from_pretrained(path)
    except (OSError, ValueError) as error:
        raise ValueError(f"{path}: cannot load a HuBERT-ECG config (save_pretrained directory or hub id "
                         f"expected): {error}") from None
    return any("SequenceClassification" in a for a in (config.architectures or []))


def _load_model(model_or_path, task: str | None = None):
    """``(model, task)``: a ``HuBERTECGForSequenceClassification`` (task ``"sequence-classification"``) or a
    ``HuBERTECGModel`` (``"feature-extraction"``: a backbone, or the backbone of a classifier or pretraining model),
    in eval mode, float32, eager attention, on the CPU. ``task`` None: a classifier checkpoint or model is
    ``"sequence-classification"``, anything else ``"feature-extraction"``."""
    from .modeling import HuBERTECGForSequenceClassification, HuBERTECGModel, HuBERTECGPreTrainedModel

    if task is not None and task not in TASKS:
        raise ValueError(f"task must be one of {', '.join(TASKS)} (or None: from the model), got {task!r}")
    if isinstance(model_or_path, (str, os.PathLike)):
        path = Path(model_or_path)
        if path.suffix == ".pt" and path.is_file():
            raise ValueError(
                f"{path}: an original .pt checkpoint; convert it first with `hubert-ecg convert {path} OUT_DIR` "
                "and export OUT_DIR."
            )
        if not path.exists() and (path.is_absolute() or str(model_or_path).startswith(".")):
            raise ValueError(f"{path}: no such directory (a save_pretrained directory or hub id expected).")
        if task is None:
            task = "sequence-classification" if _is_classifier_checkpoint(str(model_or_path)) else "feature-extraction"
        model_class = HuBERTECGForSequenceClassification if task == "sequence-classification" else HuBERTECGModel
        try:
            model = model_class.from_pretrained(str(model_or_path), attn_implementation="eager", dtype=torch.float32)
        except (OSError, ValueError) as error:
            raise ValueError(
                f"{model_or_path}: cannot load a HuBERT-ECG "
                f"{'model' if model_class is HuBERTECGModel else 'classifier'} (save_pretrained directory or hub id "
                f"expected): {error}"
            ) from None
    elif isinstance(model_or_path, HuBERTECGPreTrainedModel):
        import copy

        if task is None:
            task = ("sequence-classification" if isinstance(model_or_path, HuBERTECGForSequenceClassification)
                    else "feature-extraction")
        if task == "sequence-classification" and not isinstance(model_or_path, HuBERTECGForSequenceClassification):
            raise ValueError(f"task 'sequence-classification' needs a HuBERTECGForSequenceClassification, got "
                             f"{type(model_or_path).__name__} (export it with task='feature-extraction').")
        source = model_or_path if task == "sequence-classification" else model_or_path.base_model
        if task == "feature-extraction" and not isinstance(source, HuBERTECGModel):
            raise ValueError(f"model_or_path: no HuBERT-ECG backbone in {type(model_or_path).__name__}.")
        model = copy.deepcopy(source).to(device="cpu", dtype=torch.float32)
        model.set_attn_implementation("eager")  # the export traces plain matmul + softmax attention
    else:
        raise ValueError(
            "model_or_path must be a HuBERT-ECG model (a classifier, a backbone, a pretraining model) or the path of a "
            f"save_pretrained directory, got {type(model_or_path).__name__}."
        )
    return model.eval(), task


class _OneOutput(torch.nn.Module):
    """``input_values`` (batch, samples) -> ``logits`` (batch, num_labels) or ``last_hidden_state`` (batch, frames,
    hidden_size): the graph that is exported."""

    def __init__(self, model, output: str = "logits"):
        super().__init__()
        self.model, self.output = model, output

    def forward(self, input_values):
        return getattr(self.model(input_values=input_values, return_dict=True), self.output)


def export_onnx(
    model_or_path,
    out_path: str | os.PathLike,
    opset: int = DEFAULT_OPSET,
    samples: int = 6000,
    check: bool = True,
    atol: float = 1e-4,
    check_batch_sizes: tuple[int, ...] = (1, 3),
    task: str | None = None,
    quantize: str | None = None,
    int8_atol: float = INT8_SCORE_ATOL,
) -> dict:
    """Export a classifier (or a backbone) to ONNX with a dynamic batch dimension, and check it against PyTorch.

    Args:
        model_or_path: a HuBERT-ECG model (:class:`~hubert_ecg.HuBERTECGForSequenceClassification`,
            :class:`~hubert_ecg.HuBERTECGModel`, or a pretraining model: its backbone), or a ``save_pretrained``
            directory / hub id of one. A model is copied (its attention set to eager, float32, CPU); the caller's
            model is left as it is.
        out_path: the ``.onnx`` file to write (parent folders are created), or, when it does not end in ``.onnx``,
            a directory to write ``model.onnx``, ``config.json`` and ``preprocessor_config.json`` to (an exported
            model directory that :func:`hubert_ecg.pipelines.load_pipeline` (a classifier) or
            :func:`hubert_ecg.embeddings.load_feature_pipeline` (a backbone) runs with onnxruntime or OpenVINO).
        opset: ONNX opset version (default 17, the first with a native LayerNormalization).
        samples: input length in samples at 100 Hz, fixed in the graph: 6000 (5 s of 12 concatenated leads) as
            released.
        check: run the exported graph with onnxruntime on random inputs at every batch size of
            ``check_batch_sizes`` and compare its output with PyTorch's.
        atol: largest accepted max |difference| of the check (logits, or hidden states).
        check_batch_sizes: batch sizes of the check (at least one differing from the traced batch of 2 shows
            that the batch dimension is dynamic).
        task: ``"sequence-classification"`` (output ``logits`` float32 ``(batch, num_labels)``; the model must be a
            classifier), ``"feature-extraction"`` (output ``last_hidden_state`` float32 ``(batch, frames,
            hidden_size)`` of the backbone, of any HuBERT-ECG model), or None: a classifier is exported with its
            head, any other model as a backbone.
        quantize: None, or ``"int8"``: also write a dynamically quantized copy (onnxruntime's ``quantize_dynamic``,
            int8 weights, activations quantized per call) beside the float32 graph: ``model_int8.onnx`` in an
            exported model directory (run it with ``--model DIR/model_int8.onnx``), ``OUT_int8.onnx`` beside a file.
            With ``check`` a classifier's int8 scores (sigmoid / softmax of the logits, with the model's
            calibration) are compared with PyTorch float32's; a backbone's int8 hidden states are measured only.
        int8_atol: largest accepted max |score difference| of the int8 check of a classifier (0.02).

    Returns:
        ``{"path": str (the .onnx file), "directory": str or None (an exported model directory), "task": str,
        "output": "logits" or "last_hidden_state", "opset": int, "samples": int, "num_labels": int or None (a
        backbone), "export_seconds": float, "max_abs_diff": float or None (None without check),
        "checked_batch_sizes": list[int]}``.

    Raises:
        ImportError: when ``onnx`` (or, with ``check``, ``onnxruntime``) is missing, naming the ``onnx`` extra.
        ValueError: for a model or path that is not a HuBERT-ECG model, an original ``.pt`` checkpoint (convert it
            first), an unknown ``task`` or ``"sequence-classification"`` of a model without a head, an unknown
            ``quantize``, ``samples`` too short for the feature encoder, or a check that fails (the message gives
            the batch size and the difference).
    """
    onnx = _require("onnx")
    if quantize not in (None, "int8"):
        raise ValueError(f"quantize must be None or 'int8', got {quantize!r}")
    if check or quantize:
        _require("onnxruntime")
    model, task = _load_model(model_or_path, task)
    output = TASKS[task]
    min_samples = int(np.prod(model.config.conv_stride)) + max(model.config.conv_kernel)
    if int(samples) < min_samples:
        raise ValueError(f"samples must be at least {min_samples} for this feature encoder, got {samples}.")
    wrapper = _OneOutput(model, output).eval()
    out_path = Path(out_path)
    directory = None if out_path.suffix.lower() == ".onnx" else out_path
    if directory is not None:
        out_path = directory / "model.onnx"
    out_path.parent.mkdir(parents=True, exist_ok=True)

    example = torch.randn(2, int(samples), generator=torch.Generator().manual_seed(0)).clamp(-1, 1)
    start = time.perf_counter()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about python ints in transformers' shape code
        torch.onnx.export(
            wrapper,
            (example,),
            str(out_path),
            input_names=["input_values"],
            output_names=[output],
            dynamic_axes={"input_values": {0: "batch"}, output: {0: "batch"}},
            opset_version=int(opset),
            do_constant_folding=True,
            dynamo=False,  # the TorchScript exporter needs no onnxscript and keeps the batch symbolic
        )
    export_seconds = time.perf_counter() - start
    onnx.checker.check_model(str(out_path))

    if directory is not None:
        _save_config_and_preprocessor(model, model_or_path, directory)

    report = {
        "path": str(out_path),
        "directory": None if directory is None else str(directory),
        "task": task,
        "output": output,
        "opset": int(opset),
        "samples": int(samples),
        "num_labels": int(model.config.num_labels) if output == "logits" else None,
        "export_seconds": export_seconds,
        "max_abs_diff": None,
        "checked_batch_sizes": [],
        "int8_path": None,
        "int8_max_abs_diff": None,
    }
    if check:
        diffs = check_onnx(out_path, model, samples=samples, batch_sizes=check_batch_sizes, atol=atol)
        report["max_abs_diff"] = max(diffs.values())
        report["checked_batch_sizes"] = sorted(diffs)
    if quantize == "int8":
        from onnxruntime.quantization import QuantType, quantize_dynamic

        int8_path = out_path.with_name(f"{out_path.stem}_int8.onnx")
        logging.disable(logging.WARNING)  # its advice to run its pre-processing, logged on the root logger
        try:
            quantize_dynamic(str(out_path), str(int8_path), weight_type=QuantType.QInt8)
        finally:
            logging.disable(logging.NOTSET)
        report["int8_path"] = str(int8_path)
        if check:
            classifier = output == "logits"
            diffs = check_onnx(int8_path, model, samples=samples, batch_sizes=check_batch_sizes,
                               atol=int8_atol if classifier else float("inf"), scores=classifier)
            report["int8_max_abs_diff"] = max(diffs.values())
    return report


def check_onnx(
    onnx_path: str | os.PathLike,
    model,
    samples: int = 6000,
    batch_sizes: tuple[int, ...] = (1, 3),
    atol: float = 1e-4,
    seed: int = 0,
    backend: str = "onnxruntime",
    scores: bool = False,
) -> dict[int, float]:
    """Compare an exported graph with the PyTorch model on random inputs in [-1, 1].

    Args:
        onnx_path: the ``.onnx`` file.
        model: the PyTorch model the graph was exported from (any attention implementation; run in float32 on the
            CPU): a classifier (its ``logits`` are compared when the graph outputs ``logits``) or a backbone
            (``last_hidden_state``).
        samples: input length in samples (as exported).
        batch_sizes: the batch sizes to run.
        atol: largest accepted max |difference|.
        seed: seed of the random inputs.
        backend: the runtime that runs the graph: ``"onnxruntime"`` (default) or ``"openvino"``
            (:class:`hubert_ecg.onnx_backend.ExportedGraph`).
        scores: compare a classifier's scores (:func:`hubert_ecg.modeling.scores_from_logits` for its problem type,
            with its ``score_calibration``: what the pipeline reports) instead of its logits (an int8 graph).

    Returns:
        ``{batch_size: max |output(onnx) - output(torch)|}``.

    Raises:
        ImportError: without the runtime (names its extra).
        ValueError: if any difference exceeds ``atol``, or for a graph without ``logits`` / ``last_hidden_state``.
    """
    from .modeling import scores_from_logits
    from .onnx_backend import ExportedGraph

    if backend == "onnxruntime":
        _require("onnxruntime")
    graph = ExportedGraph(onnx_path, backend)
    output = "logits" if "logits" in graph.outputs else "last_hidden_state"
    model = model.eval()
    generator = torch.Generator().manual_seed(seed)
    diffs = {}
    for batch in batch_sizes:
        x = torch.rand(int(batch), int(samples), generator=generator) * 2 - 1
        with torch.inference_mode():
            out = model(input_values=x.to(model.device, model.dtype), return_dict=True)
            expected = getattr(out, output).float().cpu()
        got = graph.run(output, x.numpy())
        if scores and output == "logits":
            config = model.config
            calibration = getattr(config, "score_calibration", None)
            got, expected = (torch.as_tensor(scores_from_logits(v, config.problem_type_of(), calibration),
                                             dtype=torch.float32) for v in (got, expected))
            got = got.numpy()
        if got.shape != tuple(expected.shape):
            raise ValueError(f"{onnx_path}: {output} of shape {got.shape} for batch {batch}, expected "
                             f"{tuple(expected.shape)}.")
        diffs[int(batch)] = float(np.abs(got - expected.numpy()).max())
        if diffs[int(batch)] > atol:
            raise ValueError(
                f"{onnx_path}: {backend} and PyTorch {'scores' if scores else output} differ by "
                f"{diffs[int(batch)]:.3g} at batch {batch} (tolerance {atol:g})."
            )
    return diffs


def _save_config_and_preprocessor(model, model_or_path, directory: Path) -> None:
    """Write the model's ``config.json`` and its ``preprocessor_config.json`` (the saved one of the source,
    else ``HuBERTECGFeatureExtractor()``: the released preprocessing) to ``directory``."""
    from .pipelines import load_feature_extractor
    from .processing import HuBERTECGFeatureExtractor

    model.config.save_pretrained(str(directory))
    source = model_or_path if isinstance(model_or_path, (str, os.PathLike)) else getattr(model, "name_or_path", "")
    try:
        extractor = load_feature_extractor(str(source), model.config) if source else HuBERTECGFeatureExtractor()
    except (OSError, ValueError):
        extractor = HuBERTECGFeatureExtractor()
    extractor.save_pretrained(str(directory))
