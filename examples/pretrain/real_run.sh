#!/usr/bin/env bash
# Reproduces the CPU pretraining run reported in the README ("Pretraining: a real run on CPU"):
# HuBERT iterations 1 and 2 on every 5 s window of every record in ../shared/data (PTB-XL records500 left out:
# they are the same ECGs as records100 fold 9 at 500 Hz), then PTB-XL fine-tuning (folds 1-8 -> fold 9) of the
# pretrained model and of a randomly initialised one with the same architecture, hyper-parameters and budget.
# About 40-60 min on 2 shared CPU cores. Usage: examples/pretrain/real_run.sh [DATA_DIR] [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/../.."
DATA=${1:-../shared/data}
OUT=${2:-/tmp/hubert-ecg-real-run}
MODEL=$(cat examples/pretrain/real_run_model.json)
export HF_HUB_OFFLINE=1
mkdir -p "$OUT"
run() { echo "+ $*" >&2; nice -n 10 "$@"; }

# iteration 1: windows (built on the first call), 13 MFCCs + deltas + delta-deltas, K = 100
run hubert-ecg cluster --output_dir "$OUT/iter1_labels" --windows_dir "$OUT/windows" --data "$DATA" \
    --exclude '*/records500/*' --num_clusters 100 --seed 0
run hubert-ecg pretrain --output_dir "$OUT/iter1_model" --windows_dir "$OUT/windows" \
    --labels_dirs "$OUT/iter1_labels" --config_overrides "$MODEL" --learning_rate 5e-4 \
    --per_device_train_batch_size 16 --max_steps 150 --logging_steps 10 --eval_steps 50 --save_steps 50 \
    --eval_on_start true --report_to none --seed 42
# iteration 2: layer 2 of 3 of the iteration-1 model (the paper: layers 8-9), K = 500, continued backbone
run hubert-ecg cluster --output_dir "$OUT/iter2_labels" --windows_dir "$OUT/windows" --features hidden \
    --model "$OUT/iter1_model" --layer 2 --num_clusters 500 --fit_windows 1000 --kmeans_n_init 1 \
    --compare_labels_dir "$OUT/iter1_labels" --seed 0
run hubert-ecg pretrain --output_dir "$OUT/iter2_model" --windows_dir "$OUT/windows" \
    --labels_dirs "$OUT/iter2_labels" --model "$OUT/iter1_model" --learning_rate 5e-4 \
    --per_device_train_batch_size 16 --max_steps 80 --logging_steps 10 --eval_steps 40 --save_steps 40 \
    --eval_on_start true --report_to none --seed 42
# fine-tuning, same budget: pretrained (after iteration 1 and after iteration 2) vs random initialisation
for it in 1 2; do
  run hubert-ecg finetune examples/pretrain/finetune_compare.yaml --ptbxl_dir "$DATA/ptbxl" \
      --model "$OUT/iter${it}_model" --output_dir "$OUT/ft_pretrained${it}"
done
run hubert-ecg finetune examples/pretrain/finetune_compare.yaml --ptbxl_dir "$DATA/ptbxl" \
    --preset small --config_overrides "$MODEL" --output_dir "$OUT/ft_random"
python - "$OUT" <<'PY'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
for it in (1, 2):
    stats = json.loads((out / f"iter{it}_labels" / "cluster_stats.json").read_text())
    print(f"iteration {it} clusters:", {k: v for k, v in stats.items() if k != "cluster_sizes"})
    log = [json.loads(l) for l in (out / f"iter{it}_model" / "log_history.jsonl").read_text().splitlines()]
    print(f"iteration {it} loss:", [(e["step"], round(e["loss"], 3)) for e in log if "loss" in e])
    print(f"iteration {it} eval:", [(e["step"], round(e["eval_loss"], 3), round(e["eval_masked_accuracy"], 4))
                                   for e in log if "eval_loss" in e])
for name in ("ft_pretrained1", "ft_pretrained2", "ft_random"):
    print(name, (out / name / "metrics.json").read_text()[:2000])
PY
