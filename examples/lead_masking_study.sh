#!/usr/bin/env bash
# The lead-masking / augmentation comparison of docs/lead-sets.md: four fine-tuning runs of the demo recipe on the
# same data and budget (PTB-XL ptbxl + ptbxl_extra, folds 1-7 train, fold 8 picks the epoch, 20 epochs), differing
# only in their augmentations, then every run scored on fold 9 with each lead set. About 4 x 45 min on 2 CPU cores.
# Usage: examples/lead_masking_study.sh [DATA_DIR] [OUTPUT_DIR]
set -euo pipefail
DATA=${1:-../shared/data}
OUT=${2:-/tmp/hubert-ecg-lead-study}
PTBXL="$DATA/ptbxl,$DATA/ptbxl_extra"
FOLDS=train=1-7,validation=8,test=9
export HF_HUB_OFFLINE=1
LEAD_MASK='[{"name": "lead_mask", "p": 1.0, "mask_prob": 0.5}]'
NO_LEAD_MASK='[{"name": "gaussian_noise", "p": 0.5, "snr_db": [20, 30]}, {"name": "baseline_wander", "p": 0.3, "amplitude": 0.05}, {"name": "time_shift", "p": 0.5, "max_seconds": 0.1}]'
run() {  # NAME AUGMENTATIONS
    hubert-ecg finetune examples/finetune_ptbxl_demo.yaml --ptbxl_dir "$PTBXL" --ptbxl_folds "$FOLDS" \
        --augmentations "$2" --output_dir "$OUT/$1"
}
run plain none
run lead_mask "$LEAD_MASK"
run augment "$NO_LEAD_MASK"
run lead_mask_augment default        # the default chain: lead masking and the three others
hubert-ecg evaluate --model "$OUT/plain,$OUT/lead_mask,$OUT/augment,$OUT/lead_mask_augment" --ptbxl_dir "$PTBXL" \
    --ptbxl_folds "$FOLDS" --split test --lead_sets 12,6,4,3,2,1 --output_dir "$OUT/fold9"
