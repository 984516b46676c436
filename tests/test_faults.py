"""Faults while serving: a video deleted or truncated mid-stream, a webcam that fails, a model that
cannot be loaded at start, query parameters of the wrong type, and SIGTERM. Each gives a clear message
and leaves the server serving everything else."""

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import cv2
import pytest
from helpers import ROOT, astronaut_bgr, free_port, read_jpeg_frames, start_server

#: Frames a test reads at most before it expects the stream to have ended (the test video has 40).
MAX_FRAMES = 200


def frames_until_the_end(response) -> list:
    """Decoded frames of an MJPEG response up to its end (at most MAX_FRAMES)."""
    return read_jpeg_frames(response, MAX_FRAMES)


def is_message_frame(image) -> bool:
    """The app's message frame: white text on a dark background (see drawing.message_jpeg)."""
    return image is not None and image.mean() < 60 and image.max() > 200


@pytest.mark.parametrize("damage", ["delete", "truncate"])
def test_a_video_damaged_while_it_streams_ends_with_a_message(make_app, face_video, tmp_path, damage):
    videos = tmp_path / "damaged"
    videos.mkdir()
    video = videos / "clip.mp4"
    shutil.copy(face_video[0], video)
    app = make_app(VIDEOS_DIR=videos)
    client = app.test_client()
    response = client.get("/video_feed?source=clip.mp4", buffered=False)
    chunks = iter(response.response)
    next(chunks)  # the stream is running
    if damage == "delete":
        video.unlink()
    else:
        with video.open("r+b") as f:
            f.truncate(1000)  # the MP4's index is at its end: what is left cannot be opened
    response.response = chunks
    started = time.monotonic()
    images = frames_until_the_end(response)
    assert len(images) < MAX_FRAMES, "the stream went on"
    assert time.monotonic() - started < 30
    assert is_message_frame(images[-1])
    if damage == "delete":  # the deleted video is no longer offered; the page still answers
        assert client.get("/video_feed?source=clip.mp4").status_code == 404
    assert client.get("/").status_code == 200


class FailingWebcam:
    """Stands in for ``cv2.VideoCapture`` of a webcam that delivers ``frames`` frames, then fails."""

    frames = 30

    def __init__(self, index):
        self.left = self.frames
        self.frame = cv2.resize(astronaut_bgr(), (320, 320))

    def isOpened(self):  # noqa: N802  (OpenCV's name)
        return True

    def read(self):
        if self.left <= 0:
            return False, None
        self.left -= 1
        time.sleep(1 / 30)  # a webcam's pace: every viewer gets frames before the failure
        return True, self.frame.copy()

    def get(self, prop):
        return 0.0

    def release(self):
        pass


def test_a_webcam_that_fails_mid_stream_ends_with_a_message(make_app, tmp_path, monkeypatch):
    real = cv2.VideoCapture
    monkeypatch.setattr(cv2, "VideoCapture", lambda source, *a: FailingWebcam(source) if isinstance(source, int)
                        else real(source, *a))
    # an idle timeout far above the test's length: a viewer that stalls for a moment must not end the run
    # (a new run would open a second FailingWebcam and deliver its frames too)
    app = make_app(VIDEOS_DIR=tmp_path, WEBCAM_INDEX=0, IDLE_TIMEOUT=60.0)
    client = app.test_client()
    images = frames_until_the_end(client.get("/video_feed?source=webcam", buffered=False))
    assert 1 < len(images) <= FailingWebcam.frames + 1  # the webcam's frames (those not dropped), the message
    assert images[0].shape == (320, 320, 3) and not is_message_frame(images[0])
    assert is_message_frame(images[-1])
    assert client.get("/").status_code == 200


@pytest.mark.slow
@pytest.mark.parametrize("fault, message", [("missing", "model file not found"),
                                            ("corrupt json", "is not a Keras model architecture"),
                                            ("corrupt weights", "does not hold weights")])
def test_a_model_that_cannot_be_loaded_stops_the_start_with_an_error(face_video, tmp_path, fault, message):
    model_json, weights = tmp_path / "model.json", tmp_path / "model_weights.h5"
    if fault != "missing":
        shutil.copy(ROOT / "model.json", model_json)
        shutil.copy(ROOT / "model_weights.h5", weights)
        damaged = model_json if fault == "corrupt json" else weights
        damaged.write_bytes(damaged.read_bytes()[:300])
    script = ("import sys, main, server; server.DEFAULT_CONFIG.update(MODEL_JSON=sys.argv[1], "
              "MODEL_WEIGHTS=sys.argv[2]); sys.exit(main.main(['--source', sys.argv[3], '--port', sys.argv[4]]))")
    done = subprocess.run([sys.executable, "-c", script, str(model_json), str(weights), str(face_video[0]),
                           str(free_port())], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert "cannot start" in done.stderr and message in done.stderr
    assert "serving on" not in done.stderr


@pytest.mark.parametrize("query", ["source=1", "source=-1", "source=", "source=webcam", "source=%00",
                                   "source=clip.mp4%00.txt", "source[]=x", "source=a&source=b",
                                   "source=" + "x" * 5000])
def test_query_parameters_of_the_wrong_type_get_a_4xx(client, query):
    for route in ("/video_feed", "/events"):
        response = client.get(f"{route}?{query}", buffered=False)
        if query in ("source=", "source[]=x"):  # no usable source given: the default one is streamed
            assert response.status_code == 200
        else:
            assert response.status_code == 404, (route, query)
            assert "unknown source" in response.get_data(as_text=True)
        response.close()
    assert client.get("/?" + query).status_code in (200, 404)


@pytest.mark.slow
def test_sigterm_stops_the_server_and_releases_the_sources(face_video, tmp_path):
    log_path = tmp_path / "server.log"
    process, base = start_server(["--source", str(face_video[0])], log_path)
    try:
        stream = urllib.request.urlopen(base + "/video_feed", timeout=10)
        assert stream.read(1000)  # a viewer is watching: the video is open
        os.kill(process.pid, signal.SIGTERM)
        assert process.wait(timeout=30) == 0
        stream.close()
    finally:
        if process.poll() is None:
            process.kill()
    log = log_path.read_text()
    assert "shutting down: releasing the video sources" in log
    assert "Traceback" not in log
    errors = [line for line in log.splitlines() if re.match(r"\d{4}-\d\d-\d\d \S+ ERROR ", line)]  # main's format
    assert not errors, errors


@pytest.mark.slow
def test_a_busy_port_is_one_clear_line_and_status_1(face_video):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run([sys.executable, str(ROOT / "main.py"), "--source", str(face_video[0]), "--port",
                               str(port)], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    lines = (done.stdout + done.stderr).strip().splitlines()
    assert len(lines) == 1 and f"port {port}" in lines[0] and "in use" in lines[0], lines


@pytest.mark.slow
def test_a_second_start_is_quiet_and_does_not_import_tensorflow(face_video, tmp_path):
    """The LiteRT conversion is cached beside the weights: a start after the first never imports
    TensorFlow and prints only the app's own log lines."""
    log_path = tmp_path / "server.log"
    for _ in range(2):  # the first start may convert (in a fresh clone); the second must not
        process, base = start_server(["--source", str(face_video[0])], log_path)
        assert urllib.request.urlopen(base + "/", timeout=5).status == 200
        process.terminate()
        assert process.wait(timeout=30) == 0
    lines = log_path.read_text().splitlines()
    own = re.compile(r"\d{4}-\d\d-\d\d \S+ (INFO|WARNING) (?!tensorflow|absl)[\w.]+: ")  # main's log format
    assert all(own.match(line) for line in lines), [line for line in lines if not own.match(line)]
    assert not any("Keras model" in line or "LiteRT conversion" in line for line in lines)
