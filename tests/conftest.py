"""Shared fixtures: the shipped model, a video made from a public-domain face, and the app."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from model import FacialExpressionModel  # noqa: E402
from streaming import BOUNDARY  # noqa: E402

SHARED = ROOT.parent / "shared"
FER_DIR = SHARED / "fer2013"
MEDIA_DIR = SHARED / "media"

#: Face box (x, y, w, h) of skimage.data.astronaut() (512x512), annotated by hand for these tests.
ASTRONAUT_FACE = (172, 62, 100, 100)

requires_fer = pytest.mark.skipif(not (FER_DIR / "test").is_dir(), reason="../shared/fer2013 not present")
requires_media = pytest.mark.skipif(not MEDIA_DIR.is_dir(), reason="../shared/media not present")


def iou(a, b) -> float:
    """Intersection over union of two (x, y, w, h) boxes."""
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    iw = max(0, min(ax + aw, bx + bw) - max(ax, bx))
    ih = max(0, min(ay + ah, by + bh) - max(ay, by))
    inter = iw * ih
    return inter / (aw * ah + bw * bh - inter)


def astronaut_bgr() -> np.ndarray:
    from skimage import data

    return cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)


def make_face_video(path: Path, n_frames: int = 40, fps: float = 20.0, size=(640, 360)):
    """Write an MP4 in which the astronaut moves right and grows; return the face box of every frame."""
    width, height = size
    image = astronaut_bgr()
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    assert writer.isOpened(), "OpenCV cannot write MP4 here"
    boxes = []
    for i in range(n_frames):
        t = i / max(n_frames - 1, 1)
        scale = 0.7 + 0.3 * t
        scaled = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        x0, y0 = int(20 + t * (width - scaled.shape[1] - 40)), int(10 + 20 * t)
        frame = np.full((height, width, 3), 90, np.uint8)
        h, w = min(scaled.shape[0], height - y0), scaled.shape[1]
        frame[y0:y0 + h, x0:x0 + w] = scaled[:h]
        fx, fy, fw, fh = ASTRONAUT_FACE
        boxes.append((x0 + fx * scale, y0 + fy * scale, fw * scale, fh * scale))
        writer.write(frame)
    writer.release()
    return boxes


@pytest.fixture(scope="session")
def fer_model() -> FacialExpressionModel:
    return FacialExpressionModel(ROOT / "model.json", ROOT / "model_weights.h5")


@pytest.fixture(scope="session")
def face_video(tmp_path_factory):
    """(path, per-frame face boxes, fps) of a 2 s, 20 frames/s, 640x360 video of the astronaut."""
    path = tmp_path_factory.mktemp("videos") / "astronaut.mp4"
    boxes = make_face_video(path)
    return path, boxes, 20.0


@pytest.fixture()
def app(fer_model, face_video, tmp_path):
    from main import create_app

    videos = tmp_path / "videos"
    videos.mkdir()
    (videos / face_video[0].name).write_bytes(face_video[0].read_bytes())
    return create_app({"MODEL": fer_model, "VIDEOS_DIR": videos, "WEBCAM_INDEX": None, "IDLE_TIMEOUT": 1.0,
                       "TESTING": True})


@pytest.fixture()
def client(app):
    return app.test_client()


@pytest.fixture(scope="session", autouse=True)
def producers_stopped_at_exit():
    """Let the stream producers of all tests stop (they idle out) before the interpreter exits."""
    yield
    import threading
    import time

    deadline = time.monotonic() + 10
    for thread in threading.enumerate():
        if thread.name.startswith("producer "):
            thread.join(max(0.0, deadline - time.monotonic()))


def read_jpeg_frames(response, count, close=True):
    """Parse the first ``count`` parts of a multipart/x-mixed-replace body into decoded images."""
    buffer, images = b"", []
    marker = f"--{BOUNDARY}\r\n".encode()
    for chunk in response.response:
        buffer += chunk
        while len(images) < count:
            start = buffer.find(marker)
            header_end = buffer.find(b"\r\n\r\n", start)
            if start < 0 or header_end < 0:
                break
            header_lines = buffer[start + len(marker):header_end].decode().split("\r\n")
            headers = dict(line.split(": ", 1) for line in header_lines)
            length = int(headers["Content-Length"])
            body_start = header_end + 4
            if len(buffer) < body_start + length + 2:
                break
            assert headers["Content-Type"] == "image/jpeg"
            images.append(cv2.imdecode(np.frombuffer(buffer[body_start:body_start + length], np.uint8),
                                       cv2.IMREAD_COLOR))
            buffer = buffer[body_start + length + 2:]
        if len(images) >= count:
            break
    if close:
        response.close()
    return images


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture()
def server(face_video, tmp_path):
    """Base URL of ``python main.py --source <the test video>`` running on a free loopback port."""
    port = free_port()
    log_file = (tmp_path / "server.log").open("wb")  # a file, not a pipe: a full pipe would block the server
    process = subprocess.Popen([sys.executable, str(ROOT / "main.py"), "--source", str(face_video[0]),
                                "--port", str(port)], cwd=ROOT, stdout=log_file, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(base + "/", timeout=2).read()
            break
        except (urllib.error.URLError, ConnectionError):
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.fail(f"server did not start:\n{(tmp_path / 'server.log').read_text()}")
            time.sleep(0.3)
    yield base
    process.terminate()
    process.wait(timeout=20)
    log_file.close()
