#!/usr/bin/env bash
# Run 14's ship decision (the rule of docs/run14/command.sh, fixed before any result): the shipped model and run
# 14's export measured in one run on this machine (python -m benchmarks.evaluate).
set -euo pipefail
cd "$(dirname "$0")/../.."
out=checkpoints/run14
bash docs/evaluate_pair.sh "$out" run14 shipped
.venv/bin/python docs/ship_rule.py "$out" shipped run14 --gain 0.005 --max-ms 1.5
