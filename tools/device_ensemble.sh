#!/bin/bash
# Several networks trained side by side on one lent GPU in one call (issue 31): teachers for distillation and
# candidates to ship, each fitted to the time by tools/device_train.sh's probe.
#
#   bash tools/device_ensemble.sh PACK SECONDS [--weights LIST] OPTIONS [OPTIONS ...]
#
# Run it from the project's root, as device_train.sh. PACK: the file that `python -m tools.train_jax pack` wrote
# (with the FER+ votes for the default --labels ferplus); SECONDS: the wall time the whole script should end
# within. Each OPTIONS (one quoted argument) is one run's tools.train_jax train options; run i (from 1) gets
# --seed 100+i and --soft-labels, and every run shares the GPU with the others (its memory too: 0.9 / runs each).
# With $OUT set (the device tool's output folder) what comes back is runs.tar, which holds for each run
# run-<i>/run.tar (model.json, metrics.json, history.csv, soft_labels.npz + .json: its ten-crop soft labels on the
# training faces and on PublicTest), run-<i>/train.log and run-<i>.out (device_train.sh's own output), and, for the runs in --weights (default "1,2": weights of up to 30 MiB come
# in 2 parts, and the tool brings back 8 files), run-<i>/model_weights.h5.part-*. Without $OUT everything stays
# in a new /tmp/ensemble.* folder.
# Exit status: 0 when every run wrote its model files, 1 when one failed (the others still come back), 2 for bad
# arguments.
set -euo pipefail
usage='usage: bash tools/device_ensemble.sh PACK SECONDS [--weights LIST] OPTIONS [OPTIONS ...]'
if [ $# -lt 3 ]; then echo "$usage" >&2; exit 2; fi
pack=$1 seconds=$2
shift 2
weights=1,2
if [ "$1" = --weights ]; then weights=${2:-}; shift 2 || true; fi
[[ "$seconds" =~ ^[1-9][0-9]*$ ]] || { echo "SECONDS must be a whole number above 0, not '$seconds'" >&2; exit 2; }
[[ "$weights" =~ ^([1-9](,[1-9])*)?$ ]] || { echo "--weights must list run numbers like 1,2, not '$weights'" >&2; exit 2; }
runs=$#
if [ "$runs" -lt 1 ] || [ "$runs" -gt 9 ]; then echo "1 to 9 runs (OPTIONS), not $runs" >&2; echo "$usage" >&2; exit 2; fi
work=$(mktemp -d /tmp/ensemble.XXXXXX)
out=${OUT:-$work/out}
mkdir -p "$out" "$work/runs"
fraction=$(python3 -c "print(round(0.9 / $runs, 2))")
echo "$runs runs side by side within $seconds s, weights back for runs ${weights:-none}"
pids=() i=0
for options in "$@"; do
  i=$((i + 1))
  keep=0
  if [[ ",$weights," == *",$i,"* ]]; then keep=1; fi
  # word splitting of the options is intended: they are tools.train_jax train options
  # shellcheck disable=SC2086
  OUT=$work/runs/run-$i WEIGHTS=$keep XLA_PYTHON_CLIENT_MEM_FRACTION=$fraction \
    bash tools/device_train.sh "$pack" "$work/run-$i" "$seconds" $options --soft-labels --seed $((100 + i)) \
    > "$work/runs/run-$i.out" 2>&1 &
  pids+=($!)
done
rc=0
for i in $(seq 1 "$runs"); do
  wait "${pids[$((i - 1))]}" || rc=1
  echo "run $i: $(tail -n 3 "$work/runs/run-$i.out" | tr '\n' ' ')"
done
for i in $(seq 1 "$runs"); do  # the weights' parts as files of their own, the rest in one archive
  parts=("$work"/runs/run-"$i"/model_weights.h5.part-*)
  if [ -e "${parts[0]}" ]; then mkdir -p "$out/run-$i" && mv "${parts[@]}" "$out/run-$i/"; fi
done
tar -cf "$out/runs.tar" -C "$work/runs" .
echo "done in $SECONDS s"
exit $rc
