#!/usr/bin/env bash
# The shipped model and a candidate measured in one run on this machine (python -m benchmarks.evaluate: OpenCV,
# LiteRT int8, flip TTA, FER+ majority of PublicTest), for a ship rule to compare:
#   bash docs/evaluate_pair.sh OUT NAME SHIPPED   ->  OUT/evaluate-SHIPPED.json, OUT/evaluate-NAME.json (OUT/export's)
set -euo pipefail
cd "$(dirname "$0")/.."
out=$1 name=$2 shipped=$3
.venv/bin/python -m benchmarks.evaluate > "$out/evaluate-$shipped.json" 2>/dev/null
.venv/bin/python -m benchmarks.evaluate --model "$out/export/model.json" --weights "$out/export/model_weights.h5" \
  --figure "$out/confusion_matrix.png" > "$out/evaluate-$name.json" 2>/dev/null
