"""VideoCamera, the source: pacing, dropping, looping, unpaced reading, release and bad sources."""

import itertools
import time

import numpy as np
import pytest
from helpers import decoded_frames, make_face_video

from camera import SourceError, VideoCamera


def test_frames_are_those_of_the_file_with_their_index_and_time(face_video):
    path, boxes, fps = face_video
    raw = decoded_frames(path)
    with VideoCamera(path, paced=False, loop=False) as camera:
        assert camera.fps == pytest.approx(fps) and camera.frame_count == len(boxes)
        captured = list(camera.frames())
    assert [c.index for c in captured] == list(range(len(raw)))
    assert all(np.array_equal(c.frame, r) for c, r in zip(captured, raw, strict=True))
    assert captured[10].time == pytest.approx(10 / fps)


def test_file_never_plays_faster_than_real_time(face_video):
    with VideoCamera(face_video[0]) as camera:
        start = time.monotonic()
        for _ in range(11):
            camera.read()
        elapsed = time.monotonic() - start
    assert elapsed >= 10 / camera.fps * 0.95


def test_frames_are_dropped_when_the_reader_falls_behind(face_video):
    with VideoCamera(face_video[0]) as camera:
        indices = []
        for _ in range(4):
            indices.append(camera.read().index)
            time.sleep(0.25)  # 5 frame intervals at 20 frames/s
    assert camera.frames_dropped > 0
    assert max(np.diff(indices)) >= 3


def test_file_loops_at_its_end(tmp_path):
    path = tmp_path / "short.mp4"
    make_face_video(path, n_frames=6, fps=20)
    with VideoCamera(path) as camera:
        indices = [camera.read().index for _ in range(14)]
    assert max(indices) <= 5
    wraps = sum(b < a for a, b in itertools.pairwise(indices))
    assert wraps >= 1, indices  # 14 reads of a 6-frame file start it again at least once
    assert all(b > a for a, b in itertools.pairwise(indices) if b >= a)  # and it only ever moves forward


def test_camera_releases_its_capture(face_video):
    camera = VideoCamera(face_video[0])
    camera.release()
    camera.release()  # idempotent
    with pytest.raises(SourceError, match="closed"):
        camera.read()


def test_frames_releases_the_source_when_closed(face_video):
    camera = VideoCamera(face_video[0], paced=False)
    frames = camera.frames()
    next(frames)
    frames.close()
    with pytest.raises(SourceError, match="closed"):
        camera.read()


@pytest.mark.parametrize("source", ["does-not-exist.mp4", 99])
def test_unopenable_source_raises(tmp_path, source):
    source = str(tmp_path / source) if isinstance(source, str) else source
    with pytest.raises(SourceError):
        VideoCamera(source)


def test_a_file_that_is_not_a_video_raises(tmp_path):
    path = tmp_path / "notes.mp4"
    path.write_text("not a video")
    with pytest.raises(SourceError) as error:
        VideoCamera(path)
    assert str(tmp_path) not in str(error.value)  # named by its file name, not its folder
