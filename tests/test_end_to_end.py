"""`python main.py --source VIDEO` as a user runs it: a real server process, a real HTTP client."""

import time
import urllib.error
import urllib.request

import cv2
import numpy as np
import pytest

pytestmark = pytest.mark.slow  # a server process


def test_served_stream_delivers_frames_of_the_video(live_server, face_video):
    page = urllib.request.urlopen(live_server + "/", timeout=5).read().decode()
    assert "<img id=\"stream\"" in page and "(the default source" in page
    frames, deadline = [], time.monotonic() + 60
    with urllib.request.urlopen(live_server + "/video_feed", timeout=10) as stream:
        assert stream.headers["Content-Type"] == "multipart/x-mixed-replace; boundary=frame"
        while len(frames) < 10:
            assert time.monotonic() < deadline, f"only {len(frames)} frames in 60 s"
            line = stream.readline()
            assert line, f"the stream ended after {len(frames)} frames"
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
                stream.readline()
                frames.append(cv2.imdecode(np.frombuffer(stream.read(length), np.uint8), cv2.IMREAD_COLOR))
    assert all(f is not None and f.shape == (360, 640, 3) for f in frames)


def test_server_answers_404_for_an_unknown_source(live_server):
    with pytest.raises(urllib.error.HTTPError) as error:
        urllib.request.urlopen(live_server + "/video_feed?source=../main.py", timeout=5)
    assert error.value.code == 404
