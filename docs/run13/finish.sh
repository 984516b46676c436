#!/usr/bin/env bash
# Run 13's ship decision (the rule of docs/run13/command.sh, fixed before any result): the shipped model and run
# 13's export measured in one run on this machine (python -m benchmarks.evaluate).
set -euo pipefail
cd "$(dirname "$0")/../.."
out=checkpoints/run13
bash docs/evaluate_pair.sh "$out" run13 shipped
.venv/bin/python docs/ship_rule.py "$out" shipped run13 --gain 0.005 --max-ms 1.5
