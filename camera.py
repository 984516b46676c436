"""Per-frame work (detect faces, crop, classify, draw) and ``VideoCamera``, which chains it on a source.

The per-frame steps are small functions on plain NumPy arrays, in the manner of OpenCV's
``samples/python/facedetect.py``; ``annotate_frame`` chains them and ``VideoCamera`` only reads frames,
paces them and calls ``annotate_frame``. Frames are OpenCV's BGR ``uint8`` arrays ``(height, width, 3)``;
a face box is ``(x, y, w, h)`` in pixels of the frame, ``(x, y)`` its top-left corner.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from functools import lru_cache
from pathlib import Path
from typing import TypedDict

import cv2
import numpy as np

from model import EMOTIONS_LIST, INPUT_SIZE, FacialExpressionModel
from tracking import FaceTracker

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent

#: OpenCV's frontal-face Haar cascade (Viola & Jones 2001, trained by Rainer Lienhart), shipped in the
#: opencv-python wheels (not in 5.x, hence ``opencv-python-headless<5`` in requirements.txt).
CASCADE_FILE = Path(cv2.data.haarcascades) / "haarcascade_frontalface_default.xml"

#: BGR colour of each emotion's box and label.
EMOTION_COLORS: dict[str, tuple[int, int, int]] = {
    "angry": (40, 40, 220), "disgust": (40, 140, 40), "fear": (160, 60, 160), "happy": (0, 200, 255),
    "neutral": (200, 200, 200), "sad": (200, 120, 40), "surprise": (0, 140, 255),
}

#: Frames of more pixels than this are downscaled to it for face detection only: 854x480 (480p).
DETECT_MAX_PIXELS = 854 * 480

#: Videos: faces are detected and classified on every this-many-th frame (1: all); see FrameAnnotator.
ANALYZE_EVERY = 2

#: Default half-life of the probability smoothing of video faces, in seconds (see tracking.FaceTracker).
SMOOTHING_HALF_LIFE = 0.3

#: Frame rate assumed for a file whose container does not state a usable one (frames/s).
FALLBACK_FPS = 25.0


class FaceResult(TypedDict):
    """One classified face: ``box`` is ``[x, y, w, h]`` in frame pixels; ``probabilities`` maps every
    label of ``EMOTIONS_LIST`` to its probability in [0, 1]; ``emotion`` is the most probable label."""

    box: list[int]
    emotion: str
    probabilities: dict[str, float]


class TrackedFaceResult(FaceResult, total=False):
    """A ``FaceResult`` after ``tracking.FaceTracker``: ``id`` (from 1) persists across frames and
    ``probabilities`` are smoothed over time."""

    id: int


class SourceError(OSError):
    """A video source cannot be opened or stopped delivering frames."""


def load_face_detector(cascade_file: str | os.PathLike = CASCADE_FILE) -> cv2.CascadeClassifier:
    """Load a Haar cascade.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: OpenCV cannot read it as a cascade.
    """
    if not Path(cascade_file).is_file():
        raise FileNotFoundError(f"Haar cascade not found: {cascade_file}")
    detector = cv2.CascadeClassifier(str(cascade_file))
    if detector.empty():
        raise ValueError(f"not a Haar cascade: {cascade_file}")
    return detector


def detect_faces(gray: np.ndarray, detector: cv2.CascadeClassifier, scale_factor: float = 1.2,
                 min_neighbors: int = 5, min_size: int = 30,
                 max_pixels: int | None = DETECT_MAX_PIXELS) -> np.ndarray:
    """Find frontal faces with a Haar cascade.

    Args:
        gray: uint8 grayscale frame ``(height, width)``.
        detector: from ``load_face_detector``.
        scale_factor: image-pyramid step of ``detectMultiScale`` (> 1; smaller finds more, slower).
        min_neighbors: overlapping detections needed to keep a face (higher: fewer false faces).
        min_size: smallest face side searched, in pixels of the (downscaled) detection image.
        max_pixels: a frame of more pixels is downscaled, keeping its aspect ratio, to about this many
            for detection (the cascade's cost grows with the pixel count: a 1080p frame costs about 5
            times a 480p one); ``None``: never.

    Returns:
        int32 array ``(N, 4)`` of boxes ``(x, y, w, h)`` in pixels of ``gray``, largest face first;
        ``(0, 4)`` when none (always for a frame narrower or lower than ``min_size`` after downscaling).
    """
    height, width = gray.shape[:2]
    scale = 1.0 if max_pixels is None or height * width <= max_pixels else math.sqrt(max_pixels / (height * width))
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    if min(size) < min_size:
        return np.zeros((0, 4), np.int32)
    small = gray if scale == 1.0 else cv2.resize(gray, size, interpolation=cv2.INTER_AREA)
    equalized = cv2.equalizeHist(small)  # as OpenCV's facedetect.py sample: robust to exposure
    boxes = detector.detectMultiScale(equalized, scaleFactor=scale_factor, minNeighbors=min_neighbors,
                                      minSize=(min_size, min_size))
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    boxes[:, 0::2] *= width / size[0]
    boxes[:, 1::2] *= height / size[1]
    boxes = np.round(boxes).astype(np.int32)
    return boxes[np.argsort(-boxes[:, 2] * boxes[:, 3], kind="stable")]


def crop_faces(gray: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Cut each box out of ``gray`` and resize it to the network's input.

    Args:
        gray: uint8 grayscale frame ``(height, width)``.
        boxes: ``(N, 4)`` boxes ``(x, y, w, h)``; parts outside the frame are clipped away.

    Returns:
        uint8 array ``(N, 48, 48)``.
    """
    height, width = gray.shape[:2]
    faces = np.empty((len(boxes), INPUT_SIZE, INPUT_SIZE), dtype=np.uint8)
    for i, (x, y, w, h) in enumerate(boxes):
        x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + w, width), min(y + h, height)
        faces[i] = cv2.resize(gray[y0:y1, x0:x1], (INPUT_SIZE, INPUT_SIZE), interpolation=cv2.INTER_AREA)
    return faces


def classify_faces(model: FacialExpressionModel, faces: np.ndarray, boxes: np.ndarray) -> list[FaceResult]:
    """Classify all crops in one batch and pair each with its box (see ``FaceResult``)."""
    probabilities = model.predict_proba(faces)
    return [
        {"box": [int(v) for v in box], "emotion": EMOTIONS_LIST[int(np.argmax(p))],
         "probabilities": {name: round(float(q), 4) for name, q in zip(EMOTIONS_LIST, p)}}
        for box, p in zip(boxes, probabilities)
    ]


def draw_results(frame: np.ndarray, results: list[FaceResult]) -> np.ndarray:
    """Draw every face's box and a label ``"<emotion> <probability>%"`` on ``frame`` in place; returns it."""
    height = frame.shape[0]
    scale = max(0.45, height / 900)
    thickness = max(1, round(height / 360))
    for result in results:
        x, y, w, h = result["box"]
        color = EMOTION_COLORS.get(result["emotion"], (255, 255, 255))
        label = f"{result['emotion']} {result['probabilities'][result['emotion']]:.0%}"
        if "id" in result:
            label = f"{result['id']}: {label}"
        cv2.rectangle(frame, (x, y), (x + w, y + h), color, thickness + 1)
        (tw, th), baseline = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
        top = y - th - baseline - 4 if y - th - baseline - 4 >= 0 else y + h  # below the box at the top edge
        cv2.rectangle(frame, (x, top), (x + tw + 6, top + th + baseline + 4), color, cv2.FILLED)
        cv2.putText(frame, label, (x + 3, top + th + 2), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0),
                    thickness, cv2.LINE_AA)
    return frame


def analyze_frame(frame: np.ndarray, model: FacialExpressionModel, detector: cv2.CascadeClassifier,
                  max_pixels: int | None = DETECT_MAX_PIXELS) -> list[FaceResult]:
    """Detect, crop and classify every face of a BGR frame (see ``detect_faces`` for ``max_pixels``)."""
    gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    boxes = detect_faces(gray, detector, max_pixels=max_pixels)
    return classify_faces(model, crop_faces(gray, boxes), boxes)


def annotate_frame(frame: np.ndarray, model: FacialExpressionModel,
                   detector: cv2.CascadeClassifier) -> list[FaceResult]:
    """``analyze_frame``, then ``draw_results`` on the frame in place; returns the results."""
    results = analyze_frame(frame, model, detector)
    draw_results(frame, results)
    return results


class FrameAnnotator:
    """The per-frame chain of a video: ``analyze_frame``, ``FaceTracker.update``, ``draw_results``.

    Args:
        model, detector: as for ``analyze_frame``.
        smoothing_half_life: seconds; see ``tracking.FaceTracker`` (0: labels of each frame alone).
        analyze_every: detect and classify on every this-many-th frame only; the frames between are
            drawn with the last results (boxes and labels carried over). 1: every frame.
        detect_max_pixels: see ``detect_faces``.
    """

    def __init__(self, model: FacialExpressionModel, detector: cv2.CascadeClassifier,
                 smoothing_half_life: float = SMOOTHING_HALF_LIFE, analyze_every: int = ANALYZE_EVERY,
                 detect_max_pixels: int | None = DETECT_MAX_PIXELS) -> None:
        if analyze_every < 1:
            raise ValueError(f"analyze_every must be at least 1, got {analyze_every}")
        self.model, self.detector = model, detector
        self.tracker = FaceTracker(half_life=smoothing_half_life)
        self.analyze_every, self.detect_max_pixels = analyze_every, detect_max_pixels
        self._frames = 0
        self._since_analysis = 0.0  # source seconds since the last analysed frame
        self._results: list[TrackedFaceResult] = []

    def __call__(self, frame: np.ndarray, dt: float) -> list[TrackedFaceResult]:
        """Annotate a BGR frame in place; ``dt`` is the source time since the previous frame, in s."""
        self._since_analysis += dt
        if self._frames % self.analyze_every == 0:
            faces = analyze_frame(frame, self.model, self.detector, self.detect_max_pixels)
            self._results = self.tracker.update(faces, self._since_analysis)
            self._since_analysis = 0.0
        self._frames += 1
        draw_results(frame, self._results)
        return self._results


_per_thread = threading.local()


def thread_face_detector() -> cv2.CascadeClassifier:
    """The default cascade, loaded once per thread (a cascade is not safe to share between threads)."""
    if not hasattr(_per_thread, "detector"):
        _per_thread.detector = load_face_detector()
    return _per_thread.detector


def encode_jpeg(frame: np.ndarray, quality: int = 80) -> bytes:
    """JPEG bytes of a BGR frame (``quality`` 0-100)."""
    ok, buffer = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError(f"cannot encode a frame of shape {frame.shape} as JPEG")
    return buffer.tobytes()


def message_frame(text: str, size: tuple[int, int] = (640, 360)) -> bytes:
    """JPEG bytes of a dark ``size`` = ``(width, height)`` picture showing ``text``, wrapped to fit."""
    width, height = size
    frame = np.full((height, width, 3), 32, np.uint8)
    words, lines = text.split(), [""]
    for word in words:
        candidate = f"{lines[-1]} {word}".strip()
        if cv2.getTextSize(candidate, cv2.FONT_HERSHEY_SIMPLEX, 0.6, 1)[0][0] > width - 40 and lines[-1]:
            lines.append(word)
        else:
            lines[-1] = candidate
    for i, line in enumerate(lines):
        cv2.putText(frame, line, (20, 40 + 28 * i), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (230, 230, 230), 1, cv2.LINE_AA)
    return encode_jpeg(frame)


@lru_cache(maxsize=1)
def default_model() -> FacialExpressionModel:
    """The model shipped beside this file, loaded once per process."""
    return FacialExpressionModel(ROOT / "model.json", ROOT / "model_weights.h5")


class VideoCamera:
    """Annotated frames from a webcam or a video file.

    A file plays at its own frame rate: ``get_frame`` waits until the next frame is due, never
    running faster than real time, and drops frames (decoded but not processed) when the caller falls
    behind; at its end the file starts again. A webcam delivers frames at its own pace.

    Args:
        source: webcam index (``int``, default 0) or the path of a video file.
        model: the classifier; the shipped model by default.
        detector: a Haar cascade; OpenCV's frontal-face cascade by default.
        smoothing_half_life: seconds; faces are tracked and their probabilities smoothed
            (``tracking.FaceTracker``); 0 labels every frame on its own.

    Raises:
        SourceError: the source cannot be opened (``read`` raises it for a source without frames).
    """

    def __init__(self, source: int | str | os.PathLike = 0, model: FacialExpressionModel | None = None,
                 detector: cv2.CascadeClassifier | None = None,
                 smoothing_half_life: float = SMOOTHING_HALF_LIFE) -> None:
        self.source = source
        self.is_file = not isinstance(source, int)
        self.model = model if model is not None else default_model()
        self.detector = detector if detector is not None else load_face_detector()
        self.annotator = FrameAnnotator(self.model, self.detector, smoothing_half_life)
        self.results: list[TrackedFaceResult] = []  # faces of the last frame from get_frame
        self._last_time: float | None = None  # source time (s) of the last annotated frame
        self.frames_dropped = 0
        self.frame_index = -1  # index in the file of the last frame read (webcam: count of frames read - 1)
        self._capture = self._open()
        fps = self._capture.get(cv2.CAP_PROP_FPS)
        self.fps = fps if self.is_file and math.isfinite(fps) and 1 <= fps <= 240 else FALLBACK_FPS
        self._start = 0.0  # monotonic time at which frame 0 of the current pass is due
        self._next_index = 0  # index of the next frame read from the file
        log.info("opened %s (%s)", source, f"{self.fps:.2f} frames/s" if self.is_file else "webcam")

    def _open(self) -> cv2.VideoCapture:
        if self.is_file and not Path(self.source).is_file():
            raise SourceError(f"video file not found: {self.source}")
        capture = cv2.VideoCapture(str(self.source) if self.is_file else self.source)
        if not capture.isOpened():
            capture.release()
            raise SourceError(f"cannot open video source {self.source}")
        return capture

    def read(self) -> np.ndarray:
        """The next BGR frame, paced as described in the class docstring.

        Raises:
            SourceError: the webcam stopped, or the file yields no frame even from its start.
        """
        if not self.is_file:
            ok, frame = self._capture.read()
            if not ok:
                raise SourceError(f"webcam {self.source} stopped delivering frames")
            self.frame_index += 1
            return frame
        now = time.monotonic()
        if self._next_index == 0:
            self._start = now
        due = int((now - self._start) * self.fps)  # the frame that should be on screen now
        if self._next_index > due:
            time.sleep(self._start + self._next_index / self.fps - now)
        while self._next_index < due and self._capture.grab():  # behind: drop frames
            self._next_index += 1
            self.frames_dropped += 1
        ok, frame = self._capture.read()
        if not ok:  # the end of the file: play it again from the start
            self._capture.release()
            self._capture = self._open()
            self._next_index = 0
            self._start = time.monotonic()
            ok, frame = self._capture.read()
            if not ok:
                raise SourceError(f"no frame could be read from {self.source}")
        self.frame_index = self._next_index
        self._next_index += 1
        return frame

    def get_frame(self) -> bytes:
        """The next frame with every face boxed and labelled, as JPEG bytes (see ``read``)."""
        frame = self.read()
        now = self.frame_index / self.fps if self.is_file else time.monotonic()
        if self._last_time is None or now <= self._last_time:  # the first frame, or the file started again
            dt = 1.0 / self.fps
        else:
            dt = now - self._last_time
        self._last_time = now
        self.results = self.annotator(frame, dt)
        return encode_jpeg(frame)

    def release(self) -> None:
        """Release the capture device or file (idempotent)."""
        if getattr(self, "_capture", None) is not None:
            self._capture.release()
            self._capture = None

    def __enter__(self) -> VideoCamera:
        return self

    def __exit__(self, *exc_info) -> None:
        self.release()

    def __del__(self) -> None:
        self.release()
