#!/usr/bin/env bash
# Run 13 (issue 31): the VGG network trained from scratch on the FER+ vote distributions on the whole 48x48 face
# (CROP 0: no crop layer; the random shifts of training move the face, serving sees it whole), the VGG recipe
# otherwise (48 epochs, SGD peak 0.01 after one warm-up epoch, cosine to 0), seed 31. Run 10 (44x44 crops) gained
# 1.4 points over run 7 (40x40, fine-tuned); this asks whether the rest of the face gains more. 1.25x run 10's
# multiply-adds (0.94 GFLOP a view; about 1.1 ms a face, within the 1.5 ms budget). Also a teacher of different views for
# run 11 and later ensembles. Resumable from checkpoints/run13.
# Ship rule, fixed before any result (docs/run13/finish.sh): run 13 ships if, as served (python -m
# benchmarks.evaluate), its FER+ PublicTest majority accuracy is >= the shipped model's + 0.005 and its ms per face
# (batch of 1) <= 1.5, both measured in one run on this machine.
set -euo pipefail
cd "$(dirname "$0")/../.."
mkdir -p checkpoints/run13
.venv/bin/papermill train.ipynb checkpoints/run13/run.ipynb -p DATA_DIR ../shared/fer2013 \
  -p CHECKPOINT_DIR checkpoints/run13 -p OUTPUT_DIR checkpoints/run13/export -p FIGURES_DIR checkpoints/run13/figures \
  -p LABELS ferplus -p ARCHITECTURE vgg -p CROP 0 -p LIVE_PLOT False -p SEED 31
