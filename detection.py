"""Finding faces: the detectors, one full-frame search, following faces between searches, and when to search.

The steps are small functions on arrays, as in OpenCV's ``samples/python/facedetect.py``: ``detect_faces``
searches a whole grayscale frame, ``follow_faces`` finds known faces again near their last boxes, and
``scene_changed`` tells a cut. ``FaceFinder`` chains them for a video: it decides on each frame whether to
search the whole frame (in line, or in a worker thread when searches are slow) or to follow. Frames here
are uint8 grayscale ``(height, width)``; boxes are int32 ``(N, 4)`` rows ``(x, y, w, h)``.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np

from faces import crop_faces

log = logging.getLogger(__name__)

#: OpenCV's frontal-face Haar cascade (Viola & Jones 2001, trained by Rainer Lienhart), shipped in the
#: opencv-python wheels (not in 5.x, hence ``opencv-python-headless<5`` in requirements.txt).
CASCADE_FILE = Path(cv2.data.haarcascades) / "haarcascade_frontalface_default.xml"

#: The face detectors ``make_face_detector`` offers: OpenCV's Haar cascade (the default) and dlib's HOG
#: detector (``pip install dlib-bin``; its model is built into dlib, nothing is downloaded).
DETECTORS = ("haar", "hog")

#: How the page names each detector.
DETECTOR_NAMES = {"haar": "Haar cascade", "hog": "HOG detector"}

#: Frames of more pixels than this are downscaled to it for the full-frame search only: 854x480 (480p).
DETECT_MAX_PIXELS = 854 * 480

#: Videos: the whole frame is searched for faces on every this-many-th frame (1: all) and on scene
#: changes; on the frames between, only the neighbourhood of each known face (see ``FaceFinder``).
DETECT_EVERY = 8

#: Side (px) of the grayscale face templates that ``follow_faces`` matches between full searches.
TEMPLATE_SIDE = 32

#: ``FaceFinder`` drops a followed face whose template matches no better than this (normalised
#: cross-correlation): it has left the picture or turned away, until the next full search finds it.
MIN_FOLLOW_SCORE = 0.5

#: Size (width, height) of the grayscale thumbnails that ``scene_changed`` compares.
THUMBNAIL_SIZE = (32, 18)

#: Mean absolute difference of two thumbnails (grey levels, 0-255) above which the scene has changed.
#: Chosen from the sample clips (docs/benchmarks/scene-changes.txt): consecutive frames of one shot differ
#: by at most 1.3 (``fer_woman2.mp4``) and 12.6 (a panning camera in the Hamilton clip), that clip's three
#: cuts by 26 to 30. ``FaceFinder`` compares a frame with the last one searched whole, so a fast pan also
#: passes the threshold after a few frames and gets a full search: wanted, since its faces move far.
SCENE_CHANGE_THRESHOLD = 20.0


class HogFaceDetector:
    """dlib's frontal-face detector: HOG features and a linear SVM over an image pyramid (Dalal & Triggs
    2005; ``dlib.get_frontal_face_detector``), searched without upsampling, so it finds faces of about
    80 px and more in the image searched (after ``detect_faces`` downscaled it: about 180 px in a 1080p
    frame).

    Raises:
        RuntimeError: dlib is not installed.
    """

    def __init__(self) -> None:
        try:
            import dlib
        except ImportError as exc:
            raise RuntimeError("the 'hog' face detector needs dlib: pip install dlib-bin") from exc
        self._detector = dlib.get_frontal_face_detector()

    def detect(self, gray: np.ndarray) -> np.ndarray:
        """Boxes ``(x, y, w, h)`` (int32 ``(N, 4)``) of the faces in a uint8 grayscale image."""
        rects = self._detector(np.ascontiguousarray(gray), 0)
        return np.array([[r.left(), r.top(), r.width(), r.height()] for r in rects], np.int32).reshape(-1, 4)


FaceDetector = cv2.CascadeClassifier | HogFaceDetector


def load_face_detector(cascade_file: str | os.PathLike = CASCADE_FILE) -> cv2.CascadeClassifier:
    """Load a Haar cascade (OpenCV's frontal-face cascade by default).

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


def make_face_detector(kind: str = "haar") -> FaceDetector:
    """A new face detector of ``kind`` (one of ``DETECTORS``) for ``detect_faces``.

    Raises:
        ValueError: an unknown kind.
        RuntimeError: ``"hog"`` without dlib installed.
    """
    if kind == "haar":
        return load_face_detector()
    if kind == "hog":
        return HogFaceDetector()
    raise ValueError(f"unknown face detector {kind!r}; expected one of {DETECTORS}")


_per_thread = threading.local()


def thread_face_detector(kind: str = "haar") -> FaceDetector:
    """A detector of ``kind`` (see ``make_face_detector``), made once per thread (a cascade is not safe
    to share between threads)."""
    detectors = _per_thread.__dict__.setdefault("detectors", {})
    if kind not in detectors:
        detectors[kind] = make_face_detector(kind)
    return detectors[kind]


def detect_faces(gray: np.ndarray, detector: FaceDetector, scale_factor: float = 1.2,
                 min_neighbors: int = 5, min_size: int = 30,
                 max_pixels: int | None = DETECT_MAX_PIXELS) -> np.ndarray:
    """Search a whole frame for frontal faces with a Haar cascade (or dlib's HOG detector).

    Args:
        gray: uint8 grayscale frame ``(height, width)``.
        detector: from ``load_face_detector`` or ``make_face_detector``; ``scale_factor`` and
            ``min_neighbors`` apply to a Haar cascade only.
        scale_factor: image-pyramid step of ``detectMultiScale`` (> 1; smaller finds more, slower).
        min_neighbors: overlapping detections needed to keep a face (higher: fewer false faces).
        min_size: smallest face side searched, in pixels of the (downscaled) search image.
        max_pixels: a frame of more pixels is downscaled, keeping its aspect ratio, to about this many
            for the search (the cascade's cost grows with the pixel count); ``None``: never.

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
    if isinstance(detector, HogFaceDetector):
        boxes = detector.detect(small)
        boxes = boxes[(boxes[:, 2] >= min_size) & (boxes[:, 3] >= min_size)]
    else:
        equalized = cv2.equalizeHist(small)  # as OpenCV's facedetect.py sample: robust to exposure
        boxes = detector.detectMultiScale(equalized, scaleFactor=scale_factor, minNeighbors=min_neighbors,
                                          minSize=(min_size, min_size))
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    boxes[:, 0::2] *= width / size[0]
    boxes[:, 1::2] *= height / size[1]
    boxes = np.round(boxes).astype(np.int32)
    return boxes[np.argsort(-boxes[:, 2] * boxes[:, 3], kind="stable")]


def face_template(gray: np.ndarray, box) -> np.ndarray:
    """The face inside ``box`` ``(x, y, w, h)`` of a uint8 grayscale frame, as a uint8
    ``(TEMPLATE_SIDE, TEMPLATE_SIDE)`` template for ``follow_faces`` (the box is clipped to the frame)."""
    return crop_faces(gray, np.asarray(box).reshape(1, 4), TEMPLATE_SIDE)[0]


def follow_faces(gray: np.ndarray, boxes: np.ndarray, templates, margin: float = 0.3
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Find each known face again near its last box by template matching: the cheap step between
    two ``detect_faces`` calls.

    Each box is widened by ``margin`` times its size on every side; that region is scaled so the face
    is ``TEMPLATE_SIDE`` px wide and searched for the face's template (normalised cross-correlation,
    ``cv2.TM_CCOEFF_NORMED``); the box moves to the best match and keeps its size (the next full
    search corrects the size). Its cost against a search: docs/benchmarks/follow-faces.txt.

    Args:
        gray: uint8 grayscale frame ``(height, width)``.
        boxes: ``(N, 4)`` last boxes ``(x, y, w, h)`` in pixels of ``gray``.
        templates: N uint8 templates from ``face_template``, one per box.

    Returns:
        ``(boxes, scores)``: int32 ``(N, 4)`` moved boxes, and float32 ``(N,)`` match scores in
        [-1, 1] (1: the same picture; a box whose region lies outside the frame keeps its place,
        score 0).
    """
    height, width = gray.shape[:2]
    boxes = np.asarray(boxes, dtype=np.int32).reshape(-1, 4)
    out, scores = boxes.copy(), np.zeros(len(boxes), np.float32)
    for i, ((x, y, w, h), template) in enumerate(zip(boxes, templates, strict=True)):
        x0, y0 = max(0, int(x - margin * w)), max(0, int(y - margin * h))
        x1, y1 = min(width, int(x + w + margin * w)), min(height, int(y + h + margin * h))
        sx, sy = TEMPLATE_SIDE / max(w, 1), TEMPLATE_SIDE / max(h, 1)
        size = (round((x1 - x0) * sx), round((y1 - y0) * sy))
        if min(size) < TEMPLATE_SIDE:
            continue
        region = cv2.resize(gray[y0:y1, x0:x1], size, interpolation=cv2.INTER_AREA)
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
        ValueError: ``detect_every`` is not an int of at least 1.
    """

    def __init__(self, detector: FaceDetector, detect_every: int = DETECT_EVERY,
                 max_pixels: int | None = DETECT_MAX_PIXELS, search_budget: float | None = None) -> None:
        if isinstance(detect_every, bool) or not isinstance(detect_every, int) or detect_every < 1:
            raise ValueError(f"detect_every must be an integer of at least 1, not {detect_every!r}")
        self.detector, self.detect_every, self.max_pixels = detector, detect_every, max_pixels
        self.search_budget = search_budget
        self.full_searches = 0  # frames searched whole (in line, or begun in the worker)
        self._since_search = detect_every  # frames since the last full search: search the first frame
        self._thumbnail: np.ndarray | None = None  # of the last frame searched whole
        self._boxes = np.zeros((0, 4), np.int32)
        self._templates: list[np.ndarray] = []  # of the faces in self._boxes
        # made once searches exceed the budget; one worker, so the detector is used by one thread at a time
        self._executor: ThreadPoolExecutor | None = None
        self._slow_searches = 0  # in-line searches in a row that took longer than the budget
        self._search: Future | None = None  # the background search under way
        self._search_stale = False  # whether the picture has cut to another scene since it began

    def __call__(self, gray: np.ndarray) -> np.ndarray:
        """The int32 ``(N, 4)`` boxes of the faces on this uint8 grayscale frame (the next of the video).

        Raises:
            whatever the detector raised in a background search, once, on the frame after it failed.
        """
        small = thumbnail(gray)
        cut = scene_changed(self._thumbnail, small)
        due = self._since_search >= self.detect_every or cut
        if due and self._executor is None:
            self._search_in_line(gray, small)
        else:
            if cut:  # a search under way looked at the last scene: its faces are not shown (those followed
                # so far stay while their templates match: a fast pan also counts as a cut)
                self._search_stale = self._search is not None
            self._take_finished_search()
            self._follow(gray)
            if due and self._search is None:
                self._search = self._executor.submit(self._search_faces, gray)
                self._searched(small)
        self._since_search += 1
        return self._boxes.copy()

    def _search_in_line(self, gray: np.ndarray, small: np.ndarray) -> None:
        start = time.perf_counter()
        self._boxes, self._templates = self._search_faces(gray)
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
                self._boxes, self._templates = found

    def _follow(self, gray: np.ndarray) -> None:
        boxes, scores = follow_faces(gray, self._boxes, self._templates)
        kept = scores >= MIN_FOLLOW_SCORE  # the others have left the picture (or turned away)
        self._boxes = boxes[kept]
        self._templates = [t for t, keep in zip(self._templates, kept, strict=True) if keep]

    def _searched(self, small: np.ndarray) -> None:
        """Count a full search (in line or begun in the worker) of the frame with this thumbnail."""
        self._since_search, self._thumbnail = 0, small
        self.full_searches += 1

    def _search_faces(self, gray: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
        """A full-frame search: the boxes and their templates for ``follow_faces``."""
        boxes = detect_faces(gray, self.detector, max_pixels=self.max_pixels)
        return boxes, [face_template(gray, box) for box in boxes]

    def close(self) -> None:
        """Stop the background search thread, if any (idempotent; waits for a search under way); later
        frames search in line."""
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor, self._search = None, None
        self.search_budget = None
