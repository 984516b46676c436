"""The detectors' interface (detectors/__init__.py), and the Haar and HOG detectors behind it."""

import threading

import cv2
import numpy as np
import pytest
from helpers import ASTRONAUT_FACE, astronaut_bgr

from detectors import (
    DETECTORS,
    Detections,
    FaceDetector,
    SearchSettings,
    make_face_detector,
    roll_of,
    search_downscaled,
    thread_face_detector,
)
from detectors.haar import HaarFaceDetector, load_face_detector
from faces import box_iou as iou


@pytest.mark.parametrize(("right_eye", "left_eye", "degrees"), [
    ((10, 10), (20, 10), 0.0),  # level
    ((10, 10), (20, 20), 45.0),  # the left eye lower (y down): tilted clockwise as seen
    ((10, 10), (20, 0), -45.0),
    ((10, 10), (0, 10), 180.0),  # upside down
])
def test_roll_of_is_the_angle_from_the_right_eye_to_the_left(right_eye, left_eye, degrees):
    keypoints = np.array([[right_eye, left_eye, (15, 30)]], np.float32)
    rolls = roll_of(keypoints)
    assert rolls.dtype == np.float32 and rolls.shape == (1,)
    assert rolls[0] == pytest.approx(degrees)


@pytest.mark.parametrize("count", [0, 1])
def test_roll_of_is_nan_without_two_keypoints(count):
    rolls = roll_of(np.zeros((3, count, 2), np.float32))
    assert rolls.dtype == np.float32 and rolls.shape == (3,) and np.isnan(rolls).all()


def test_roll_of_no_face_is_empty():
    assert roll_of(Detections.none(6).keypoints).shape == (0,)


@pytest.mark.parametrize("shape", [(3, 6), (3, 6, 3), (6, 2)])
def test_roll_of_refuses_other_shapes(shape):
    with pytest.raises(ValueError, match="keypoints"):
        roll_of(np.zeros(shape))


@pytest.mark.parametrize("kind", DETECTORS)
@pytest.mark.parametrize("gray", [False, True])
def test_every_detector_answers_detect_with_detections(kind, gray):
    detector = make_face_detector(kind)
    frame = astronaut_bgr()
    frame = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY) if gray else frame
    assert isinstance(detector, FaceDetector)
    found = detector.detect(frame)
    keypoints = 6 if kind == "blazeface" else 0
    assert isinstance(found, Detections) and len(found.boxes) == 1
    assert found.boxes.shape == (1, 4) and found.scores.shape == (1,) and found.keypoints.shape == (1, keypoints, 2)
    assert found.boxes.dtype == found.scores.dtype == found.keypoints.dtype == np.float32
    assert iou(found.boxes[0], ASTRONAUT_FACE) > 0.5
    assert np.isnan(found.scores[0]) if kind != "blazeface" else 0.5 <= found.scores[0] <= 1
    empty = detector.detect(np.full((240, 320), 128, np.uint8))
    assert [a.shape for a in empty] == [(0, 4), (0,), (0, keypoints, 2)]


def test_search_downscaled_maps_the_boxes_back_to_the_frame():
    seen = []

    def find(gray):
        seen.append(gray.shape)
        return np.array([[10, 20, 30, 30]])

    found = search_downscaled(np.zeros((1080, 1920, 3), np.uint8), SearchSettings(max_pixels=480 * 270), find)
    assert seen == [(270, 480)]
    np.testing.assert_allclose(found.boxes, [[40, 80, 120, 120]])
    assert np.isnan(found.scores).all() and found.keypoints.shape == (1, 0, 2)
    assert search_downscaled(np.zeros((20, 1000), np.uint8), SearchSettings(), find).boxes.shape == (0, 4)
    assert len(seen) == 1  # an image narrower than min_size is not searched


def test_haar_settings_tune_the_search():
    gray = cv2.cvtColor(astronaut_bgr(), cv2.COLOR_BGR2GRAY)
    detector = HaarFaceDetector()
    assert len(detector.detect(gray).boxes) == 1
    assert len(detector.detect(gray, SearchSettings(min_size=150)).boxes) == 0  # her face is 100 px
    assert len(detector.detect(gray, SearchSettings(max_pixels=64 * 64)).boxes) == 0  # a 64x64 image: too small
    with pytest.raises(cv2.error):
        detector.detect(gray, SearchSettings(scale_factor=1.0))


def test_load_face_detector_refuses_a_missing_or_foreign_file(tmp_path):
    assert isinstance(load_face_detector(), HaarFaceDetector)
    with pytest.raises(FileNotFoundError, match="nowhere.xml"):
        load_face_detector(tmp_path / "nowhere.xml")
    (tmp_path / "notes.xml").write_text("<notes/>")
    with pytest.raises(ValueError, match="notes.xml"):
        load_face_detector(tmp_path / "notes.xml")


def test_thread_face_detector_is_one_per_thread_and_settings():
    mine = thread_face_detector("haar")
    assert thread_face_detector("haar") is mine and thread_face_detector("haar", 0.7) is not mine
    other = []
    thread = threading.Thread(target=lambda: other.append(thread_face_detector("haar")))
    thread.start()
    thread.join()
    assert other[0] is not mine
