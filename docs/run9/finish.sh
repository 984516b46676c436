#!/usr/bin/env bash
# Run 9's ship decision (the rule of docs/run9/command.sh, fixed before any result): the shipped model (run 7), the
# ensemble of run 7 and run 9, and run 9 alone, measured in one run on this machine by python -m benchmarks.evaluate.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=checkpoints/run9
[ -f "$out/pair/model.json" ] || .venv/bin/python -m tools.ensemble --member model.json model_weights.h5 \
  --member "$out/export/model.json" "$out/export/model_weights.h5" --out "$out/pair"
bash docs/evaluate_pair.sh "$out" run9 shipped
.venv/bin/python -m benchmarks.evaluate --model "$out/pair/model.json" --weights "$out/pair/model_weights.h5" \
  --figure "$out/confusion_matrix-pair.png" > "$out/evaluate-pair.json" 2>/dev/null
.venv/bin/python docs/ship_rule.py "$out" shipped pair --gain 0.005 --max-ms 1.5; cp "$out/decision.txt" "$out/decision-pair.txt"
.venv/bin/python docs/ship_rule.py "$out" shipped run9 --gain 0.005 --max-ms 1.5; cp "$out/decision.txt" "$out/decision-run9.txt"
