"""``hubert-ecg export-onnx MODEL OUTPUT_DIR|OUT.onnx [--task T] [--quantize int8] [--opset N] [--samples N]
[--atol X] [--no_check]``.

Exports a classifier or a backbone to ONNX and checks it against PyTorch: :func:`hubert_ecg.export.export_onnx`.
An output that does not end in ``.onnx`` is an exported model directory (``model.onnx``, ``config.json``,
``preprocessor_config.json``) for ``hubert-ecg predict`` / ``embed --model DIR``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from .arguments import parse
from .records import usage_error

PROG = "hubert-ecg export-onnx"
#: the tasks of :data:`hubert_ecg.export.TASKS` (tests/test_export.py checks they match)
TASKS = ("sequence-classification", "feature-extraction")
#: :data:`hubert_ecg.export.DEFAULT_OPSET` and :data:`~hubert_ecg.export.INT8_SCORE_ATOL` (checked likewise)
DEFAULT_OPSET = 17
INT8_SCORE_ATOL = 0.02
DESCRIPTION = (
    "Export a HuBERT-ECG classifier (save_pretrained directory or hub id) to ONNX with a dynamic batch dimension: "
    "input 'input_values' float32 (batch, samples), output 'logits' (batch, num_labels); or a backbone (a model "
    "without a classification head, or --task feature-extraction): output 'last_hidden_state' (batch, frames, "
    "hidden_size). The graph is checked against PyTorch with onnxruntime. An OUTPUT_DIR that does not end in .onnx "
    "is a directory: model.onnx with the model's config.json and preprocessor_config.json, which `hubert-ecg predict "
    "--model OUTPUT_DIR` (a classifier), `hubert-ecg embed --model OUTPUT_DIR` (a backbone) and pipeline() run with "
    "onnxruntime or OpenVINO (--backend). Needs: pip install \"hubert-ecg[onnx]\". Exit status: 0, or 2 when the "
    "model cannot be loaded, the optional dependencies are missing, or the onnxruntime check fails."
)

__all__ = ["ExportOnnxArguments", "main"]


@dataclass
class ExportOnnxArguments:
    """The model to export, where the graph goes, and how it is exported and checked."""

    model: str = field(metadata={"positional": True, "metavar": "MODEL",
                                 "help": "model directory (save_pretrained / hubert-ecg convert) or hub id"})
    output_dir: str = field(metadata={
        "positional": True, "metavar": "OUTPUT_DIR",
        "help": "output directory (model.onnx + config.json + preprocessor_config.json) for predict / embed / "
                "pipeline(), or a .onnx file"})
    task: Literal[TASKS] | None = field(default=None, metadata={
        "help": "sequence-classification (logits) or feature-extraction (last_hidden_state of the backbone); "
                "default: a classifier with its head, any other model as a backbone"})
    opset: int = field(default=DEFAULT_OPSET, metadata={"help": "ONNX opset"})
    samples: int = field(default=6000, metadata={"help": "input samples at 100 Hz (6000 = 5 s)"})
    atol: float = field(default=1e-4, metadata={"help": "max |output difference| of the check"})
    check: bool = field(default=True, metadata={"help": "check the graph against PyTorch with onnxruntime"})
    quantize: Literal["int8"] | None = field(default=None, metadata={
        "help": "also write a dynamically quantized int8 copy beside the graph (model_int8.onnx in a directory; run "
                f"it with --model DIR/model_int8.onnx); its scores are checked within {INT8_SCORE_ATOL:g} of "
                "PyTorch float32"})


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``hubert-ecg export-onnx``; returns 0 on success; 2 when the model cannot be loaded, the
    optional dependencies are missing, or the onnxruntime check fails (the reason on stderr)."""
    (args,) = parse(argv, (ExportOnnxArguments,), PROG, DESCRIPTION)
    from hubert_ecg.export import export_onnx

    try:
        report = export_onnx(
            args.model, args.output_dir, opset=args.opset, samples=args.samples, check=args.check, atol=args.atol,
            task=args.task, quantize=args.quantize,
        )
    except (ImportError, ValueError) as error:
        return usage_error(PROG, error)
    shape = f"{report['num_labels']} labels" if report["output"] == "logits" else "output last_hidden_state"
    line = f"{args.model} -> {report['path']} (opset {report['opset']}, input (batch, {report['samples']}), "
    line += f"{shape}, {report['export_seconds']:.1f} s)"
    if report["max_abs_diff"] is not None:
        what = "logit" if report["output"] == "logits" else "hidden state"
        line += f"; onnxruntime vs PyTorch at batch {report['checked_batch_sizes']}: max |{what} diff| "
        line += f"{report['max_abs_diff']:.2e}"
    print(line)
    if report["int8_path"] is not None:
        line = f"int8 (dynamic quantization) -> {report['int8_path']}"
        if report["int8_max_abs_diff"] is not None:
            what = "score" if report["output"] == "logits" else "hidden state"
            line += f"; onnxruntime vs PyTorch float32: max |{what} diff| {report['int8_max_abs_diff']:.2e}"
        print(line)
    return 0
