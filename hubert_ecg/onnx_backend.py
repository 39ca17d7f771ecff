"""Run an exported HuBERT-ECG classifier with ONNX Runtime inside ``pipeline("ecg-classification")``.

```python
from hubert_ecg.export import export_onnx
export_onnx(hubert_ecg.demo_model_path(), "demo-onnx/")        # demo-onnx/model.onnx + config.json + preprocessor_config.json
clf = hubert_ecg.pipelines.load_pipeline("demo-onnx")           # or "demo-onnx/model.onnx"; same scores as torch fp32
```

or ``hubert-ecg predict RECORDS --model demo-onnx``.

An exported model directory holds ``model.onnx`` (:func:`hubert_ecg.export.export_onnx`: input ``input_values``
float32 ``(batch, samples)``, output ``logits``), the classifier's ``config.json`` (labels, problem type,
``score_calibration``, ``label_thresholds``, ``label_descriptions``) and ``preprocessor_config.json``: the pipeline
takes the labels, the calibration and the preprocessing from the two json files and the logits from the graph,
so its predictions are those of the PyTorch model (logits within 1e-4 in float32).

Why not optimum's ``ORTModelForSequenceClassification``: ``optimum-onnx`` 0.1.0 (the current release) requires
``transformers<4.58`` (``pip install --dry-run "optimum-onnx[onnxruntime]"`` would replace transformers 5 with
4.57.6, which this package does not support), and it knows only the model types it registers (``hubert_ecg`` is not
one: it would need a custom ``OnnxConfig`` and its own export). The pipeline needs four
things of a model (``config``, ``device``, ``dtype`` and ``model(input_values=..., attention_mask=...).logits``),
which :class:`ONNXClassifier` gives in about fifty lines over one ``onnxruntime.InferenceSession``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

__all__ = ["ONNXClassifier", "ONNXClassifierOutput", "resolve_onnx_model", "is_onnx_model", "ONNX_WEIGHTS_NAME"]

ONNX_WEIGHTS_NAME = "model.onnx"
_INSTALL_HINT = 'running an ONNX model needs onnxruntime: pip install "hubert-ecg[onnx]"'


def is_onnx_model(source) -> bool:
    """True for a ``.onnx`` file path or a local directory holding ``model.onnx`` (an exported model directory)."""
    if source is None or not isinstance(source, (str, os.PathLike)):
        return False
    path = Path(source)
    return str(source).lower().endswith(".onnx") or (path.is_dir() and (path / ONNX_WEIGHTS_NAME).is_file())


def resolve_onnx_model(source) -> tuple[Path, Path]:
    """``(graph, folder)`` of an exported model: ``source`` is a directory with ``model.onnx`` or a ``.onnx`` file;
    ``folder`` is where its ``config.json`` and ``preprocessor_config.json`` are.

    Raises:
        ValueError: when the graph or the ``config.json`` beside it is missing (the message names the path).
    """
    path = Path(source)
    graph = path / ONNX_WEIGHTS_NAME if path.is_dir() else path
    if not graph.is_file():
        raise ValueError(f"{graph}: no such ONNX graph (an exported model directory or a .onnx file expected).")
    folder = graph.parent
    if not (folder / "config.json").is_file():
        raise ValueError(
            f"{graph}: no config.json beside the graph (looked for {folder / 'config.json'}): the labels, problem "
            "type and calibration of the classifier are in it. Export a directory instead of a bare file: "
            "`hubert-ecg export-onnx MODEL OUT_DIR` writes model.onnx, config.json and preprocessor_config.json."
        )
    return graph, folder


@dataclass
class ONNXClassifierOutput:
    """What the pipeline reads of a forward pass: ``logits`` float32 ``(batch, num_labels)``."""

    logits: torch.Tensor


class ONNXClassifier:
    """A HuBERT-ECG classifier exported to ONNX, called like ``HuBERTECGForSequenceClassification`` by the pipeline.

    ``model(input_values, attention_mask=None)`` -> :class:`ONNXClassifierOutput` with ``logits`` a float32 CPU
    tensor ``(batch, num_labels)``, computed by onnxruntime's ``CPUExecutionProvider``; ``config`` is the
    classifier's :class:`~hubert_ecg.HuBERTECGConfig` (from ``config.json``), ``device`` the CPU, ``dtype``
    float32.

    The exported graph takes no ``attention_mask``: windows without padding (all of a record of 5 s or more) are
    scored exactly; a window that is zero-padded (a record shorter than 5 s) raises ``ValueError``, since the graph
    cannot ignore the padding as the PyTorch model does (score such records with the PyTorch model).
    """

    main_input_name = "input_values"

    def __init__(self, graph: str | os.PathLike, config, session_options=None):
        try:
            import onnxruntime as ort
        except ImportError as error:
            raise ImportError(f"{_INSTALL_HINT} ({error})") from None
        self.path = Path(graph)
        self.config = config
        self.name_or_path = str(self.path.parent)
        self.session = ort.InferenceSession(str(self.path), sess_options=session_options,
                                            providers=["CPUExecutionProvider"])
        self._inputs = [i.name for i in self.session.get_inputs()]
        if "input_values" not in self._inputs:
            raise ValueError(f"{self.path}: the graph has no input 'input_values' (inputs: {self._inputs}); "
                             "not a graph of hubert-ecg export-onnx.")
        self.samples = self.session.get_inputs()[self._inputs.index("input_values")].shape[1]

    @classmethod
    def from_pretrained(cls, source: str | os.PathLike, session_options=None) -> "ONNXClassifier":
        """Load an exported model directory (or a ``.onnx`` file with ``config.json`` beside it)."""
        from .configuration import HuBERTECGConfig

        graph, folder = resolve_onnx_model(source)
        return cls(graph, HuBERTECGConfig.from_pretrained(str(folder)), session_options=session_options)

    # what transformers' Pipeline touches of a model
    device = torch.device("cpu")
    dtype = torch.float32
    hf_device_map = None

    def to(self, *args, **kwargs):
        """Only the CPU (and float32): ONNX Runtime runs the graph on the CPU."""
        for value in (*args, *kwargs.values()):
            if isinstance(value, (str, torch.device)) and torch.device(value).type != "cpu":
                raise ValueError(f"an ONNX model runs on the CPU with onnxruntime; device {value} is not supported.")
            if isinstance(value, torch.dtype) and value != torch.float32:
                raise ValueError(f"an ONNX model runs in float32; dtype {value} is not supported.")
        return self

    def eval(self):
        return self

    #: the graph has no attention_mask input: the pipeline refuses zero-padded records (one per-record error)
    accepts_padding = False

    def can_generate(self) -> bool:
        return False

    def __call__(self, input_values, attention_mask=None, **kwargs) -> ONNXClassifierOutput:
        values = torch.as_tensor(input_values).detach().to("cpu", torch.float32)
        if attention_mask is not None and not bool(torch.as_tensor(attention_mask).all()):
            raise ValueError(
                f"{self.path}: a zero-padded window (a record shorter than the 5 s window): the exported graph "
                "has no attention_mask input and cannot ignore the padding; score this record with the PyTorch "
                "model."
            )
        logits = self.session.run(["logits"], {"input_values": np.ascontiguousarray(values.numpy())})[0]
        return ONNXClassifierOutput(logits=torch.from_numpy(logits))

    forward = __call__

    def __repr__(self) -> str:
        return f"ONNXClassifier({str(self.path)!r}, num_labels={self.config.num_labels})"
