"""The frame path, chained: a source's frames -> faces found -> classified -> tracked -> drawn -> JPEG.

Each step is its own room (``camera``, ``detection``, ``model.classify_faces``, ``tracking``,
``drawing``); this module only chains them, in the manner of OpenCV's ``samples/python/facedetect.py``:
``analyze_frame`` for one photo, ``FaceAnalyzer`` for the frames of a video, and ``annotated_stream``,
the live stream's loop, which yields each frame's JPEG with its faces for ``streaming.FrameProducer``
to publish. Faces travel as ``faces.Face`` records; JSON is made at the edge (``faces.face_to_dict``).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING

import cv2
import numpy as np

from camera import SourceError, VideoCamera
from detection import (
    DETECT_EVERY,
    DETECT_MAX_PIXELS,
    FaceDetector,
    FaceFinder,
    detect_faces_and_rolls,
    make_face_detector,
)
from drawing import draw_faces, encode_jpeg, message_jpeg
from faces import Face
from model import FacialExpressionModel, classify_faces
from tracking import FaceTracker

if TYPE_CHECKING:  # settings.py takes its defaults from here: the type alone, no import at run time
    from settings import AnalysisSettings

log = logging.getLogger(__name__)

#: Default half-life of the probability smoothing of video faces, in seconds (see tracking.FaceTracker).
SMOOTHING_HALF_LIFE = 0.3

#: With a classify budget, a tracked face is still classified at least every this-many frames (a crowd
#: then costs more than the budget, but no label is older than a quarter second at 30 frames/s).
MAX_CLASSIFY_EVERY = 8

#: Source seconds a lost face's track is kept (with its id) for the face to come back, however many frames
#: that is: a browser camera's frames come slower and less evenly than a file's (tracking.FaceTracker).
TRACK_KEEP_SECONDS = 1.0

#: The browser camera's ``FaceAnalyzer.max_cut_gap``: seconds between two frames beyond which a picture that
#: changed a lot is not taken for a cut to another scene (forgetting every track): a camera does not cut, and
#: one whose answers come a quarter second or more apart sees a moving face change that much.
MAX_CUT_GAP = 0.2

#: Longest wait between two attempts to reconnect a network camera, in seconds (the first is 1 s, then
#: each doubles).
MAX_RECONNECT_WAIT = 30.0


def bgr_and_gray(frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``frame`` as BGR ``(height, width, 3)`` and as grayscale ``(height, width)``, both uint8: a BGR
    frame as it is, a grayscale one (``(height, width)`` or ``(height, width, 1)``) or a BGRA one converted.

    Raises:
        ValueError: not a uint8 array of one of those shapes, or an empty one (the message names its shape
            and dtype).
    """
    shape, dtype = getattr(frame, "shape", None), getattr(frame, "dtype", None)
    if (not isinstance(frame, np.ndarray) or dtype != np.uint8 or frame.ndim not in (2, 3) or frame.size == 0
            or (frame.ndim == 3 and shape[2] not in (1, 3, 4))):
        raise ValueError(f"a frame must be a non-empty uint8 array, BGR (height, width, 3), BGRA or grayscale; "
                         f"not {type(frame).__name__} of shape {shape} and dtype {dtype}")
    if frame.ndim == 2 or shape[2] == 1:
        gray = frame.reshape(shape[:2])
        return cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR), gray
    if shape[2] == 4:
        frame = cv2.cvtColor(frame, cv2.COLOR_BGRA2BGR)
    return frame, cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)


def analyze_frame(frame: np.ndarray, model: FacialExpressionModel, detector: FaceDetector,
                  max_pixels: int | None = DETECT_MAX_PIXELS) -> list[Face]:
    """The faces of one uint8 frame (a photo; BGR, BGRA or grayscale, see ``bgr_and_gray``): searched
    whole (``detection.detect_faces``, with ``max_pixels``), cropped and classified; largest first, without ids.

    Raises:
        ValueError: not such a frame.
    """
    frame, gray = bgr_and_gray(frame)
    boxes, scores, rolls = detect_faces_and_rolls(frame, detector, max_pixels=max_pixels)
    return classify_faces(model, gray, boxes, scores, rolls=rolls)


class FaceAnalyzer:
    """The faces of each frame of one video: found (``detection.FaceFinder``), classified, tracked.

    Args:
        model: the classifier.
        detector: from ``detectors.make_face_detector``; used by one thread at a time.
        smoothing_half_life: seconds; see ``tracking.FaceTracker`` (0: labels of each frame alone).
        detect_every, detect_max_pixels, search_budget: see ``detection.FaceFinder``.
        classify_budget: seconds; ``None`` (offline work): every face of every frame is classified.
            Else (the live stream: half a frame period), when classifying all of a frame's faces would
            take longer than this (the measured seconds per face times the faces), a face that continues
            a track is classified only on every k-th frame, k the smallest whole number that brings the
            cost within the budget, at most ``MAX_CLASSIFY_EVERY`` (taking turns by track id; new faces
            at once), and the tracker keeps its smoothed probabilities in between. With the smoothing's
            half-life of several frames the labels barely change, and a frame with many faces, or a
            slow CPU, no longer makes the stream fall behind its source.
        max_cut_gap: seconds; ``None`` (files, webcams): a frame that differs a lot from the one before is a
            cut to another scene, and every track is forgotten. Else (the browser camera: ``MAX_CUT_GAP``),
            only when it comes at most this long after the one before: frames further apart differ by the
            faces' motion alone, and the tracker's matching decides which face is which.

    Raises:
        ValueError: ``detect_every`` is not an int of at least 1.
    """

    def __init__(self, model: FacialExpressionModel, detector: FaceDetector,
                 smoothing_half_life: float = SMOOTHING_HALF_LIFE, detect_every: int = DETECT_EVERY,
                 detect_max_pixels: int | None = DETECT_MAX_PIXELS, search_budget: float | None = None,
                 classify_budget: float | None = None, max_cut_gap: float | None = None) -> None:
        self.model = model
        self.max_cut_gap = max_cut_gap
        self.finder = FaceFinder(detector, detect_every, detect_max_pixels, search_budget)
        # a face that one full search misses is followed no more until the next: its track must outlive that,
        # with room for a background search that ends later than the one before it
        self.tracker = FaceTracker(half_life=smoothing_half_life, max_missed=max(5, 2 * detect_every),
                                   keep_seconds=TRACK_KEEP_SECONDS)
        self.classify_budget = classify_budget
        self.frames = 0  # frames analysed
        self.faces_classified = 0  # crops classified, over all frames (at most the faces shown)
        self._seconds_per_face = 0.0  # classification time per face, averaged over recent frames

    @classmethod
    def from_settings(cls, model: FacialExpressionModel, settings: AnalysisSettings,
                      search_budget: float | None = None, classify_budget: float | None = None,
                      max_cut_gap: float | None = None) -> FaceAnalyzer:
        """The analyzer of one video under ``settings`` (``settings.AnalysisSettings``: its detector, made here
        with its least score, its ``detect_every`` and its smoothing half-life); the budgets and ``max_cut_gap``
        as for the class.

        Raises:
            ValueError, RuntimeError: the detector cannot be made (see ``detectors.make_face_detector``).
        """
        return cls(model, make_face_detector(settings.detector, settings.min_score), settings.smoothing_half_life,
                   settings.detect_every, search_budget=search_budget, classify_budget=classify_budget,
                   max_cut_gap=max_cut_gap)

    def __call__(self, frame: np.ndarray, dt: float, lap: Callable[[str], None] | None = None) -> list[Face]:
        """The tracked faces of the next uint8 frame of the video (the frame is not modified).

        Args:
            frame: BGR uint8 ``(height, width, 3)`` (BGRA and grayscale are converted: ``bgr_and_gray``).
            dt: source time since the previous frame, in s.
            lap: optional callable, called with ``"detect"`` and ``"classify"`` right after each stage
                (``benchmarks/pipeline.py`` times the stages with it).

        Raises:
            ValueError: not such a frame.
        """
        frame, gray = bgr_and_gray(frame)
        found = self.finder(frame, gray)
        # other faces, even where a box overlaps one of the last scene's (see max_cut_gap)
        if found.cut and (self.max_cut_gap is None or dt <= self.max_cut_gap):
            self.tracker.reset()
        if lap:
            lap("detect")
        chosen = self._faces_to_classify(found.boxes, dt)
        start = time.perf_counter()
        faces = classify_faces(self.model, gray, found.boxes, found.scores, chosen, found.rolls)
        if (count := int(chosen.sum())) > 0:
            seconds = (time.perf_counter() - start) / count
            previous = self._seconds_per_face if self.faces_classified else seconds
            self._seconds_per_face = 0.8 * previous + 0.2 * seconds
        self.frames += 1
        self.faces_classified += count
        faces = self.tracker.update(faces, dt)
        if lap:
            lap("classify")
        return faces

    def _faces_to_classify(self, boxes: np.ndarray, dt: float) -> np.ndarray:
        """Which of this frame's boxes to classify: bool ``(N,)`` (see ``classify_budget``)."""
        cost = self._seconds_per_face * len(boxes)
        if self.classify_budget is None or cost <= self.classify_budget:
            return np.ones(len(boxes), bool)
        every = min(MAX_CLASSIFY_EVERY, math.ceil(cost / max(self.classify_budget, 1e-6)))
        return np.array([track is None or (track + self.frames) % every == 0
                         for track in self.tracker.track_ids(boxes, dt)], bool)

    def close(self) -> None:
        """Stop the finder's background search thread, if any (idempotent)."""
        self.finder.close()


def annotated_jpeg(frame: np.ndarray, faces: list[Face]) -> bytes:
    """The JPEG of a BGR uint8 frame with its faces drawn on it (the frame itself is drawn on)."""
    return encode_jpeg(draw_faces(frame, faces))


def annotated_stream(camera: VideoCamera, analyzer: FaceAnalyzer,
                     close_analyzer: bool = True) -> Iterator[tuple[bytes, list[Face]]]:
    """The live stream's loop: for each frame of ``camera``, its faces drawn on it, as ``(jpeg, faces)``.

    Two stages overlap, as in a pipelined video graph: while frame N is drawn and JPEG-encoded in a
    worker thread (OpenCV releases the GIL there), frame N + 1 is read and its faces found and
    classified; frame N is yielded after that. An HD frame's encoding (several ms) then no longer adds to
    the time each frame takes on the loop's thread, at the cost of one frame of latency.

    Runs until the camera ends or fails (its ``SourceError`` propagates) or the generator is closed;
    then releases the camera and (unless ``close_analyzer`` is false) closes the analyzer.
    """
    encoder = ThreadPoolExecutor(1, thread_name_prefix="jpeg-encode")
    pending: tuple[Future, list[Face]] | None = None  # the previous frame, being encoded
    try:
        last_time = None
        for captured in camera.frames():
            # source time: a file that starts again, or a first frame, counts one frame period
            dt = captured.time - last_time if last_time is not None and captured.time > last_time else 1 / camera.fps
            last_time = captured.time
            faces = analyzer(captured.frame, dt)
            if pending is not None:
                yield pending[0].result(), pending[1]
            pending = encoder.submit(annotated_jpeg, captured.frame, faces), faces
        if pending is not None:
            yield pending[0].result(), pending[1]
    finally:
        encoder.shutdown(wait=True, cancel_futures=True)
        if close_analyzer:
            analyzer.close()
        camera.release()


def reconnecting_stream(open_camera: Callable[[], VideoCamera], analyzer: FaceAnalyzer,
                        name: str) -> Iterator[tuple[bytes, list[Face]]]:
    """``annotated_stream`` of a network camera that comes back: when it cannot be opened or stops
    delivering frames, a message frame (every second) says so and when the next attempt is, waiting 1 s,
    then 2, 4, ... up to ``MAX_RECONNECT_WAIT`` between attempts (reset once frames flow again).
    Runs until the generator is closed; then closes the analyzer."""
    wait = 1.0
    try:
        while True:
            try:
                for item in annotated_stream(open_camera(), analyzer, close_analyzer=False):
                    wait = 1.0
                    yield item
                problem = f"{name} ended"
            except SourceError as exc:
                problem = str(exc)
            log.warning("%s; reconnecting in %g s", problem, wait)
            retry_at = time.monotonic() + wait
            while (left := retry_at - time.monotonic()) > 0:
                yield message_jpeg(f"{problem}. Reconnecting in {left:.0f} s."), []
                time.sleep(min(1.0, left))
            wait = min(2 * wait, MAX_RECONNECT_WAIT)
    finally:
        analyzer.close()
