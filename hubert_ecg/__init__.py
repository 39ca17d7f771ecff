"""hubert-ecg: HuBERT-ECG, a self-supervised foundation model for 12-lead ECGs, as a transformers model family.

Importing the package registers the ``hubert_ecg`` model type with transformers' Auto classes, the feature extractor
with ``AutoFeatureExtractor`` and the ``ecg-classification`` and ``ecg-feature-extraction`` tasks with ``pipeline()``
(this is the one place where registration happens), so ``AutoModel.from_pretrained`` loads the published checkpoints without
``trust_remote_code``. It imports the model, the preprocessing and the pipeline (what the registration needs) and
nothing of the training stack: ``hubert_ecg.training`` (the ``[train]`` extra) and the conversion of original
checkpoints are imported on first use.
"""

import importlib

from transformers import (
    AutoConfig,
    AutoFeatureExtractor,
    AutoModel,
    AutoModelForPreTraining,
    AutoModelForSequenceClassification,
)
from transformers.pipelines import PIPELINE_REGISTRY

from .configuration import HuBERTECGClassificationConfig, HuBERTECGConfig
from .embeddings import ECGFeatureExtractionPipeline
from .io import ECGRecord, read_ecg
from .leads import LEAD_SETS, STANDARD_LEADS
from .modeling import (
    HuBERTECGForPreTraining,
    HuBERTECGForPreTrainingOutput,
    HuBERTECGForSequenceClassification,
    HuBERTECGModel,
    HuBERTECGPreTrainedModel,
)
from .onnx_backend import ONNXClassifier, ONNXFeatureModel
from .pipelines import ECGClassificationPipeline
from .processing import HuBERTECGFeatureExtractor

__version__ = "0.1.0"

AutoConfig.register(HuBERTECGConfig.model_type, HuBERTECGConfig, exist_ok=True)
HuBERTECGConfig.register_for_auto_class("AutoConfig")
# the authors' 2026 classification format: read onto HuBERTECGConfig (AutoConfig returns a HuBERTECGConfig)
AutoConfig.register(HuBERTECGClassificationConfig.model_type, HuBERTECGClassificationConfig, exist_ok=True)
for _auto, _model in (
    (AutoModel, HuBERTECGModel),
    (AutoModelForSequenceClassification, HuBERTECGForSequenceClassification),
    (AutoModelForPreTraining, HuBERTECGForPreTraining),
):
    _auto.register(HuBERTECGConfig, _model, exist_ok=True)
    _model.register_for_auto_class(_auto.__name__)  # save_pretrained copies the code for trust_remote_code
AutoFeatureExtractor.register(HuBERTECGConfig, HuBERTECGFeatureExtractor, exist_ok=True)
HuBERTECGFeatureExtractor.register_for_auto_class("AutoFeatureExtractor")
# pipeline() tries the classes in order: a PyTorch checkpoint, then an exported model directory (model.onnx, run with
# onnxruntime or OpenVINO: pipeline(task, model=DIR, model_kwargs={"backend": "openvino"}))
if "ecg-classification" not in PIPELINE_REGISTRY.supported_tasks:
    PIPELINE_REGISTRY.register_pipeline(
        "ecg-classification", pipeline_class=ECGClassificationPipeline,
        pt_model=(AutoModelForSequenceClassification, ONNXClassifier),
    )
if "ecg-feature-extraction" not in PIPELINE_REGISTRY.supported_tasks:  # a classifier checkpoint gives its backbone
    PIPELINE_REGISTRY.register_pipeline(
        "ecg-feature-extraction", pipeline_class=ECGFeatureExtractionPipeline, pt_model=(AutoModel, ONNXFeatureModel)
    )

# name -> module, imported on first access (PEP 562)
_LAZY = {
    "convert_original_checkpoint": ".conversion",
    "demo_model_path": ".demo",
    "measure": ".measurements",
}


def __getattr__(name):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "HuBERTECGConfig",
    "HuBERTECGModel",
    "HuBERTECGPreTrainedModel",
    "HuBERTECGForSequenceClassification",
    "HuBERTECGForPreTraining",
    "HuBERTECGForPreTrainingOutput",
    "HuBERTECGFeatureExtractor",
    "ECGRecord",
    "read_ecg",
    "STANDARD_LEADS",
    "LEAD_SETS",
    "convert_original_checkpoint",
    "ECGClassificationPipeline",
    "ECGFeatureExtractionPipeline",
    "demo_model_path",
    "measure",
]
