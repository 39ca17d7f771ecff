"""Run an exported HuBERT-ECG model (an ONNX graph) with ONNX Runtime or OpenVINO inside the pipelines.

```python
from hubert_ecg.export import export_onnx
export_onnx(hubert_ecg.demo_model_path(), "demo-onnx/")        # demo-onnx/model.onnx + config.json + preprocessor_config.json
clf = hubert_ecg.pipelines.load_pipeline("demo-onnx")           # or "demo-onnx/model.onnx"; same scores as torch fp32
clf = hubert_ecg.pipelines.load_pipeline("demo-onnx", backend="openvino")   # the same graph with OpenVINO
```

or ``hubert-ecg predict RECORDS --model demo-onnx [--backend onnxruntime|openvino]``, or transformers' own
``pipeline("ecg-classification", model="demo-onnx", model_kwargs={"backend": "openvino"})`` (the package registers
:class:`ONNXClassifier` / :class:`ONNXFeatureModel` after the PyTorch Auto classes of its two tasks).

An exported model directory holds ``model.onnx`` (:func:`hubert_ecg.export.export_onnx`: input ``input_values``
float32 ``(batch, samples)``, output ``logits`` ``(batch, num_labels)`` for a classifier, or ``last_hidden_state``
``(batch, frames, hidden_size)`` for a backbone exported with ``--task feature-extraction``), the model's
``config.json`` (labels, problem type, ``score_calibration``, ``label_thresholds``, ``label_descriptions``) and
``preprocessor_config.json``: the pipelines take the labels, the calibration and the preprocessing from the two json
files and the outputs from the graph, so their results are those of the PyTorch model (within 1e-4 in float32).

Two runtimes read the same ``model.onnx`` (:data:`BACKENDS`): ``"onnxruntime"`` (``CPUExecutionProvider``; extra
``[onnx]``) and ``"openvino"`` (``openvino.Core().read_model`` of the ONNX file, compiled for ``"CPU"`` with
``INFERENCE_PRECISION_HINT="f32"``, since OpenVINO's CPU plugin otherwise runs in bf16 on CPUs with bf16 units;
extra ``[openvino]``). Without a choice, onnxruntime when it is installed, else OpenVINO (:func:`default_backend`).

Why not optimum's ``ORTModelForSequenceClassification``: ``optimum-onnx`` 0.1.0 (the current release) requires
``transformers<4.58`` (``pip install --dry-run "optimum-onnx[onnxruntime]"`` would replace transformers 5 with
4.57.6, which this package does not support), and it knows only the model types it registers (``hubert_ecg`` is not
one: it would need a custom ``OnnxConfig`` and its own export).

Why not optimum-intel's ``OVModelForSequenceClassification`` / ``OVModelForFeatureExtraction``: ``optimum-intel``
2.2.0 (the current release) requires ``transformers<5.6,>=4.51``, ``optimum~=2.3.0``, ``nncf>=3.3.0`` and
``torchvision``; ``pip install --dry-run "optimum-intel[openvino]"`` (December 2026) would replace transformers
5.25.0 with 5.5.4 and torch 2.13.0+cpu with 2.14.1 and its CUDA wheels (cuda-toolkit 13.0, 15 ``nvidia-*``
packages, triton); its exporter registers ``hubert`` (feature-extraction, audio-classification, ASR) but not
``hubert_ecg``; its ``OVModelForSequenceClassification.forward`` takes ``input_ids`` and a required
``attention_mask``, not ``input_values``. The pipelines need four
things of a model (``config``, ``device``, ``dtype`` and ``model(input_values=..., attention_mask=...)`` giving
``.logits`` or ``.last_hidden_state``), which the classes here give over one session of either runtime
(:class:`ExportedGraph`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

__all__ = [
    "BACKENDS", "BACKEND_CHOICES", "ExportedGraph", "ExportedModelOutput", "ONNXClassifier", "ONNXClassifierOutput",
    "ONNXFeatureModel",
    "ONNX_WEIGHTS_NAME", "available_backends", "default_backend", "is_onnx_model", "resolve_backend",
    "resolve_onnx_model",
]

ONNX_WEIGHTS_NAME = "model.onnx"
#: the runtimes of an exported graph, in the order of preference of :func:`default_backend`
BACKENDS = ("onnxruntime", "openvino")
#: every value of ``backend`` / ``--backend``: ``"torch"`` is the PyTorch model (a save_pretrained directory)
BACKEND_CHOICES = ("torch", *BACKENDS)
_MODULES = {"onnxruntime": "onnxruntime", "openvino": "openvino"}
_INSTALL_HINTS = {
    "onnxruntime": 'running an ONNX model with onnxruntime needs: pip install "hubert-ecg[onnx]"',
    "openvino": 'running an ONNX model with OpenVINO needs: pip install "hubert-ecg[openvino]"',
}


def available_backends() -> tuple[str, ...]:
    """The runtimes of :data:`BACKENDS` that are installed (importable), in order of preference."""
    import importlib.util

    return tuple(b for b in BACKENDS if importlib.util.find_spec(_MODULES[b]) is not None)


def default_backend() -> str:
    """``"onnxruntime"`` when it is installed, else ``"openvino"`` when it is.

    Raises:
        ImportError: when neither is installed, naming the extras ``[onnx]`` and ``[openvino]``.
    """
    available = available_backends()
    if not available:
        raise ImportError('running an ONNX model needs onnxruntime or OpenVINO: pip install "hubert-ecg[onnx]" '
                          'or "hubert-ecg[openvino]"')
    return available[0]


def is_onnx_model(source) -> bool:
    """True for a ``.onnx`` file path or a local directory holding ``model.onnx`` (an exported model directory)."""
    if source is None or not isinstance(source, (str, os.PathLike)):
        return False
    path = Path(source)
    return str(source).lower().endswith(".onnx") or (path.is_dir() and (path / ONNX_WEIGHTS_NAME).is_file())


def resolve_backend(source, backend: str | None = None) -> str:
    """The runtime of a model: ``"torch"`` for a PyTorch model (hub id, save_pretrained directory, None: the demo
    model), for an exported model (:func:`is_onnx_model`) ``backend`` or, when None, :func:`default_backend`.

    Args:
        source: the model as given (``--model``).
        backend: None, or one of :data:`BACKEND_CHOICES` (``"torch"``, ``"onnxruntime"``, ``"openvino"``).

    Raises:
        ValueError: for an unknown ``backend``; ``"torch"`` for an exported model (its PyTorch weights are not in
            it); ``"onnxruntime"`` / ``"openvino"`` for a model that is not exported (the message says how to
            export it).
        ImportError: for an exported model when no runtime is installed (names the extras).
    """
    if backend is not None and backend not in BACKEND_CHOICES:
        raise ValueError(f"backend must be one of {', '.join(BACKEND_CHOICES)}, got {backend!r}")
    exported = is_onnx_model(source)
    if not exported:
        if backend in BACKENDS:
            raise ValueError(
                f"{source or 'the demo model'}: backend {backend!r} runs an exported model (a directory written by "
                "`hubert-ecg export-onnx MODEL DIR`, or a .onnx file with its config.json beside it), and this is "
                "not one (no model.onnx in it); export it first: hubert-ecg export-onnx MODEL DIR")
        return "torch"
    if backend == "torch":
        raise ValueError(
            f"{source}: an exported ONNX model runs with {' or '.join(BACKENDS)}, not torch (its PyTorch weights are "
            "not in it): give the save_pretrained directory it was exported from, or another --backend")
    return backend or default_backend()


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


class ExportedGraph:
    """One ``.onnx`` graph compiled by one runtime (``"onnxruntime"`` or ``"openvino"``), run on the CPU.

    ``graph.run(output, input_values)`` -> float32 ``np.ndarray`` of the named output; ``inputs`` / ``outputs`` are
    the graph's tensor names, ``samples`` the fixed length of ``input_values`` ``(batch, samples)``.

    Args:
        path: the ``.onnx`` file.
        backend: ``"onnxruntime"`` or ``"openvino"`` (None: :func:`default_backend`).
        options: onnxruntime: an ``onnxruntime.SessionOptions``; OpenVINO: a dict of compile properties, over the
            default ``{"INFERENCE_PRECISION_HINT": "f32"}`` (float32 arithmetic on every CPU).

    Raises:
        ImportError: when the runtime is not installed (names the extra to install).
        ValueError: for an unknown backend, or a graph without an ``input_values`` input.
        Exception: the runtime's own error for an unreadable graph.
    """

    def __init__(self, path: str | os.PathLike, backend: str | None = None, options=None):
        backend = backend or default_backend()
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
        try:
            runtime = __import__(_MODULES[backend])
        except ImportError as error:
            raise ImportError(f"{_INSTALL_HINTS[backend]} ({error})") from None
        self.path, self.backend = Path(path), backend
        if backend == "onnxruntime":
            self._session = runtime.InferenceSession(str(self.path), sess_options=options,
                                                     providers=["CPUExecutionProvider"])
            inputs = {i.name: i.shape for i in self._session.get_inputs()}
            self.outputs = [o.name for o in self._session.get_outputs()]
        else:
            core = runtime.Core()
            self._compiled = core.compile_model(core.read_model(str(self.path)), "CPU",
                                                {"INFERENCE_PRECISION_HINT": "f32", **(options or {})})
            inputs = {i.any_name: i.get_partial_shape() for i in self._compiled.inputs}
            self.outputs = [o.any_name for o in self._compiled.outputs]
        self.inputs = list(inputs)
        if "input_values" not in inputs:
            raise ValueError(f"{self.path}: the graph has no input 'input_values' (inputs: {self.inputs}); "
                             "not a graph of hubert-ecg export-onnx.")
        length = inputs["input_values"][1]
        self.samples = int(length if isinstance(length, int) else length.get_length())

    def run(self, output: str, input_values: np.ndarray) -> np.ndarray:
        """The graph's ``output`` for ``input_values`` float32 ``(batch, samples)``.

        Raises:
            ValueError: when the graph has no such output (the message lists its outputs).
        """
        if output not in self.outputs:
            raise ValueError(f"{self.path}: the graph has no output {output!r} (outputs: {self.outputs}).")
        feed = {"input_values": np.ascontiguousarray(input_values, dtype=np.float32)}
        if self.backend == "onnxruntime":
            return self._session.run([output], feed)[0]
        return np.asarray(self._compiled(feed)[self._compiled.output(output)])

    def __repr__(self) -> str:
        return f"ExportedGraph({str(self.path)!r}, backend={self.backend!r})"


@dataclass
class ExportedModelOutput:
    """What the pipelines read of a forward pass of an exported model: ``logits`` float32 ``(batch, num_labels)``
    (a classifier) or ``last_hidden_state`` float32 ``(batch, frames, hidden_size)`` (a backbone); the other is
    None."""

    logits: torch.Tensor | None = None
    last_hidden_state: torch.Tensor | None = None


ONNXClassifierOutput = ExportedModelOutput  # the name of the first release of this module


class _ExportedModel:
    """What the two exported models share: loading, the model attributes transformers' Pipeline touches, the CPU
    and float32 only, and the refusal of zero-padded windows (the graph takes no ``attention_mask``)."""

    main_input_name = "input_values"
    #: the graph's output this model returns; its absence is a clear error at loading
    output_name: str = ""
    _wrong_graph = ""

    def __init__(self, graph: str | os.PathLike, config, backend: str | None = None, session_options=None):
        self.graph = ExportedGraph(graph, backend, session_options)
        self.path, self.backend, self.samples = self.graph.path, self.graph.backend, self.graph.samples
        self.config = config
        self.name_or_path = str(self.path.parent)
        if self.output_name not in self.graph.outputs:
            raise ValueError(f"{self.path}: the graph has no output {self.output_name!r} (outputs: "
                             f"{self.graph.outputs}); {self._wrong_graph}")

    @classmethod
    def from_pretrained(cls, source: str | os.PathLike, backend: str | None = None, session_options=None,
                        **pipeline_kwargs):
        """Load an exported model directory (or a ``.onnx`` file with ``config.json`` beside it) with ``backend``
        (None: :func:`default_backend`); ``session_options`` as :class:`ExportedGraph`'s ``options``.

        ``pipeline(task, model=DIR)`` calls this after the PyTorch Auto class could not load ``DIR``, with its own
        keywords (``_from_pipeline``, ``dtype``, ``device_map``, hub options, ...): a ``dtype`` or ``device_map``
        other than float32 / the CPU is refused, the others (which concern downloading PyTorch weights) are
        ignored; ``model_kwargs={"backend": "openvino"}`` picks the runtime.

        Raises:
            ValueError: for a missing graph or ``config.json``, a graph of the other kind, another dtype or
                device.
            ImportError: when the runtime is not installed (names the extra).
        """
        from .configuration import HuBERTECGConfig

        dtype = pipeline_kwargs.pop("dtype", None)
        if dtype not in (None, "auto", "float32", torch.float32):
            raise ValueError(f"{source}: an ONNX model runs in float32; dtype {dtype} is not supported.")
        device_map = pipeline_kwargs.pop("device_map", None)
        if device_map not in (None, "cpu"):
            raise ValueError(f"{source}: an ONNX model runs on the CPU; device_map {device_map!r} is not supported.")
        graph, folder = resolve_onnx_model(source)
        return cls(graph, HuBERTECGConfig.from_pretrained(str(folder)), backend=backend,
                   session_options=session_options)

    # what transformers' Pipeline touches of a model
    device = torch.device("cpu")
    dtype = torch.float32
    hf_device_map = None

    def to(self, *args, **kwargs):
        """Only the CPU (and float32): the runtimes run the graph on the CPU."""
        for value in (*args, *kwargs.values()):
            if isinstance(value, (str, torch.device)) and torch.device(value).type != "cpu":
                raise ValueError(f"an ONNX model runs on the CPU with {self.backend}; device {value} is not supported.")
            if isinstance(value, torch.dtype) and value != torch.float32:
                raise ValueError(f"an ONNX model runs in float32; dtype {value} is not supported.")
        return self

    def eval(self):
        return self

    #: the graph has no attention_mask input: the pipelines refuse zero-padded records (one per-record error)
    accepts_padding = False

    def can_generate(self) -> bool:
        return False

    def _run(self, input_values, attention_mask) -> torch.Tensor:
        values = torch.as_tensor(input_values).detach().to("cpu", torch.float32)
        if attention_mask is not None and not bool(torch.as_tensor(attention_mask).all()):
            raise ValueError(
                f"{self.path}: a zero-padded window (a record shorter than the 5 s window): the exported graph "
                "has no attention_mask input and cannot ignore the padding; use the PyTorch model for this record."
            )
        return torch.from_numpy(self.graph.run(self.output_name, values.numpy()))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r}, backend={self.backend!r})"


class ONNXClassifier(_ExportedModel):
    """A HuBERT-ECG classifier exported to ONNX, called like ``HuBERTECGForSequenceClassification`` by the pipeline.

    ``model(input_values, attention_mask=None)`` -> :class:`ExportedModelOutput` with ``logits`` a float32 CPU
    tensor ``(batch, num_labels)``, computed by ``backend`` (``"onnxruntime"``: its ``CPUExecutionProvider``;
    ``"openvino"``: its CPU plugin in float32; None: :func:`default_backend`); ``config`` is the classifier's
    :class:`~hubert_ecg.HuBERTECGConfig` (from ``config.json``), ``device`` the CPU, ``dtype`` float32.

    The exported graph takes no ``attention_mask``: windows without padding (all of a record of 5 s or more) are
    scored exactly; a window that is zero-padded (a record shorter than 5 s) raises ``ValueError``, since the graph
    cannot ignore the padding as the PyTorch model does (the pipeline refuses such a record on its own, as one
    listed bad record: score it with the PyTorch model).

    Raises (at loading):
        ImportError: when the runtime is not installed (names the extra).
        ValueError: for a graph without ``input_values`` or without ``logits`` (a backbone's graph: the message says
            to use the feature-extraction pipeline).
    """

    output_name = "logits"
    _wrong_graph = ("a backbone's graph (exported with --task feature-extraction) gives embeddings: run it with "
                    "`hubert-ecg embed --model DIR` / load_feature_pipeline, or export the classifier for predict.")

    def __call__(self, input_values, attention_mask=None, **kwargs) -> ExportedModelOutput:
        return ExportedModelOutput(logits=self._run(input_values, attention_mask))

    forward = __call__


class ONNXFeatureModel(_ExportedModel):
    """A HuBERT-ECG backbone exported to ONNX (``export_onnx(..., task="feature-extraction")``), called like
    :class:`~hubert_ecg.HuBERTECGModel` by the ``ecg-feature-extraction`` pipeline.

    ``model(input_values, attention_mask=None)`` -> :class:`ExportedModelOutput` with ``last_hidden_state`` a
    float32 CPU tensor ``(batch, frames, hidden_size)`` (93 frames for the 6000 samples of a 5 s window), computed
    by ``backend`` as :class:`ONNXClassifier`. Only the last hidden state is in the graph (``layer`` None or the
    last: :attr:`last_layer_only`); zero-padded windows are refused as by :class:`ONNXClassifier`.

    Raises (at loading):
        ImportError: when the runtime is not installed (names the extra).
        ValueError: for a graph without ``input_values`` or without ``last_hidden_state`` (a classifier's graph:
            the message says to export with ``--task feature-extraction``).
    """

    output_name = "last_hidden_state"
    _wrong_graph = ("a classifier's graph (logits only); export its backbone for embeddings: "
                    "hubert-ecg export-onnx MODEL DIR --task feature-extraction")
    #: the graph gives the last hidden state only (the feature pipeline refuses other layers)
    last_layer_only = True

    @property
    def base_model(self) -> "ONNXFeatureModel":
        """The backbone: the model itself (as ``HuBERTECGModel.base_model``)."""
        return self

    def __call__(self, input_values, attention_mask=None, output_hidden_states=False, return_dict=True,
                 **kwargs) -> ExportedModelOutput:
        if output_hidden_states:
            raise ValueError(f"{self.path}: the exported graph gives the last hidden state only (no hidden_states).")
        return ExportedModelOutput(last_hidden_state=self._run(input_values, attention_mask))

    forward = __call__
