#!/usr/bin/env bash
# Run 7's ship decision (the rule of docs/run7/command.sh, fixed before any result): the shipped model and run 7's
# export measured in one run on this machine (python -m benchmarks.evaluate: OpenCV, LiteRT int8, flip TTA, FER+
# majority of PublicTest); run 7 ships if its FER+ accuracy is >= the shipped one's + 0.005 and its ms per face
# (batch of 1) <= 1.5.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=checkpoints/run7
bash docs/evaluate_pair.sh "$out" run7 shipped
.venv/bin/python docs/ship_rule.py "$out" shipped run7 --gain 0.005 --max-ms 1.5
