#!/bin/bash
# The finish of CPU runs 5 and 6 (issue 14), once for both: evaluate run N alone and two ensembles with it, then
# apply the ship rule fixed before their results: a candidate qualifies if PublicTest as served (FER2013's original
# labels) >= 69.73% (ensemble 4's 69.43% + 0.3) and its cost <= 3 ms per face (LiteRT, batch 1, this machine, nothing
# else running); if both qualify, the more accurate ships (equal: the one with fewer networks).
#   bash docs/finish_ensembles.sh RUN SMALL LARGE
#   SMALL = the shipped two networks then (ensemble 4: member 1, run 3) + run RUN
#   LARGE = those two + run 4 (docs/run4/export) + run RUN
# As they ran, model.json + model_weights.h5 held ensemble 4 (now git show 917a033:model.json).
set -euo pipefail
cd "$(dirname "$0")/.."  # the repository root
RUN=$1 SMALL=ensemble$2 LARGE=ensemble$3
PY=.venv/bin/python
M="2-core Intel Xeon with AVX512-BF16 and AMX, two LiteRT threads, nothing else running"
R=checkpoints/run$RUN/export
evaluate() {  # evaluate OUTPUT_NAME DIR [extra args]
  local name=$1 dir=$2; shift 2
  { echo "\$ python -m benchmarks.evaluate --labels fer2013 --model $dir/model.json --weights $dir/model_weights.h5 $* # $M"
    $PY -m benchmarks.evaluate --labels fer2013 --model $dir/model.json --weights $dir/model_weights.h5 "$@" 2>/dev/null
  } > docs/benchmarks/evaluate-$name.txt
}
evaluate run$RUN $R
$PY -m tools.ensemble --member model.json model_weights.h5 --member $R/model.json $R/model_weights.h5 \
  --out checkpoints/$SMALL --overwrite
$PY -m tools.ensemble --member model.json model_weights.h5 \
  --member docs/run4/export/model.json docs/run4/export/model_weights.h5 \
  --member $R/model.json $R/model_weights.h5 --out checkpoints/$LARGE --overwrite
evaluate $SMALL checkpoints/$SMALL --figure checkpoints/$SMALL/confusion_matrix.png
evaluate $LARGE checkpoints/$LARGE --figure checkpoints/$LARGE/confusion_matrix.png
$PY - "$RUN" "$SMALL" "$LARGE" <<'PY' | tee checkpoints/run$RUN/decision.txt
import json, sys
run, small, large = sys.argv[1:]
def load(name):
    text = open(f"docs/benchmarks/evaluate-{name}.txt").read()
    return json.loads(text[text.index("{"):])
alone = load(f"run{run}")
print(f"run {run} alone: {alone['accuracy']:.4f} ({alone['ms_per_face_batch_1']} ms/face)")
qualified = []
for name, networks in ((small, 3), (large, 4)):
    e = load(name)
    ok = e["accuracy"] >= 0.6973 and e["ms_per_face_batch_1"] <= 3.0
    print(f"{name} ({networks} networks): {e['accuracy']:.4f}, {e['ms_per_face_batch_1']} ms/face, qualifies: {ok}")
    if ok:
        qualified.append((-e["accuracy"], networks, name))
print("ship:", min(qualified)[2] if qualified else "none")
PY
