"""Writes the demo model's card (README.md) from its fold-9 evaluation: examples/train_demo.sh runs it last.

Usage: python examples/demo_model_card.py MODEL_DIR EVAL_DIR TRAIN_SECONDS RECIPE
  MODEL_DIR: the trained and calibrated model, with fold9_first_window/ (`hubert-ecg evaluate` of fold 9 on the
  first 5 s window) and probe/metrics.json (`hubert-ecg probe`) beside its files; EVAL_DIR: `hubert-ecg evaluate
  --output_dir` on fold 9 with --lead_sets and --tta_windows all; TRAIN_SECONDS: the wall time of the fine-tuning
  run (stated in the card); RECIPE: the fine-tuning configuration it ran.
"""

import json
import sys
from pathlib import Path

import yaml
from huggingface_hub import EvalResult

import hubert_ecg
from hubert_ecg import HuBERTECGForSequenceClassification
from hubert_ecg.model_card import create_model_card

COMMANDS = """\
DATA=../shared/data; PTBXL=$DATA/ptbxl,$DATA/ptbxl_extra,$DATA/ptbxl_more; FOLDS=train=1-7,validation=8,test=9
hubert-ecg finetune {recipe} --ptbxl_dir $PTBXL --ptbxl_folds $FOLDS --output_dir OUT
hubert-ecg calibrate --model OUT --ptbxl_dir $PTBXL --ptbxl_folds $FOLDS --split validation \\
    --tta_windows all --stride_seconds 2.5
hubert-ecg evaluate --model OUT --ptbxl_dir $PTBXL --ptbxl_folds $FOLDS --split test \\
    --lead_sets 12,6,4,3,2,1 --tta_windows all --stride_seconds 2.5 --output_dir OUT/fold9"""


def ci(summary, key):
    low, high = summary["ci"].get(key, (None, None))
    return f"{summary['metrics'][key]:.3f} [{low:.3f}, {high:.3f}]" if low is not None else \
        f"{summary['metrics'][key]:.3f}"


def main(model_dir: str, eval_dir: str, train_seconds: str, recipe: str) -> None:
    model_dir, eval_dir = Path(model_dir), Path(eval_dir)
    model = HuBERTECGForSequenceClassification.from_pretrained(model_dir)
    summary = json.loads((eval_dir / "metrics.json").read_text())
    first = json.loads((model_dir / "fold9_first_window" / "metrics.json").read_text())
    probe = json.loads((model_dir / "probe" / "metrics.json").read_text())
    training = json.loads((model_dir / "metrics.json").read_text())
    settings = yaml.safe_load(Path(recipe).read_text())
    epochs = settings["num_train_epochs"]
    chain = settings["augmentations"]
    masked_draws = 1.0 if chain == "default" else next(float(t.get("p", 1.0)) for t in chain if t["name"] == "lead_mask")
    per_label = [line.split(",") for line in (eval_dir / "per_label.csv").read_text().splitlines()]
    header, rows = per_label[0], per_label[1:]
    config = model.config
    results = [
        EvalResult(task_type="ecg-classification", dataset_type="ptb-xl", dataset_name="PTB-XL",
                   dataset_config="superdiagnostic", dataset_split="fold 9 (test)", metric_type=key,
                   metric_name=key.replace("_", " "), metric_value=float(summary["metrics"][key]))
        for key in ("macro_auroc", "macro_auprc", "macro_f1", "macro_brier", "macro_ece")
    ]
    lines = [
        "Trained from random initialisation on the PTB-XL records of `../shared/data/ptbxl`, `ptbxl_extra` and "
        f"`ptbxl_more` (CC BY 4.0) with the recipe `{recipe}`, chosen by cross-validation inside folds 1-8 "
        "(docs/demo-model.md): strat_fold 1-7 for training "
        f"({training['train_records']:,} records), fold 8 ({training['validation_records']} records) to choose the "
        f"epoch (epoch {training['epoch']:g} of {epochs:g}, best fold-8 macro AUROC {training['eval_macro_auroc']:.3f}), "
        "the Platt calibration and the per-label thresholds (maximum F1 on fold 8); fold 9 "
        f"({summary['n_records']} records) was used for nothing but the figures below. Training: "
        f"{float(train_seconds) / 60:.0f} min wall on 2 CPU cores (fp32, batch 32).",
        "",
        "Recipe: random lead masking (`config.lead_mask_prob = "
        f"{config.lead_mask_prob}`: each lead zeroed with that probability, at least one kept, on "
        f"{masked_draws:.0%} of the draws), Gaussian noise, "
        "baseline wander and time shifts, random 5 s windows, no SpecAugment, positive-class weights. Scores are "
        "Platt-calibrated (`config.score_calibration`) and each label has a decision threshold "
        "(`config.label_thresholds`): the pipeline and `hubert-ecg predict` apply both.",
        "",
        f"## Fold 9 (test), every 5 s window 2.5 s apart averaged, 95 % percentile-bootstrap CIs "
        f"({summary['arguments']['n_bootstrap']} resamples)",
        "",
        "| metric | value [95 % CI] |",
        "|---|---|",
    ]
    for key, name in (("macro_auroc", "macro AUROC"), ("macro_auprc", "macro AUPRC"),
                      ("macro_f1", "macro F1 at the stored thresholds"), ("macro_brier", "Brier score (macro)"),
                      ("macro_ece", "expected calibration error (macro, 10 bins)")):
        lines.append(f"| {name} | {ci(summary, key)} |")
    lines += ["", f"On the first 5 s window only (as the release evaluates): macro AUROC {ci(first, 'macro_auroc')}. "
              f"A linear probe of its embeddings (`hubert-ecg probe`, fitted on folds 1-8): macro AUROC "
              f"{ci(probe, 'macro_auroc')}."]
    lines += ["", "| label | positives | AUROC | AUPRC | F1 | threshold | Brier | ECE |", "|---|---|---|---|---|---|---|---|"]
    col = {name: i for i, name in enumerate(header)}
    for row in rows:
        lines.append("| " + " | ".join([row[col["label"]], row[col["positives"]]] + [
            f"{float(row[col[k]]):.3f}" for k in ("auroc", "auprc", "f1", "threshold", "brier", "ece")]) + " |")
    lines += ["", "Per lead set (the other leads zero-filled; PhysioNet/CinC 2021 sets):", "",
              "| lead set | leads | macro AUROC [95 % CI] | macro AUPRC [95 % CI] |", "|---|---|---|---|"]
    for name, row in summary.get("lead_sets", {}).items():
        lines.append(f"| {name} | {', '.join(row['leads'])} | {ci(row, 'macro_auroc')} | {ci(row, 'macro_auprc')} |")
    lines += ["", f"A demonstration of the package's commands on about {training['train_records']:,} records, not a "
              "clinical tool: its scores must not inform any decision about a patient."]
    card = create_model_card(
        model, license="cc-by-4.0", title="HuBERT-ECG demo classifier (PTB-XL superclasses, lead-agnostic)",
        datasets=["PTB-XL (CC BY 4.0)"], eval_results=results,
        command=COMMANDS.format(recipe=recipe) + "\n# = examples/train_demo.sh", notes="\n".join(lines),
    )
    card.save(model_dir / "README.md")
    print(f"wrote {model_dir / 'README.md'}")


if __name__ == "__main__":
    if len(sys.argv) != 5:
        sys.exit(__doc__)
    hubert_ecg  # registered
    main(*sys.argv[1:])
