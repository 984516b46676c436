"""`python main.py annotate VIDEO`: annotated MP4, per-face CSV and plot, through the stream's pipeline."""

import csv

import cv2
import pytest

from main import main
from model import EMOTIONS_LIST
from report import CSV_COLUMNS


def test_annotate_writes_video_csv_and_plot(face_video, tmp_path):
    path, boxes, fps = face_video
    assert main(["annotate", str(path), "--output", str(tmp_path)]) == 0
    video, table, plot = (tmp_path / f"astronaut{suffix}" for suffix in ("_annotated.mp4", "_faces.csv", "_emotions.png"))
    capture = cv2.VideoCapture(str(video))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == len(boxes)
    assert capture.get(cv2.CAP_PROP_FPS) == pytest.approx(fps)
    capture.release()
    with table.open() as f:
        rows = list(csv.DictReader(f))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert [int(r["frame"]) for r in rows] == list(range(len(boxes)))  # one face in every frame
    assert {r["face_id"] for r in rows} == {"1"}
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
