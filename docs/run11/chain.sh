#!/usr/bin/env bash
# Between sessions: when run 10's training ends, its decision (docs/run10/finish.sh), then run 11 and its decision.
# Each step's output is in its checkpoints folder; run again, it goes on where it stopped.
cd "$(dirname "$0")/../.."
while pgrep -f "papermill train.ipynb checkpoints/run10" > /dev/null; do sleep 60; done
[ -f checkpoints/run10/export/model_weights.h5 ] || bash docs/run10/command.sh >> checkpoints/run10/log.txt 2>&1
[ -f checkpoints/run10/decision.txt ] || bash docs/run10/finish.sh > checkpoints/run10/finish.txt 2>&1
mkdir -p checkpoints/run11
[ -f checkpoints/run11/export/model_weights.h5 ] || bash docs/run11/command.sh >> checkpoints/run11/log.txt 2>&1
[ -f checkpoints/run11/decision.txt ] || bash docs/run11/finish.sh > checkpoints/run11/finish.txt 2>&1
