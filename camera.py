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
from concurrent.futures import Future, ThreadPoolExecutor
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

#: Videos: the whole frame is searched for faces on every this-many-th frame (1: all) and on scene
#: changes; on the frames between, only the neighbourhood of each known face (see FrameAnnotator).
DETECT_EVERY = 8

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


#: The face detectors ``make_face_detector`` offers: OpenCV's Haar cascade (the default) and dlib's HOG
#: detector (``pip install dlib-bin``; its model is built into dlib, nothing is downloaded).
DETECTORS = ("haar", "hog")


class HogFaceDetector:
    """dlib's frontal-face detector: HOG features and a linear SVM over an image pyramid (Dalal & Triggs
    2005; ``dlib.get_frontal_face_detector``), searched without upsampling, so it finds faces of about
    80 px and more in the image searched (after ``detect_faces`` downscaled it: about 180 px in a 1080p
    frame). On the sample clips it finds the same faces as the Haar cascade in a fraction of the
    time where faces are large, and misses the small ones (README, "Face detectors").

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


def detect_faces(gray: np.ndarray, detector: FaceDetector, scale_factor: float = 1.2,
                 min_neighbors: int = 5, min_size: int = 30,
                 max_pixels: int | None = DETECT_MAX_PIXELS) -> np.ndarray:
    """Find frontal faces with a Haar cascade (or dlib's HOG detector).

    Args:
        gray: uint8 grayscale frame ``(height, width)``.
        detector: from ``load_face_detector`` or ``make_face_detector``; ``scale_factor`` and
            ``min_neighbors`` apply to a Haar cascade only.
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


def crop_faces(gray: np.ndarray, boxes: np.ndarray, size: int = INPUT_SIZE) -> np.ndarray:
    """Cut each box out of ``gray`` and resize it (area interpolation) to ``size`` x ``size``.

    Args:
        gray: uint8 grayscale frame ``(height, width)``.
        boxes: ``(N, 4)`` boxes ``(x, y, w, h)``; parts outside the frame are clipped away.
        size: side of the crops in px; the default is the network's input (48).

    Returns:
        uint8 array ``(N, size, size)``; the crop of a box wholly outside the frame is black.
    """
    height, width = gray.shape[:2]
    faces = np.zeros((len(boxes), size, size), dtype=np.uint8)
    for i, (x, y, w, h) in enumerate(boxes):
        x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + w, width), min(y + h, height)
        if x1 > x0 and y1 > y0:
            faces[i] = cv2.resize(gray[y0:y1, x0:x1], (size, size), interpolation=cv2.INTER_AREA)
    return faces


def classify_faces(model: FacialExpressionModel, faces: np.ndarray, boxes: np.ndarray) -> list[FaceResult]:
    """Classify all crops in one batch and pair each with its box (see ``FaceResult``)."""
    probabilities = model.predict_proba(faces)
    return [
        {"box": [int(v) for v in box], "emotion": EMOTIONS_LIST[int(np.argmax(p))],
         "probabilities": {name: round(float(q), 4) for name, q in zip(EMOTIONS_LIST, p, strict=True)}}
        for box, p in zip(boxes, probabilities, strict=True)
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


def analyze_frame(frame: np.ndarray, model: FacialExpressionModel, detector: FaceDetector,
                  max_pixels: int | None = DETECT_MAX_PIXELS) -> list[FaceResult]:
    """Detect, crop and classify every face of a BGR frame (see ``detect_faces`` for ``max_pixels``)."""
    gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    boxes = detect_faces(gray, detector, max_pixels=max_pixels)
    return classify_faces(model, crop_faces(gray, boxes), boxes)


def annotate_frame(frame: np.ndarray, model: FacialExpressionModel,
                   detector: FaceDetector) -> list[FaceResult]:
    """``analyze_frame``, then ``draw_results`` on the frame in place; returns the results."""
    results = analyze_frame(frame, model, detector)
    draw_results(frame, results)
    return results


#: Side (px) of the grayscale face templates that ``follow_faces`` matches between full detections.
TEMPLATE_SIDE = 32

#: ``FrameAnnotator`` drops a followed face whose template matches no better than this (normalised
#: cross-correlation): it has left the picture or turned away, until the next full search finds it.
MIN_FOLLOW_SCORE = 0.5


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
    detection corrects the size). It cost 0.16 ms for the 132-px face of ``fer_woman2.mp4`` here, against
    24 ms for one Haar search of that 596x336 frame and about 3 ms for a Haar search of the neighbourhood
    of the face, which, tried in its place, found no more of the faces on the sample clips.

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


class FrameAnnotator:
    """The per-frame chain of a video: detect, crop, classify, ``FaceTracker.update``, draw.

    The full-frame search for faces, by far the costliest step, runs on every ``detect_every``-th frame
    and on any frame that differs clearly from the last one searched (a cut, a camera pan; see
    ``scene_changed``). On the frames between, each known face is found again near its last box
    (``follow_faces``), so boxes follow the faces on every frame; every frame's faces are classified
    and tracked. This cuts the cost of a frame several times (README, "Speed"); a new face appears
    within ``detect_every`` frames.

    With a ``search_budget`` (the live stream's choice: one frame period), once two full-frame searches in
    a row take longer than that, the searches move to a worker thread, off the frames' path: the frame
    that asks for one is annotated with the faces followed so far, and the faces the search finds are
    followed from the frame it searched to the current one when it is done (a frame or two later at
    1080p). A frame then never waits for a search (55 ms at 1080p, almost two frame periods at
    30 frames/s), so an HD source keeps its frame rate, and the search uses the second core. Where a
    search fits in the budget (a 640x360 video) it stays in line, and its faces are shown on the frame
    searched. Results in the worker depend on timing, so offline work keeps the default.

    Args:
        model, detector: as for ``analyze_frame``.
        smoothing_half_life: seconds; see ``tracking.FaceTracker`` (0: labels of each frame alone).
        detect_every: search the whole frame at least every this-many-th frame; 1: every frame.
        detect_max_pixels: see ``detect_faces``.
        search_budget: seconds; ``None`` (default): every search in line; else searches run in line until
            two in a row take longer than this, then in a worker thread (``0``: all after the second;
            call ``close`` when done).

    Raises:
        ValueError: ``detect_every`` is below 1.
    """

    def __init__(self, model: FacialExpressionModel, detector: FaceDetector,
                 smoothing_half_life: float = SMOOTHING_HALF_LIFE, detect_every: int = DETECT_EVERY,
                 detect_max_pixels: int | None = DETECT_MAX_PIXELS, search_budget: float | None = None) -> None:
        if detect_every < 1:
            raise ValueError(f"detect_every must be at least 1, got {detect_every}")
        self.model, self.detector = model, detector
        # a face that one full search misses is followed no more until the next: its track must outlive that
        self.tracker = FaceTracker(half_life=smoothing_half_life, max_missed=max(5, detect_every))
        self.detect_every, self.detect_max_pixels = detect_every, detect_max_pixels
        self.full_detections = 0  # frames searched whole
        self._since_detection = detect_every  # frames since the last full search: search the first frame
        self._thumbnail: np.ndarray | None = None  # of the last frame searched whole
        self._boxes = np.zeros((0, 4), np.int32)
        self._templates: list[np.ndarray] = []  # of the faces at the last full search
        self.search_budget = search_budget
        # made when a search exceeds the budget; one worker, so the detector is used by one thread at a time
        # (a cascade is not safe to share)
        self._executor: ThreadPoolExecutor | None = None
        self._slow_searches = 0  # in-line searches in a row that took longer than the budget
        self._search: Future | None = None  # the background search under way
        self._search_stale = False  # whether the picture has cut to another scene since it began

    def __call__(self, frame: np.ndarray, dt: float, lap=None) -> list[TrackedFaceResult]:
        """Annotate a BGR frame in place and return its faces.

        Args:
            frame: BGR uint8 ``(height, width, 3)``.
            dt: source time since the previous frame, in s.
            lap: optional callable, called with ``"detect"``, ``"classify"`` and ``"draw"`` right after
                each stage (``benchmarks/pipeline.py`` times the stages with it).
        """
        gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        step = max(1, min(gray.shape[0] // THUMBNAIL_SIZE[1], gray.shape[1] // THUMBNAIL_SIZE[0]) // 2)
        thumbnail = cv2.resize(gray[::step, ::step], THUMBNAIL_SIZE, interpolation=cv2.INTER_AREA)
        cut = scene_changed(self._thumbnail, thumbnail)
        due = self._since_detection >= self.detect_every or cut
        if due and self._executor is None:
            start = time.perf_counter()
            self._boxes, self._templates = self._search_faces(gray)
            self._searched(thumbnail)
            seconds = time.perf_counter() - start
            over = self.search_budget is not None and seconds > self.search_budget
            self._slow_searches = self._slow_searches + 1 if over else 0
            if self._slow_searches >= 2:  # two in a row: not a one-off (the first search warms caches up)
                log.info("face searches take %.0f ms: searching in the background from now on", 1000 * seconds)
                self._executor = ThreadPoolExecutor(1, thread_name_prefix="face-search")
        else:
            if cut:  # a search under way looked at the last scene: its faces are not shown (those followed
                # so far stay while their templates match: a fast pan also counts as a cut)
                self._search_stale = self._search is not None
            if self._search is not None and self._search.done():
                search, self._search = self._search, None
                found = search.result()  # a search's error is raised here, once
                if not self._search_stale:  # faces found on an earlier frame: followed to this one below
                    self._boxes, self._templates = found
                self._search_stale = False
            boxes, scores = follow_faces(gray, self._boxes, self._templates)
            kept = scores >= MIN_FOLLOW_SCORE  # the others have left the picture (or turned away)
            self._boxes = boxes[kept]
            self._templates = [t for t, keep in zip(self._templates, kept, strict=True) if keep]
            if due and self._search is None:
                self._search = self._executor.submit(self._search_faces, gray)
                self._searched(thumbnail)
        self._since_detection += 1
        if lap:
            lap("detect")
        results = self.tracker.update(classify_faces(self.model, crop_faces(gray, self._boxes), self._boxes), dt)
        if lap:
            lap("classify")
        draw_results(frame, results)
        if lap:
            lap("draw")
        return results

    def _searched(self, thumbnail: np.ndarray) -> None:
        """Count a full search (in line or begun in the worker) of the frame with this thumbnail."""
        self._since_detection, self._thumbnail = 0, thumbnail
        self.full_detections += 1

    def _search_faces(self, gray: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
        """Full-frame detection: the boxes and their templates for ``follow_faces``."""
        boxes = detect_faces(gray, self.detector, max_pixels=self.detect_max_pixels)
        return boxes, [face_template(gray, box) for box in boxes]

    def close(self) -> None:
        """Stop the background search thread, if any (idempotent; waits for a search under way)."""
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor, self._search = None, None
        self.search_budget = None  # later frames search in line


#: Size (width, height) of the grayscale thumbnails that ``scene_changed`` compares.
THUMBNAIL_SIZE = (32, 18)

#: Mean absolute difference of two thumbnails (grey levels, 0-255) above which the scene has changed.
#: Measured on the sample clips (``fer_woman2.mp4``, the Hamilton clip): consecutive frames of one shot
#: differ by at most 1.3 and 12.6 (a panning camera), the Hamilton clip's three cuts by 26 to 30.
#: ``FrameAnnotator`` compares a frame with the last one searched whole, so a fast pan also passes the
#: threshold after a few frames and gets a full search: wanted, since its faces move far.
SCENE_CHANGE_THRESHOLD = 20.0


def scene_changed(previous: np.ndarray | None, current: np.ndarray,
                  threshold: float = SCENE_CHANGE_THRESHOLD) -> bool:
    """Whether two uint8 thumbnails (``THUMBNAIL_SIZE``) differ by more than ``threshold`` on average."""
    if previous is None:
        return True
    return float(cv2.absdiff(previous, current).mean()) > threshold


_per_thread = threading.local()


def thread_face_detector(kind: str = "haar") -> FaceDetector:
    """A detector of ``kind`` (see ``make_face_detector``), made once per thread (a cascade is not safe
    to share between threads)."""
    detectors = _per_thread.__dict__.setdefault("detectors", {})
    if kind not in detectors:
        detectors[kind] = make_face_detector(kind)
    return detectors[kind]


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
        detect_every: see ``FrameAnnotator``.
        smoothing_half_life: seconds; faces are tracked and their probabilities smoothed
            (``tracking.FaceTracker``); 0 labels every frame on its own.
        background_detection: a full-frame face search that takes longer than one frame period moves
            the searches to a worker thread, off the frames' path (``FrameAnnotator``'s
            ``search_budget``); ``False``: always in line, as offline reports do.

    Raises:
        SourceError: the source cannot be opened (``read`` raises it for a source without frames).
    """

    def __init__(self, source: int | str | os.PathLike = 0, model: FacialExpressionModel | None = None,
                 detector: FaceDetector | None = None,
                 smoothing_half_life: float = SMOOTHING_HALF_LIFE, detect_every: int = DETECT_EVERY,
                 background_detection: bool = True) -> None:
        self.source = source
        self.is_file = not isinstance(source, int)
        self.model = model if model is not None else default_model()
        self.detector = detector if detector is not None else load_face_detector()
        self.annotator = FrameAnnotator(self.model, self.detector, smoothing_half_life, detect_every)
        self.results: list[TrackedFaceResult] = []  # faces of the last frame from get_frame
        self._last_time: float | None = None  # source time (s) of the last annotated frame
        self.frames_dropped = 0
        self.frame_index = -1  # index in the file of the last frame read (webcam: count of frames read - 1)
        self._capture = self._open()
        fps = self._capture.get(cv2.CAP_PROP_FPS)
        self.fps = fps if self.is_file and math.isfinite(fps) and 1 <= fps <= 240 else FALLBACK_FPS
        self.annotator.search_budget = 1.0 / self.fps if background_detection else None
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
        """Release the capture device or file and stop the search thread (idempotent)."""
        if getattr(self, "annotator", None) is not None:
            self.annotator.close()
        if getattr(self, "_capture", None) is not None:
            self._capture.release()
            self._capture = None

    def __enter__(self) -> VideoCamera:
        return self

    def __exit__(self, *exc_info) -> None:
        self.release()

    def __del__(self) -> None:
        self.release()
