"""Finding faces: the full-frame search, following faces, cuts, and FaceFinder's schedule of searches (the
detectors themselves: tests/test_detectors_*.py)."""

import threading
import time

import cv2
import numpy as np
import pytest
from helpers import ASTRONAUT_FACE, MEDIA_DIR, astronaut_bgr, decoded_frames, requires_media

from detection import (
    THUMBNAIL_SIZE,
    FaceFinder,
    HaarFaceDetector,
    detect_faces,
    detect_faces_and_rolls,
    face_template,
    follow_faces,
    load_face_detector,
    make_face_detector,
    scene_changed,
)
from detectors import DEFAULT_SETTINGS
from faces import box_iou as iou
from faces import crop_faces


def grays(path):
    return [cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY) for frame in decoded_frames(path)]


def test_detect_faces_on_the_astronaut():
    gray = cv2.cvtColor(astronaut_bgr(), cv2.COLOR_BGR2GRAY)
    boxes, scores = detect_faces(gray, load_face_detector())
    assert scores.shape == (len(boxes),) and np.isnan(scores).all()  # Haar gives no score
    assert boxes.shape == (1, 4) and boxes.dtype == np.int32
    assert iou(boxes[0], ASTRONAUT_FACE) > 0.6


@pytest.mark.parametrize("shape", [(2200, 1), (1, 2200), (20, 1000), (5000, 40)])
def test_detect_faces_on_slivers_finds_none_without_error(shape):
    assert detect_faces(np.full(shape, 128, np.uint8), load_face_detector())[0].shape == (0, 4)


def test_detect_faces_finds_none_in_a_blank_frame():
    assert detect_faces(np.full((240, 320), 128, np.uint8), load_face_detector())[0].shape == (0, 4)


def test_crop_faces_clips_boxes_at_the_border():
    gray = np.arange(100 * 100, dtype=np.uint32).reshape(100, 100).astype(np.uint8)
    crops = crop_faces(gray, np.array([[0, 0, 100, 100], [-10, -10, 40, 40], [90, 90, 30, 30]]), 48)
    assert crops.shape == (3, 48, 48) and crops.dtype == np.uint8
    np.testing.assert_array_equal(crops[0], cv2.resize(gray, (48, 48), interpolation=cv2.INTER_AREA))


def test_crop_faces_of_a_box_wholly_outside_the_frame_is_black():
    gray = np.full((100, 100), 200, np.uint8)
    crops = crop_faces(gray, np.array([[150, 10, 30, 30], [-50, -50, 20, 20], [10, 10, 30, 30]]), 48)
    assert not crops[0].any() and not crops[1].any() and (crops[2] == 200).all()


def test_detection_on_a_downscaled_frame_maps_boxes_back():
    """A 1080p frame is searched at 854x480; the box must still land on the face in full-size pixels."""
    big = cv2.resize(astronaut_bgr(), (1080, 1080), interpolation=cv2.INTER_CUBIC)
    frame = np.full((1080, 1920, 3), 90, np.uint8)
    frame[:, 400:1480] = big
    gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    expected = tuple(v * 1080 / 512 for v in ASTRONAUT_FACE)
    expected = (expected[0] + 400, *expected[1:])
    boxes, _ = detect_faces(gray, load_face_detector(), max_pixels=854 * 480)
    assert len(boxes) == 1
    assert iou(boxes[0], expected) > 0.6


def test_finder_follows_the_face_between_full_searches(face_video):
    """With a full search every 4th frame only, the box still lands on the moving face in every frame."""
    path, boxes, _ = face_video
    frames = grays(path)
    finder = FaceFinder(load_face_detector(), detect_every=4)
    found = [finder(gray).boxes for gray in frames]
    # frames 0, 4, 8, ... and a few more where the fast-moving face changed the picture (scene_changed)
    assert -(-len(frames) // 4) <= finder.full_searches < len(frames) / 2
    assert all(len(b) == 1 for b in found)
    overlaps = [iou(b[0], expected) for b, expected in zip(found, boxes, strict=True)]
    assert min(overlaps) > 0.5, f"worst IoU {min(overlaps):.2f} at frame {int(np.argmin(overlaps))}"


def test_background_search_follows_the_face_and_stops_its_thread(face_video):
    """Searches in a worker thread (the live stream's mode) still box the moving face on every frame."""
    path, boxes, _ = face_video
    frames = grays(path)
    finder = FaceFinder(load_face_detector(), detect_every=4, search_budget=0)
    try:
        found = []
        for gray in frames:
            found.append(finder(gray).boxes)
            time.sleep(0.05)  # paced as the 20 frames/s source: a search ends a frame or two later
        assert any(t.name.startswith("face-search") for t in threading.enumerate())
    finally:
        finder.close()
    assert not any(t.name.startswith("face-search") for t in threading.enumerate())
    assert finder.full_searches >= len(frames) // 4
    assert len(finder(frames[0]).boxes) == 1  # after close: searches in line
    assert all(len(b) == 1 for b in found)
    overlaps = [iou(b[0], expected) for b, expected in zip(found, boxes, strict=True)]
    assert min(overlaps) > 0.5, f"worst IoU {min(overlaps):.2f} at frame {int(np.argmin(overlaps))}"


def wait_for_search(finder, gray, frames=20):
    """Give ``gray`` to the finder (paced) until a background search has ended; return the last boxes."""
    for _ in range(frames):
        boxes = finder(gray).boxes
        time.sleep(0.05)
    return boxes


def test_background_search_after_a_cut_forgets_the_last_scene(face_video):
    gray = grays(face_video[0])[0]
    finder = FaceFinder(load_face_detector(), detect_every=1, search_budget=0)
    try:
        assert [len(finder(gray).boxes) for _ in range(2)] == [1, 1]  # two in-line searches
        finder.detect_every = 100  # from now on, searches only after cuts, in the background
        black = np.zeros_like(gray)
        assert len(finder(black).boxes) == 0  # the cut: the face is gone at once, before any search ends
        assert len(wait_for_search(finder, black)) == 0
        assert len(wait_for_search(finder, gray)) == 1  # and back: found by a background search
        assert finder.full_searches == 4
    finally:
        finder.close()


class FailingDetector(HaarFaceDetector):
    """A Haar detector whose third search fails."""

    def __init__(self):
        super().__init__()
        self.calls = 0

    def detect(self, frame, settings=DEFAULT_SETTINGS):
        self.calls += 1
        if self.calls == 3:
            raise cv2.error("search failed")
        return super().detect(frame, settings)


def test_a_failed_background_search_is_raised_once(face_video):
    gray = grays(face_video[0])[0]
    detector = FailingDetector()
    finder = FaceFinder(detector, detect_every=1, search_budget=0)
    try:
        with pytest.raises(cv2.error, match="search failed"):
            wait_for_search(finder, gray)
        assert len(wait_for_search(finder, gray)) == 1  # later searches run again
        assert detector.calls > 4
    finally:
        finder.close()


def test_searches_within_the_budget_stay_in_line(face_video):
    frames = grays(face_video[0])
    finder = FaceFinder(load_face_detector(), detect_every=2, search_budget=10.0)
    try:
        assert all(len(finder(gray).boxes) == 1 for gray in frames[:6])
        assert finder.full_searches == 3
        assert not any(t.name.startswith("face-search") for t in threading.enumerate())
    finally:
        finder.close()


def test_finder_searches_the_whole_frame_after_a_cut(face_video):
    gray = grays(face_video[0])[0]
    finder = FaceFinder(load_face_detector(), detect_every=100)
    assert [len(finder(gray).boxes) for _ in range(3)] == [1, 1, 1]
    assert finder.full_searches == 1  # a still picture: searched whole once
    assert len(finder(np.zeros_like(gray)).boxes) == 0  # a cut to black: searched whole, no face
    assert finder.full_searches == 2
    assert len(finder(gray).boxes) == 1  # and back: found again at once
    assert finder.full_searches == 3


@pytest.mark.parametrize("search_budget", [None, 0])  # searches in line, and in the background
def test_finder_tells_a_cut_and_a_new_frame_size(face_video, search_budget):
    gray = grays(face_video[0])[0]
    finder = FaceFinder(load_face_detector(), detect_every=100, search_budget=search_budget)
    try:
        found = [finder(gray) for _ in range(3)]
        assert [f.cut for f in found] == [False, False, False]  # the first frame: nothing to cut from
        brighter = cv2.add(gray, 60)  # another picture, the face where it was
        assert finder(brighter).cut and not finder(brighter).cut
        def faces_on(picture):  # in the background a cut's search ends a frame or more after it
            found, deadline = finder(picture), time.monotonic() + 10
            while len(found.boxes) == 0 and time.monotonic() < deadline:
                time.sleep(0.05)
                found = finder(picture)
            return found

        before = faces_on(gray)
        larger = cv2.resize(gray, (gray.shape[1] * 3 // 2, gray.shape[0] * 3 // 2))
        assert finder(larger).cut  # the boxes followed so far were in other coordinates
        resized = faces_on(larger)
        assert len(before.boxes) == len(resized.boxes) == 1
        assert iou(resized.boxes[0], [round(v * 1.5) for v in before.boxes[0]]) > 0.6  # in the new coordinates
    finally:
        finder.close()


@pytest.mark.parametrize("detect_every", [0, -1, 1.5, True])
def test_finder_rejects_a_bad_search_interval(detect_every):
    with pytest.raises(ValueError, match="detect_every"):
        FaceFinder(load_face_detector(), detect_every=detect_every)


@pytest.mark.parametrize("shift", [(0, 0), (12, -8), (-25, 20)])
def test_follow_faces_moves_the_box_with_the_face(shift):
    gray = cv2.cvtColor(astronaut_bgr(), cv2.COLOR_BGR2GRAY)
    dx, dy = shift
    moved = np.roll(gray, (dy, dx), axis=(0, 1))
    x, y, w, h = ASTRONAUT_FACE
    boxes, scores = follow_faces(moved, np.array([ASTRONAUT_FACE]), [face_template(gray, ASTRONAUT_FACE)])
    assert boxes.dtype == np.int32 and scores.shape == (1,)
    assert iou(boxes[0], (x + dx, y + dy, w, h)) > 0.85 and scores[0] > 0.9


def test_follow_faces_scores_a_face_that_left_low():
    gray = cv2.cvtColor(astronaut_bgr(), cv2.COLOR_BGR2GRAY)
    empty = np.random.default_rng(0).integers(0, 256, gray.shape, dtype=np.uint8)
    boxes, scores = follow_faces(empty, np.array([ASTRONAUT_FACE, (-500, 0, 50, 50)]),
                                 [face_template(gray, ASTRONAUT_FACE)] * 2)
    assert scores[0] < 0.5
    assert scores[1] == 0 and boxes[1].tolist() == [-500, 0, 50, 50]  # nothing of it in the frame


def test_scene_changed_tells_a_cut_from_noise():
    rng = np.random.default_rng(0)
    shot = rng.integers(0, 256, THUMBNAIL_SIZE[::-1], dtype=np.uint8)
    noisy = np.clip(shot.astype(int) + rng.integers(-5, 6, shot.shape), 0, 255).astype(np.uint8)
    assert scene_changed(None, shot)
    assert not scene_changed(shot, noisy)
    assert scene_changed(shot, 255 - shot)


def test_hog_detector_finds_the_astronaut():
    gray = cv2.cvtColor(astronaut_bgr(), cv2.COLOR_BGR2GRAY)
    boxes, _ = detect_faces(gray, make_face_detector("hog"))
    assert boxes.shape == (1, 4) and boxes.dtype == np.int32
    assert iou(boxes[0], ASTRONAUT_FACE) > 0.5


def test_hog_detector_follows_the_face_through_a_video(face_video):
    path, boxes, _ = face_video
    finder = FaceFinder(make_face_detector("hog"))
    found = [finder(gray).boxes for gray in grays(path)]
    # the face in every frame (HOG also takes a patch of the suit for a face in some frames)
    best = [max((iou(box, expected) for box in b), default=0) for b, expected in zip(found, boxes, strict=True)]
    assert min(best) > 0.4


@pytest.mark.parametrize("kind", ["", "Haar", "yunet", "BlazeFace", None])
def test_unknown_detector_is_refused(kind):
    with pytest.raises(ValueError, match="unknown face detector"):
        make_face_detector(kind)


def test_blazeface_finds_the_astronaut_with_a_score():
    boxes, scores = detect_faces(astronaut_bgr(), make_face_detector("blazeface"))
    assert boxes.shape == (1, 4) and boxes.dtype == np.int32
    assert iou(boxes[0], ASTRONAUT_FACE) > 0.5
    assert scores.dtype == np.float32 and 0.5 <= scores[0] <= 1


def test_blazeface_reads_grayscale_frames_too():
    gray = cv2.cvtColor(astronaut_bgr(), cv2.COLOR_BGR2GRAY)
    boxes, _ = detect_faces(gray, make_face_detector("blazeface"))
    assert len(boxes) == 1 and iou(boxes[0], ASTRONAUT_FACE) > 0.5


def test_blazeface_min_score_drops_weaker_faces():
    frame = astronaut_bgr()
    _, scores = detect_faces(frame, make_face_detector("blazeface"))
    assert len(detect_faces(frame, make_face_detector("blazeface", min_score=float(scores[0]) + 0.01))[0]) == 0


@pytest.mark.parametrize("min_score", [-0.1, 1.5, float("nan")])
def test_blazeface_refuses_a_score_outside_0_1(min_score):
    with pytest.raises(ValueError, match="min_score"):
        make_face_detector("blazeface", min_score)


@pytest.mark.parametrize("shape", [(2200, 1), (1, 2200), (20, 1000), (240, 320), (5000, 40)])
def test_blazeface_on_slivers_and_blank_frames_finds_none(shape):
    boxes, scores = detect_faces(np.full(shape, 128, np.uint8), make_face_detector("blazeface"))
    assert boxes.shape == (0, 4) and scores.shape == (0,)


#: Centres (x, y) of the seven faces of deepface_selfie-many-people.jpg (600x604), marked by eye: the
#: bearded man, the man in the middle, the man with glasses at the top right (cut by the edge), the
#: woman at the left edge, the woman in the middle, the woman at the bottom left (mostly outside the
#: frame) and the man very close to the camera at the bottom right (cut).
SELFIE_FACES = [(258, 198), (425, 215), (570, 160), (35, 300), (148, 380), (20, 515), (555, 465)]


@requires_media
def test_blazeface_finds_the_seven_faces_of_a_group_selfie_and_nothing_else():
    frame = cv2.imread(str(MEDIA_DIR / "faces" / "deepface_selfie-many-people.jpg"))
    boxes, scores = detect_faces(frame, make_face_detector("blazeface"))

    def faces_inside(box):
        x, y, w, h = box
        return [i for i, (cx, cy) in enumerate(SELFIE_FACES) if x <= cx <= x + w and y <= cy <= y + h]

    assert all(len(faces_inside(box)) == 1 for box in boxes), boxes  # every box on one real face
    # all seven: the woman mostly outside the frame in the mirrored border, the man with glasses cut by the right
    # edge in the view with the wide black border
    assert len({faces_inside(box)[0] for box in boxes}) == len(boxes) == 7
    assert ((scores >= 0.5) & (scores <= 1)).all()


@requires_media
@pytest.mark.parametrize("name", ["skimage_coffee.png", "fer_no-faces.jpg"])
def test_blazeface_finds_no_face_where_there_is_none(name):
    frame = cv2.imread(str(MEDIA_DIR / "noface" / name))
    assert len(detect_faces(frame, make_face_detector("blazeface"))[0]) == 0


@pytest.mark.parametrize("outside", [0.1, 0.25, 0.4])
def test_a_face_cut_by_the_frame_edge_is_still_followed(outside):
    """A box reaching past the frame's edge (BlazeFace's boxes of cut faces do) keeps matching its face."""
    gray = cv2.cvtColor(astronaut_bgr(), cv2.COLOR_BGR2GRAY)
    x, y, w, h = ASTRONAUT_FACE
    cut = np.ascontiguousarray(gray[:, x + int(outside * w):])  # the face now crosses the left edge
    box = np.array([[-int(outside * w), y, w, h]])
    boxes, scores = follow_faces(cut, box, [face_template(cut, box[0])])
    assert scores[0] > 0.9 and iou(boxes[0], box[0]) > 0.9


def rolled_astronaut(degrees):
    """The astronaut picture turned ``degrees`` clockwise (as seen) about her face's centre."""
    image = astronaut_bgr()
    x, y, w, h = ASTRONAUT_FACE
    turn = cv2.getRotationMatrix2D((x + w / 2, y + h / 2), -degrees, 1.0)
    return cv2.warpAffine(image, turn, image.shape[1::-1], borderMode=cv2.BORDER_REFLECT)


@pytest.mark.parametrize("degrees", [-25, 25])
def test_blazeface_measures_a_rolled_face_with_its_sign(degrees):
    upright = detect_faces_and_rolls(astronaut_bgr(), make_face_detector())[2][0]
    boxes, _, rolls = detect_faces_and_rolls(rolled_astronaut(degrees), make_face_detector())
    assert len(boxes) == 1 and iou(boxes[0], ASTRONAUT_FACE) > 0.5
    assert abs(rolls[0] - upright - degrees) < 10, (rolls, upright)


def test_haar_boxes_have_no_roll():
    boxes, scores, rolls = detect_faces_and_rolls(astronaut_bgr(), make_face_detector("haar"))
    assert len(boxes) == 1 and np.isnan(scores).all() and np.isnan(rolls).all()


def test_a_rolled_face_is_cut_level():
    """The crop of the rolled astronaut, turned by BlazeFace's roll, looks like the upright one's; cut as
    the box lies, it does not."""
    detector = make_face_detector()
    gray = cv2.cvtColor(astronaut_bgr(), cv2.COLOR_BGR2GRAY)
    box, _, roll = detect_faces_and_rolls(gray, detector)
    upright = crop_faces(gray, box[:1], 48, roll[:1]).astype(float)
    rolled = cv2.cvtColor(rolled_astronaut(25), cv2.COLOR_BGR2GRAY)
    box, _, roll = detect_faces_and_rolls(rolled, detector)
    level, as_is = crop_faces(rolled, box[:1], 48, roll[:1]), crop_faces(rolled, box[:1], 48)

    def similarity(crop):
        return np.corrcoef(crop.astype(float).ravel(), upright.ravel())[0, 1]

    assert similarity(level) > 0.5 and similarity(level) > similarity(as_is) + 0.2  # measured: 0.60 and 0.32


def test_small_or_unknown_rolls_leave_the_crop_as_it_is():
    gray = cv2.cvtColor(astronaut_bgr(), cv2.COLOR_BGR2GRAY)
    boxes = np.array([ASTRONAUT_FACE, ASTRONAUT_FACE])
    as_is = crop_faces(gray, boxes, 48)
    np.testing.assert_array_equal(crop_faces(gray, boxes, 48, np.array([np.nan, 4.0])), as_is)
    assert np.abs(crop_faces(gray, boxes, 48, np.array([20.0, -20.0])).astype(int) - as_is).mean() > 5
    with pytest.raises(ValueError, match="one angle per box"):
        crop_faces(gray, boxes, 48, np.array([1.0]))


def test_the_finder_keeps_each_face_roll_while_it_follows_it(face_video):
    finder = FaceFinder(make_face_detector(), detect_every=4)
    for frame in decoded_frames(face_video[0])[:6]:
        found = finder(frame)
        assert found.rolls is not None and len(found.rolls) == len(found.boxes)
    assert len(found.boxes) == 1 and np.isfinite(found.rolls).all() and abs(found.rolls[0]) < 20
