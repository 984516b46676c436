#!/usr/bin/env bash
# Run 11's teacher set (also run 14's), made once: the soft labels of runs 9, 10 (its own 44x44 corner crops) and 13,
# then every set of runs 7, 9, 10 and 13 scored on PublicTest as a student learns from it (python -m
# tools.choose_teachers: the mean of their ten-crop probabilities); the best set in checkpoints/run11/teachers.json,
# every set's figures in checkpoints/run11/teacher-sets.json. Moved here from docs/run11/command.sh (session 16).
set -euo pipefail
cd "$(dirname "$0")/../.."
py=.venv/bin/python
data=../shared/fer2013
mkdir -p checkpoints/run11
[ -f docs/teachers/vgg40-ferplus-run9.npz ] || $py -m tools.soft_labels --name vgg40-ferplus-run9 \
  --model checkpoints/run9/export/model.json --weights checkpoints/run9/export/model_weights.h5 --data $data
[ -f docs/teachers/vgg44-ferplus-run10-shift2.npz ] || $py -m tools.soft_labels --name vgg44-ferplus-run10-shift2 \
  --model checkpoints/run10/export/model.json --weights checkpoints/run10/export/model_weights.h5 --data $data
[ -f docs/teachers/vgg48-ferplus-run13.npz ] || $py -m tools.soft_labels --name vgg48-ferplus-run13 \
  --model checkpoints/run13/export/model.json --weights checkpoints/run13/export/model_weights.h5 --data $data
if [ ! -s checkpoints/run11/teachers.json ]; then
  $py -m tools.choose_teachers --data $data --out checkpoints/run11/teacher-sets.json \
    --candidate vgg40-ferplus-run7 checkpoints/run7/export/model.json checkpoints/run7/export/model_weights.h5 \
    --candidate vgg40-ferplus-run9 checkpoints/run9/export/model.json checkpoints/run9/export/model_weights.h5 \
    --candidate vgg44-ferplus-run10-shift2 checkpoints/run10/export/model.json checkpoints/run10/export/model_weights.h5 \
    --candidate vgg48-ferplus-run13 checkpoints/run13/export/model.json checkpoints/run13/export/model_weights.h5 \
    | tail -1 > checkpoints/run11/teachers.json
fi
