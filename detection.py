"""When and where to look for faces: one full-frame search, following faces between searches, and cuts.

The detectors themselves are in ``detectors`` (one interface, ``detect(frame) -> boxes, scores, keypoints``,
a module per detector); this module keeps the search schedule and re-exports the detectors' public names.
The steps are small functions on arrays, as in OpenCV's ``samples/python/facedetect.py``: ``detect_faces``
searches a whole frame, ``follow_faces`` finds known faces again near their last boxes, and
``scene_changed`` tells a cut. ``FaceFinder`` chains them for a video: it decides on each frame whether to
search the whole frame (in line, or in a worker thread when searches are slow) or to follow. Frames here
are uint8 BGR ``(height, width, 3)`` or grayscale ``(height, width)``; boxes are int32 ``(N, 4)`` rows
``(x, y, w, h)``; scores float32 ``(N,)`` in [0, 1], NaN where the detector gives none.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import NamedTuple

import cv2
import numpy as np

from checks import check_number
from detectors import (
    DEFAULT_DETECTOR,
    DETECT_MAX_PIXELS,
    DETECTOR_NAMES,
    DETECTORS,
    MIN_SCORE,
    Detections,
    FaceDetector,
    SearchSettings,
    make_face_detector,
    roll_of,
    thread_face_detector,
)
from detectors.blazeface import BlazeFaceDetector
from detectors.haar import CASCADE_FILE, HaarFaceDetector, load_face_detector
from detectors.hog import HogFaceDetector
from faces import crop_faces, rectangle

#: Public names: the search schedule's, and the detectors' that other modules import from here (re-exported).
__all__ = [
    "CASCADE_FILE", "DEFAULT_DETECTOR", "DETECTORS", "DETECTOR_NAMES", "DETECT_EVERY", "DETECT_MAX_PIXELS",
    "MIN_FOLLOW_SCORE", "MIN_SCORE", "SCENE_CHANGE_THRESHOLD", "TEMPLATE_SIDE", "THUMBNAIL_SIZE",
    "BlazeFaceDetector", "Detections", "FaceDetector", "FaceFinder", "Found", "HaarFaceDetector", "HogFaceDetector",
    "SearchSettings", "detect_faces", "detect_faces_and_rolls", "face_template", "follow_faces",
    "load_face_detector", "make_face_detector", "roll_of", "scene_changed", "thread_face_detector", "thumbnail",
]

log = logging.getLogger(__name__)

#: Videos: the whole frame is searched for faces on every this-many-th frame (1: all) and on scene
#: changes; on the frames between, only the neighbourhood of each known face (see ``FaceFinder``).
DETECT_EVERY = 8

#: Side (px) of the grayscale face templates that ``follow_faces`` matches between full searches.
TEMPLATE_SIDE = 32

#: ``FaceFinder`` drops a followed face whose template matches no better than this (normalised
#: cross-correlation): it has left the picture or turned away, until the next full search finds it. Chosen on
#: issue 32's crowd mosaic (every 8th frame searched, the faces followed between): 0.5 kept recall 0.899 at
#: precision 0.985, 0.4 0.903 at 0.977, 0.3 0.910 at 0.972, 0.2 0.910 at 0.967 (small faces, whose templates
#: are enlarged, match less well from frame to frame).
MIN_FOLLOW_SCORE = 0.3

#: Size (width, height) of the grayscale thumbnails that ``scene_changed`` compares.
THUMBNAIL_SIZE = (32, 18)

#: Mean absolute difference of two thumbnails (grey levels, 0-255) above which the scene has changed.
#: Chosen between the differences of consecutive frames of one shot and those of the cuts of the sample
#: clips (docs/benchmarks/detection-steps.txt, ``python -m benchmarks.detection_steps``). ``FaceFinder``
#: compares a frame with the last one searched whole, so a fast pan also passes the threshold after a few
#: frames and gets a full search: wanted, since its faces move far.
SCENE_CHANGE_THRESHOLD = 20.0


def detect_faces(frame: np.ndarray, detector: FaceDetector, scale_factor: float = 1.2,
                 min_neighbors: int = 5, min_size: int = 30,
                 max_pixels: int | None = DETECT_MAX_PIXELS) -> tuple[np.ndarray, np.ndarray]:
    """Search a whole frame for faces: ``detect_faces_and_rolls`` without the rolls."""
    boxes, scores, _ = detect_faces_and_rolls(frame, detector, scale_factor, min_neighbors, min_size, max_pixels)
    return boxes, scores


def detect_faces_and_rolls(frame: np.ndarray, detector: FaceDetector, scale_factor: float = 1.2,
                           min_neighbors: int = 5, min_size: int = 30, max_pixels: int | None = DETECT_MAX_PIXELS
                           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Search a whole frame for faces: ``detector.detect`` with these settings (``detectors.SearchSettings``),
    its boxes rounded to whole pixels and ordered largest first.

    Args:
        frame: uint8 BGR ``(height, width, 3)`` or grayscale ``(height, width)``.
        detector: from ``make_face_detector`` (or ``load_face_detector``), or any ``FaceDetector``.
        scale_factor, min_neighbors: a Haar cascade's image-pyramid step (> 1; smaller finds more,
            slower) and the overlapping detections it needs to keep a face (higher: fewer false faces).
        min_size: Haar and HOG: smallest face side searched, in pixels of the (downscaled) search image.
        max_pixels: Haar and HOG: a frame of more pixels is downscaled, keeping its aspect ratio, to
            about this many for the search (their cost grows with the pixel count); ``None``: never.
            BlazeFace scales every frame to its own input size (see ``BlazeFaceDetector``).

    Returns:
        ``(boxes, scores, rolls)``: int32 ``(N, 4)`` boxes ``(x, y, w, h)`` in pixels of ``frame``, largest
        face first, float32 ``(N,)`` scores in [0, 1] (NaN for Haar and HOG, which give none), and float32
        ``(N,)`` rolls in degrees in (-180, 180] from the eye keypoints (``detectors.roll_of``; NaN for Haar
        and HOG, which give no keypoints).

    Raises:
        whatever the detector raises (``cv2.error`` for a Haar ``scale_factor`` of 1 or less).
    """
    found = detector.detect(frame, SearchSettings(scale_factor, min_neighbors, min_size, max_pixels))
    boxes = np.round(found.boxes).astype(np.int32).reshape(-1, 4)
    order = np.argsort(-boxes[:, 2] * boxes[:, 3], kind="stable")
    return boxes[order], found.scores[order], roll_of(found.keypoints)[order]


def face_template(gray: np.ndarray, box) -> np.ndarray:
    """The face inside ``box`` ``(x, y, w, h)`` of a uint8 grayscale frame, as a uint8
    ``(TEMPLATE_SIDE, TEMPLATE_SIDE)`` template for ``follow_faces`` (the box is clipped to the frame)."""
    return crop_faces(gray, np.asarray(box).reshape(1, 4), TEMPLATE_SIDE)[0]


def follow_faces(gray: np.ndarray, boxes: np.ndarray, templates, margin: float = 0.3
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Find each known face again near its last box by template matching: the cheap step between
    two ``detect_faces`` calls.

    Each box is widened by ``margin`` times its size on every side; that region (its parts outside the
    frame filled with the edge pixels repeated, as the template was) is scaled so the face is
    ``TEMPLATE_SIDE`` px wide and searched for the face's template (normalised cross-correlation,
    ``cv2.TM_CCOEFF_NORMED``); the box moves to the best match and keeps its size (the next full
    search corrects the size): a fraction of a millisecond per face against tens for a full search
    (docs/benchmarks/detection-steps.txt).

    Args:
        gray: uint8 grayscale frame ``(height, width)``.
        boxes: ``(N, 4)`` last boxes ``(x, y, w, h)`` in pixels of ``gray``.
        templates: N uint8 templates from ``face_template``, one per box.

    Returns:
        ``(boxes, scores)``: int32 ``(N, 4)`` moved boxes, and float32 ``(N,)`` match scores in
        [-1, 1] (1: the same picture; a box whose region lies outside the frame keeps its place,
        score 0).
    """
    boxes = np.asarray(boxes, dtype=np.int32).reshape(-1, 4)
    out, scores = boxes.copy(), np.zeros(len(boxes), np.float32)
    for i, ((x, y, w, h), template) in enumerate(zip(boxes, templates, strict=True)):
        if rectangle(gray, x, y, w, h) is None:
            continue  # nothing of the face is in the frame
        x0, y0 = int(x - margin * w), int(y - margin * h)
        x1, y1 = int(x + w + margin * w), int(y + h + margin * h)
        sx, sy = TEMPLATE_SIDE / w, TEMPLATE_SIDE / h
        size = (round((x1 - x0) * sx), round((y1 - y0) * sy))
        if min(size) < TEMPLATE_SIDE:
            continue
        region = cv2.resize(rectangle(gray, x0, y0, x1 - x0, y1 - y0), size, interpolation=cv2.INTER_AREA)
        _, scores[i], _, (mx, my) = cv2.minMaxLoc(cv2.matchTemplate(region, template, cv2.TM_CCOEFF_NORMED))
        out[i, :2] = (x0 + round(mx / sx), y0 + round(my / sy))
    return out, scores


def thumbnail(gray: np.ndarray) -> np.ndarray:
    """A uint8 ``THUMBNAIL_SIZE`` thumbnail of a grayscale frame, for ``scene_changed``."""
    step = max(1, min(gray.shape[0] // THUMBNAIL_SIZE[1], gray.shape[1] // THUMBNAIL_SIZE[0]) // 2)
    return cv2.resize(gray[::step, ::step], THUMBNAIL_SIZE, interpolation=cv2.INTER_AREA)


def scene_changed(previous: np.ndarray | None, current: np.ndarray,
                  threshold: float = SCENE_CHANGE_THRESHOLD) -> bool:
    """Whether two uint8 thumbnails (``THUMBNAIL_SIZE``) differ by more than ``threshold`` on average
    (always for a first thumbnail, ``previous`` ``None``)."""
    if previous is None:
        return True
    return float(cv2.absdiff(previous, current).mean()) > threshold


class Found(NamedTuple):
    """The faces ``FaceFinder`` found on a frame: int32 ``boxes`` ``(N, 4)`` ``(x, y, w, h)`` and float32
    ``scores`` ``(N,)`` (the detector's confidence at the last full search; NaN where it gives none);
    ``cut``: the picture cut to another scene since the previous frame, or changed size, so these faces
    are not those of the previous frame (a tracker starts afresh); ``rolls``: float32 ``(N,)`` degrees, each
    face's roll at the last full search (``detect_faces_and_rolls``; NaN where the detector gives none), or
    ``None`` for none known."""

    boxes: np.ndarray
    scores: np.ndarray
    cut: bool = False
    rolls: np.ndarray | None = None


class FaceFinder:
    """The boxes of the faces on every frame of a video, searching the whole frame only now and then.

    The full-frame search (``detect_faces``), by far the costliest step, runs on every ``detect_every``-th
    frame and on any frame that differs clearly from the last one searched (a cut, a camera pan; see
    ``scene_changed``). On the frames between, each known face is found again near its last box
    (``follow_faces``), so boxes follow the faces on every frame; a new face appears within
    ``detect_every`` frames.

    With a ``search_budget`` (the live stream's choice: one frame period), once two full searches in a
    row take longer than that, the searches move to a worker thread, off the frames' path: the frame
    that asks for one gets the faces followed so far, and the faces the search finds are followed from
    the frame it searched to the current one when it is done (a frame or two later). A frame then never
    waits for a search, so an HD source keeps its frame rate and the search uses a second core. Where a
    search fits the budget it stays in line and its faces are those of the frame searched. Results in
    the worker depend on timing, so offline work keeps the default (``None``).

    Args:
        detector: from ``make_face_detector``; used by one thread at a time.
        detect_every: search the whole frame at least every this-many-th frame; 1: every frame.
        max_pixels: see ``detect_faces``.
        search_budget: seconds; ``None``: every search in line; else searches run in line until two in a
            row take longer than this, then in a worker thread (``0``: all after the second; call
            ``close`` when done).

    Raises:
        ValueError: ``detect_every`` is not an integer of at least 1 (``check_number``).
    """

    def __init__(self, detector: FaceDetector, detect_every: int = DETECT_EVERY,
                 max_pixels: int | None = DETECT_MAX_PIXELS, search_budget: float | None = None) -> None:
        detect_every = check_number(detect_every, "detect_every", integer=True, minimum=1)  # True: a flag, refused
        self.detector, self.detect_every, self.max_pixels = detector, detect_every, max_pixels
        self.search_budget = search_budget
        self.full_searches = 0  # frames searched whole (in line, or begun in the worker)
        self._since_search = detect_every  # frames since the last full search: search the first frame
        self._thumbnail: np.ndarray | None = None  # of the last frame searched whole
        self._boxes = np.zeros((0, 4), np.int32)
        self._scores = np.zeros(0, np.float32)  # of the faces in self._boxes, from their search
        self._rolls = np.zeros(0, np.float32)  # of the faces in self._boxes, from their search
        self._templates: list[np.ndarray] = []  # of the faces in self._boxes
        # made once searches exceed the budget; one worker, so the detector is used by one thread at a time
        self._executor: ThreadPoolExecutor | None = None
        self._slow_searches = 0  # in-line searches in a row that took longer than the budget
        self._search: Future | None = None  # the background search under way
        self._search_stale = False  # whether the picture has cut to another scene since it began
        self._previous: tuple[tuple[int, ...], np.ndarray] | None = None  # the previous frame's shape, thumbnail

    def __call__(self, frame: np.ndarray, gray: np.ndarray | None = None) -> Found:
        """The faces on the next frame of the video.

        Args:
            frame: uint8 BGR ``(height, width, 3)`` (or grayscale) frame, searched by the detector.
            gray: its grayscale version, if the caller has it (faces are followed on it).

        Raises:
            whatever the detector raised in a background search, once, on the frame after it failed.
        """
        if gray is None:
            gray = frame if frame.ndim == 2 else cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        small = thumbnail(gray)
        # a hard cut (this frame against the previous one; a pan moves too little between two frames) or
        # a new frame size: the faces followed so far belong to another picture, or to other coordinates
        hard_cut = self._previous is not None and (
            gray.shape != self._previous[0] or scene_changed(self._previous[1], small))
        self._previous = (gray.shape, small)
        if hard_cut:  # nothing to follow; a search is due until one begins (one under way is stale below)
            self._boxes, self._scores, self._templates = np.zeros((0, 4), np.int32), np.zeros(0, np.float32), []
            self._rolls = np.zeros(0, np.float32)
            self._since_search = self.detect_every
        cut = hard_cut or scene_changed(self._thumbnail, small)
        due = self._since_search >= self.detect_every or cut
        if due and self._executor is None:
            self._search_in_line(frame, gray, small)
        else:
            if cut:  # a search under way looked at the last scene: its faces are not shown (those followed
                # so far stay while their templates match: a fast pan also counts as a cut)
                self._search_stale = self._search is not None
            self._take_finished_search()
            self._follow(gray)
            if due and self._search is None:
                # a copy: the caller draws on its frame while the worker searches it
                self._search = self._executor.submit(self._search_faces, frame.copy(), gray)
                self._searched(small)
        self._since_search += 1
        return Found(self._boxes.copy(), self._scores.copy(), hard_cut, self._rolls.copy())

    def _search_in_line(self, frame: np.ndarray, gray: np.ndarray, small: np.ndarray) -> None:
        start = time.perf_counter()
        self._boxes, self._scores, self._rolls, self._templates = self._search_faces(frame, gray)
        self._searched(small)
        seconds = time.perf_counter() - start
        over = self.search_budget is not None and seconds > self.search_budget
        self._slow_searches = self._slow_searches + 1 if over else 0
        if self._slow_searches >= 2:  # two in a row: not a one-off (the first search warms caches up)
            log.info("face searches take %.0f ms: searching in the background from now on", 1000 * seconds)
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="face-search")

    def _take_finished_search(self) -> None:
        if self._search is not None and self._search.done():
            search, self._search = self._search, None
            stale, self._search_stale = self._search_stale, False
            found = search.result()  # a search's error is raised here, once
            if not stale:  # faces found on an earlier frame: followed onto this one next
                self._boxes, self._scores, self._rolls, self._templates = found

    def _follow(self, gray: np.ndarray) -> None:
        boxes, scores = follow_faces(gray, self._boxes, self._templates)
        kept = scores >= MIN_FOLLOW_SCORE  # the others have left the picture (or turned away)
        self._boxes, self._scores, self._rolls = boxes[kept], self._scores[kept], self._rolls[kept]
        self._templates = [t for t, keep in zip(self._templates, kept, strict=True) if keep]

    def _searched(self, small: np.ndarray) -> None:
        """Count a full search (in line or begun in the worker) of the frame with this thumbnail."""
        self._since_search, self._thumbnail = 0, small
        self.full_searches += 1

    def _search_faces(self, frame: np.ndarray, gray: np.ndarray
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[np.ndarray]]:
        """A full-frame search: the boxes, their scores and rolls, and their templates for ``follow_faces``."""
        boxes, scores, rolls = detect_faces_and_rolls(frame, self.detector, max_pixels=self.max_pixels)
        return boxes, scores, rolls, [face_template(gray, box) for box in boxes]

    def close(self) -> None:
        """Stop the background search thread, if any (idempotent; waits for a search under way); later
        frames search in line."""
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor, self._search = None, None
        self.search_budget = None
