#!/usr/bin/env bash
# GPU run 3's files put together here and its ship decision (the rule of docs/gpu3/command.sh, fixed before any
# result): the candidate (run 1 or 2, by its metrics.json) and the shipped model measured in one run on this
# machine (python -m benchmarks.evaluate).
#   bash docs/gpu3/finish.sh FILES_AT     (the device reply's files_at: runs.tar, run-1/ and run-2/ with the parts)
# Every run's soft labels go to docs/teachers/vgg44[w1.5]-ferplus-gpu3-<seed>.* (commit them); the runs' files to
# checkpoints/gpu3/run-<i>/; the candidate's export to checkpoints/gpu3/export/.
set -euo pipefail
cd "$(dirname "$0")/../.."
files=${1:?usage: bash docs/gpu3/finish.sh FILES_AT}
out=checkpoints/gpu3
mkdir -p "$out/runs"
tar -xf "$files/runs.tar" -C "$out/runs"
for folder in "$out"/runs/run-*/; do
  folder=${folder%/} i=${folder##*-}
  # a run that failed brought back only its logs: the others still count
  [ -f "$folder/run.tar" ] || { echo "run $i failed: see $folder/train.log and $folder.out" >&2; continue; }
  tar -xf "$folder/run.tar" -C "$folder"
  name=$(.venv/bin/python -c "import json, sys; m = json.load(open(sys.argv[1])); w = m['width']; \
print(f\"vgg{m['crop'] or 48}{'' if w == 1 else f'w{w:g}'}-ferplus-gpu3-{m['seed']}\")" "$folder/metrics.json")
  for suffix in npz json; do cp "$folder/soft_labels.$suffix" "docs/teachers/$name.$suffix"; done
  if [ -d "$files/run-$i" ]; then cat "$files/run-$i"/model_weights.h5.part-* > "$folder/model_weights.h5"; fi
done
best=$(.venv/bin/python -c "import json, os, sys; print(max((f for f in sys.argv[1:] if \
os.path.isfile(f + '/model_weights.h5')), key=lambda f: json.load(open(f + '/metrics.json'))\
['publictest_accuracy_keras_flip']))" "$out/runs/run-1" "$out/runs/run-2")
echo "candidate: $best"
mkdir -p "$out/export"
cp "$best/model.json" "$best/model_weights.h5" "$best/metrics.json" "$out/export/"
bash docs/evaluate_pair.sh "$out" gpu3 shipped
.venv/bin/python docs/ship_rule.py "$out" shipped gpu3 --gain 0.005 --max-ms 1.5
