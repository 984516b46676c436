"""The face record that flows along the frame path, the geometry of its box, and its JSON shape.

Every room of the frame path (``camera`` -> ``detection`` -> ``model.classify_faces`` -> ``tracking``
-> ``drawing``) passes faces on as ``Face`` records; only the edges (the JSON API, the event stream,
the report CSV) turn them into other shapes, with ``face_to_dict``. A face box is ``(x, y, w, h)`` in
pixels of the frame, ``(x, y)`` its top-left corner.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import cv2
import numpy as np

#: The seven FER2013 classes, in the order of the model's output columns: the alphabetical order of the
#: class folders, in which ``keras.utils.image_dataset_from_directory`` numbers them (the notebook asserts it).
EMOTIONS_LIST: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")


@dataclass(frozen=True, eq=False)
class Face:
    """One face of one frame.

    Attributes:
        box: ``(x, y, w, h)`` in pixels of the frame (ints; may reach outside the frame).
        probabilities: float32 ``(7,)``, the probability of each label of ``EMOTIONS_LIST``, in [0, 1],
            summing to 1 (smoothed over time once ``tracking.FaceTracker`` has seen the face); ``None`` for a
            face not classified on this frame (``model.classify_faces`` with ``chosen``) until the tracker
            gives it its track's probabilities.
        score: the detector's confidence in [0, 1], or ``None`` where the detector gives none.
        id: the track id (from 1) that ``tracking.FaceTracker`` gives, ``None`` before tracking.
    """

    box: tuple[int, int, int, int]
    probabilities: np.ndarray | None
    score: float | None = None
    id: int | None = None

    @property
    def emotion(self) -> str | None:
        """The most probable label of ``EMOTIONS_LIST``; ``None`` without probabilities."""
        if self.probabilities is None:
            return None
        return EMOTIONS_LIST[int(np.argmax(self.probabilities))]

    def replace(self, **changes) -> Face:
        """A copy with ``changes`` (``dataclasses.replace``)."""
        return dataclasses.replace(self, **changes)


def face_to_dict(face: Face) -> dict:
    """The JSON shape of a face, as the API, the event stream and the OpenAPI description give it:
    ``{"box": [x, y, w, h], "score": s, "emotion": label, "probabilities": {label: p}}`` with ``score``
    and the probabilities rounded to 4 decimals (``score`` null where the detector gives none; ``emotion``
    and ``probabilities`` null for a face without probabilities), plus ``"id"`` when the face is tracked."""
    probabilities = None if face.probabilities is None else {
        name: round(float(p), 4) for name, p in zip(EMOTIONS_LIST, face.probabilities, strict=True)}
    out = {"box": [int(v) for v in face.box], "score": None if face.score is None else round(float(face.score), 4),
           "emotion": face.emotion, "probabilities": probabilities}
    if face.id is not None:
        out["id"] = face.id
    return out


def box_iou(a, b) -> float:
    """Intersection over union of two ``(x, y, w, h)`` boxes, in [0, 1] (0 when both are empty)."""
    ix = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = a[2] * a[3] + b[2] * b[3] - inter
    return float(inter / union) if union > 0 else 0.0


#: Rolls (degrees) smaller than this are not corrected: BlazeFace's eye keypoints of an upright face wobble by a
#: few degrees from frame to frame, and resampling a level face would only blur it.
MIN_ROLL = 5.0


def crop_faces(gray: np.ndarray, boxes: np.ndarray, size: int, rolls: np.ndarray | None = None) -> np.ndarray:
    """Cut each box out of ``gray`` and resize it (area interpolation) to ``size`` x ``size``, turning each
    face whose roll is known so that its eyes are level.

    Args:
        gray: uint8 grayscale frame ``(height, width)``.
        boxes: ``(N, 4)`` boxes ``(x, y, w, h)``; parts outside the frame are filled with the frame's
            edge pixels repeated (``cv2.getRectSubPix``), so a face cut by the edge keeps its proportions.
        size: side of the crops in px (48 for the network, ``detection.TEMPLATE_SIDE`` for templates).
        rolls: ``(N,)`` degrees, the angle of each face's eye line (right eye to left eye) against the x axis,
            y down (``detection.detect_faces_and_rolls``), or ``None``. A box whose roll is at least
            ``MIN_ROLL`` away from 0 is cut rotated by that angle about its centre (the crop shows the face
            with its eyes level); a NaN roll (Haar and HOG boxes) or a small one leaves the crop as it is.

    Returns:
        uint8 array ``(N, size, size)``; the crop of a box wholly outside the frame (or empty) is black.

    Raises:
        ValueError: ``rolls`` is not one value per box.
    """
    boxes = np.asarray(boxes).reshape(-1, 4)
    if rolls is not None:
        rolls = np.asarray(rolls, dtype=np.float64).reshape(-1)
        if len(rolls) != len(boxes):
            raise ValueError(f"rolls must hold one angle per box ({len(boxes)}), not {len(rolls)}")
    crops = np.zeros((len(boxes), size, size), dtype=np.uint8)
    for i, box in enumerate(boxes):
        roll = np.nan if rolls is None else rolls[i]
        if np.isfinite(roll) and abs(roll) >= MIN_ROLL:
            crop = _level_crop(gray, box, float(roll), size)
            if crop is not None:
                crops[i] = crop
            continue
        patch = rectangle(gray, *box)
        if patch is not None:
            crops[i] = cv2.resize(patch, (size, size), interpolation=cv2.INTER_AREA)
    return crops


#: Least contrast (standard deviation of the grey levels) and brightness (their mean) of a face crop as the
#: classifier sees it: the 10th percentiles of FER2013's training faces (36.7 and 86.0, measured on train/).
MIN_CROP_CONTRAST = 37.0
MIN_CROP_BRIGHTNESS = 86.0


def normalize_lighting(crops: np.ndarray) -> np.ndarray:
    """Bring each uint8 grey crop ``(N, size, size)`` that is flatter or darker than 90% of FER2013's
    training faces up to that level: its contrast stretched about its mean to ``MIN_CROP_CONTRAST``, then its
    levels raised to a mean of ``MIN_CROP_BRIGHTNESS`` (clipped to [0, 255]); other crops are returned as
    they are. A face in a dim room (a mean of about 30, a deviation under 20) is otherwise out of the range
    the network was trained on, and reads neutral whatever it shows. Returns a new uint8 array, same shape."""
    crops = np.asarray(crops)
    out = crops.copy()
    for i, crop in enumerate(crops):
        levels = crop.astype(np.float32)
        mean, contrast = float(levels.mean()), float(levels.std())
        if contrast >= MIN_CROP_CONTRAST and mean >= MIN_CROP_BRIGHTNESS:
            continue
        if 0 < contrast < MIN_CROP_CONTRAST:
            levels = (levels - mean) * (MIN_CROP_CONTRAST / contrast) + mean
        levels += max(0.0, MIN_CROP_BRIGHTNESS - float(levels.mean()))
        out[i] = np.clip(np.round(levels), 0, 255).astype(np.uint8)
    return out


def _level_crop(gray: np.ndarray, box, roll: float, size: int) -> np.ndarray | None:
    """The ``size`` x ``size`` crop of ``box`` turned by ``roll`` degrees about its centre: the square
    around the box that holds any turn of it (sqrt 2 times its side, edge pixels repeated beyond the frame)
    is first shrunk by area interpolation, so a large face is not aliased, then turned (bilinear)."""
    x, y, w, h = (float(v) for v in box)
    outer = math.ceil(size * 1.5)  # > size * sqrt(2)
    side_x, side_y = w * outer / size, h * outer / size
    patch = rectangle(gray, round(x + w / 2 - side_x / 2), round(y + h / 2 - side_y / 2), round(side_x), round(side_y))
    if patch is None:
        return None
    patch = cv2.resize(patch, (outer, outer), interpolation=cv2.INTER_AREA)
    # cv2's positive angle turns the picture counter-clockwise as seen, undoing a clockwise (positive) roll
    turn = cv2.getRotationMatrix2D((outer / 2, outer / 2), roll, 1.0)
    turn[:, 2] -= (outer - size) / 2
    return cv2.warpAffine(patch, turn, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def rectangle(gray: np.ndarray, x: int, y: int, w: int, h: int) -> np.ndarray | None:
    """The ``w`` x ``h`` pixels of ``gray`` from ``(x, y)``, parts outside the frame filled with its edge
    pixels repeated (``cv2.getRectSubPix``); ``None`` when the rectangle is empty or wholly outside."""
    height, width = gray.shape[:2]
    if w <= 0 or h <= 0 or x >= width or y >= height or x + w <= 0 or y + h <= 0:
        return None
    if x >= 0 and y >= 0 and x + w <= width and y + h <= height:
        return gray[y:y + h, x:x + w]
    return cv2.getRectSubPix(gray, (int(w), int(h)), (x + w / 2 - 0.5, y + h / 2 - 0.5))
