"""OpenCV's Haar cascade (Viola & Jones 2001): the course's face detector."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from detectors import DEFAULT_SETTINGS, Detections, SearchSettings, search_downscaled

#: OpenCV's frontal-face Haar cascade (Viola & Jones 2001, trained by Rainer Lienhart), shipped in the
#: opencv-python wheels (not in 5.x, hence ``opencv-python-headless<5`` in requirements.txt).
CASCADE_FILE = Path(cv2.data.haarcascades) / "haarcascade_frontalface_default.xml"


class HaarFaceDetector:
    """A Haar cascade (``cv2.CascadeClassifier``) searching a grayscale frame, downscaled to at most
    ``settings.max_pixels`` pixels and histogram-equalised (as OpenCV's ``samples/python/facedetect.py``:
    robust to exposure), with the settings' ``scale_factor``, ``min_neighbors`` and ``min_size``.

    Args:
        cascade_file: the cascade's XML file (OpenCV's frontal-face cascade by default).

    Attributes:
        cascade: the ``cv2.CascadeClassifier`` (for ``detectMultiScale`` with other arguments).

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: OpenCV cannot read it as a cascade.
    """

    def __init__(self, cascade_file: str | os.PathLike = CASCADE_FILE) -> None:
        if not Path(cascade_file).is_file():
            raise FileNotFoundError(f"Haar cascade not found: {cascade_file}")
        try:
            self.cascade = cv2.CascadeClassifier(str(cascade_file))
        except (cv2.error, SystemError) as exc:  # XML of another kind: OpenCV's parse error, as a SystemError
            raise ValueError(f"not a Haar cascade: {cascade_file}") from exc
        if self.cascade.empty():
            raise ValueError(f"not a Haar cascade: {cascade_file}")

    def detect(self, frame: np.ndarray, settings: SearchSettings = DEFAULT_SETTINGS) -> Detections:
        """The faces of a uint8 BGR ``(h, w, 3)`` or grayscale ``(h, w)`` frame: ``Detections`` with boxes
        in pixels of the frame, square as the cascade finds them, no scores (NaN) and no keypoints (K = 0).

        Raises:
            cv2.error: a ``settings.scale_factor`` of 1 or less, or a negative ``min_neighbors``.
        """
        min_size = (settings.min_size, settings.min_size)

        def find(gray: np.ndarray) -> np.ndarray:
            return self.cascade.detectMultiScale(cv2.equalizeHist(gray), scaleFactor=settings.scale_factor,
                                                 minNeighbors=settings.min_neighbors, minSize=min_size)

        return search_downscaled(frame, settings, find)


def load_face_detector(cascade_file: str | os.PathLike = CASCADE_FILE) -> HaarFaceDetector:
    """Load a Haar cascade (OpenCV's frontal-face cascade by default): ``HaarFaceDetector(cascade_file)``.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: OpenCV cannot read it as a cascade.
    """
    return HaarFaceDetector(cascade_file)
