"""The chained frame path: photos (analyze_frame), videos (FaceAnalyzer), drawing and the live loop
(annotated_stream), on a video made from a real face and on the shared photos and clips."""

import time

import cv2
import numpy as np
import pytest
from helpers import MEDIA_DIR, decoded_frames, requires_media

from analysis import FaceAnalyzer, analyze_frame, annotated_stream
from camera import VideoCamera
from detection import load_face_detector, make_face_detector
from drawing import draw_faces, message_jpeg
from faces import EMOTIONS_LIST, Face, face_to_dict
from faces import box_iou as iou


def probabilities(emotion, p=0.7):
    return np.array([p if name == emotion else (1 - p) / 6 for name in EMOTIONS_LIST], np.float32)


def test_draw_faces_draws_only_around_the_box():
    frame = np.zeros((200, 300, 3), np.uint8)
    draw_faces(frame, [Face((100, 80, 60, 60), probabilities("happy"), id=3)])
    changed = frame.any(axis=2)
    assert changed[80, 100:160].all() and changed[80:140, 100].all()  # top and left edges of the box
    assert not changed[100:120, 110:150].any()  # the face itself stays visible
    assert not changed[160:, :].any() and not changed[:, :90].any()  # nothing far from the box


def test_face_to_dict_is_the_api_shape():
    face = Face((1, 2, 3, 4), probabilities("sad", 0.61234), id=7)
    out = face_to_dict(face)
    assert out["box"] == [1, 2, 3, 4] and out["emotion"] == "sad" and out["id"] == 7
    assert list(out["probabilities"]) == list(EMOTIONS_LIST)
    assert out["probabilities"]["sad"] == 0.6123 and out["score"] is None
    plain = face_to_dict(face.replace(id=None, score=0.91234))
    assert plain["score"] == 0.9123 and "id" not in plain


def test_the_analyzer_finds_classifies_and_tracks_the_moving_face(fer_model, face_video):
    path, boxes, _ = face_video
    analyzer = FaceAnalyzer(fer_model, load_face_detector())
    for index, frame in enumerate(decoded_frames(path)):
        before = frame.copy()
        faces = analyzer(frame, 0.05)
        assert np.array_equal(frame, before)  # analysis does not draw
        assert len(faces) == 1, f"frame {index}: {len(faces)} faces"
        face = faces[0]
        assert iou(face.box, boxes[index]) > 0.5, (index, face.box, boxes[index])
        assert face.id == 1 and face.emotion in EMOTIONS_LIST
        assert face.probabilities.dtype == np.float32 and face.probabilities.sum() == pytest.approx(1, abs=1e-4)


def test_annotated_stream_yields_drawn_jpegs_with_their_faces(fer_model, face_video):
    path, boxes, _ = face_video
    camera = VideoCamera(path, paced=False, loop=False)
    analyzer = FaceAnalyzer(fer_model, load_face_detector(), search_budget=0)
    stream = annotated_stream(camera, analyzer)
    raw = decoded_frames(path)
    for index, (jpeg, faces) in zip(range(5), stream, strict=False):
        image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
        assert image.shape == (360, 640, 3) and len(faces) == 1
        x, y, w, h = faces[0].box
        diff = np.abs(image.astype(int) - raw[index].astype(int)).sum(axis=2) > 60
        assert diff[y, x:x + w].mean() > 0.8 and diff[y:y + h, x].mean() > 0.8  # box edges drawn
        assert diff[y + h + 16:, :].mean() < 1e-3  # nothing below the box but JPEG noise (the label is above)
    stream.close()
    assert camera._capture is None  # closing the stream releases the source


def test_message_jpeg_is_text_on_a_dark_picture():
    image = cv2.imdecode(np.frombuffer(message_jpeg("Stream ended: a reason " * 8), np.uint8), cv2.IMREAD_COLOR)
    assert image.shape == (360, 640, 3) and image.mean() < 60 and image.max() > 200
    assert image[40 + 28 * 2].max() > 200  # wrapped over several lines


def test_analyzer_drops_a_face_that_left_and_keeps_its_id_over_a_missed_search(fer_model, face_video):
    frame = decoded_frames(face_video[0])[0]
    analyzer = FaceAnalyzer(fer_model, load_face_detector(), detect_every=8)
    first = analyzer(frame, 0.05)
    assert len(first) == 1
    x, y, w, h = first[0].box
    covered = frame.copy()  # the same picture with the face painted over
    covered[max(0, y - h // 2):y + h + h // 2, max(0, x - w // 2):x + w + w // 2] = 90
    assert [analyzer(covered, 0.05) for _ in range(7)] == [[]] * 7  # gone: not followed, not found
    again = analyzer(frame, 0.05)  # found again after 7 frames without it: the same track
    assert len(again) == 1 and again[0].id == first[0].id


def test_a_face_after_a_cut_gets_a_new_id_even_where_the_last_scene_had_one(fer_model, face_video):
    """A cut to another shot whose face lies where the last shot's face was: another person, a new id."""
    frame = decoded_frames(face_video[0])[0]
    analyzer = FaceAnalyzer(fer_model, load_face_detector(), detect_every=8)
    (first,) = analyzer(frame, 0.05)
    x, y, w, h = first.box
    other_shot = np.full_like(frame, 160)  # another picture around the face, which stays
    around = np.s_[max(0, y - h // 2):y + h + h // 2, max(0, x - w // 2):x + w + w // 2]
    other_shot[around] = frame[around]
    (after,) = analyzer(other_shot, 0.05)
    assert iou(after.box, first.box) > 0.8 and after.id != first.id
    assert analyzer(other_shot, 0.05)[0].id == after.id  # the same shot: the same face


@requires_media
@pytest.mark.parametrize("name, expected", [
    ("faces/fr_two_people.jpg", 2), ("faces/fr_obama.jpg", 1), ("faces/fer_justin.jpg", 1),
    ("faces/wujie_2.jpg", 1), ("noface/skimage_coffee.png", 0), ("noface/fer_no-faces.jpg", 0),
])
def test_faces_in_real_photos(fer_model, name, expected):
    """With the default detector, every real face and nothing else (each face over 15% of the image
    width), with its score; the crying face with a hand over the mouth too (Haar misses it)."""
    frame = cv2.imread(str(MEDIA_DIR / name))
    faces = analyze_frame(frame, fer_model, make_face_detector(), max_pixels=None)
    assert len(faces) == expected
    assert all(face.box[2] > 0.15 * frame.shape[1] and 0.5 <= face.score <= 1 for face in faces)


@requires_media
@pytest.mark.parametrize("name", ["faces/fr_obama.jpg", "faces/fer_justin.jpg"])
def test_smiling_faces_are_happy(fer_model, name):
    frame = cv2.imread(str(MEDIA_DIR / name))
    faces = analyze_frame(frame, fer_model, make_face_detector())
    assert faces[0].emotion == "happy", faces[0].probabilities


@requires_media
def test_real_clip_has_a_face_in_most_frames(fer_model):
    frames = decoded_frames(MEDIA_DIR / "videos" / "fer_woman2.mp4")[::15]
    detector = load_face_detector()
    found = [len(analyze_frame(f, fer_model, detector)) >= 1 for f in frames]
    assert np.mean(found) > 0.8, f"face found in {sum(found)} of {len(found)} frames"


class _SlowModel:
    """Counts the crops it classifies and takes ``seconds`` per crop."""

    def __init__(self, model, seconds):
        self.model, self.seconds, self.crops = model, seconds, 0

    def predict_proba(self, faces):
        self.crops += len(faces)
        time.sleep(self.seconds * len(faces))
        return self.model.predict_proba(faces)


@pytest.mark.parametrize(("budget", "most"), [(None, 1.0), (1.0, 1.0), (0.012, 0.6), (0.004, 0.3)])
def test_a_classify_budget_classifies_tracked_faces_on_every_kth_frame_only(fer_model, face_video, budget, most):
    path, boxes, _ = face_video
    model = _SlowModel(fer_model, 0.02)  # 20 ms per face or more: over a 12-ms budget, every 2nd frame or
    analyzer = FaceAnalyzer(model, load_face_detector(), classify_budget=budget)  # rarer; 4 ms: 5th or rarer
    frames = decoded_frames(path)
    for frame in frames:
        faces = analyzer(frame, 0.05)
        assert len(faces) == 1 and faces[0].id == 1
        assert faces[0].probabilities.dtype == np.float32 and faces[0].probabilities.sum() == pytest.approx(1, 1e-4)
    assert analyzer.frames == len(frames) and analyzer.faces_classified == model.crops
    if most == 1.0:
        assert model.crops == len(frames)
    else:
        assert 2 <= model.crops <= most * len(frames)


def test_grayscale_and_bgra_frames_are_analysed_like_bgr_and_others_refused(fer_model):
    from helpers import astronaut_bgr

    detector = make_face_detector()
    frame = astronaut_bgr()
    gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    expected = analyze_frame(cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR), fer_model, detector)
    assert len(expected) == 1
    for other in (gray, gray[..., np.newaxis]):
        (face,) = analyze_frame(other, fer_model, detector)
        assert face.box == expected[0].box and face.score == expected[0].score
        np.testing.assert_array_equal(face.probabilities, expected[0].probabilities)
    bgra = analyze_frame(cv2.cvtColor(frame, cv2.COLOR_BGR2BGRA), fer_model, detector)
    assert [f.box for f in bgra] == [f.box for f in analyze_frame(frame, fer_model, detector)]
    analyzer = FaceAnalyzer(fer_model, detector)
    assert [f.box for f in analyzer(gray, 0.05)] == [f.box for f in expected]
    for bad in (np.zeros((0, 0, 3), np.uint8), frame.astype(np.float32), frame.astype(np.uint16),
                np.zeros((8, 8, 2), np.uint8), frame.tolist()):
        for analyse in (lambda f: analyze_frame(f, fer_model, detector), lambda f: analyzer(f, 0.05)):
            with pytest.raises(ValueError, match="uint8"):
                analyse(bad)


def test_a_face_without_probabilities_has_no_label():
    from drawing import draw_faces
    from faces import Face, face_to_dict

    face = Face((10, 10, 40, 40), None, 0.9, 3)
    assert face.emotion is None
    assert face_to_dict(face) == {"box": [10, 10, 40, 40], "score": 0.9, "emotion": None, "probabilities": None,
                                  "id": 3}
    frame = np.zeros((120, 120, 3), np.uint8)
    draw_faces(frame, [face.replace(id=None)])  # the box, and no label
    assert frame[10, 10:50].any() and not frame[:8].any()


def test_dim_flat_crops_are_lifted_to_the_training_range_and_others_left_alone():
    from faces import MIN_CROP_BRIGHTNESS, MIN_CROP_CONTRAST, normalize_lighting

    rng = np.random.default_rng(0)
    normal = rng.normal(128, 60, (48, 48)).clip(0, 255).astype(np.uint8)
    dim = (normal.astype(np.float32) * 0.25).astype(np.uint8)  # a dark room: mean about 32, deviation about 15
    flat = np.full((48, 48), 200, np.uint8)
    out = normalize_lighting(np.stack([normal, dim, flat]))
    assert out.dtype == np.uint8 and out.shape == (3, 48, 48)
    np.testing.assert_array_equal(out[0], normal)  # already in range: untouched
    assert out[1].std() >= MIN_CROP_CONTRAST - 1 and out[1].mean() >= MIN_CROP_BRIGHTNESS - 1
    assert np.corrcoef(out[1].ravel().astype(float), dim.ravel().astype(float))[0, 1] > 0.99  # the same picture
    np.testing.assert_array_equal(out[2], flat)  # no contrast to stretch, bright enough: untouched
    assert normalize_lighting(np.zeros((0, 48, 48), np.uint8)).shape == (0, 48, 48)


def test_a_browser_camera_keeps_the_id_of_a_face_that_moved_far_between_slow_answers(fer_model):
    """Frames half a second apart, a large face moved by 100 px each time: the picture changes enough that a
    file's analyzer takes it for a cut and gives a new id; the browser camera's (max_cut_gap) keeps the track."""
    from helpers import astronaut_bgr

    from analysis import MAX_CUT_GAP, FaceAnalyzer
    from detectors import make_face_detector

    picture = np.full((360, 640, 3), 90, np.uint8)
    face = cv2.resize(astronaut_bgr()[40:300, 130:330], (250, 330))
    frames = []
    for x in (40, 140, 240):
        frame = picture.copy()
        frame[15:345, x:x + 250] = face
        frames.append(frame)
    ids = {}
    for name, gap in (("file", None), ("browser", MAX_CUT_GAP)):
        analyzer = FaceAnalyzer(fer_model, make_face_detector(), max_cut_gap=gap)
        ids[name] = [[f.id for f in analyzer(frame, 0.5)] for frame in frames]
    assert ids["browser"] == [[1], [1], [1]]
    assert ids["file"][0] == [1] and ids["file"][-1] != [1]
