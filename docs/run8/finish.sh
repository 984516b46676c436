#!/usr/bin/env bash
# Run 8's decision (the rule of docs/run8/command.sh, fixed before any result): the teacher (run 7, the app's files)
# and run 8's export measured in one run on this machine (python -m benchmarks.evaluate: OpenCV, LiteRT int8, flip TTA,
# FER+ majority of PublicTest); run 8 becomes the served default if its FER+ accuracy is within 1 point of the teacher's.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=checkpoints/run8
.venv/bin/python -m benchmarks.evaluate > "$out/evaluate-teacher.json" 2>/dev/null
.venv/bin/python -m benchmarks.evaluate --model "$out/export/model.json" --weights "$out/export/model_weights.h5" \
  --figure "$out/confusion_matrix.png" > "$out/evaluate-run8.json" 2>/dev/null
.venv/bin/python - "$out" <<'PY'
import json, sys
out = sys.argv[1]
teacher, small = (json.load(open(f"{out}/evaluate-{name}.json")) for name in ("teacher", "run8"))
served = small["ferplus_accuracy"] >= teacher["ferplus_accuracy"] - 0.01
print(f"teacher {teacher['ferplus_accuracy']:.4f} at {teacher['ms_per_face_batch_1_one_thread']} ms (1 thread), "
      f"{teacher['gflop_per_face']} GFLOP; run 8 {small['ferplus_accuracy']:.4f} at "
      f"{small['ms_per_face_batch_1_one_thread']} ms, {small['gflop_per_face']} GFLOP; fer "
      f"{small['fer_ms_per_face_one_thread']} ms: {'SERVED' if served else 'stays an option'}")
open(f"{out}/decision.txt", "w").write("served\n" if served else "option\n")
PY
