#!/bin/bash
# CPU run 4: the shipped recipe, distilled from teachers 1, 3 and 4; seed 8.
cd "$(dirname "$0")/../.."  # the repository root
exec .venv/bin/papermill train.ipynb checkpoints/run4/run.ipynb -p DATA_DIR ../shared/fer2013 \
  -p CHECKPOINT_DIR checkpoints/run4 -p OUTPUT_DIR checkpoints/run4/export -p FIGURES_DIR checkpoints/run4/figures \
  -p TEACHERS '["vgg40-shipped", "vgg40-gpu1", "vgg40-run3"]' -p ALPHA 0.5 -p TEMPERATURE 4 -p LIVE_PLOT False -p SEED 8
