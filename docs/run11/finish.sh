#!/usr/bin/env bash
# Run 11's decision (the rule of docs/run11/command.sh, fixed before any result): the served model and run 11's
# export measured in one run (python -m benchmarks.evaluate); within 1 point (--gain -0.01) makes it the served
# default; and its full-int8 figures (tools.full_int8_check).
set -euo pipefail
cd "$(dirname "$0")/../.."
out=checkpoints/run11
bash docs/evaluate_pair.sh "$out" run11 shipped
.venv/bin/python docs/ship_rule.py "$out" shipped run11 --gain -0.01
.venv/bin/python -m tools.full_int8_check "$out/export/model.json" "$out/export/model_weights.h5" > "$out/full-int8.txt" 2>/dev/null
