#!/usr/bin/env bash
# Reproduces the bundled demo model (hubert_ecg/demo/model) on CPU: fine-tuning (7 min wall on 2 CPU cores; the
# whole script about 9 min, docs/demo-model.md), calibration and thresholds on fold 8, the fold-9 evaluation per lead
# set, the model card, then the copy into the package.
# Usage: examples/train_demo.sh [DATA_DIR] [OUTPUT_DIR]   (DATA_DIR holds ptbxl/ and ptbxl_extra/)
set -euo pipefail
DATA=${1:-../shared/data}
OUT=${2:-/tmp/hubert-ecg-demo}
PTBXL="$DATA/ptbxl,$DATA/ptbxl_extra"
FOLDS=train=1-7,validation=8,test=9   # fold 9 is a clean test set: nothing is chosen on it
export HF_HUB_OFFLINE=1
start=$(date +%s)
hubert-ecg finetune examples/finetune_ptbxl_demo.yaml --ptbxl_dir "$PTBXL" --output_dir "$OUT"
seconds=$(( $(date +%s) - start ))
hubert-ecg calibrate --model "$OUT" --ptbxl_dir "$PTBXL" --ptbxl_folds "$FOLDS" --split validation
hubert-ecg evaluate --model "$OUT" --ptbxl_dir "$PTBXL" --ptbxl_folds "$FOLDS" --split test \
    --lead_sets 12,6,4,3,2,1 --output_dir "$OUT/fold9"
python examples/demo_model_card.py "$OUT" "$OUT/fold9" "$seconds"
# copy the files the package ships (the demo model directory)
mkdir -p hubert_ecg/demo/model
rm -f hubert_ecg/demo/model/*.py   # code copies of earlier versions: the package ships none
cp "$OUT"/{config.json,model.safetensors,preprocessor_config.json,README.md,metrics.json,calibration.json} hubert_ecg/demo/model/
cp "$OUT"/fold9/metrics.json hubert_ecg/demo/model/fold9_metrics.json
# no code copies in the package (save_pretrained wrote configuration.py, modeling.py, processing.py and leads.py in
# $OUT for trust_remote_code): drop the auto_map entries that point at them
python - <<'EOF'
import json, pathlib
for name in ("config.json", "preprocessor_config.json"):
    path = pathlib.Path("hubert_ecg/demo/model") / name
    config = json.loads(path.read_text())
    config.pop("auto_map", None)
    path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
EOF
chmod 644 hubert_ecg/demo/model/*
