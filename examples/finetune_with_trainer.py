"""Fine-tune HuBERT-ECG with a plain transformers Trainer, as you would in your own project.

Records and labels go into a `datasets.Dataset` (one row per record, the signal in mV); the package's feature
extractor is the Trainer's `processing_class`; `DataCollatorForECGClassification` cuts a new random 5 s window of
every record each time it is drawn (validation rows keep their first 5 s); `compute_metrics` is AUROC per label
with scikit-learn. The labels here are PTB-XL SCP statements read from `ptbxl_database.csv`; use your own table.

    python examples/finetune_with_trainer.py --data_dir ../shared/data/ptbxl --max_steps 20 --output_dir /tmp/ecg-ft

Start from a released checkpoint with `--model Edoardo-BS/hubert-ecg-small` (default: the bundled demo model).
"""

import argparse
import ast
import json
from pathlib import Path

import numpy as np
import pandas as pd
from datasets import Dataset
from sklearn.metrics import roc_auc_score
from transformers import (AutoConfig, AutoFeatureExtractor, AutoModelForSequenceClassification, Trainer,
                          TrainingArguments)

import hubert_ecg  # registers the model family with the Auto classes
from hubert_ecg.training.collators import DataCollatorForECGClassification

parser = argparse.ArgumentParser(description="Fine-tune HuBERT-ECG with the transformers Trainer")
parser.add_argument("--data_dir", default="../shared/data/ptbxl", help="PTB-XL folder (ptbxl_database.csv, records100/)")
parser.add_argument("--labels", default="NORM,SR,IMI,LVH", help="SCP statements to predict, comma-separated")
parser.add_argument("--model", default=hubert_ecg.demo_model_path(), help="hub id or directory to start from")
parser.add_argument("--max_records", type=int, default=None, help="records per split (default: all)")
parser.add_argument("--max_steps", type=int, default=20, help="training steps")
parser.add_argument("--output_dir", default="hubert-ecg-trainer")
args = parser.parse_args()
labels = args.labels.split(",")
data_dir = Path(args.data_dir)


def to_dataset(rows: pd.DataFrame) -> Dataset:
    """One row per record: signal (leads, samples) in mV, its rate and lead names, and multi-hot labels."""
    rows = rows[[(data_dir / f"{name}.hea").is_file() for name in rows.filename_lr]][: args.max_records]
    records = [hubert_ecg.read_ecg(data_dir / name) for name in rows.filename_lr]
    codes = [ast.literal_eval(statements) for statements in rows.scp_codes]
    return Dataset.from_dict({
        "signal": [record.signal for record in records],
        "sampling_rate": [record.sampling_rate for record in records],
        "lead_names": [record.lead_names for record in records],
        "labels": [[float(label in statements) for label in labels] for statements in codes],
    })


table = pd.read_csv(data_dir / "ptbxl_database.csv")
train = to_dataset(table[table.strat_fold <= 8])
validation = to_dataset(table[table.strat_fold == 9])
validation = validation.add_column("window_start", [0.0] * len(validation))  # evaluate on the first 5 s

config = AutoConfig.from_pretrained(args.model)  # the checkpoint's architecture with a new head for our labels
config.id2label, config.label2id = dict(enumerate(labels)), {label: i for i, label in enumerate(labels)}
config.problem_type, config.pos_weight = "multi_label_classification", None
config.score_calibration = config.label_thresholds = None  # fitted to the checkpoint's head, not to the new one
model = AutoModelForSequenceClassification.from_pretrained(args.model, config=config, ignore_mismatched_sizes=True)
model.freeze_feature_encoder()
feature_extractor = AutoFeatureExtractor.from_pretrained(args.model)


def compute_metrics(prediction) -> dict:
    """AUROC of every label with both classes present in the validation set, and their mean."""
    scores, y = 1 / (1 + np.exp(-prediction.predictions)), prediction.label_ids
    auroc = {f"auroc_{name}": roc_auc_score(y[:, j], scores[:, j])
             for j, name in enumerate(labels) if 0 < y[:, j].sum() < len(y)}
    return {"macro_auroc": float(np.mean(list(auroc.values()))) if auroc else float("nan"), **auroc}


trainer = Trainer(
    model=model,
    args=TrainingArguments(
        output_dir=args.output_dir, max_steps=args.max_steps, per_device_train_batch_size=8, learning_rate=1e-4,
        warmup_steps=0.1, eval_strategy="steps", eval_steps=max(1, args.max_steps // 2), save_strategy="no",
        logging_steps=max(1, args.max_steps // 4), report_to="none",
        remove_unused_columns=False,  # the collator reads the raw columns (signal, sampling_rate, lead_names)
    ),
    train_dataset=train,
    eval_dataset=validation,
    processing_class=feature_extractor,  # saved beside the model: preprocessor_config.json
    data_collator=DataCollatorForECGClassification(feature_extractor, seed=0),
    compute_metrics=compute_metrics,
)
trainer.train()
metrics = trainer.evaluate()
trainer.save_model()  # the model, and the feature extractor: pipeline("ecg-classification", model=output_dir)
print(json.dumps({"train_records": len(train), "validation_records": len(validation), **metrics}, indent=1))
