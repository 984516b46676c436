#!/bin/bash
# CPU run 6: the shipped recipe, full 48-epoch schedule, distilled from the three networks of ensemble 5 (teachers
# vgg40-shipped = member 1, vgg40-run3, vgg40-run4); seed 10. Runs 3 and 4 (students of members) were the strongest
# single networks; run 5 (student of a non-member, 44 epochs) was weaker and added nothing.
cd "$(dirname "$0")/../.."  # the repository root
exec .venv/bin/papermill train.ipynb checkpoints/run6/run.ipynb -p DATA_DIR ../shared/fer2013 \
  -p CHECKPOINT_DIR checkpoints/run6 -p OUTPUT_DIR checkpoints/run6/export -p FIGURES_DIR checkpoints/run6/figures \
  -p TEACHERS '["vgg40-shipped", "vgg40-run3", "vgg40-run4"]' -p ALPHA 0.5 -p TEMPERATURE 4 -p LIVE_PLOT False \
  -p SEED 10
