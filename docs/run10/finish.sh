#!/usr/bin/env bash
# Run 10's ship decision (the rule of docs/run10/command.sh, fixed before any result): the shipped model and run
# 10's export measured in one run on this machine (python -m benchmarks.evaluate).
set -euo pipefail
cd "$(dirname "$0")/../.."
out=checkpoints/run10
bash docs/evaluate_pair.sh "$out" run10 shipped
.venv/bin/python docs/ship_rule.py "$out" shipped run10 --gain 0.005 --max-ms 1.5
