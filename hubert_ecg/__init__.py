"""hubert-ecg: HuBERT-ECG, a self-supervised foundation model for 12-lead ECGs, as a transformers model family.

Importing the package registers the ``hubert_ecg`` model type with transformers' Auto classes (this is the one
place where registration happens), so ``AutoModel.from_pretrained`` loads the published checkpoints without
``trust_remote_code``.
"""

from transformers import (
    AutoConfig,
    AutoFeatureExtractor,
    AutoModel,
    AutoModelForPreTraining,
    AutoModelForSequenceClassification,
)
from transformers.pipelines import PIPELINE_REGISTRY

from .configuration import HuBERTECGConfig
from .conversion import convert_original_checkpoint
from .io import STANDARD_LEADS, ECGRecord, read_ecg
from .modeling import (
    HuBERTECGForPreTraining,
    HuBERTECGForPreTrainingOutput,
    HuBERTECGForSequenceClassification,
    HuBERTECGModel,
    HuBERTECGPreTrainedModel,
)
from .processing import HuBERTECGFeatureExtractor
from .demo import demo_model_path
from .pipelines import ECGClassificationPipeline

__version__ = "0.1.0"

AutoConfig.register(HuBERTECGConfig.model_type, HuBERTECGConfig, exist_ok=True)
HuBERTECGConfig.register_for_auto_class("AutoConfig")
for _auto, _model in (
    (AutoModel, HuBERTECGModel),
    (AutoModelForSequenceClassification, HuBERTECGForSequenceClassification),
    (AutoModelForPreTraining, HuBERTECGForPreTraining),
):
    _auto.register(HuBERTECGConfig, _model, exist_ok=True)
    _model.register_for_auto_class(_auto.__name__)  # save_pretrained copies the code for trust_remote_code
AutoFeatureExtractor.register(HuBERTECGConfig, HuBERTECGFeatureExtractor, exist_ok=True)
if "ecg-classification" not in PIPELINE_REGISTRY.supported_tasks:
    PIPELINE_REGISTRY.register_pipeline(
        "ecg-classification", pipeline_class=ECGClassificationPipeline, pt_model=AutoModelForSequenceClassification
    )

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
    "convert_original_checkpoint",
    "ECGClassificationPipeline",
    "demo_model_path",
]
