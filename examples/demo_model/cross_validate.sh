#!/usr/bin/env bash
# Cross-validation of a demo-model recipe inside PTB-XL strat_folds 1-8 of ptbxl + ptbxl_extra + ptbxl_more (fold 9,
# the demo model's test fold, is never read). Each fold pair in PAIRS is held out once: the recipe trains on the other
# six folds (its best epoch chosen on the pair, as finetune does with its validation split), then `hubert-ecg evaluate`
# scores the pair on 12 leads, leads I+II and lead I, once on the first 5 s window and once on every 5 s window 2.5 s
# apart, averaged. examples/demo_model/summarise.py tabulates the runs (mean ± standard deviation over the pairs).
# Usage: examples/demo_model/cross_validate.sh RECIPE.yaml [OUT_DIR] [DATA_DIR]; PAIRS (default "1+2 3+4 5+6 7+8").
# Finished steps are skipped when the script is rerun.
set -euo pipefail
RECIPE=$1
OUT=${2:-runs/demo_model_cv/$(basename "$RECIPE" .yaml)}
DATA=${3:-../shared/data}
PAIRS=${PAIRS:-"1+2 3+4 5+6 7+8"}
PTBXL="$DATA/ptbxl,$DATA/ptbxl_extra,$DATA/ptbxl_more"
export HF_HUB_OFFLINE=1
mkdir -p "$OUT"
for pair in $PAIRS; do
    train=$(python -c "import sys; held = set(sys.argv[1].split('+')); print('+'.join(str(f) for f in range(1, 9) if str(f) not in held))" "$pair")
    folds="train=$train,validation=$pair"
    run="$OUT/fold$pair"
    if [ ! -f "$run/metrics.json" ]; then
        start=$(date +%s)
        hubert-ecg finetune "$RECIPE" --ptbxl_dir "$PTBXL" --ptbxl_folds "$folds" --output_dir "$run" > "$run.log" 2>&1
        echo $(( $(date +%s) - start )) > "$run/train_seconds.txt"
    fi
    for tta in 0 all; do
        [ -f "$run/eval_$tta/metrics.json" ] && continue
        stride=(); [ "$tta" = all ] && stride=(--stride_seconds 2.5)
        hubert-ecg evaluate --model "$run" --ptbxl_dir "$PTBXL" --ptbxl_folds "$folds" --split validation \
            --tta_windows "$tta" "${stride[@]}" --lead_sets 12,2,1 --n_bootstrap 0 --output_dir "$run/eval_$tta" \
            > "$run/eval_$tta.log" 2>&1
    done
done
