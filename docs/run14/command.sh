#!/usr/bin/env bash
# Run 14 (issue 31), registered in session 16 while run 13 trained, before its result: the VGG from scratch on the FER+
# vote distributions, distilled from run 11's teacher set (docs/run11/teachers.sh: the best set of runs 7, 9, 10 and
# 13 by tools.choose_teachers), ALPHA 0.5, TEMPERATURE 2, 48 epochs of the VGG recipe, seed 41; on the crop of the
# better of runs 10 and 13: whole faces (CROP 0) if run 13 shipped (checkpoints/run13/decision.txt says yes), else
# 44x44 (run 10's). Ensembles of the FER+ networks as served did not beat run 10 (docs/benchmarks/ensembles-run10.txt)
# and fine-tuning run 10 on a set's soft labels for 12 epochs lost 0.4 points (run 12); this asks whether a whole
# schedule from scratch learns what a set knows (Hinton et al. 2015; "born-again" students, Furlanello et al. 2018,
# arXiv:1805.04770, often beat their teachers). Resumable from checkpoints/run14.
# Ship rule, fixed before any result (docs/run14/finish.sh): run 14 ships if, as served (python -m
# benchmarks.evaluate), its FER+ PublicTest majority accuracy is >= the shipped model's + 0.005 and its ms per face
# (batch of 1) <= 1.5, both measured in one run on this machine.
set -euo pipefail
cd "$(dirname "$0")/../.."
bash docs/run11/teachers.sh
crop=44
if [ "$(cat checkpoints/run13/decision.txt 2>/dev/null)" = yes ]; then crop=0; fi
mkdir -p checkpoints/run14
.venv/bin/papermill train.ipynb checkpoints/run14/run.ipynb -p DATA_DIR ../shared/fer2013 \
  -p CHECKPOINT_DIR checkpoints/run14 -p OUTPUT_DIR checkpoints/run14/export -p FIGURES_DIR checkpoints/run14/figures \
  -p LABELS ferplus -p ARCHITECTURE vgg -p CROP $crop -p TEACHERS "$(cat checkpoints/run11/teachers.json)" \
  -p ALPHA 0.5 -p TEMPERATURE 2 -p LIVE_PLOT False -p SEED 41
