#!/bin/bash
# CPU run 5: the shipped recipe (44 epochs, to fit one session), distilled from teacher 3 only (GPU run 1, not a
# member of the shipped ensemble): run 4, distilled from the members themselves, added +0.23; this run tests whether
# a student of a non-member errs more differently. Seed 9.
cd "$(dirname "$0")/../.."  # the repository root
exec .venv/bin/papermill train.ipynb checkpoints/run5/run.ipynb -p DATA_DIR ../shared/fer2013 \
  -p CHECKPOINT_DIR checkpoints/run5 -p OUTPUT_DIR checkpoints/run5/export -p FIGURES_DIR checkpoints/run5/figures \
  -p TEACHERS '["vgg40-gpu1"]' -p ALPHA 0.5 -p TEMPERATURE 4 -p EPOCHS 44 -p LIVE_PLOT False -p SEED 9
