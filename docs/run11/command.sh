#!/usr/bin/env bash
# Run 11 (issue 37): the small network (ARCHITECTURE mobile) from scratch on the FER+ vote distributions, distilled
# (ALPHA 0.5, TEMPERATURE 2, 40 epochs of the mobile recipe, seed 13; run 8: one teacher, 25 epochs, 80.92% as served
# against its teacher's 82.30%) from the best of the FER+ networks as a teacher set: every set of runs 7, 9, 10 and
# 13 scored on PublicTest as the student learns from it, the mean of their ten-crop probabilities
# (python -m tools.choose_teachers; the set and every set's figures in checkpoints/run11/teacher-sets.json).
# (Changed in session 15, before run 11 started: it was to distil runs 7 and 9, which agree too much to beat either
# alone by ten-crop, 82.80% together as run 9 alone; run 10, from scratch, is the new candidate. Changed again before
# it started: run 10's soft labels from its own corner crops, 44x44, a shift of 2 px (vgg44-ferplus-run10-shift2:
# networks.ten_crop_shift); the shift of 4 px of the first file, vgg44-ferplus-run10 (run 12's teacher), cuts past the
# face's edge and scored 83.14% ten-crop against 83.68% with the mirror alone. And, before it started, run 13 (the
# VGG on whole faces, queued before run 11 by docs/chain.sh) joined the candidates: vgg48-ferplus-run13.)
# Resumable from checkpoints/run11. The teacher set is docs/run11/teachers.sh's (run 14's too).
# Rule, fixed before any result (issue 37's, docs/run11/finish.sh): it becomes the served default if, as served
# (python -m benchmarks.evaluate), its FER+ PublicTest majority accuracy is within 1 point of the served model's,
# both measured in one run; otherwise it stays an option and the served model stays. tools.full_int8_check reports
# its full-int8 figures beside.
set -euo pipefail
cd "$(dirname "$0")/../.."
data=../shared/fer2013
bash docs/run11/teachers.sh
.venv/bin/papermill train.ipynb checkpoints/run11/run.ipynb -p DATA_DIR $data \
  -p CHECKPOINT_DIR checkpoints/run11 -p OUTPUT_DIR checkpoints/run11/export -p FIGURES_DIR checkpoints/run11/figures \
  -p LABELS ferplus -p ARCHITECTURE mobile -p TEACHERS "$(cat checkpoints/run11/teachers.json)" -p ALPHA 0.5 \
  -p TEMPERATURE 2 -p EPOCHS 40 -p LIVE_PLOT False -p SEED 13
