#!/usr/bin/env bash
# Run 7's ship decision (the rule of docs/run7/command.sh, fixed before any result): the shipped model and run 7's
# export measured in one run on this machine (python -m benchmarks.evaluate: OpenCV, LiteRT int8, flip TTA, FER+
# majority of PublicTest); run 7 ships if its FER+ accuracy is >= the shipped one's + 0.005 and its ms per face
# (batch of 1) <= 1.5.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=checkpoints/run7
.venv/bin/python -m benchmarks.evaluate > "$out/evaluate-shipped.json" 2>/dev/null
.venv/bin/python -m benchmarks.evaluate --model "$out/export/model.json" --weights "$out/export/model_weights.h5" \
  --figure "$out/confusion_matrix.png" > "$out/evaluate-run7.json" 2>/dev/null
.venv/bin/python - "$out" <<'PY'
import json, sys
out = sys.argv[1]
shipped, run7 = (json.load(open(f"{out}/evaluate-{name}.json")) for name in ("shipped", "run7"))
ships = run7["ferplus_accuracy"] >= shipped["ferplus_accuracy"] + 0.005 and run7["ms_per_face_batch_1"] <= 1.5
print(f"shipped {shipped['ferplus_accuracy']:.4f} at {shipped['ms_per_face_batch_1']} ms; run 7 "
      f"{run7['ferplus_accuracy']:.4f} at {run7['ms_per_face_batch_1']} ms: {'SHIPS' if ships else 'does not ship'}")
open(f"{out}/decision.txt", "w").write("ships\n" if ships else "stays\n")
PY
