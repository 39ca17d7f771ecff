#!/usr/bin/env bash
# Reproduces the bundled demo model (hubert_ecg/demo/model) on CPU, with the package's commands only (docs/demo-model.md):
# - fine-tuning of the recipe chosen by cross-validation inside folds 1-8: 33 min wall on 2 CPU cores, the whole
#   script about 38 min;
# - calibration and thresholds on fold 8, the fold-9 evaluation per lead set on every 5 s window 2.5 s apart (and on
#   the first window), a linear probe of its embeddings (folds 1-8 fit, fold 9 scored), the model card;
# - then the copy into the package.
# Usage: examples/train_demo.sh [DATA_DIR] [OUTPUT_DIR]   (DATA_DIR holds ptbxl/, ptbxl_extra/ and ptbxl_more/;
# RECIPE=another.yaml trains that instead; a rerun with the same OUTPUT_DIR keeps its finished training)
set -euo pipefail
DATA=${1:-../shared/data}
OUT=${2:-/tmp/hubert-ecg-demo}
RECIPE=${RECIPE:-examples/demo_model/recipe_d.yaml}   # the recipe chosen by cross-validation (docs/demo-model.md)
PTBXL="$DATA/ptbxl,$DATA/ptbxl_extra,$DATA/ptbxl_more"
FOLDS=train=1-7,validation=8,test=9   # fold 9 is a clean test set: nothing is chosen on it
TTA=(--tta_windows all --stride_seconds 2.5)
export HF_HUB_OFFLINE=1
if [ ! -f "$OUT/train_seconds.txt" ]; then   # a finished training is kept when the script is rerun
    start=$(date +%s)
    hubert-ecg finetune "$RECIPE" --ptbxl_dir "$PTBXL" --ptbxl_folds "$FOLDS" --output_dir "$OUT"
    echo $(( $(date +%s) - start )) > "$OUT/train_seconds.txt"
fi
seconds=$(cat "$OUT/train_seconds.txt")
hubert-ecg calibrate --model "$OUT" --ptbxl_dir "$PTBXL" --ptbxl_folds "$FOLDS" --split validation "${TTA[@]}"
hubert-ecg evaluate --model "$OUT" --ptbxl_dir "$PTBXL" --ptbxl_folds "$FOLDS" --split test \
    --lead_sets 12,6,4,3,2,1 "${TTA[@]}" --output_dir "$OUT/fold9"
hubert-ecg evaluate --model "$OUT" --ptbxl_dir "$PTBXL" --ptbxl_folds "$FOLDS" --split test \
    --output_dir "$OUT/fold9_first_window"
# the linear probe (docs/embeddings.md): manifests of folds 1-8 and fold 9, embeddings, logistic regression
python - "$DATA" "$OUT/probe" <<'EOF_PY'
import sys
from pathlib import Path

import pandas as pd

from hubert_ecg.training.data import parse_fold_splits, read_ptbxl, split_by_fold

data, out = Path(sys.argv[1]).resolve(), Path(sys.argv[2])   # absolute record paths in the manifests
out.mkdir(parents=True, exist_ok=True)
records = read_ptbxl([str(data / name) for name in ("ptbxl", "ptbxl_extra", "ptbxl_more")], "superdiagnostic", 100)
for split, part in split_by_fold(records, parse_fold_splits("train=1-8,test=9", required=("train", "test"))).items():
    table = pd.DataFrame(part.labels.astype(int), columns=part.label_names)
    table.insert(0, "filename", part.paths)
    table.to_csv(out / f"{split}.csv", index=False)
EOF_PY
for split in train test; do
    hubert-ecg embed "$OUT/probe/$split.csv" --model "$OUT" --output "$OUT/probe/$split.parquet"
done
hubert-ecg probe --embeddings "$OUT/probe/train.parquet" --eval "$OUT/probe/test.parquet" --output "$OUT/probe/metrics.json"
python examples/demo_model_card.py "$OUT" "$OUT/fold9" "$seconds" "$RECIPE"
# copy the files the package ships (the demo model directory)
mkdir -p hubert_ecg/demo/model
rm -f hubert_ecg/demo/model/*.py   # code copies of earlier versions: the package ships none
cp "$OUT"/{config.json,model.safetensors,preprocessor_config.json,README.md,metrics.json,calibration.json} hubert_ecg/demo/model/
cp "$OUT"/fold9/metrics.json hubert_ecg/demo/model/fold9_metrics.json
cp "$OUT"/probe/metrics.json hubert_ecg/demo/model/probe_metrics.json
# no code copies in the package (save_pretrained wrote configuration.py, modeling.py, processing.py and leads.py in
# $OUT for trust_remote_code): drop the auto_map entries that point at them
python - <<'EOF_PY'
import json, pathlib
for name in ("config.json", "preprocessor_config.json"):
    path = pathlib.Path("hubert_ecg/demo/model") / name
    config = json.loads(path.read_text())
    config.pop("auto_map", None)
    path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
EOF_PY
chmod 644 hubert_ecg/demo/model/*
