#!/bin/bash
# The long recipe in one call of a lent GPU machine (JAX and h5py there; no TensorFlow, no Keras), issue 14.
#
#   bash tools/device_train.sh PACK RUN SECONDS [--max-epochs N] [tools.train_jax train options...]
#
# PACK: the file that `python -m tools.train_jax pack` wrote; RUN: the run folder to write; SECONDS: the wall
# time that the whole script should end within (the call's limit, less a margin), which the probe plans for.
# Keras and the packages it needs that the machine lacks travel as wheels in .whl/ (see the device README);
# PYTHON names the interpreter (default python3).
#
# Because the cosine schedule needs its length before the first step, a 3-epoch probe run comes first: it
# times one epoch and everything that is not an epoch (start, decoding, compiling, export); the real run then
# gets as many epochs as fit in what is left, at most --max-epochs (default 300, the recipe of Khaireddin &
# Chen 2021). With --epochs among the train options there is no probe (for a call too short to spend on
# one), and nothing holds the run to SECONDS: leave a wide margin.
# When $OUT is set (the device tool's output folder), the log is written there, the run's model.json,
# metrics.json and history.csv go there as one run.tar, and model_weights.h5 in parts of at most 15 MiB (the
# tool brings back files of up to 16 MiB, 8 files and 64 MiB in all): `cat model_weights.h5.part-* >
# model_weights.h5` puts them together. Weights of up to 30 MiB (the recipe's network: 22 MiB) make 4 files
# for a run, so one call can train two networks at once, each with its own OUT, RUN and --seed, which share
# the GPU (its memory too: each JAX process takes XLA_PYTHON_CLIENT_MEM_FRACTION of it, 0.45 unless set,
# also for one run alone); the call's status is 1 when either run fails:
#
#   pids=(); for seed in 9 10; do OUT=$OUT/seed$seed bash tools/device_train.sh PACK /tmp/run$seed 540 --seed $seed &
#   pids+=($!); done; rc=0; for pid in "${pids[@]}"; do wait "$pid" || rc=1; done; exit $rc
#
# With --soft-labels among the train options, run.tar also holds the run's soft_labels.npz + .json (a teacher
# for later runs); WEIGHTS=0 leaves the weights' parts out (a teacher whose soft labels are all that is wanted
# back: tools/device_ensemble.sh).
# Exit status: 0 when the run wrote its model files, 1 when the probe or the run failed, 2 for bad arguments.
set -euo pipefail
usage="usage: bash tools/device_train.sh PACK RUN SECONDS [--max-epochs N] [train options...]"
if [ $# -lt 3 ]; then echo "$usage" >&2; exit 2; fi
pack=$1 run=$2 seconds=$3
shift 3
max_epochs=300
if [ "${1:-}" = "--max-epochs" ]; then max_epochs=${2:-}; shift 2 || true; fi
for number in "$seconds" "$max_epochs"; do
  [[ "$number" =~ ^[1-9][0-9]*$ ]] || { echo "SECONDS and --max-epochs must be whole numbers above 0, not '$number'" >&2
                                        echo "$usage" >&2; exit 2; }
done
python=${PYTHON:-python3}
export KERAS_BACKEND=jax PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_MEM_FRACTION=${XLA_PYTHON_CLIENT_MEM_FRACTION:-0.45}
if ! "$python" -c "import keras" 2>/dev/null; then  # a folder per process: runs started together do not collide
  trap 'rm -rf "/tmp/site-$$"' EXIT
  "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "/tmp/site-$$" .whl/*.whl
  export PYTHONPATH=/tmp/site-$$${PYTHONPATH:+:$PYTHONPATH}
fi
if command -v nvidia-smi >/dev/null; then
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
fi
log=${OUT:-$run}/train.log
mkdir -p "$run" "$(dirname "$log")"

train() {  # tools.train_jax train with these options, its whole output in the log, its status returned
  local status
  "$python" -m tools.train_jax train --pack "$pack" "$@" >> "$log" 2>&1 && status=0 || status=$?
  grep -E "train_jax|Error|error" "$log" | grep -v "epoch [0-9]*/[0-9]*:" | tail -n 4 || true
  return "$status"
}

probe_epochs() {  # prints how many epochs fit in what is left, after a 3-epoch probe run
  local probe started count status=0
  probe=$(mktemp -d)
  started=$SECONDS
  train --out "$probe" --epochs 3 --warmup-epochs 1 "$@" >&2 || status=$?
  if [ "$status" -ne 0 ] || [ ! -f "$probe/history.csv" ]; then
    rm -rf "$probe"; echo "the probe run failed: see $log" >&2; return 1
  fi
  # epoch_seconds leaves out each epoch's backup (BackupAndRestore writes after the logs): 1.3 covers it
  # (GPU runs 1 and 2: 1.2 to 1.64 s an epoch by epoch_seconds, about 19% more from one log line to the next)
  count=$("$python" - "$probe/history.csv" "$((SECONDS - started))" "$((seconds - SECONDS))" "$max_epochs" <<'EOF'
import math, sys
from training import read_history
seconds = read_history(sys.argv[1])["epoch_seconds"]
probe, left, most = float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
epoch = seconds[1:].max()  # the first epoch includes compiling
fixed = probe - seconds.sum() + (seconds[0] - epoch)
epochs = max(0, min(most, math.floor((left - 1.2 * fixed) / (1.3 * epoch))))
print(f"probe: {probe:.0f} s, an epoch {epoch:.2f} s, the rest {fixed:.0f} s; {left:.0f} s left: "
      f"{epochs} epochs", file=sys.stderr)
print(epochs)
EOF
  ) || status=$?
  rm -rf "$probe"
  [ "$status" -eq 0 ] || { echo "could not read the probe's history: see $log" >&2; return 1; }
  [ "$count" -ge 5 ] || { echo "too little time left for a run ($count epochs)" >&2; return 1; }
  echo "$count"
}

: > "$log"
epochs=()
if [[ " $* " != *" --epochs "* && " $* " != *" --epochs="* ]]; then
  count=$(probe_epochs "$@") || exit 1
  epochs=(--epochs "$count")
fi
# written again by this run (a run that only exports too), so never an older run's
rm -f "$run/metrics.json" "$run/soft_labels.npz" "$run/soft_labels.json"
if ! train --out "$run" "${epochs[@]}" "$@" || [ ! -f "$run/metrics.json" ]; then
  echo "the run failed: see $log" >&2
  exit 1
fi
if [ -n "${OUT:-}" ]; then
  files=(model.json metrics.json history.csv)
  for name in soft_labels.npz soft_labels.json; do
    if [ -f "$run/$name" ]; then files+=("$name"); fi
  done
  tar -cf "$OUT/run.tar" -C "$run" "${files[@]}"
  rm -f "$OUT"/model_weights.h5.part-*
  if [ "${WEIGHTS:-1}" = 0 ]; then echo "done in $SECONDS s (weights not returned: WEIGHTS=0)"; exit 0; fi
  split -b 15M "$run/model_weights.h5" "$OUT/model_weights.h5.part-"
  parts=("$OUT"/model_weights.h5.part-*)
  if [ "${#parts[@]}" -gt 2 ]; then
    echo "warning: the weights came to ${#parts[@]} parts: with another run in the same call, more than the tool's 8 files" >&2
  fi
fi
echo "done in $SECONDS s"
