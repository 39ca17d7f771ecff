"""ONNX export of HuBERT-ECG classifiers, checked against PyTorch with onnxruntime.

```python
from hubert_ecg.export import export_onnx
report = export_onnx("path/to/classifier", "classifier.onnx")   # or a HuBERTECGForSequenceClassification
report["max_abs_diff"]                                            # max |logit(onnx) - logit(torch)|, < 1e-4
```

or ``hubert-ecg export-onnx MODEL OUT.onnx [--opset 17] [--samples 6000] [--no-check]``.

An output path that does not end in ``.onnx`` is an exported model DIRECTORY: ``OUT/model.onnx`` beside the
classifier's ``config.json`` (labels, problem type, calibration, thresholds, label descriptions) and
``preprocessor_config.json``, which ``pipeline``/``hubert-ecg predict --model OUT`` run with onnxruntime
(:mod:`hubert_ecg.onnx_backend`).

The graph has one input ``input_values``: float32 ``(batch, samples)``, the 12 leads concatenated at 100 Hz after
the released preprocessing (``HuBERTECGFeatureExtractor``; 6000 samples for a 5 s window), and one output
``logits``: float32 ``(batch, num_labels)``. The batch dimension is dynamic (``"batch"``); the number of samples is
fixed at export time. Probabilities are the sigmoid (multi-label) or softmax (single-label) of the logits, as in
the pipeline. The model is exported in float32 with eager attention (the SDPA kernels have no better ONNX form, and
the two agree to 1e-5).

``onnx`` and ``onnxruntime`` are optional: ``pip install "hubert-ecg[onnx]"``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

__all__ = ["export_onnx", "check_onnx", "export_onnx_main", "DEFAULT_OPSET"]

DEFAULT_OPSET = 17  # LayerNormalization is a native op from opset 17
_INSTALL_HINT = 'ONNX export needs the optional dependencies: pip install "hubert-ecg[onnx]"'


def _require(module: str):
    """Import an optional dependency or raise an ``ImportError`` naming the extra to install."""
    try:
        return __import__(module)
    except ImportError as error:
        raise ImportError(f"{_INSTALL_HINT} ({module} is not installed: {error})") from None


def _load_classifier(model_or_path):
    """A ``HuBERTECGForSequenceClassification`` in eval mode, float32, eager attention, on the CPU."""
    from .modeling import HuBERTECGForSequenceClassification

    if isinstance(model_or_path, (str, os.PathLike)):
        path = Path(model_or_path)
        if path.suffix == ".pt" and path.is_file():
            raise ValueError(
                f"{path}: an original .pt checkpoint; convert it first with `hubert-ecg convert {path} OUT_DIR` "
                "and export OUT_DIR."
            )
        if not path.exists() and (path.is_absolute() or str(model_or_path).startswith(".")):
            raise ValueError(f"{path}: no such directory (a save_pretrained directory or hub id expected).")
        try:
            model = HuBERTECGForSequenceClassification.from_pretrained(
                str(model_or_path), attn_implementation="eager", dtype=torch.float32
            )
        except (OSError, ValueError) as error:
            raise ValueError(
                f"{model_or_path}: cannot load a HuBERT-ECG classifier (save_pretrained directory or hub id "
                f"expected): {error}"
            ) from None
    elif isinstance(model_or_path, HuBERTECGForSequenceClassification):
        import copy

        model = copy.deepcopy(model_or_path).to(device="cpu", dtype=torch.float32)
        model.set_attn_implementation("eager")  # the export traces plain matmul + softmax attention
    else:
        raise ValueError(
            "model_or_path must be a HuBERTECGForSequenceClassification or the path of a save_pretrained "
            f"directory, got {type(model_or_path).__name__}."
        )
    return model.eval()


class _LogitsOnly(torch.nn.Module):
    """``input_values`` (batch, samples) -> ``logits`` (batch, num_labels): the graph that is exported."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_values):
        return self.model(input_values=input_values, return_dict=True).logits


def export_onnx(
    model_or_path,
    out_path: str | os.PathLike,
    opset: int = DEFAULT_OPSET,
    samples: int = 6000,
    check: bool = True,
    atol: float = 1e-4,
    check_batch_sizes: tuple[int, ...] = (1, 3),
) -> dict:
    """Export a classifier to ONNX with a dynamic batch dimension, and check it against PyTorch.

    Args:
        model_or_path: a :class:`~hubert_ecg.HuBERTECGForSequenceClassification`, or a ``save_pretrained``
            directory / hub id of one. A model is copied (its attention set to eager, float32, CPU); the
            caller's model is left as it is.
        out_path: the ``.onnx`` file to write (parent folders are created), or, when it does not end in ``.onnx``,
            a directory to write ``model.onnx``, ``config.json`` and ``preprocessor_config.json`` to (an exported
            model directory that :func:`hubert_ecg.pipelines.load_pipeline` runs with onnxruntime).
        opset: ONNX opset version (default 17, the first with a native LayerNormalization).
        samples: input length in samples at 100 Hz, fixed in the graph: 6000 (5 s of 12 concatenated leads) as
            released.
        check: run the exported graph with onnxruntime on random inputs at every batch size of
            ``check_batch_sizes`` and compare its logits with PyTorch's.
        atol: largest accepted max |logit difference| of the check.
        check_batch_sizes: batch sizes of the check (at least one differing from the traced batch of 2 shows
            that the batch dimension is dynamic).

    Returns:
        ``{"path": str (the .onnx file), "directory": str or None (an exported model directory), "opset": int,
        "samples": int, "num_labels": int, "export_seconds": float,
        "max_abs_diff": float or None (None without check), "checked_batch_sizes": list[int]}``.

    Raises:
        ImportError: when ``onnx`` (or, with ``check``, ``onnxruntime``) is missing, naming the ``onnx`` extra.
        ValueError: for a model or path that is not a HuBERT-ECG classifier, an original ``.pt`` checkpoint
            (convert it first), ``samples`` too short for the feature encoder, or a check that fails (the
            message gives the batch size and the difference).
    """
    onnx = _require("onnx")
    if check:
        _require("onnxruntime")
    model = _load_classifier(model_or_path)
    min_samples = int(np.prod(model.config.conv_stride)) + max(model.config.conv_kernel)
    if int(samples) < min_samples:
        raise ValueError(f"samples must be at least {min_samples} for this feature encoder, got {samples}.")
    wrapper = _LogitsOnly(model).eval()
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
            output_names=["logits"],
            dynamic_axes={"input_values": {0: "batch"}, "logits": {0: "batch"}},
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
        "opset": int(opset),
        "samples": int(samples),
        "num_labels": int(model.config.num_labels),
        "export_seconds": export_seconds,
        "max_abs_diff": None,
        "checked_batch_sizes": [],
    }
    if check:
        diffs = check_onnx(out_path, model, samples=samples, batch_sizes=check_batch_sizes, atol=atol)
        report["max_abs_diff"] = max(diffs.values())
        report["checked_batch_sizes"] = sorted(diffs)
    return report


def check_onnx(
    onnx_path: str | os.PathLike,
    model,
    samples: int = 6000,
    batch_sizes: tuple[int, ...] = (1, 3),
    atol: float = 1e-4,
    seed: int = 0,
) -> dict[int, float]:
    """Compare an exported graph with the PyTorch classifier on random inputs in [-1, 1].

    Args:
        onnx_path: the ``.onnx`` file.
        model: the PyTorch classifier (any attention implementation; run in float32 on the CPU).
        samples: input length in samples (as exported).
        batch_sizes: the batch sizes to run.
        atol: largest accepted max |logit difference|.
        seed: seed of the random inputs.

    Returns:
        ``{batch_size: max |logit(onnx) - logit(torch)|}``.

    Raises:
        ImportError: without onnxruntime (names the ``onnx`` extra).
        ValueError: if any difference exceeds ``atol``.
    """
    ort = _require("onnxruntime")
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    model = model.eval()
    generator = torch.Generator().manual_seed(seed)
    diffs = {}
    for batch in batch_sizes:
        x = torch.rand(int(batch), int(samples), generator=generator) * 2 - 1
        with torch.inference_mode():
            expected = model(input_values=x.to(model.device, model.dtype), return_dict=True).logits.float().cpu()
        got = session.run(["logits"], {"input_values": x.numpy()})[0]
        if got.shape != tuple(expected.shape):
            raise ValueError(f"{onnx_path}: logits of shape {got.shape} for batch {batch}, expected {tuple(expected.shape)}.")
        diffs[int(batch)] = float(np.abs(got - expected.numpy()).max())
        if diffs[int(batch)] > atol:
            raise ValueError(
                f"{onnx_path}: ONNX and PyTorch logits differ by {diffs[int(batch)]:.3g} at batch {batch} "
                f"(tolerance {atol:g})."
            )
    return diffs


def _save_config_and_preprocessor(model, model_or_path, directory: Path) -> None:
    """Write the classifier's ``config.json`` and its ``preprocessor_config.json`` (the saved one of the source,
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


def export_onnx_main(argv: list[str] | None = None) -> int:
    """``hubert-ecg export-onnx MODEL OUT.onnx|OUT_DIR [--opset N] [--samples N] [--atol X] [--no-check]``.

    Returns 0 on success; 2 when the model cannot be loaded, the optional dependencies are missing, or the
    onnxruntime check fails (the reason on stderr).
    """
    parser = argparse.ArgumentParser(
        prog="hubert-ecg export-onnx",
        description="Export a HuBERT-ECG classifier (save_pretrained directory or hub id) to ONNX with a dynamic "
        "batch dimension: input 'input_values' float32 (batch, samples), output 'logits' (batch, num_labels). "
        "The graph is checked against PyTorch with onnxruntime. An OUT that does not end in .onnx is a directory: "
        "model.onnx with the classifier's config.json and preprocessor_config.json, which `hubert-ecg predict "
        "--model OUT` and pipeline() run with onnxruntime. Needs: pip install \"hubert-ecg[onnx]\".",
    )
    parser.add_argument("model", help="classifier directory (save_pretrained / hubert-ecg convert) or hub id")
    parser.add_argument("out", help="output .onnx file, or a directory (model.onnx + config.json + "
                        "preprocessor_config.json) for predict / pipeline()")
    parser.add_argument("--opset", type=int, default=DEFAULT_OPSET, help=f"ONNX opset (default {DEFAULT_OPSET})")
    parser.add_argument("--samples", type=int, default=6000, help="input samples at 100 Hz (default 6000 = 5 s)")
    parser.add_argument("--atol", type=float, default=1e-4, help="max |logit difference| of the check (1e-4)")
    parser.add_argument("--no-check", action="store_true", help="skip the onnxruntime check")
    args = parser.parse_args(argv)
    try:
        report = export_onnx(
            args.model, args.out, opset=args.opset, samples=args.samples, check=not args.no_check, atol=args.atol
        )
    except (ImportError, ValueError) as error:
        print(f"hubert-ecg export-onnx: error: {error}", file=sys.stderr)
        return 2
    line = f"{args.model} -> {report['path']} (opset {report['opset']}, input (batch, {report['samples']}), "
    line += f"{report['num_labels']} labels, {report['export_seconds']:.1f} s)"
    if report["max_abs_diff"] is not None:
        line += f"; onnxruntime vs PyTorch at batch {report['checked_batch_sizes']}: max |logit diff| "
        line += f"{report['max_abs_diff']:.2e}"
    print(line)
    return 0
