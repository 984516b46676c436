#!/usr/bin/env bash
# Run 12 (issue 31): run 10's network (the VGG trained from scratch on the FER+ votes, 44x44 crops) fine-tuned for 12
# epochs on the votes and on the soft labels of the best teacher set of runs 7, 9 and 10 (the set run 11 distils too:
# python -m tools.choose_teachers, checkpoints/run11/teachers.json), ALPHA 0.5, TEMPERATURE 2: one network of the
# served size that learns what the set knows together (Hinton et al. 2015; an ensemble of two VGGs costs about 1.6
# ms a face, over the 1.5 ms budget). Run 7's fine-tuning recipe otherwise (SGD peak 0.005 after one warm-up epoch,
# cosine to 0), seed 22. Resumable from checkpoints/run12.
# Ship rule, fixed before any result (docs/run12/finish.sh): run 12 ships if, as served (python -m
# benchmarks.evaluate), its FER+ PublicTest majority accuracy is >= the shipped model's + 0.005 and its ms per face
# (batch of 1) <= 1.5, both measured in one run on this machine.
set -euo pipefail
cd "$(dirname "$0")/../.."
[ -s checkpoints/run11/teachers.json ] || { echo "no teacher set: run docs/run11/command.sh's first steps" >&2; exit 1; }
mkdir -p checkpoints/run12
.venv/bin/papermill train.ipynb checkpoints/run12/run.ipynb -p DATA_DIR ../shared/fer2013 \
  -p CHECKPOINT_DIR checkpoints/run12 -p OUTPUT_DIR checkpoints/run12/export -p FIGURES_DIR checkpoints/run12/figures \
  -p LABELS ferplus -p ARCHITECTURE vgg -p CROP 44 -p INITIAL_WEIGHTS checkpoints/run10/export/model_weights.h5 \
  -p TEACHERS "$(cat checkpoints/run11/teachers.json)" -p ALPHA 0.5 -p TEMPERATURE 2 \
  -p EPOCHS 12 -p LEARNING_RATE 0.005 -p WARMUP_EPOCHS 1 -p LIVE_PLOT False -p SEED 22
