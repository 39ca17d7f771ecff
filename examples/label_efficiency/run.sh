#!/usr/bin/env bash
# The label-efficiency study of docs/pretraining.md: pretrain one small architecture with four objectives on every
# record of ../shared/data except PTB-XL fold 9, then on the PTB-XL superclasses (folds 1-8 of ptbxl + ptbxl_extra,
# scored on fold 9) a linear probe and fine-tuning with 1 %, 10 % and 100 % of the labelled training records,
# against random initialisation under the same budget. Finished steps are skipped when the script is rerun.
# Usage: examples/label_efficiency/run.sh [DATA_DIR] [OUT_DIR] [JOBS]   (JOBS runs in parallel, 1 thread each)
# The docs' figures: run.sh ../shared/data OUT 2, about 2 h 15 min on 2 CPU cores. OBJECTIVES, FRACTIONS,
# PROBE_SEEDS and FINETUNE_SEEDS (environment variables) choose what runs.
set -euo pipefail
cd "$(dirname "$0")/../.."
DATA=${1:-../shared/data}
OUT=${2:-runs/label_efficiency}
JOBS=${3:-2}
HERE=examples/label_efficiency
OBJECTIVES=${OBJECTIVES:-"hubert cmsc simclr hubert+cmsc"}
FRACTIONS=${FRACTIONS:-"0.01 0.1 1.0"}
PROBE_SEEDS=${PROBE_SEEDS:-"0 1 2"}
FINETUNE_SEEDS=${FINETUNE_SEEDS:-"0 1 2"}
export HF_HUB_OFFLINE=1 OMP_NUM_THREADS=1
mkdir -p "$OUT"

# 1. manifests, windows and the MFCC k-means targets of `hubert` (K = 100)
[ -f "$OUT/test.csv" ] || python "$HERE/manifests.py" "$DATA" "$OUT"
[ -f "$OUT/labels/labels.json" ] || hubert-ecg cluster --output_dir "$OUT/labels" --windows_dir "$OUT/windows" \
    --data "$OUT/pretrain_records.txt" --num_clusters 100 --seed 0 > "$OUT/cluster.log" 2>&1

# 2. pretraining, JOBS objectives at a time
pretrain() {  # objective
    local name=${1/+/_} batch=32 labels=()
    [ "$1" = hubert ] && batch=64   # 64 windows per step for every objective (pairs and views count twice)
    [[ "$1" == hubert* ]] && labels=(--labels_dirs "$OUT/labels")
    [ -f "$OUT/pretrain-$name/pretrain_results.json" ] && return 0
    hubert-ecg pretrain "$HERE/pretrain.yaml" --windows_dir "$OUT/windows" --objective "$1" "${labels[@]}" \
        --per_device_train_batch_size "$batch" --output_dir "$OUT/pretrain-$name" > "$OUT/pretrain-$name.log" 2>&1
}
export -f pretrain; export OUT HERE
printf '%s\n' $OBJECTIVES | xargs -P "$JOBS" -I{} bash -c 'pretrain {}'

# 3. the random initialisation: the same architecture, seed 0, never trained
[ -f "$OUT/random/model.safetensors" ] || python - "$HERE/pretrain.yaml" "$OUT/random" <<'PY'
import sys

import yaml
from transformers import set_seed

from hubert_ecg import HuBERTECGConfig, HuBERTECGFeatureExtractor, HuBERTECGModel

overrides = yaml.safe_load(open(sys.argv[1]))["config_overrides"]
overrides.pop("contrastive_projection_sizes", None)
set_seed(0)
HuBERTECGModel(HuBERTECGConfig.from_preset("small", **overrides)).save_pretrained(sys.argv[2])
HuBERTECGFeatureExtractor().save_pretrained(sys.argv[2])
PY
INITS="random $(for o in $OBJECTIVES; do printf 'pretrain-%s ' "${o/+/_}"; done)"

# 4. embeddings: labelled folds 1-8 and fold 9, and one file of every source for the plots
mkdir -p "$OUT/embeddings"
embed() {  # init
    local e="$OUT/embeddings/$1"
    [ -f "$e-train.parquet" ] || hubert-ecg embed "$OUT/train.csv" --model "$OUT/$1" --source ptbxl --output "$e-train.parquet"
    [ -f "$e-test.parquet" ] || hubert-ecg embed "$OUT/test.csv" --model "$OUT/$1" --source ptbxl --output "$e-test.parquet"
    [ -f "$e-sources.parquet" ] || hubert-ecg embed "$OUT/test.csv" "$DATA/cinc2021" "$DATA/long/cpsc2021" \
        "$DATA/long/mitdb_100" "$DATA/long/ptbdb_s0010_re" --source "PTB-XL fold 9" --source "CinC 2021" \
        --source CPSC2021 --source MIT-BIH --source PTB --model "$OUT/$1" --output "$e-sources.parquet"
}
export -f embed; export DATA
printf '%s\n' $INITS | xargs -P "$JOBS" -I{} bash -c 'embed {}' > "$OUT/embed.log" 2>&1

# 5. linear probes: every initialisation x fraction x seed (CIs from 200 bootstrap resamples), JOBS at a time
probe() {  # init fraction seed
    local p="$OUT/probe/$1-$2-$3.json"
    [ -f "$p" ] || hubert-ecg probe --embeddings "$OUT/embeddings/$1-train.parquet" \
        --eval "$OUT/embeddings/$1-test.parquet" --train_fraction "$2" --seed "$3" --n_bootstrap 200 --output "$p" > /dev/null
}
export -f probe
mkdir -p "$OUT/probe"
for init in $INITS; do for f in $FRACTIONS; do for s in $PROBE_SEEDS; do echo "$init $f $s"; done; done; done \
    | xargs -P "$JOBS" -L1 bash -c 'probe $0 $1 $2'

# 6. fine-tuning: every initialisation x fraction x seed, JOBS at a time
finetune() {  # init fraction seed; a run that another process is doing (its lock held) is skipped
    local o="$OUT/finetune/$1-$2-$3"
    [ -f "$o/metrics.json" ] && return 0
    exec 9> "$o.lock"; flock -n 9 || return 0
    hubert-ecg finetune "$HERE/finetune.yaml" --model "$OUT/$1" \
        --train_csv "$OUT/train.csv" --validation_csv "$OUT/test.csv" --train_fraction "$2" --seed "$3" \
        --output_dir "$o" > "$o.log" 2>&1
}
export -f finetune
mkdir -p "$OUT/finetune"
for s in $FINETUNE_SEEDS; do for f in $FRACTIONS; do for init in $INITS; do echo "$init $f $s"; done; done; done \
    | xargs -P "$JOBS" -L1 bash -c 'finetune $0 $1 $2'

# 7. the table and the embedding plots
python "$HERE/summarise.py" "$OUT"
