#!/usr/bin/env bash
# Run 12's ship decision (the rule of docs/run12/command.sh, fixed before any result): the shipped model and run
# 12's export measured in one run on this machine (python -m benchmarks.evaluate).
set -euo pipefail
cd "$(dirname "$0")/../.."
out=checkpoints/run12
bash docs/evaluate_pair.sh "$out" run12 shipped
.venv/bin/python docs/ship_rule.py "$out" shipped run12 --gain 0.005 --max-ms 1.5
