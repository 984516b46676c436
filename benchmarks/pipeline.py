"""Per-stage cost of the annotation pipeline on a real video, against the course's loop and `fer`.

    python -m benchmarks.pipeline [--video PATH] [--frames 300] [--height 1080] [--pipelines app,course,fer]
        [--model MODEL_JSON WEIGHTS_H5]

Every pipeline reads the same frames of the same file, in one process, as fast as it can (``app-live``
alone is paced, see below):
decode, detect, classify, draw, JPEG-encode. It prints per-stage milliseconds per frame (averaged over
all frames, analysed or not), the process's CPU milliseconds per frame (all its threads), frames/s, the
faces shown, the face recall against full-resolution Haar detection on every frame, and each pipeline's
frames/s relative to the app's (``app``'s row, else ``app-blazeface``'s).

The recall reference is the app's detector (scale 1.2, 5 neighbours) run on every frame at full
resolution, searching the same face sizes as the app: from 30 px, times the app's downscaling factor
for frames over ``detection.DETECT_MAX_PIXELS``. A reference face counts as found when a face shown on
that frame overlaps it with an IoU of at least 0.4. Haar flickers (a face found on one frame is missed
on the next), so the reference's recall of itself one frame later is printed too, as the noise floor of
this measure. The precision is the share of faces shown that overlap a reference face in the same way
(Haar's own false faces count as right). Since a one-frame flicker of Haar cannot be told from a face,
the recall of the *steady* reference faces is printed too: those the reference also finds on the frames
just before and after.

- ``app``: this project's stream pipeline, ``analysis.FaceAnalyzer`` with its defaults but the Haar detector
  (the app's default is BlazeFace: ``benchmarks.face_finding`` compares the detectors) (full-frame
  detection on every ``detection.DETECT_EVERY``-th frame and on scene changes, the faces followed by
  template matching between, classification of every frame with the LiteRT int8 model).
- ``app-blazeface``: the same as ``app`` with the app's default detector, BlazeFace: the pipeline the
  stream serves by default.
- ``app-live``: the same as the live stream runs it: the frames paced at the source's frame rate (as a
  webcam or ``VideoCamera`` delivers them) and the full-frame searches moved to a worker thread if
  one takes longer than a frame period (``detection.FaceFinder(search_budget=1 / fps)``); its frames/s is the
  rate achieved (at most the source's), its stage times leave out the worker thread's searches.
- ``app-every-frame``: the same as ``app``, detecting on the whole of every frame.
- ``app-keras``: the same as ``app`` with the Keras runtime instead of LiteRT.
- ``app-hog``: the same as ``app`` with dlib's HOG face detector (``--detector hog``) instead of Haar.
- ``course``: the loop of the course this project descends from: Haar (scale 1.3, 5 neighbours) on the
  full frame, one ``model.predict()`` per face, the same model (Keras).
- ``fer``: ``fer.FER().detect_emotions()`` (justinshenk/fer, its defaults: Haar, faces from 50 px, its
  quantized TFLite mini-Xception), if the package imports in this environment. Its declared dependencies
  would replace opencv-python-headless with opencv-contrib-python and pull in PyTorch, none of which that
  call uses, so install it alone: ``pip install --no-deps fer==25.10.3`` (``benchmarks/run_all.sh`` does).

``--height 1080`` first writes an upscaled copy of the video (mp4v) to a temporary file, so decoding an
HD file is measured too. ``--model`` classifies with another export than the app's files (as ``main.py
--model``), e.g. the small network of issue 37.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from analysis import FaceAnalyzer
from benchmarks.serving import add_model_argument
from camera import VideoCamera
from detection import DETECT_EVERY, DETECT_MAX_PIXELS, detect_faces, load_face_detector, make_face_detector
from drawing import draw_faces, encode_jpeg
from faces import box_iou
from model import EMOTIONS_LIST, FacialExpressionModel, default_model

ROOT = Path(__file__).resolve().parents[1]

STAGES = ("decode", "detect", "classify", "draw", "encode")


def default_video() -> Path:
    shared = ROOT.parent / "shared" / "media" / "videos" / "fer_woman2.mp4"
    return shared if shared.exists() else next((ROOT / "videos").glob("*.mp4"))


def upscaled_copy(video: Path, height: int, frames: int) -> Path:
    """Write the first ``frames`` frames of ``video`` resized to ``height`` rows to a temporary MP4."""
    capture = cv2.VideoCapture(str(video))
    fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
    out = Path(tempfile.mkdtemp()) / f"{video.stem}_{height}p.mp4"
    writer = None
    for _ in range(frames):
        ok, frame = capture.read()
        if not ok:
            break
        width = round(frame.shape[1] * height / frame.shape[0] / 2) * 2
        frame = cv2.resize(frame, (width, height), interpolation=cv2.INTER_CUBIC)
        if writer is None:
            writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
        writer.write(frame)
    capture.release()
    writer.release()
    return out


def machine() -> str:
    """CPU model, its widest vector instructions, and core count, for the report (the LiteRT kernels are
    several times faster with AVX-512 than with AVX2 alone)."""
    try:
        info = Path("/proc/cpuinfo").read_text()
        cpu = next(line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name"))
        flags = set(next(line.split(":", 1)[1] for line in info.splitlines() if line.startswith("flags")).split())
        vector = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "no AVX2"
    except (OSError, StopIteration):
        cpu, vector = platform.processor() or platform.machine(), "vector unit unknown"
    return f"{cpu} ({vector}), {os.cpu_count()} logical cores, OpenCV {cv2.__version__}"


def recall(found: list[np.ndarray], reference: list[np.ndarray]) -> float:
    """Share of reference boxes matched (IoU >= 0.4) by a found box of the same frame; with the
    arguments swapped, the precision."""
    total = sum(len(r) for r in reference)
    hits = sum(any(box_iou(r, f) >= 0.4 for f in fs) for fs, rs in zip(found, reference, strict=True) for r in rs)
    return hits / total if total else float("nan")


class Timer:
    def __init__(self) -> None:
        self.seconds = dict.fromkeys(STAGES, 0.0)
        self.last = time.perf_counter()

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.seconds[stage] += now - self.last
        self.last = now


def steady(reference: list[np.ndarray]) -> list[np.ndarray]:
    """The reference faces that the reference also finds (IoU >= 0.4) on the frames just before and just
    after (on the one neighbour of the first and last frames): faces, not one-frame flickers of Haar."""
    def found(box, boxes):
        return any(box_iou(box, other) >= 0.4 for other in boxes)

    out = []
    for i, boxes in enumerate(reference):
        neighbours = [reference[j] for j in (i - 1, i + 1) if 0 <= j < len(reference)]
        out.append(np.asarray([b for b in boxes if all(found(b, n) for n in neighbours)]).reshape(-1, 4))
    return out


def run(video: Path, frames: int, process, pace_fps: float | None = None) -> tuple[dict, list, float, float]:
    """Read up to ``frames`` frames and time them: decode here, then ``process(frame, timer)``, which
    calls ``timer.lap(stage)`` after each of its stages and returns the face boxes it found. With
    ``pace_fps``, frame i is read no earlier than i / pace_fps s after the first (as a live source
    delivers it; waiting is not timed). Returns the stage seconds, the boxes, the wall-clock seconds and
    the process's CPU seconds (every thread's, ``time.process_time``)."""
    capture = cv2.VideoCapture(str(video))
    timer, boxes_per_frame = Timer(), []
    start, cpu_start = time.perf_counter(), time.process_time()
    try:
        for i in range(frames):
            if pace_fps:
                time.sleep(max(0.0, start + i / pace_fps - time.perf_counter()))
            timer.last = time.perf_counter()
            ok, frame = capture.read()
            if not ok:
                break
            timer.lap("decode")
            boxes_per_frame.append(np.asarray(process(frame, timer)).reshape(-1, 4))
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
        if pace_fps:  # n frames span n periods of the source: the rate achieved is at most the source's
            wall = max(wall, len(boxes_per_frame) / pace_fps)
    finally:
        capture.release()
        if hasattr(process, "close"):
            process.close()
    return timer.seconds, boxes_per_frame, wall, cpu


def app_pipeline(model, fps: float, detector: str = "haar", **options):
    """This project's stream chain, ``analysis.FaceAnalyzer`` (``options`` go to it), drawing, then JPEG
    encoding (as ``analysis.annotated_stream``)."""
    analyzer = FaceAnalyzer(model, make_face_detector(detector), **options)

    def process(frame, timer):
        faces = analyzer(frame, 1.0 / fps, lap=timer.lap)
        draw_faces(frame, faces)
        timer.lap("draw")
        encode_jpeg(frame)
        timer.lap("encode")
        return [face.box for face in faces]

    process.close = analyzer.close
    return process


def course_pipeline(model):
    """The course's camera.py loop: Haar 1.3/5 on the full frame, ``model.predict`` on each face."""
    cascade = load_face_detector().cascade
    keras_model = model.keras_model

    def process(frame, timer):
        gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        faces = cascade.detectMultiScale(gray, 1.3, 5)
        timer.lap("detect")
        labels = []
        for (x, y, w, h) in faces:
            roi = cv2.resize(gray[y:y + h, x:x + w], (48, 48)).astype(np.float32)
            probabilities = keras_model.predict(roi[np.newaxis, :, :, np.newaxis], verbose=0)
            labels.append(EMOTIONS_LIST[int(np.argmax(probabilities))])
        timer.lap("classify")
        for (x, y, w, h), label in zip(faces, labels, strict=True):
            cv2.putText(frame, label, (x, y), cv2.FONT_HERSHEY_SIMPLEX, 1, (255, 255, 0), 2)
            cv2.rectangle(frame, (x, y), (x + w, y + h), (255, 0, 0), 2)
        timer.lap("draw")
        encode_jpeg(frame)
        timer.lap("encode")
        return faces

    return process


def fer_pipeline(model):
    """``fer.FER().detect_emotions`` (detection and classification in one call, counted as 'detect')."""
    try:
        from fer import FER
    except ImportError:  # fer 25.x no longer exports FER from the package itself
        from fer.fer import FER

    detector = FER()

    def process(frame, timer):
        faces = detector.detect_emotions(frame)
        timer.lap("detect")
        for face in faces:
            x, y, w, h = face["box"]
            cv2.rectangle(frame, (x, y), (x + w, y + h), (255, 0, 0), 2)
            label = max(face["emotions"], key=face["emotions"].get)
            cv2.putText(frame, label, (x, y), cv2.FONT_HERSHEY_SIMPLEX, 1, (255, 255, 0), 2)
        timer.lap("draw")
        encode_jpeg(frame)
        timer.lap("encode")
        return [f["box"] for f in faces]

    return process


def reference_boxes(video: Path, frames: int) -> tuple[list[np.ndarray], int]:
    """Full-resolution detection on every frame (see the module docstring) and its minimum face (px)."""
    detector = load_face_detector()
    capture = cv2.VideoCapture(str(video))
    boxes, min_size = [], 30
    for _ in range(frames):
        ok, frame = capture.read()
        if not ok:
            break
        gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        min_size = round(30 * max(1.0, (gray.size / DETECT_MAX_PIXELS) ** 0.5))
        boxes.append(detect_faces(gray, detector, min_size=min_size, max_pixels=None)[0])
    capture.release()
    return boxes, min_size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--video", type=Path, default=None)
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--height", type=int, default=None, help="upscale the video to this many rows first")
    parser.add_argument("--pipelines", default="app,app-every-frame,app-keras,course,fer")
    parser.add_argument("--detect-every", type=int, default=DETECT_EVERY,
                        help="the app's full-frame detection interval (detection.DETECT_EVERY by default)")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    add_model_argument(parser)
    args = parser.parse_args()
    video = args.video or default_video()
    if args.height:
        video = upscaled_copy(video, args.height, args.frames)
    with VideoCamera(video, paced=False, loop=False) as camera:
        first = camera.read().frame
        size, source_fps = f"{first.shape[1]}x{first.shape[0]}", camera.fps
    model = FacialExpressionModel(*args.model) if args.model else default_model()
    keras_model = FacialExpressionModel(*(args.model or ()), runtime="keras")
    for m in (model, keras_model):
        m.predict_proba(np.zeros((2, 48, 48), np.uint8))  # warm up
    reference, reference_min = reference_boxes(video, args.frames)
    pipelines = {
        "app": lambda: app_pipeline(model, source_fps, detect_every=args.detect_every),
        "app-blazeface": lambda: app_pipeline(model, source_fps, detector="blazeface", detect_every=args.detect_every),
        "app-live": lambda: app_pipeline(model, source_fps, detect_every=args.detect_every,
                                         search_budget=1.0 / source_fps),
        "app-every-frame": lambda: app_pipeline(model, source_fps, detect_every=1),
        "app-keras": lambda: app_pipeline(keras_model, source_fps, detect_every=args.detect_every),
        "app-hog": lambda: app_pipeline(model, source_fps, detector="hog", detect_every=args.detect_every),
        "course": lambda: course_pipeline(keras_model),
        "fer": lambda: fer_pipeline(keras_model),
    }
    steady_reference = steady(reference)
    rows = {}
    for name in args.pipelines.split(","):
        try:
            paced = source_fps if name == "app-live" else None
            seconds, boxes, wall, cpu = run(video, args.frames, pipelines[name](), pace_fps=paced)
        except (ImportError, RuntimeError) as exc:  # fer, or dlib for app-hog, not installed
            print(f"{name}: skipped ({exc})")
            continue
        n = len(boxes)
        rows[name] = {
            **{f"{stage}_ms": round(1000 * seconds[stage] / n, 2) for stage in STAGES},
            "fps": round(n / (wall if paced else sum(seconds.values())), 1), "frames": n,
            "cpu_ms": round(1000 * cpu / n, 2),
            "faces": int(sum(len(b) for b in boxes)), "recall": round(recall(boxes, reference), 3),
            "steady_recall": round(recall(boxes, steady_reference), 3),
            "precision": round(recall(reference, boxes), 3),
        }
    print(f"machine: {machine()}; app: full-frame detection every {args.detect_every} frame(s); model: "
          f"{' + '.join(map(str, args.model)) if args.model else 'the app default'} ({model.litert_quantization})")
    print(f"video: {video.name}, {size}, {source_fps:.2f} frames/s; {len(reference)} frames; reference faces "
          f"(full-resolution Haar, faces from {reference_min} px): {sum(len(r) for r in reference)}")
    print(f"the reference's own consistency: {recall(reference[1:], reference[:-1]):.3f} of its faces are found "
          f"again on the next frame; {sum(len(r) for r in steady_reference)} of its faces are steady (found on "
          f"the frames before and after too)")
    header = ["pipeline", *[f"{s} ms" for s in STAGES], "CPU ms", "frames/s", "faces", "recall", "recall, steady faces",
              "precision", "vs app"]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    base = next((name for name in ("app", "app-blazeface") if name in rows), None)  # the "vs app" column's
    for name, row in rows.items():
        ratio = row["fps"] / rows[base]["fps"] if base else float("nan")
        cells = [name, *[f"{row[f'{s}_ms']:.1f}" for s in STAGES], f"{row['cpu_ms']:.1f}", f"{row['fps']:.1f}",
                 str(row["faces"]),
                 f"{row['recall']:.3f}", f"{row['steady_recall']:.3f}", f"{row['precision']:.3f}",
                 "paced" if name == "app-live" else f"{ratio:.2f}"]
        print("| " + " | ".join(cells) + " |")
    if args.json:
        args.json.write_text(json.dumps({"video": str(video), "size": size, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
