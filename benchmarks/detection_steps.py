"""The figures behind two of detection.py's choices, on real clips.

    python -m benchmarks.detection_steps [VIDEO ...]

1. ``SCENE_CHANGE_THRESHOLD``: the mean absolute difference of the thumbnails (``detection.thumbnail``)
   of consecutive frames, over each clip: its distribution, and the frames where it exceeds the
   threshold (the clip's cuts, or a fast pan).
2. ``follow_faces`` against ``detect_faces``: ms per call on the clip's frames, following the faces that
   a full search found on the frame before.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import cv2
import numpy as np

from benchmarks.pipeline import machine
from detection import SCENE_CHANGE_THRESHOLD, detect_faces, face_template, follow_faces, load_face_detector, thumbnail

ROOT = Path(__file__).resolve().parents[1]


def measure(video: Path) -> None:
    capture = cv2.VideoCapture(str(video))
    detector = load_face_detector()
    differences, search_ms, follow_ms, followed = [], [], [], 0
    previous_thumb, previous_gray, previous_boxes = None, None, np.zeros((0, 4), np.int32)
    size = (int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)))
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        small = thumbnail(gray)
        if previous_thumb is not None:
            differences.append(float(cv2.absdiff(previous_thumb, small).mean()))
        if len(previous_boxes):
            templates = [face_template(previous_gray, box) for box in previous_boxes]
            start = time.perf_counter()
            follow_faces(gray, previous_boxes, templates)
            follow_ms.append(1000 * (time.perf_counter() - start))
            followed += len(previous_boxes)
        start = time.perf_counter()
        previous_boxes = detect_faces(gray, detector)[0]
        search_ms.append(1000 * (time.perf_counter() - start))
        previous_thumb, previous_gray = small, gray
    capture.release()
    d = np.array(differences)
    over = np.flatnonzero(d > SCENE_CHANGE_THRESHOLD) + 1
    print(f"## {video.name}: {len(d) + 1} frames, {size[0]}x{size[1]}")
    print(f"thumbnail difference of consecutive frames: median {np.median(d):.2f}, 99th percentile "
          f"{np.percentile(d, 99):.2f}, largest below the threshold {d[d <= SCENE_CHANGE_THRESHOLD].max():.2f}")
    print(f"frames over the threshold ({SCENE_CHANGE_THRESHOLD:g}): {len(over)}: "
          + ", ".join(f"{i} ({d[i - 1]:.1f})" for i in over))
    print(f"detect_faces (whole frame, Haar): median {np.median(search_ms):.2f} ms per frame")
    if follow_ms:
        print(f"follow_faces: median {np.median(follow_ms):.3f} ms per frame, {followed / len(follow_ms):.2f} "
              "faces per frame followed")
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("videos", nargs="*", type=Path)
    args = parser.parse_args()
    shared = ROOT.parent / "shared" / "media" / "videos"
    videos = args.videos or sorted(shared.glob("*.mp4")) or sorted((ROOT / "videos").glob("*.mp4"))
    print(f"machine: {machine()}\n")
    for video in videos:
        measure(video)


if __name__ == "__main__":
    main()
