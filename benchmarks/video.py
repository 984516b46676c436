"""Video files for the benchmarks and the tests: their frames decoded, and Y4M files for Chromium's fake camera."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from pathlib import Path

import cv2
import numpy as np


def video_frames(video, count: int | None = None, size: tuple[int, int] | None = None) -> Iterator[np.ndarray]:
    """The first ``count`` frames of ``video`` (all when None), BGR, decoded by OpenCV, each resized to
    ``size`` (w, h; ``cv2.INTER_AREA``) when it is given."""
    capture = cv2.VideoCapture(str(video))
    try:
        read = 0
        while count is None or read < count:
            ok, frame = capture.read()
            if not ok:
                break
            read += 1
            yield frame if size is None else cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
    finally:
        capture.release()


def video_fps(video, default: float = 25.0) -> float:
    """The frame rate ``video`` declares (``default`` when it declares none)."""
    capture = cv2.VideoCapture(str(video))
    fps = capture.get(cv2.CAP_PROP_FPS) or default
    capture.release()
    return fps


def write_y4m(path: Path, frames: Iterable[np.ndarray], fps: int = 20) -> Path:
    """Write BGR frames (all of one even size) as a YUV4MPEG2 file, the format of Chromium's fake camera
    (``--use-file-for-fake-video-capture``); the frames may come one at a time (an iterator)."""
    frames = iter(frames)
    first = next(frames, None)
    if first is None:
        raise SystemExit(f"no frame to write to {path}")
    height, width = first.shape[:2]
    with path.open("wb") as out:
        out.write(f"YUV4MPEG2 W{width} H{height} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for frame in itertools.chain([first], frames):
            out.write(b"FRAME\n" + cv2.cvtColor(frame, cv2.COLOR_BGR2YUV_I420).tobytes())
    return path


def camera_y4m(video, out: Path, count: int | None = None, size: tuple[int, int] | None = None,
               fps: int = 30) -> Path:
    """A Y4M file (``write_y4m``) of the first ``count`` frames of ``video`` (all when None), resized to
    ``size`` when it is given, played forward then back: Chromium's fake camera loops it without a jump."""
    images = list(video_frames(video, count, size))
    return write_y4m(out, images + images[-2:0:-1], fps)
