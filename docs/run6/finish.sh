#!/bin/bash
# After run 6's notebook: evaluate run 6 alone and two ensembles with it.
#   ensemble 8 = the shipped two networks (member 1, run 3) + run 6
#   ensemble 9 = the shipped two + run 4 (docs/run4/export) + run 6
# Ship rule, fixed before any result (issue 14 item 4): a candidate qualifies if PublicTest as served >= 69.73%
# (ensemble 4's 69.43% + 0.3) and its cost <= 3 ms per face (LiteRT, batch 1, this machine, nothing else running);
# if both qualify, the more accurate ships (equal: the one with fewer networks).
set -euo pipefail
cd "$(dirname "$0")/../.."  # the repository root
PY=.venv/bin/python
M="2-core Intel Xeon with AVX512-BF16 and AMX, two LiteRT threads, nothing else running"
R6=checkpoints/run6/export
run() { echo "\$ python -m $* # $M"; }
evaluate() {  # evaluate OUTPUT_NAME DIR [extra args]
  local name=$1 dir=$2; shift 2
  { run benchmarks.evaluate --model $dir/model.json --weights $dir/model_weights.h5 "$@"
    $PY -m benchmarks.evaluate --model $dir/model.json --weights $dir/model_weights.h5 "$@" 2>/dev/null
  } > docs/benchmarks/evaluate-$name.txt
}
evaluate run6 $R6
$PY -m tools.ensemble --member model.json model_weights.h5 --member $R6/model.json $R6/model_weights.h5 \
  --out checkpoints/ensemble8 --overwrite
$PY -m tools.ensemble --member model.json model_weights.h5 \
  --member docs/run4/export/model.json docs/run4/export/model_weights.h5 \
  --member $R6/model.json $R6/model_weights.h5 --out checkpoints/ensemble9 --overwrite
evaluate ensemble8 checkpoints/ensemble8 --figure checkpoints/ensemble8/confusion_matrix.png
evaluate ensemble9 checkpoints/ensemble9 --figure checkpoints/ensemble9/confusion_matrix.png
$PY - <<'PY' | tee checkpoints/run6/decision.txt
import json
def load(name):
    text = open(f"docs/benchmarks/evaluate-{name}.txt").read()
    return json.loads(text[text.index("{"):])
r6 = load("run6")
print(f"run 6 alone: {r6['accuracy']:.4f} ({r6['ms_per_face_batch_1']} ms/face)")
qualified = []
for name, networks in (("ensemble8", 3), ("ensemble9", 4)):
    e = load(name)
    ok = e["accuracy"] >= 0.6973 and e["ms_per_face_batch_1"] <= 3.0
    print(f"{name} ({networks} networks): {e['accuracy']:.4f}, {e['ms_per_face_batch_1']} ms/face, qualifies: {ok}")
    if ok:
        qualified.append((-e["accuracy"], networks, name))
print("ship:", min(qualified)[2] if qualified else "none")
PY
