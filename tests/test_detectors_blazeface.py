"""The BlazeFace detector (detectors/blazeface.py): its keypoints in the frame's pixels, its merges, its tiles."""

import cv2
import numpy as np
import pytest
from helpers import ASTRONAUT_FACE, astronaut_bgr

from detectors import Detections, roll_of
from detectors.blazeface import KEYPOINTS, BlazeFaceDetector, _drop_contained, _weighted_nms, plausible_layout
from faces import box_iou as iou


@pytest.fixture(scope="module")
def detector():
    return BlazeFaceDetector()


def test_blazeface_gives_six_keypoints_on_the_face(detector):
    found = detector.detect(astronaut_bgr())
    assert isinstance(found, Detections) and len(KEYPOINTS) == 6
    assert found.boxes.shape == (1, 4) and found.scores.shape == (1,) and found.keypoints.shape == (1, 6, 2)
    assert found.boxes.dtype == found.scores.dtype == found.keypoints.dtype == np.float32
    (right_eye, left_eye, nose, mouth, right_ear, left_ear) = found.keypoints[0]
    x, y, w, h = ASTRONAUT_FACE
    assert all(x < px < x + w and y < py < y + h for px, py in (right_eye, left_eye, nose, mouth))
    assert right_ear[0] < right_eye[0] < nose[0] < left_eye[0] < left_ear[0]  # the person's right: the left
    assert max(right_eye[1], left_eye[1]) < nose[1] < mouth[1]
    assert abs(roll_of(found.keypoints)[0]) < 15  # an upright face


def frame_with_the_astronaut(name):
    """A frame holding the astronaut picture scaled by ``scale`` at ``(x, y)``: ``(frame, x, y, scale)``."""
    image = astronaut_bgr()
    if name == "as is":
        return image, 0, 0, 1.0
    if name == "upscaled 4 times":  # the frame is shrunk by 4 before the model passes
        return cv2.resize(image, (2048, 2048), interpolation=cv2.INTER_CUBIC), 0, 0, 4.0
    if name == "letterboxed":  # a tall frame: black bars left and right of the model's input, and tiles
        frame = np.full((1200, 512, 3), 90, np.uint8)
        frame[300:812] = image
        return frame, 0, 300, 1.0
    frame = np.full((1080, 1920, 3), 90, np.uint8)  # 1080p: shrunk by 5, the face in the second tile
    frame[100:1012, 1000:1912] = cv2.resize(image, (912, 912), interpolation=cv2.INTER_CUBIC)
    return frame, 1000, 100, 912 / 512


@pytest.mark.parametrize("name", ["upscaled 4 times", "letterboxed", "in a tile of a 1080p frame"])
def test_keypoints_are_mapped_to_the_frame_as_the_box_is(detector, name):
    """Wherever the face lies in the model's input, its keypoints land on it in pixels of the frame."""
    reference = detector.detect(astronaut_bgr())
    frame, x, y, scale = frame_with_the_astronaut(name)
    found = detector.detect(frame)
    assert len(found.boxes) == 1
    back = (found.keypoints[0, :4] - [x, y]) / scale  # eyes, nose tip, mouth, in the astronaut's pixels
    # the model places them a little differently on a face of another size in its input: measured up to 0.115
    assert np.abs(back - reference.keypoints[0, :4]).max() < 0.15 * ASTRONAUT_FACE[2]
    box = np.concatenate([found.boxes[0, :2] - [x, y], found.boxes[0, 2:]]) / scale
    assert iou(box, reference.boxes[0]) > 0.75  # measured 0.79 to 0.9


def test_weighted_nms_averages_every_column_by_score():
    rows = np.array([[0, 0, 10, 10, 1, 2], [1, 1, 11, 11, 5, 6], [50, 50, 60, 60, 7, 7]], np.float32)
    kept, scores = _weighted_nms(rows, np.array([0.6, 0.2, 0.9], np.float32), 0.3)
    assert kept.dtype == scores.dtype == np.float32 and kept.shape == (2, 6)
    np.testing.assert_allclose(scores, [0.9, 0.6])  # best first, each keeping its own score
    np.testing.assert_allclose(kept[0], rows[2])
    np.testing.assert_allclose(kept[1], 0.75 * rows[0] + 0.25 * rows[1])


def test_drop_contained_keeps_the_better_of_nested_boxes_with_their_columns():
    rows = np.array([[0, 0, 100, 100, 1, 1], [10, 10, 50, 50, 2, 2], [200, 0, 260, 60, 3, 3]], np.float32)
    kept, scores = _drop_contained(rows, np.array([0.9, 0.8, 0.7], np.float32))
    np.testing.assert_array_equal(kept, rows[[0, 2]])
    np.testing.assert_allclose(scores, [0.9, 0.7])


def test_blazeface_ignores_the_search_settings(detector):
    from detectors import SearchSettings

    frame = astronaut_bgr()
    plain, tuned = detector.detect(frame), detector.detect(frame, SearchSettings(min_size=400, max_pixels=1000))
    for a, b in zip(plain, tuned, strict=True):
        np.testing.assert_array_equal(a, b)


def test_blazeface_finds_a_small_face_in_a_large_frame_with_tiles():
    small = cv2.resize(astronaut_bgr(), (205, 205), interpolation=cv2.INTER_AREA)  # a face of 40 px
    frame = np.full((1080, 1920, 3), 90, np.uint8)
    frame[600:805, 1500:1705] = small
    expected = (1500 + ASTRONAUT_FACE[0] * 0.4, 600 + ASTRONAUT_FACE[1] * 0.4, 40, 40)
    assert len(BlazeFaceDetector(tile=1080).detect(frame)[0]) == 0  # too small in a square of the frame's height
    for tile in (480, "square"):  # the default: 400-px tiles on 1080p
        boxes, _, _ = BlazeFaceDetector(tile=tile).detect(frame)
        assert len(boxes) == 1 and iou(boxes[0], expected) > 0.4


@pytest.mark.parametrize("side", [300, 400])  # faces of 59 and 78 px
def test_blazeface_square_tiles_find_a_face_the_letterboxed_frame_loses(side):
    small = cv2.resize(astronaut_bgr(), (side, side), interpolation=cv2.INTER_AREA)
    frame = np.full((1080, 1920, 3), 90, np.uint8)
    frame[500:500 + side, 1500:1500 + side] = small
    scale = side / 512
    expected = (1500 + ASTRONAUT_FACE[0] * scale, 500 + ASTRONAUT_FACE[1] * scale, 100 * scale, 100 * scale)
    assert len(BlazeFaceDetector(tile=None).detect(frame)[0]) == 0
    boxes, scores, _ = BlazeFaceDetector().detect(frame)  # tile="square", the default
    assert len(boxes) == 1 and iou(boxes[0], expected) > 0.4 and 0.5 <= scores[0] <= 1


@pytest.mark.parametrize(("size", "tiles"), [
    # squares of the shorter side, then (shorter side over 500 px) small tiles of 400 px
    ((1920, 1080), [(0, 0, 1080), (840, 0, 1080)]
     + [(x, y, 400) for y in (0, 227, 453, 680) for x in (0, 304, 608, 912, 1216, 1520)]),
    ((1280, 720), [(0, 0, 720), (560, 0, 720)] + [(x, y, 400) for y in (0, 320) for x in (0, 293, 587, 880)]),
    # 48 small tiles of 400 px would be needed: 20 of 978 px (32 at most)
    ((4000, 3000), [(0, 0, 3000), (1000, 0, 3000)]
     + [(x, y, 978) for y in (0, 674, 1348, 2022) for x in (0, 756, 1511, 2266, 3022)]),
    ((640, 360), [(0, 0, 360), (280, 0, 360)]),
    ((640, 480), [(0, 0, 480), (160, 0, 480)]),
    ((360, 1000), [(0, 0, 360), (0, 213, 360), (0, 427, 360), (0, 640, 360)]),
    ((480, 484), []),  # nearly square: the whole frame fills the model's input
    ((10000, 300), []),  # a panorama's strip: more than MAX_TILES squares of its height
    ((900, 20), []),  # a sliver
])
def test_square_tiles_cover_the_frame_with_overlap(size, tiles):
    assert BlazeFaceDetector()._tiles(*size) == tiles


@pytest.mark.parametrize("tile", ["round", 32, True, 1.5])
def test_blazeface_refuses_a_bad_tile(tile):
    with pytest.raises(ValueError, match="tile"):
        BlazeFaceDetector(tile=tile)




def test_a_keypoint_layout_that_is_not_a_face_is_dropped(detector):
    found = detector.detect(astronaut_bgr())
    x, y, w, h = found.boxes[0]
    corners, points = np.array([[x, y, x + w, y + h]]), found.keypoints[:1]
    assert plausible_layout(corners, points).tolist() == [True]
    centre = np.array([x + w / 2, y + h / 2])
    rolled = centre + (points - centre) @ np.array([[0, 1], [-1, 0]])  # the face rolled by 90 degrees: a face
    assert plausible_layout(corners, rolled).tolist() == [True]
    upside_down = points.copy()
    upside_down[:, [2, 3]] = points[:, [3, 2]]  # the mouth above the nose
    upside_down[:, 3] = 2 * (points[:, 0] + points[:, 1]) / 2 - points[:, 3]  # the mouth above the eyes
    one_point = points.copy()
    one_point[:, 1] = points[:, 0]  # both eyes on one point
    outside = points + [3 * w, 0]  # the points far from the box
    assert plausible_layout(np.repeat(corners, 3, 0), np.concatenate([upside_down, one_point, outside])).tolist() \
        == [False, False, False]


def test_two_adjacent_faces_stay_two_boxes(detector):
    """Two faces side by side, their boxes almost touching, in a 1080p frame (found in the small tiles): two boxes."""
    small = cv2.resize(astronaut_bgr(), (300, 300), interpolation=cv2.INTER_AREA)  # faces of about 59 px
    face = small[30:130, 120:220]  # about the face and its surroundings, 100 px
    frame = np.full((1080, 1920, 3), 90, np.uint8)
    frame[500:600, 900:1000] = face
    frame[500:600, 1000:1100] = face
    found = detector.detect(frame)
    assert len(found.boxes) == 2
    assert abs(found.boxes[0, 0] - found.boxes[1, 0]) > 60  # one on each face


def test_a_face_that_is_not_found_again_is_dropped(detector, monkeypatch):
    """A face scored under CONFIRM_BELOW is kept only when the search around it finds it again."""
    frame = cv2.resize(astronaut_bgr(), (256, 256), interpolation=cv2.INTER_AREA)
    assert len(detector.detect(frame).boxes) == 1
    monkeypatch.setattr("detectors.blazeface.CONFIRM_BELOW", 1.01)  # every face needs confirming
    assert len(detector.detect(frame).boxes) == 1  # a real face is found again
    monkeypatch.setattr(BlazeFaceDetector, "_found_again", lambda self, frame, corners: False)
    assert len(detector.detect(frame).boxes) == 0
    assert len(BlazeFaceDetector(confirm=False).detect(frame).boxes) == 1
