"""dlib's HOG face detector (Dalal & Triggs 2005), optional: ``pip install dlib-bin``."""

from __future__ import annotations

import numpy as np

from detectors import DEFAULT_SETTINGS, Detections, SearchSettings, search_downscaled


class HogFaceDetector:
    """dlib's frontal-face detector: HOG features and a linear SVM over an image pyramid
    (``dlib.get_frontal_face_detector``), searched without upsampling, so it finds faces of about 80 px and
    more in the image searched (a frame downscaled to ``settings.max_pixels``: about 180 px in a 1080p frame).

    Raises:
        RuntimeError: dlib is not installed.
    """

    def __init__(self) -> None:
        try:
            import dlib
        except ImportError as exc:
            raise RuntimeError("the 'hog' face detector needs dlib: pip install dlib-bin") from exc
        self._detector = dlib.get_frontal_face_detector()

    def detect(self, frame: np.ndarray, settings: SearchSettings = DEFAULT_SETTINGS) -> Detections:
        """The faces of a uint8 BGR ``(h, w, 3)`` or grayscale ``(h, w)`` frame, searched in grayscale
        downscaled to ``settings.max_pixels``: ``Detections`` with boxes in pixels of the frame (faces of
        sides below ``settings.min_size`` px of the image searched are dropped), no scores (NaN) and no
        keypoints (K = 0)."""

        def find(gray: np.ndarray) -> np.ndarray:
            rects = self._detector(np.ascontiguousarray(gray), 0)
            boxes = np.array([[r.left(), r.top(), r.width(), r.height()] for r in rects], np.int32).reshape(-1, 4)
            return boxes[(boxes[:, 2] >= settings.min_size) & (boxes[:, 3] >= settings.min_size)]

        return search_downscaled(frame, settings, find)
