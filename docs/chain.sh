#!/usr/bin/env bash
# The CPU's queue between sessions: run 10's training and decision, run 12 and its decision, run 13 and its
# decision, then run 14 and run 11 (whose teacher set, docs/run11/teachers.sh, is chosen when the first of them
# starts) and their decisions. Each step's output is in its checkpoints folder; run again, it goes on where it
# stopped (a step whose result file exists is skipped). Replace it only by a new file (mv), never edit it in place
# while it runs (bash reads a script as it runs it). Run 14 joined the queue in session 16, before run 11.
cd "$(dirname "$0")/.."
while pgrep -f "papermill train.ipynb checkpoints/run1" > /dev/null; do sleep 60; done
[ -f checkpoints/run10/export/model_weights.h5 ] || bash docs/run10/command.sh >> checkpoints/run10/log.txt 2>&1
[ -f checkpoints/run10/decision.txt ] || bash docs/run10/finish.sh > checkpoints/run10/finish.txt 2>&1
mkdir -p checkpoints/run11 checkpoints/run12 checkpoints/run13 checkpoints/run14
[ -f checkpoints/run12/export/model_weights.h5 ] || bash docs/run12/command.sh >> checkpoints/run12/log.txt 2>&1
[ -f checkpoints/run12/decision.txt ] || bash docs/run12/finish.sh > checkpoints/run12/finish.txt 2>&1
[ -f checkpoints/run13/export/model_weights.h5 ] || bash docs/run13/command.sh >> checkpoints/run13/log.txt 2>&1
[ -f checkpoints/run13/decision.txt ] || bash docs/run13/finish.sh > checkpoints/run13/finish.txt 2>&1
[ -f checkpoints/run14/export/model_weights.h5 ] || bash docs/run14/command.sh >> checkpoints/run14/log.txt 2>&1
[ -f checkpoints/run14/decision.txt ] || bash docs/run14/finish.sh > checkpoints/run14/finish.txt 2>&1
[ -f checkpoints/run11/export/model_weights.h5 ] || bash docs/run11/command.sh >> checkpoints/run11/log.txt 2>&1
[ -f checkpoints/run11/decision.txt ] || bash docs/run11/finish.sh > checkpoints/run11/finish.txt 2>&1
