#!/usr/bin/env bash
# Reproduces the bundled demo model (hubert_ecg/demo/model) on CPU in about 10-30 minutes (27 min wall on 2 shared cores).
# Usage: examples/train_demo.sh [PTBXL_DIR] [OUTPUT_DIR]
set -euo pipefail
PTBXL_DIR=${1:-../shared/data/ptbxl}
OUTPUT_DIR=${2:-/tmp/hubert-ecg-demo}
export HF_HUB_OFFLINE=1
hubert-ecg finetune examples/finetune_ptbxl_demo.yaml --ptbxl_dir "$PTBXL_DIR" --output_dir "$OUTPUT_DIR"
# copy the files the package ships (the demo model directory)
mkdir -p hubert_ecg/demo/model
cp "$OUTPUT_DIR"/{config.json,model.safetensors,preprocessor_config.json,README.md,metrics.json} hubert_ecg/demo/model/
chmod 644 hubert_ecg/demo/model/*
