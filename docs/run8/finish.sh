#!/usr/bin/env bash
# Run 8's decision (the rule of docs/run8/command.sh, fixed before any result): the teacher (run 7, the app's files)
# and run 8's export measured in one run on this machine (python -m benchmarks.evaluate: OpenCV, LiteRT int8, flip TTA,
# FER+ majority of PublicTest); run 8 becomes the served default if its FER+ accuracy is within 1 point of the teacher's.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=checkpoints/run8
bash docs/evaluate_pair.sh "$out" run8 teacher
.venv/bin/python docs/ship_rule.py "$out" teacher run8 --gain -0.01
