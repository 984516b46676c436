"""`python main.py annotate VIDEO`: annotated MP4, per-face CSV and plot, through the stream's pipeline."""

import csv

import cv2
import pytest
from helpers import MEDIA_DIR, requires_media

from main import main
from model import EMOTIONS_LIST
from report import CSV_COLUMNS, annotate_video


def test_annotate_writes_video_csv_and_plot(face_video, tmp_path):
    path, boxes, fps = face_video
    assert main(["annotate", str(path), "--output", str(tmp_path)]) == 0
    video, table, plot = (tmp_path / f"astronaut{suffix}"
                          for suffix in ("_annotated.mp4", "_faces.csv", "_emotions.png"))
    capture = cv2.VideoCapture(str(video))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == len(boxes)
    assert capture.get(cv2.CAP_PROP_FPS) == pytest.approx(fps)
    capture.release()
    with table.open() as f:
        rows = list(csv.DictReader(f))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert [int(r["frame"]) for r in rows] == list(range(len(boxes)))  # one face in every frame
    assert {r["face_id"] for r in rows} == {"1"}
    assert all(0.5 <= float(r["score"]) <= 1 for r in rows)
    assert float(rows[10]["time_s"]) == pytest.approx(10 / fps)
    for row in rows:
        assert sum(float(row[name]) for name in EMOTIONS_LIST) == pytest.approx(1, abs=2e-3)
        assert row["emotion"] == max(EMOTIONS_LIST, key=lambda name: float(row[name]))
    assert plot.stat().st_size > 5000


@pytest.mark.parametrize("content", [None, b"", b"not a video"])
def test_annotate_bad_video_exits_non_zero(tmp_path, content):
    path = tmp_path / "input.mp4"
    if content is not None:
        path.write_bytes(content)
    assert main(["annotate", str(path), "--output", str(tmp_path / "out")]) == 1


def label_changes_per_face_second(rows: list[dict], fps: float) -> float:
    """Changes of the shown label between consecutive frames of the same face, per second of face time."""
    last, changes = {}, 0
    for row in rows:
        face, frame = row["face_id"], int(row["frame"])
        if face in last and last[face][0] == frame - 1 and last[face][1] != row["emotion"]:
            changes += 1
        last[face] = (frame, row["emotion"])
    return changes / (len(rows) / fps)


@requires_media
@pytest.mark.slow  # a whole real clip, twice
def test_annotate_a_real_clip_with_and_without_smoothing(fer_model, tmp_path):
    """On the real talking-head clip: a face in most frames, one face id for most of it, and smoothing
    makes the shown label change less often."""
    video = MEDIA_DIR / "videos" / "fer_woman2.mp4"
    capture = cv2.VideoCapture(str(video))
    frames, fps = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)), capture.get(cv2.CAP_PROP_FPS)
    capture.release()
    rates = {}
    for half_life in (0.0, 0.3):
        paths = annotate_video(video, tmp_path / str(half_life), fer_model, half_life, progress=False)
        with paths["csv"].open() as f:
            rows = list(csv.DictReader(f))
        assert len({int(r["frame"]) for r in rows}) > 0.9 * frames
        ids = [r["face_id"] for r in rows]
        assert max(ids.count(i) for i in set(ids)) > 0.5 * len(rows)
        rates[half_life] = label_changes_per_face_second(rows, fps)
    assert rates[0.3] < 0.7 * rates[0.0], rates
