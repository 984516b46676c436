#!/usr/bin/env bash
# Run 11 (issue 37): the small network (ARCHITECTURE mobile) from scratch on the FER+ vote distributions, distilled
# from the two FER+ networks run 7 and run 9 together (teachers vgg40-ferplus-run7 and vgg40-ferplus-run9: their
# ten-crop soft labels, averaged), ALPHA 0.5, TEMPERATURE 2, 40 epochs of the mobile recipe (run 8: one teacher, 25
# epochs, 80.92% as served against its teacher's 82.30%), seed 13. Resumable from checkpoints/run11.
# Rule, fixed before any result (issue 37's, docs/run11/finish.sh): it becomes the served default if, as served
# (python -m benchmarks.evaluate), its FER+ PublicTest majority accuracy is within 1 point of the served model's,
# both measured in one run; otherwise it stays an option and the served model stays. tools.full_int8_check reports
# its full-int8 figures beside.
set -euo pipefail
cd "$(dirname "$0")/../.."
[ -f docs/teachers/vgg40-ferplus-run9.npz ] || .venv/bin/python -m tools.soft_labels --name vgg40-ferplus-run9 \
  --model checkpoints/run9/export/model.json --weights checkpoints/run9/export/model_weights.h5 --data ../shared/fer2013
mkdir -p checkpoints/run11
.venv/bin/papermill train.ipynb checkpoints/run11/run.ipynb -p DATA_DIR ../shared/fer2013 \
  -p CHECKPOINT_DIR checkpoints/run11 -p OUTPUT_DIR checkpoints/run11/export -p FIGURES_DIR checkpoints/run11/figures \
  -p LABELS ferplus -p ARCHITECTURE mobile -p TEACHERS '["vgg40-ferplus-run7", "vgg40-ferplus-run9"]' -p ALPHA 0.5 \
  -p TEMPERATURE 2 -p EPOCHS 40 -p LIVE_PLOT False -p SEED 13
