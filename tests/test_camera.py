"""Detection, drawing, pacing and looping of VideoCamera on a video made from a real face."""

import itertools
import threading
import time

import cv2
import numpy as np
import pytest
from conftest import ASTRONAUT_FACE, MEDIA_DIR, astronaut_bgr, iou, make_face_video, requires_media

from camera import (
    THUMBNAIL_SIZE,
    FrameAnnotator,
    SourceError,
    VideoCamera,
    annotate_frame,
    crop_faces,
    detect_faces,
    draw_results,
    face_template,
    follow_faces,
    load_face_detector,
    make_face_detector,
    scene_changed,
)
from model import EMOTIONS_LIST


def decoded_frames(path):
    capture = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    capture.release()
    return frames


def test_detect_faces_on_the_astronaut():
    gray = cv2.cvtColor(astronaut_bgr(), cv2.COLOR_BGR2GRAY)
    boxes = detect_faces(gray, load_face_detector())
    assert boxes.shape == (1, 4) and boxes.dtype == np.int32
    assert iou(boxes[0], ASTRONAUT_FACE) > 0.6


@pytest.mark.parametrize("shape", [(2200, 1), (1, 2200), (20, 1000), (5000, 40)])
def test_detect_faces_on_slivers_finds_none_without_error(shape):
    assert detect_faces(np.full(shape, 128, np.uint8), load_face_detector()).shape == (0, 4)


def test_detect_faces_finds_none_in_a_blank_frame():
    assert detect_faces(np.full((240, 320), 128, np.uint8), load_face_detector()).shape == (0, 4)


def test_crop_faces_clips_boxes_at_the_border():
    gray = np.arange(100 * 100, dtype=np.uint32).reshape(100, 100).astype(np.uint8)
    crops = crop_faces(gray, np.array([[0, 0, 100, 100], [-10, -10, 40, 40], [90, 90, 30, 30]]))
    assert crops.shape == (3, 48, 48) and crops.dtype == np.uint8
    np.testing.assert_array_equal(crops[0], cv2.resize(gray, (48, 48), interpolation=cv2.INTER_AREA))


def test_draw_results_draws_only_around_the_box():
    frame = np.zeros((200, 300, 3), np.uint8)
    result = {"box": [100, 80, 60, 60], "emotion": "happy",
              "probabilities": {name: (0.7 if name == "happy" else 0.05) for name in EMOTIONS_LIST}}
    draw_results(frame, [result])
    changed = frame.any(axis=2)
    assert changed[80, 100:160].all() and changed[80:140, 100].all()  # top and left edges of the box
    assert not changed[100:120, 110:150].any()  # the face itself stays visible
    assert not changed[160:, :].any() and not changed[:, :90].any()  # nothing far from the box


def test_camera_finds_and_draws_the_moving_face(fer_model, face_video):
    path, boxes, fps = face_video
    raw = decoded_frames(path)
    assert len(raw) == len(boxes)
    with VideoCamera(path, fer_model) as camera:
        assert camera.fps == pytest.approx(fps)
        checked = 0
        while camera.frame_index < len(boxes) - 1 and checked < len(boxes):
            frame = camera.read()
            index = camera.frame_index
            np.testing.assert_array_equal(frame, raw[index])
            results = annotate_frame(frame, camera.model, camera.detector)
            assert len(results) == 1, f"frame {index}: {len(results)} faces"
            face = results[0]
            assert iou(face["box"], boxes[index]) > 0.5, (index, face["box"], boxes[index])
            assert face["emotion"] in EMOTIONS_LIST
            assert sum(face["probabilities"].values()) == pytest.approx(1, abs=1e-3)
            x, y, w, h = face["box"]
            diff = np.abs(frame.astype(int) - raw[index].astype(int)).sum(axis=2) > 30
            assert diff[y, x:x + w].mean() > 0.9 and diff[y:y + h, x].mean() > 0.9  # box edges drawn
            assert not diff[y + h + 10:, :].any()  # nothing below the box (the label goes above it)
            assert not diff[:, :max(x - 10, 0)].any()  # nor left of it
            checked += 1
        assert checked >= 5


def test_get_frame_returns_an_annotated_jpeg(fer_model, face_video):
    with VideoCamera(face_video[0], fer_model) as camera:
        jpeg = camera.get_frame()
        assert len(camera.results) == 1
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert image.shape == (360, 640, 3)


def test_file_never_plays_faster_than_real_time(fer_model, face_video):
    with VideoCamera(face_video[0], fer_model) as camera:
        start = time.monotonic()
        for _ in range(11):
            camera.read()
        elapsed = time.monotonic() - start
    assert elapsed >= 10 / camera.fps * 0.95


def test_frames_are_dropped_when_the_reader_falls_behind(fer_model, face_video):
    with VideoCamera(face_video[0], fer_model) as camera:
        indices = []
        for _ in range(4):
            camera.read()
            indices.append(camera.frame_index)
            time.sleep(0.25)  # 5 frame intervals at 20 frames/s
    assert camera.frames_dropped > 0
    assert max(np.diff(indices)) >= 3


def test_file_loops_at_its_end(fer_model, tmp_path):
    path = tmp_path / "short.mp4"
    make_face_video(path, n_frames=6, fps=20)
    with VideoCamera(path, fer_model) as camera:
        indices = []
        for _ in range(14):
            camera.read()
            indices.append(camera.frame_index)
    assert max(indices) <= 5
    wraps = sum(b < a for a, b in itertools.pairwise(indices))
    assert wraps >= 1, indices  # 14 reads of a 6-frame file start it again at least once
    assert all(b > a for a, b in itertools.pairwise(indices) if b >= a)  # and it only ever moves forward


def test_camera_releases_its_capture(fer_model, face_video):
    camera = VideoCamera(face_video[0], fer_model)
    camera.release()
    camera.release()  # idempotent
    assert camera._capture is None


@pytest.mark.parametrize("source", ["does-not-exist.mp4", 99])
def test_unopenable_source_raises(fer_model, tmp_path, source):
    source = str(tmp_path / source) if isinstance(source, str) else source
    with pytest.raises(SourceError):
        VideoCamera(source, fer_model)


def test_a_file_that_is_not_a_video_raises(fer_model, tmp_path):
    path = tmp_path / "notes.mp4"
    path.write_text("not a video")
    with pytest.raises(SourceError):
        VideoCamera(path, fer_model)


@requires_media
@pytest.mark.parametrize("name, expected", [
    ("faces/fr_two_people.jpg", 2), ("faces/fr_obama.jpg", 1), ("faces/fer_justin.jpg", 1),
    ("noface/skimage_coffee.png", 0), ("noface/fer_no-faces.jpg", 0),
])
def test_faces_in_real_photos(fer_model, name, expected):
    """Every real face is found (the largest boxes, each over 15% of the image width); Haar may add a
    small false face elsewhere (it does on the Obama portrait), but none where there is no face at all."""
    frame = cv2.imread(str(MEDIA_DIR / name))
    results = annotate_frame(frame, fer_model, load_face_detector())
    assert len(results) >= expected if expected else len(results) == 0
    assert all(r["box"][2] > 0.15 * frame.shape[1] for r in results[:expected])


@requires_media
@pytest.mark.parametrize("name", ["faces/fr_obama.jpg", "faces/fer_justin.jpg"])
def test_smiling_faces_are_happy(fer_model, name):
    frame = cv2.imread(str(MEDIA_DIR / name))
    results = annotate_frame(frame, fer_model, load_face_detector())
    assert results[0]["emotion"] == "happy", results[0]["probabilities"]


@requires_media
def test_real_clip_has_a_face_in_most_frames(fer_model):
    frames = decoded_frames(MEDIA_DIR / "videos" / "fer_woman2.mp4")[::15]
    detector = load_face_detector()
    found = [len(annotate_frame(f, fer_model, detector)) >= 1 for f in frames]
    assert np.mean(found) > 0.8, f"face found in {sum(found)} of {len(found)} frames"


def test_detection_on_a_downscaled_frame_maps_boxes_back():
    """A 1080p frame is searched at 854x480; the box must still land on the face in full-size pixels."""
    big = cv2.resize(astronaut_bgr(), (1080, 1080), interpolation=cv2.INTER_CUBIC)
    frame = np.full((1080, 1920, 3), 90, np.uint8)
    frame[:, 400:1480] = big
    gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    expected = tuple(v * 1080 / 512 for v in ASTRONAUT_FACE)
    expected = (expected[0] + 400, *expected[1:])
    boxes = detect_faces(gray, load_face_detector(), max_pixels=854 * 480)
    assert len(boxes) == 1
    assert iou(boxes[0], expected) > 0.6


def test_annotator_follows_the_face_between_full_detections(fer_model, face_video):
    """With a full search every 4th frame only, the box still lands on the moving face in every frame."""
    path, boxes, _ = face_video
    frames = decoded_frames(path)
    annotator = FrameAnnotator(fer_model, load_face_detector(), detect_every=4)
    results = [annotator(frame.copy(), 0.05) for frame in frames]
    # frames 0, 4, 8, ... and a few more where the fast-moving face changed the picture (scene_changed)
    assert -(-len(frames) // 4) <= annotator.full_detections < len(frames) / 2
    assert all(len(r) == 1 for r in results)
    overlaps = [iou(r[0]["box"], expected) for r, expected in zip(results, boxes, strict=True)]
    assert min(overlaps) > 0.5, f"worst IoU {min(overlaps):.2f} at frame {int(np.argmin(overlaps))}"


def test_background_search_follows_the_face_and_stops_its_thread(fer_model, face_video):
    """Searches in a worker thread (the live stream's mode) still box the moving face on every frame."""
    path, boxes, _ = face_video
    frames = decoded_frames(path)
    annotator = FrameAnnotator(fer_model, load_face_detector(), detect_every=4, search_budget=0)
    try:
        results = []
        for frame in frames:
            results.append(annotator(frame.copy(), 0.05))
            time.sleep(0.05)  # paced as the 20 frames/s source: a search ends a frame or two later
        assert any(t.name.startswith("face-search") for t in threading.enumerate())
    finally:
        annotator.close()
    assert not any(t.name.startswith("face-search") for t in threading.enumerate())
    assert annotator.full_detections >= len(frames) // 4
    assert len(annotator(frames[0].copy(), 0.05)) == 1  # after close: searches in line
    assert all(len(r) == 1 for r in results)
    overlaps = [iou(r[0]["box"], expected) for r, expected in zip(results, boxes, strict=True)]
    assert min(overlaps) > 0.5, f"worst IoU {min(overlaps):.2f} at frame {int(np.argmin(overlaps))}"


def wait_for_search(annotator, frame, frames=20):
    """Annotate ``frame`` (paced) until a background search has ended; return the last frame's faces."""
    for _ in range(frames):
        faces = annotator(frame.copy(), 0.05)
        time.sleep(0.05)
    return faces


def test_background_search_after_a_cut_forgets_the_last_scene(fer_model, face_video):
    frame = decoded_frames(face_video[0])[0]
    annotator = FrameAnnotator(fer_model, load_face_detector(), detect_every=1, search_budget=0)
    try:
        assert [len(annotator(frame.copy(), 0.05)) for _ in range(2)] == [1, 1]  # two in-line searches
        annotator.detect_every = 100  # from now on, searches only after cuts, in the background
        black = np.zeros_like(frame)
        assert annotator(black, 0.05) == []  # the cut: the face is gone at once, before any search ends
        assert wait_for_search(annotator, black) == []
        assert len(wait_for_search(annotator, frame)) == 1  # and back: found by a background search
        assert annotator.full_detections == 4
    finally:
        annotator.close()


class FailingDetector:
    """A Haar-like detector whose third search fails."""

    def __init__(self):
        self.calls = 0
        self.cascade = load_face_detector()

    def detectMultiScale(self, *args, **kwargs):  # noqa: N802 (OpenCV's name)
        self.calls += 1
        if self.calls == 3:
            raise cv2.error("search failed")
        return self.cascade.detectMultiScale(*args, **kwargs)


def test_a_failed_background_search_is_raised_once(fer_model, face_video):
    frame = decoded_frames(face_video[0])[0]
    detector = FailingDetector()
    annotator = FrameAnnotator(fer_model, detector, detect_every=1, search_budget=0)
    try:
        with pytest.raises(cv2.error, match="search failed"):
            wait_for_search(annotator, frame)
        assert len(wait_for_search(annotator, frame)) == 1  # later searches run again
        assert detector.calls > 4
    finally:
        annotator.close()


def test_searches_within_the_budget_stay_in_line(fer_model, face_video):
    frames = decoded_frames(face_video[0])
    annotator = FrameAnnotator(fer_model, load_face_detector(), detect_every=2, search_budget=10.0)
    try:
        assert all(len(annotator(frame.copy(), 0.05)) == 1 for frame in frames[:6])
        assert annotator.full_detections == 3
        assert not any(t.name.startswith("face-search") for t in threading.enumerate())
    finally:
        annotator.close()


def test_annotator_searches_the_whole_frame_after_a_cut(fer_model, face_video):
    frame = decoded_frames(face_video[0])[0]
    annotator = FrameAnnotator(fer_model, load_face_detector(), detect_every=100)
    assert [len(annotator(frame.copy(), 0.05)) for _ in range(3)] == [1, 1, 1]
    assert annotator.full_detections == 1  # a still picture: searched whole once
    assert annotator(np.zeros_like(frame), 0.05) == []  # a cut to black: searched whole, no face
    assert annotator.full_detections == 2
    assert len(annotator(frame.copy(), 0.05)) == 1  # and back: found again at once
    assert annotator.full_detections == 3


@pytest.mark.parametrize("detect_every", [0, -1])
def test_annotator_rejects_a_bad_detection_interval(fer_model, detect_every):
    with pytest.raises(ValueError, match="detect_every"):
        FrameAnnotator(fer_model, load_face_detector(), detect_every=detect_every)


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
    boxes = detect_faces(gray, make_face_detector("hog"))
    assert boxes.shape == (1, 4) and boxes.dtype == np.int32
    assert iou(boxes[0], ASTRONAUT_FACE) > 0.5


def test_hog_detector_follows_the_face_through_a_video(fer_model, face_video):
    path, boxes, _ = face_video
    annotator = FrameAnnotator(fer_model, make_face_detector("hog"))
    results = [annotator(frame, 0.05) for frame in decoded_frames(path)]
    # the face in every frame (HOG also takes a patch of the suit for a face in some frames)
    best = [max((iou(face["box"], expected) for face in r), default=0)
            for r, expected in zip(results, boxes, strict=True)]
    assert min(best) > 0.4


@pytest.mark.parametrize("kind", ["", "Haar", "yunet", None])
def test_unknown_detector_is_refused(kind):
    with pytest.raises(ValueError, match="unknown face detector"):
        make_face_detector(kind)


def test_crop_faces_of_a_box_wholly_outside_the_frame_is_black():
    gray = np.full((100, 100), 200, np.uint8)
    crops = crop_faces(gray, np.array([[150, 10, 30, 30], [-50, -50, 20, 20], [10, 10, 30, 30]]))
    assert not crops[0].any() and not crops[1].any() and (crops[2] == 200).all()


def test_annotator_drops_a_face_that_left_and_keeps_its_id_over_a_missed_search(fer_model, face_video):
    frame = decoded_frames(face_video[0])[0]
    annotator = FrameAnnotator(fer_model, load_face_detector(), detect_every=8)
    first = annotator(frame.copy(), 0.05)
    assert len(first) == 1
    x, y, w, h = first[0]["box"]
    covered = frame.copy()  # the same picture with the face painted over
    covered[max(0, y - h // 2):y + h + h // 2, max(0, x - w // 2):x + w + w // 2] = 90
    assert [annotator(covered, 0.05) for _ in range(7)] == [[]] * 7  # gone: not followed, not found
    again = annotator(frame.copy(), 0.05)  # found again after 7 frames without it: the same track
    assert len(again) == 1 and again[0]["id"] == first[0]["id"]
