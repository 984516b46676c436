"""Finding faces, measured against a reference that is not the detector under test: MTCNN.

    python -m benchmarks.face_finding [--sources photos,woman2,hamilton,hamilton-1080p]
                                      [--detectors blazeface,blazeface-whole,haar,hog,fer] [--frames N]
                                      [--min-score-sweep]

The reference boxes are MTCNN's (the ``mtcnn`` wheel 1.0, at full resolution, in a virtual environment of
its own: ``benchmarks/mtcnn_reference.py``), kept in ``docs/benchmarks/reference/``. A reference face is
one MTCNN gives a confidence of at least 0.95 and a side of at least 24 px; a box found matches a
reference face when their IoU is at least 0.3, one to one (greedy, best overlap first). A box that matches
no reference face but overlaps (IoU >= 0.3) a weaker or smaller MTCNN detection is left out of both
counts (MTCNN itself is unsure there), and so is a box that contains the centre of a face that MTCNN
missed and that was marked by eye (``docs/benchmarks/reference/by-eye.json``: the faces of the group
selfie; ``fr_short_hamilton_clip-by-eye.json``: every box the detectors compared here put where MTCNN has
nothing on that clip, judged face or not; its ``about`` says how); every other unmatched box is a false
one. Recall: reference faces matched / reference faces; precision: matched boxes / (matched + false)
boxes. The tables also give the precision against MTCNN alone (every unmatched box false but those on
weaker MTCNN detections).

Photos (``../shared/media/faces`` and ``noface``) are searched whole at full resolution, as
``/api/predict`` does. Clips are run through the stream's finder (``detection.FaceFinder``: a full search
every ``DETECT_EVERY`` frames and on cuts, faces followed between; searches in line) on every frame; the
``every frame`` rows search every frame whole. ``fps`` is frames per wall-clock second of the whole
stream chain (find, classify, track, draw, JPEG-encode; frames decoded beforehand), ``CPU ms`` the
process's CPU time per frame for it (both cores counted). The ``fer`` row is ``fer.FER().detect_emotions``
of the ``fer`` package (install it with ``pip install --no-deps fer==25.10.3``), drawing and encoding as
``benchmarks.pipeline`` does. The Hamilton clip upscaled is every frame resized to 1920x1080 in memory
(``cv2.INTER_CUBIC``), as the reference was made.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import cv2
import numpy as np

from analysis import FaceAnalyzer
from benchmarks.pipeline import fer_pipeline, machine
from detection import DETECT_EVERY, detect_faces, make_face_detector
from detectors.blazeface import BlazeFaceDetector
from drawing import draw_faces, encode_jpeg
from faces import box_iou
from model import default_model

ROOT = Path(__file__).resolve().parents[1]
MEDIA = ROOT.parent / "shared" / "media"
REFERENCE = ROOT / "docs" / "benchmarks" / "reference"
MIN_CONFIDENCE, MIN_SIDE, MIN_IOU = 0.95, 24, 0.3

#: The detectors compared: name -> a function making one.
DETECTORS = {
    "blazeface": lambda: make_face_detector("blazeface"),  # the app's default, as configured
    "blazeface-whole": lambda: BlazeFaceDetector(tile=None),  # the whole frame only
    "blazeface-480": lambda: BlazeFaceDetector(tile=480),  # also 480-px tiles
    "blazeface-no-border": lambda: BlazeFaceDetector(pad=0),
    "blazeface-back": lambda: BlazeFaceDetector(model="back"),
    "haar": lambda: make_face_detector("haar"),
    "hog": lambda: make_face_detector("hog"),
}

SOURCES = {  # name -> (reference file, video or None for photos, upscale to this many rows or None)
    "photos": ("photos.json", None, None),
    "woman2": ("fer_woman2.json", "fer_woman2.mp4", None),
    "hamilton": ("fr_short_hamilton_clip.json", "fr_short_hamilton_clip.mp4", None),
    "hamilton-1080p": ("fr_short_hamilton_clip@1080p.json", "fr_short_hamilton_clip.mp4", 1080),
}

#: video -> faces MTCNN misses, marked by eye: ``{"frame_size": [w, h], "frames": {frame: {"faces": [[x, y],
#: ...], ...}}}``, centres in pixels of frames of that size
BY_EYE = {"fr_short_hamilton_clip.mp4": "fr_short_hamilton_clip-by-eye.json"}


def by_eye_centres(video: str, frame_width: int) -> dict[int, list]:
    """The by-eye face centres of each frame of ``video``, scaled to frames ``frame_width`` px wide."""
    if video not in BY_EYE:
        return {}
    data = json.loads((REFERENCE / BY_EYE[video]).read_text())
    scale = frame_width / data["frame_size"][0]
    return {int(k): [(x * scale, y * scale) for x, y in v["faces"]] for k, v in data["frames"].items()}


def clip_rates(found: list, reference: dict, eye: dict, frames) -> tuple[float, float, float]:
    """``(recall, precision, precision against MTCNN alone)`` of the boxes ``found[i]`` on ``frames``."""
    recall, precision = rates([score(list(found[i]), reference.get(i, []), eye.get(i)) for i in frames])
    return recall, precision, rates([score(list(found[i]), reference.get(i, [])) for i in frames])[1]


class _NoTimer:
    def lap(self, stage: str) -> None:
        pass


NO_TIMER = _NoTimer()  # benchmarks.pipeline's processes report their stages to a timer: here, nobody


def score(found: list, reference: list, by_eye: list | None = None) -> tuple[int, int, int]:
    """``(matched reference faces, reference faces, false boxes)`` of one image (see the module docstring);
    ``by_eye``: centres ``(x, y)`` of real faces, a box on which is never false."""
    faces = [r[:4] for r in reference if r[4] >= MIN_CONFIDENCE and min(r[2], r[3]) >= MIN_SIDE]
    unsure = [r[:4] for r in reference if not (r[4] >= MIN_CONFIDENCE and min(r[2], r[3]) >= MIN_SIDE)]
    pairs = sorted(((box_iou(f, g), i, j) for i, f in enumerate(found) for j, g in enumerate(faces)), reverse=True)
    used_found, used_faces = set(), set()
    for overlap, i, j in pairs:
        if overlap < MIN_IOU:
            break
        if i not in used_found and j not in used_faces:
            used_found.add(i)
            used_faces.add(j)
    false = sum(1 for i, f in enumerate(found) if i not in used_found
                and not any(box_iou(f, u) >= MIN_IOU for u in unsure)
                and not any(f[0] <= x <= f[0] + f[2] and f[1] <= y <= f[1] + f[3] for x, y in by_eye or []))
    return len(used_faces), len(faces), false


def rates(counts: list[tuple[int, int, int]]) -> tuple[float, float]:
    matched, total, false = (sum(c[k] for c in counts) for k in range(3))
    return (matched / total if total else float("nan"),
            matched / (matched + false) if matched + false else float("nan"))


def photos(names: list[str]) -> None:
    reference = json.loads((REFERENCE / "photos.json").read_text())["images"]
    by_eye = json.loads((REFERENCE / "by-eye.json").read_text())["face_centres"]
    images = {key: cv2.imread(str(MEDIA / key)) for key in sorted(reference)}
    print("### Photos, searched whole at full resolution\n")
    columns = [f"{Path(key).name} ({score([], reference[key])[1]})" for key in images]
    print("| detector | " + " | ".join(columns) + " | recall | precision | precision against MTCNN alone | "
          "ms per photo |")
    print("|---" * (len(images) + 5) + "|")
    for name in names:
        if name == "fer":
            continue
        detector = DETECTORS[name]()
        counts, raw, cells, seconds = [], [], [], 0.0
        for key, image in images.items():
            start = time.perf_counter()
            boxes, _ = detect_faces(image, detector, max_pixels=None)
            seconds += time.perf_counter() - start
            count = score(boxes.tolist(), reference[key], by_eye.get(key))
            counts.append(count)
            raw.append(score(boxes.tolist(), reference[key]))
            cells.append(f"{len(boxes)}: {count[0]} ok, {count[2]} false")
        recall, precision = rates(counts)
        print(f"| {name} | " + " | ".join(cells) + f" | {recall:.3f} | {precision:.3f} | {rates(raw)[1]:.3f} | "
              f"{1000 * seconds / len(images):.1f} |")
    print()


def read_frames(video: Path, height: int | None, limit: int | None) -> tuple[list[np.ndarray], float]:
    capture = cv2.VideoCapture(str(video))
    fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
    frames = []
    while limit is None or len(frames) < limit:
        ok, frame = capture.read()
        if not ok:
            break
        if height:
            width = round(frame.shape[1] * height / frame.shape[0] / 2) * 2
            frame = cv2.resize(frame, (width, height), interpolation=cv2.INTER_CUBIC)
        frames.append(frame)
    capture.release()
    return frames, fps


def clip(source: str, names: list[str], limit: int | None) -> None:
    file, video, height = SOURCES[source]
    data = json.loads((REFERENCE / file).read_text())
    frames, fps = read_frames(MEDIA / "videos" / video, height, limit)
    judged = [i for i in map(int, data["frame_indices"]) if i < len(frames)]
    reference = {int(k): v for k, v in data["frames"].items()}
    faces = sum(score([], reference.get(i, []))[1] for i in judged)
    print(f"### {video}{f' upscaled to {frames[0].shape[1]}x{frames[0].shape[0]}' if height else ''}: "
          f"{len(frames)} frames, {len(judged)} with the reference ({faces} reference faces)\n")
    eye = by_eye_centres(video, frames[0].shape[1])
    print("| detector | schedule | recall | precision | precision against MTCNN alone | fps | CPU ms per frame |")
    print("|---|---|---|---|---|---|---|")
    model = default_model()
    for name in names:
        schedules = [("fer", None)] if name == "fer" else [(f"every {DETECT_EVERY} frames, followed between",
                                                            DETECT_EVERY), ("every frame", 1)]
        for label, every in schedules:
            found = []
            if every is None:
                fer_process = fer_pipeline(model)

                def step(frame, process=fer_process):
                    return process(frame, NO_TIMER)
            else:
                analyzer = FaceAnalyzer(model, DETECTORS[name](), detect_every=every)

                def step(frame, analyzer=analyzer):
                    faces = analyzer(frame, 1 / fps)
                    encode_jpeg(draw_faces(frame, faces))
                    return [face.box for face in faces]
            wall, cpu = time.perf_counter(), time.process_time()
            for frame in frames:
                found.append(step(frame.copy()))
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            recall, precision, alone = clip_rates(found, reference, eye, judged)
            print(f"| {name} | {label} | {recall:.3f} | {precision:.3f} | {alone:.3f} | {len(frames) / wall:.1f} | "
                  f"{1000 * cpu / len(frames):.1f} |")
    print()


def min_score_sweep(source: str, thresholds=(0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7)) -> None:
    """Recall and precision of BlazeFace searching every frame of a clip whole, at each ``--min-score``."""
    file, video, height = SOURCES[source]
    reference = {int(k): v for k, v in json.loads((REFERENCE / file).read_text())["frames"].items()}
    frames, _ = read_frames(MEDIA / "videos" / video, height, None)
    eye = by_eye_centres(video, frames[0].shape[1])
    detector = BlazeFaceDetector(min_score=min(thresholds))
    found = [detect_faces(frame, detector) for frame in frames]
    print(f"### --min-score on {video}{f' upscaled to {height} rows' if height else ''}, every frame searched\n")
    print("| min score | recall | precision | precision against MTCNN alone |")
    print("|---|---|---|---|")
    for threshold in thresholds:
        kept = [boxes[scores >= threshold].tolist() for boxes, scores in found]
        recall, precision, alone = clip_rates(kept, reference, eye, range(len(found)))
        print(f"| {threshold:g} | {recall:.3f} | {precision:.3f} | {alone:.3f} |")
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sources", default=",".join(SOURCES))
    parser.add_argument("--detectors",
                        default="blazeface,blazeface-whole,blazeface-480,blazeface-no-border,blazeface-back,haar,hog,fer")
    parser.add_argument("--frames", type=int, default=None, help="at most this many frames of each clip")
    parser.add_argument("--min-score-sweep", action="store_true",
                        help="instead: BlazeFace's recall and precision at several --min-score values")
    args = parser.parse_args()
    names = args.detectors.split(",")
    print(f"machine: {machine()}\nreference: MTCNN, confidence >= {MIN_CONFIDENCE}, side >= {MIN_SIDE} px; "
          f"a match: IoU >= {MIN_IOU}, one to one\n")
    for source in args.sources.split(","):
        if args.min_score_sweep:
            if source != "photos":
                min_score_sweep(source)
        elif not (REFERENCE / SOURCES[source][0]).is_file():
            print(f"### {source}: no reference file {SOURCES[source][0]}\n")
        elif source == "photos":
            photos(names)
        else:
            clip(source, names, args.frames)


if __name__ == "__main__":
    main()
