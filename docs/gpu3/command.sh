#!/usr/bin/env bash
# GPU run 3 (issue 31), registered before any result: for the first session that is lent a GPU machine.
# One call of the device tool trains four networks side by side on the FER+ vote distributions (tools/device_ensemble.sh,
# each fitted to 540 s by its probe, at most 150 epochs), run 10's recipe (the notebook's VGG recipe: the standard
# augmentation, no mixup, no label smoothing, one warm-up epoch; batch 128 at peak 0.02, the notebook's 0.01 at 64
# scaled linearly), seeds 101-104:
#   runs 1 and 2: the served network's shape (VGG, 44x44 crops, width 1): candidates to ship; their weights come back;
#   runs 3 and 4: 1.5x its width (2.25x its multiply-adds): teachers only (their soft labels come back, not weights).
# Every run's ten-crop soft labels on the training faces come back (docs/teachers/, for a CPU student distilled from
# the set: a later run, chosen by tools.choose_teachers on the PublicTest probabilities that come back too).
# Ship rule, fixed before any result (docs/gpu3/finish.sh): the candidate is whichever of runs 1 and 2 has the higher
# FER+ PublicTest figure in its metrics.json (Keras, flip TTA); it ships if, as served (python -m
# benchmarks.evaluate), its FER+ PublicTest majority accuracy is >= the shipped model's + 0.005 and its ms per face
# (batch of 1) <= 1.5, both measured in one run on this machine.
#
# Here, before the call (the pack, the wheels, the big files out of the checkout: 45 MiB travel):
#   bash tools/device_prepare.sh
# The call (the device tool's run; about 11 of the session's 15 device minutes with the machine's start):
#   command: bash docs/gpu3/command.sh    carry: ["data/fer2013.npz", ".whl"]    timeout_s: 590
# After it, here:
#   bash tools/device_prepare.sh restore && bash docs/gpu3/finish.sh FILES_AT
# (FILES_AT: the reply's files_at folder). Tried on the CPU in session 16 with a tiny pack and tiny runs, then
# finish.sh on what came back (tests/helpers.make_tiny_fer; tools/device_ensemble.sh itself is tested in
# tests/test_training.py):
#   PACK=/tmp/tiny.npz OUT=/tmp/out PYTHON=.venv/bin/python EXTRA="--epochs 1 --batch-size 8 --width 0.5" \
#     bash docs/gpu3/command.sh && bash docs/gpu3/finish.sh /tmp/out
# (PACK: another pack; EXTRA: tools.train_jax train options appended to every run, which override the recipe's;
# device_train.sh's --max-epochs is not one of them.)
set -euo pipefail
cd "$(dirname "$0")/../.."
recipe="--augment standard --mixup 0 --label-smoothing 0 --warmup-epochs 1 ${EXTRA:-}"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
bash tools/device_ensemble.sh "${PACK:-data/fer2013.npz}" "${SECONDS_LEFT:-540}" --weights 1,2 \
  "--max-epochs 150 --crop 44 $recipe" "--max-epochs 150 --crop 44 $recipe" \
  "--max-epochs 150 --crop 44 --width 1.5 $recipe" "--max-epochs 150 --crop 44 --width 1.5 $recipe"
