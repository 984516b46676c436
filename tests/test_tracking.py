"""FaceTracker: ids persist across frames by overlap; probabilities are smoothed with a half-life."""

import itertools

import numpy as np
import pytest

from faces import EMOTIONS_LIST, Face, box_iou
from tracking import FaceTracker


def face(box, emotion, p=0.6):
    rest = (1 - p) / (len(EMOTIONS_LIST) - 1)
    return Face(tuple(box), np.array([p if name == emotion else rest for name in EMOTIONS_LIST], np.float32))


def test_box_iou():
    assert box_iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1
    assert box_iou((0, 0, 10, 10), (20, 20, 5, 5)) == 0
    assert box_iou((0, 0, 10, 10), (5, 0, 10, 10)) == pytest.approx(50 / 150)
    assert box_iou((0, 0, 0, 0), (0, 0, 0, 0)) == 0


def test_ids_follow_moving_faces_and_new_faces_get_new_ids():
    tracker = FaceTracker()
    first = tracker.update([face((100, 100, 50, 50), "happy"), face((300, 100, 50, 50), "sad")], dt=0.04)
    second = tracker.update([face((305, 102, 50, 50), "sad"), face((104, 101, 50, 50), "happy"),
                             face((500, 300, 40, 40), "fear")], dt=0.04)
    assert [f.id for f in first] == [1, 2]
    assert [f.id for f in second] == [2, 1, 3]


def test_a_track_survives_short_misses_only():
    tracker = FaceTracker(max_missed=2)
    box = (100, 100, 50, 50)
    assert tracker.update([face(box, "happy")], 0.04)[0].id == 1
    for _ in range(2):
        tracker.update([], 0.04)
    assert tracker.update([face(box, "happy")], 0.04)[0].id == 1  # missed twice: kept
    for _ in range(3):
        tracker.update([], 0.04)
    assert tracker.update([face(box, "happy")], 0.04)[0].id == 2  # missed three times: a new face


@pytest.mark.parametrize("half_life, flips", [(0.0, 9), (0.5, 0)])
def test_smoothing_stops_a_flickering_label(half_life, flips):
    """Frames alternate between a confident 'neutral' and a weaker 'sad'; smoothed, the label holds."""
    tracker = FaceTracker(half_life=half_life)
    labels = [tracker.update([face((100, 100, 50, 50), "neutral" if i % 2 == 0 else "sad",
                                   0.7 if i % 2 == 0 else 0.5)], dt=1 / 30)[0].emotion for i in range(10)]
    assert sum(a != b for a, b in itertools.pairwise(labels)) == flips


def test_half_life_weights():
    tracker = FaceTracker(half_life=1.0)
    tracker.update([face((0, 0, 50, 50), "happy", 1.0)], dt=0)
    out = tracker.update([face((0, 0, 50, 50), "sad", 1.0)], dt=1.0)[0]
    happy, sad = EMOTIONS_LIST.index("happy"), EMOTIONS_LIST.index("sad")
    assert out.probabilities[happy] == pytest.approx(0.5) and out.probabilities[sad] == pytest.approx(0.5)
    assert out.probabilities.dtype == np.float32


def test_inputs_are_not_modified():
    given = face((0, 0, 50, 50), "happy")
    before = given.probabilities.copy()
    FaceTracker().update([given], 0.04)
    tracked = FaceTracker(half_life=1.0)
    tracked.update([given], 0.04)
    tracked.update([face((0, 0, 50, 50), "sad")], 0.5)
    assert given.id is None and np.array_equal(given.probabilities, before)


def test_a_face_not_classified_keeps_its_tracks_probabilities_and_the_smoothing_counts_the_time():
    tracker = FaceTracker(half_life=0.1)
    box = (100, 100, 50, 50)
    first = tracker.update([face(box, "happy", 0.9)], 0.04)[0]
    assert tracker.track_ids([(102, 101, 50, 50), (400, 100, 50, 50)]) == [1, None]
    skipped = tracker.update([Face((102, 101, 50, 50), None, 0.8)], 0.04)[0]
    assert skipped.id == 1 and skipped.score == 0.8
    np.testing.assert_array_equal(skipped.probabilities, first.probabilities)
    sad = face(box, "sad", 0.9)
    after_skip = tracker.update([sad], 0.04)[0]
    # two frames since the last classification: the new one weighs as after 0.08 s, not 0.04 s
    weight = 1 - 0.5 ** (0.08 / 0.1)
    np.testing.assert_allclose(after_skip.probabilities,
                               weight * sad.probabilities + (1 - weight) * first.probabilities, rtol=1e-5)


def test_a_new_face_without_probabilities_is_refused():
    tracker = FaceTracker()
    tracker.update([face((100, 100, 50, 50), "happy")], 0.04)
    with pytest.raises(ValueError, match="no probabilities"):
        tracker.update([Face((400, 100, 50, 50), None)], 0.04)


def test_time_missed_counts_towards_the_next_classification():
    """A face found again after 0.3 s unseen (one half-life) gets half the weight, as after 0.3 s of
    frames in which it was seen but not classified."""
    tracker = FaceTracker(half_life=0.3, max_missed=10)
    box = (100, 100, 50, 50)
    tracker.update([face(box, "happy", p=1.0)], 0.0375)
    for _ in range(7):
        tracker.update([], 0.0375)
    (again,) = tracker.update([face(box, "sad", p=1.0)], 0.0375)  # 8 frames of 0.0375 s since the last
    assert again.probabilities[EMOTIONS_LIST.index("sad")] == pytest.approx(0.5, abs=1e-3)


def test_reset_forgets_the_tracks_and_never_reuses_an_id():
    tracker = FaceTracker()
    box = (100, 100, 50, 50)
    assert tracker.update([face(box, "happy")], 0.04)[0].id == 1
    tracker.reset()
    (after,) = tracker.update([face(box, "sad")], 0.04)
    assert after.id == 2 and EMOTIONS_LIST[int(np.argmax(after.probabilities))] == "sad"  # nothing carried over


def test_a_fast_face_keeps_its_id_by_its_predicted_place():
    """A face moving 30 px a frame (its box 50 px wide): its last box overlaps the new one by IoU 0.25, below
    ``min_iou``, but the box moved on by the track's velocity overlaps it more."""
    tracker = FaceTracker()
    ids = [tracker.update([face((100 + 30 * k, 100, 50, 50), "happy")], 0.04)[0].id for k in range(8)]
    assert ids == [1] * 8
    assert FaceTracker(keep_seconds=0).track_ids([(400, 100, 50, 50)]) == [None]


def test_a_face_that_jumps_a_little_without_overlap_keeps_its_id_but_another_size_does_not():
    tracker = FaceTracker(min_iou=0.6)
    tracker.update([face((100, 100, 50, 50), "happy")], 0.04)
    assert tracker.update([face((120, 100, 50, 50), "happy")], 0.04)[0].id == 1  # IoU 0.43, centre 20 px away
    assert tracker.update([face((140, 100, 100, 100), "happy")], 0.04)[0].id == 2  # twice the size: another face


def test_a_track_is_kept_for_keep_seconds_however_many_frames_are_missed():
    tracker = FaceTracker(max_missed=2, keep_seconds=1.0)
    box = (100, 100, 50, 50)
    tracker.update([face(box, "happy")], 1 / 30)
    for _ in range(20):  # 0.67 s of a detector's misses at 30 frames/s
        tracker.update([], 1 / 30)
    assert tracker.update([face(box, "happy")], 1 / 30)[0].id == 1
    for _ in range(40):  # 1.3 s
        tracker.update([], 1 / 30)
    assert tracker.update([face(box, "happy")], 1 / 30)[0].id == 2


def test_two_faces_side_by_side_keep_their_ids_when_they_move_together():
    tracker = FaceTracker()
    for k in range(5):
        left, right = tracker.update([face((100 + 10 * k, 100, 50, 50), "happy"),
                                      face((155 + 10 * k, 100, 50, 50), "sad")], 0.04)
        assert (left.id, right.id) == (1, 2)


def test_a_velocity_made_of_jitter_does_not_lose_a_still_face_after_a_long_gap():
    """Two answers 10 ms apart whose boxes differ by 6 px make a velocity of 600 px/s; a second later the
    face has not moved, and still continues its track (by its last box)."""
    tracker = FaceTracker()
    tracker.update([face((100, 100, 60, 60), "happy")], 0.04)
    tracker.update([face((106, 100, 60, 60), "happy")], 0.01)
    assert tracker.update([face((103, 100, 60, 60), "happy")], 1.0)[0].id == 1
