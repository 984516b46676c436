#!/usr/bin/env bash
# Run 7 (issue 31): member 1 of the shipped ensemble fine-tuned on the FER+ vote distributions (LABELS=ferplus),
# 12 epochs, SGD peak 0.005 after one warm-up epoch, cosine to 0, the shipped recipe otherwise; seed 11.
# Ship rule, fixed before any result: a candidate ships if, as served (python -m benchmarks.evaluate: OpenCV,
# LiteRT int8, flip TTA), its FER+ PublicTest majority accuracy beats the shipped model's by >= 0.5 points and it
# takes <= 1.5 ms per face (batch of 1), both measured in one run on this machine.
set -euo pipefail
cd "$(dirname "$0")/../.."
[ -f checkpoints/members/member_0/model_weights.h5 ] || .venv/bin/python -m tools.ensemble --split model.json model_weights.h5 --out checkpoints/members
.venv/bin/papermill train.ipynb checkpoints/run7/run.ipynb -p DATA_DIR ../shared/fer2013 \
  -p CHECKPOINT_DIR checkpoints/run7 -p OUTPUT_DIR checkpoints/run7/export -p FIGURES_DIR checkpoints/run7/figures \
  -p LABELS ferplus -p INITIAL_WEIGHTS checkpoints/members/member_0/model_weights.h5 \
  -p EPOCHS 12 -p LEARNING_RATE 0.005 -p WARMUP_EPOCHS 1 -p LIVE_PLOT False -p SEED 11
