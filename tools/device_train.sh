#!/bin/bash
# The long recipe in one call of a lent GPU machine (JAX and h5py there; no TensorFlow, no Keras), issue 14.
#
#   bash tools/device_train.sh PACK RUN SECONDS [tools.train_jax train options...]
#
# PACK: the file that `python -m tools.train_jax pack` wrote; RUN: the run folder to write; SECONDS: the wall
# time that the whole script must end within (the call's limit, less a margin). Keras and the packages it
# needs that the machine lacks travel as wheels in .whl/ (see the device README); PYTHON names the
# interpreter (default python3).
#
# Because the cosine schedule needs its length before the first step, a 3-epoch probe run comes first: it
# times one epoch and everything that is not an epoch (start, decoding, compiling, export); the real run then
# gets as many epochs as fit in what is left, at most --max-epochs (default 300, the recipe of Khaireddin &
# Chen 2021). With --epochs among the options there is no probe (for a call too short to spend on one).
# When $OUT is set (the device tool's output folder), the run's model files, figures and log are copied there,
# the weights in parts of at most 12 MB (the tool brings back files of up to 16 MiB):
# `cat model_weights.h5.part-* > model_weights.h5` puts them together.
set -euo pipefail
if [ $# -lt 3 ]; then
  echo "usage: bash tools/device_train.sh PACK RUN SECONDS [--max-epochs N] [train options...]" >&2
  exit 2
fi
pack=$1 run=$2 seconds=$3
shift 3
max_epochs=300
if [ "${1:-}" = "--max-epochs" ]; then max_epochs=$2; shift 2; fi
python=${PYTHON:-python3}
export KERAS_BACKEND=jax PYTHONUNBUFFERED=1
if ! "$python" -c "import keras" 2>/dev/null; then
  "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
log=${OUT:-$run}/train.log
mkdir -p "$run" "$(dirname "$log")"

probe_epochs() {  # prints the number of epochs that fit after a 3-epoch probe run
local probe started probe_seconds count
probe=$(mktemp -d)
started=$SECONDS
"$python" -m tools.train_jax train --pack "$pack" --out "$probe" --epochs 3 --warmup-epochs 1 "$@" 2>&1 \
  | tee "$log" | grep -E "train_jax|Error|error" >&2 || true
probe_seconds=$((SECONDS - started))
[ -f "$probe/metrics.json" ] || { echo "the probe run failed: see $log" >&2; exit 1; }
count=$("$python" - "$probe/history.csv" "$probe_seconds" "$((seconds - SECONDS))" "$max_epochs" <<'EOF'
import csv, math, sys
rows = list(csv.DictReader(open(sys.argv[1])))
probe, left, most = float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
epoch = max(float(row["epoch_seconds"]) for row in rows[1:])  # the first epoch includes compiling
fixed = probe - sum(float(row["epoch_seconds"]) for row in rows) + (float(rows[0]["epoch_seconds"]) - epoch)
epochs = min(most, math.floor((left - 1.2 * fixed) / (1.1 * epoch)))
print(f"probe: {probe:.0f} s, an epoch {epoch:.2f} s, the rest {fixed:.0f} s; {left:.0f} s left: "
      f"{epochs} epochs", file=sys.stderr)
print(epochs)
EOF
)
rm -rf "$probe"
[ "$count" -ge 5 ] || { echo "too little time left for a run ($count epochs)" >&2; exit 1; }
echo "$count"
}

epochs=()
if [[ " $* " != *" --epochs "* ]]; then
  count=$(probe_epochs "$@") || exit 1
  epochs=(--epochs "$count")
fi
"$python" -m tools.train_jax train --pack "$pack" --out "$run" "${epochs[@]}" "$@" 2>&1 \
  | tee -a "$log" | grep -E "train_jax|Error|error" | grep -v "^.*epoch [0-9]*/[0-9]*:" || true
tail -n 3 "$log"
[ -f "$run/metrics.json" ] || { echo "the run failed: see $log" >&2; exit 1; }
if [ -n "${OUT:-}" ]; then
  cp "$run/model.json" "$run/metrics.json" "$run/history.csv" "$OUT/"
  split -b 12M "$run/model_weights.h5" "$OUT/model_weights.h5.part-"
fi
echo "done in $SECONDS s"
