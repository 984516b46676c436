#!/usr/bin/env bash
# The figures of the README's "Runtime", "Speed", "Stable labels" and "Many viewers" sections, in one run on
# an otherwise idle machine; each command's output goes to docs/benchmarks/<name>.txt. ("Face detectors"
# has its own commands: benchmarks.face_finding and the BlazeFace rows of load.) It measures the app's
# files: the evaluate-*.txt, pipeline-*, label-stability and load-* outputs in git were measured when those
# held member 1 alone (the README says so); run again, they measure the two-network model.
#
#   bash benchmarks/run_all.sh            # needs ../shared/media (the clips) and ../shared/fer2013/test
#
# About 20 minutes on the 2-core machine of the README.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
MEDIA=../shared/media/videos
OUT=docs/benchmarks
mkdir -p "$OUT"
# the fer package for the comparison in pipeline.py, without its dependencies (they would swap OpenCV for
# opencv-contrib-python and bring PyTorch; FER().detect_emotions needs only what the app has installed)
"$PY" -c "import fer" 2>/dev/null || "$PY" -m pip install --quiet --no-deps "fer==25.10.3"
run() {  # run NAME COMMAND...: print and keep the output, without the libraries' start-up noise
  local name=$1; shift
  echo "== $name: $*"
  { echo "\$ $*"; "$@" 2>&1 | grep -v -E '^(I0000|W0000|E0000|WARNING: All log|INFO: Created TensorFlow)'; } | tee "$OUT/$name.txt"
}
run evaluate-litert "$PY" -m benchmarks.evaluate
run evaluate-keras "$PY" -m benchmarks.evaluate --runtime keras
run evaluate-litert-ten-crop "$PY" -m benchmarks.evaluate --shift-tta 4
run evaluate-litert-no-tta "$PY" -m benchmarks.evaluate --no-tta
run pipeline-woman2 "$PY" -m benchmarks.pipeline --video "$MEDIA/fer_woman2.mp4" \
    --pipelines app,app-live,app-every-frame,app-keras,app-hog,course,fer
run pipeline-hamilton "$PY" -m benchmarks.pipeline --video "$MEDIA/fr_short_hamilton_clip.mp4" \
    --pipelines app,app-live,app-every-frame,app-keras,app-hog,course
run pipeline-hamilton-1080p "$PY" -m benchmarks.pipeline --video "$MEDIA/fr_short_hamilton_clip.mp4" --height 1080 \
    --pipelines app,app-live,app-every-frame,app-hog,course
for k in 2 4; do
  run "pipeline-hamilton-detect-every-$k" "$PY" -m benchmarks.pipeline --video "$MEDIA/fr_short_hamilton_clip.mp4" \
      --pipelines app --detect-every "$k"
done
run label-stability "$PY" -m benchmarks.label_stability "$MEDIA/fer_woman2.mp4" "$MEDIA/fr_short_hamilton_clip.mp4"
run load-1 "$PY" -m benchmarks.load --viewers 1 --seconds 30 --settle 5
run load-10 "$PY" -m benchmarks.load --viewers 10 --seconds 30 --settle 5
run load-20 "$PY" -m benchmarks.load --viewers 20 --seconds 60 --settle 15
# the stream of a 1920x1080 file, as a viewer receives it (the Hamilton clip upscaled, as pipeline.py --height does)
HD=$("$PY" -c 'import sys; from pathlib import Path; from benchmarks.pipeline import upscaled_copy; print(upscaled_copy(Path(sys.argv[1]), 1080, 100000))' \
     "$MEDIA/fr_short_hamilton_clip.mp4" 2>/dev/null | tail -1)
run load-1-1080p "$PY" -m benchmarks.load --viewers 1 --seconds 30 --settle 5 --video "$HD"
