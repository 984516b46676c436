"""Helpers of the tests (not fixtures): where the shared data is, a video made from a public-domain face,
an MJPEG reader, a free port, and a real server process."""

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

from benchmarks.video import video_frames
from datasets import FERPLUS_COLUMNS, FERPLUS_NAMES
from faces import EMOTIONS_LIST
from streaming import BOUNDARY

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
FER_DIR = SHARED / "fer2013"
MEDIA_DIR = SHARED / "media"

#: Face box (x, y, w, h) of skimage.data.astronaut() (512x512), annotated by hand for these tests.
ASTRONAUT_FACE = (172, 62, 100, 100)

requires_fer = pytest.mark.skipif(not (FER_DIR / "test").is_dir(), reason="../shared/fer2013 not present")
requires_media = pytest.mark.skipif(not MEDIA_DIR.is_dir(), reason="../shared/media not present")


def astronaut_bgr() -> np.ndarray:
    from skimage import data

    return cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)


def make_tiny_fer(root, per_class, votes=True):
    """FER2013's folder layout with ``per_class[split]`` 48x48 JPEGs per class, cut from a real face, and
    (with ``votes``) ``root/ferplus.csv``: ten random FER+ votes an image, the first image of each split's
    first class won by ``unknown`` (left out by the FER+ protocol)."""
    gray = cv2.cvtColor(astronaut_bgr(), cv2.COLOR_BGR2GRAY)
    rng = np.random.default_rng(0)
    rows = []
    for split, n in per_class.items():
        for name in EMOTIONS_LIST:
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(n):
                x, y, size = rng.integers(150, 190), rng.integers(40, 80), rng.integers(90, 130)
                crop = cv2.resize(gray[y:y + size, x:x + size], (48, 48), interpolation=cv2.INTER_AREA)
                cv2.imwrite(str(folder / f"{split}_{i}.jpg"), crop)
                counts = rng.multinomial(10, [0.6] + [0.4 / 9] * 9)  # a FER+ row: its own class first ...
                counts = np.roll(counts, FERPLUS_COLUMNS.index(FERPLUS_NAMES[name]))
                if name == EMOTIONS_LIST[0] and i == 0:
                    counts = np.array([0, 1, 0, 0, 2, 0, 0, 0, 7, 0])
                rows.append(f"{split}/{name}/{split}_{i}.jpg," + ",".join(map(str, counts)))
    if votes:
        (root / "ferplus.csv").write_text("file," + ",".join(FERPLUS_COLUMNS) + "\n" + "\n".join(rows) + "\n")


def make_face_video(path: Path, n_frames: int = 40, fps: float = 20.0, size=(640, 360), travel: float = 1.0):
    """Write an MP4 in which the astronaut moves right and grows (over ``travel`` of the whole way: a short
    clip with a small travel moves as little per frame as a long one, not like a cut each frame); return
    the face box of every frame."""
    width, height = size
    image = astronaut_bgr()
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    assert writer.isOpened(), "OpenCV cannot write MP4 here"
    boxes = []
    for i in range(n_frames):
        t = travel * i / max(n_frames - 1, 1)
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


def decoded_frames(path) -> list[np.ndarray]:
    """Every frame of a video file, decoded by OpenCV."""
    return list(video_frames(path))


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


def start_server(args: list[str], log_path: Path, timeout: float = 60,
                 port: int | None = None) -> tuple[subprocess.Popen, str]:
    """``python main.py ARGS --port P`` as a user runs it (on ``port``, or a free one); waits until ``/``
    answers. Returns the process and its base URL; its output goes to ``log_path`` (a file, not a pipe: a
    full pipe would block it).

    Raises:
        pytest.fail.Exception: it exited or did not answer within ``timeout`` s.
    """
    port = port or free_port()
    with log_path.open("ab") as log_file:
        process = subprocess.Popen([sys.executable, str(ROOT / "main.py"), *args, "--port", str(port)], cwd=ROOT,
                                   stdout=log_file, stderr=subprocess.STDOUT)
    base, deadline = f"http://127.0.0.1:{port}", time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(base + "/", timeout=2).read()
            return process, base
        except OSError:  # refused, or not answered yet (the port is bound before the model loads)
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.fail(f"server did not start:\n{log_path.read_text()}")
            time.sleep(0.2)


def stop_server(process: subprocess.Popen) -> int:
    """SIGTERM, and the exit status (killed after 20 s)."""
    process.terminate()
    try:
        return process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait()


def read_until_closed(sock: socket.socket, deadline: float) -> int:
    """Read ``sock`` until the server closes it (or resets it); the bytes read. Fails past ``deadline``
    (monotonic s): the server kept sending."""
    received = 0
    while True:
        try:
            chunk = sock.recv(1 << 20)
        except ConnectionResetError:
            return received
        if not chunk:
            return received
        received += len(chunk)
        assert time.monotonic() < deadline, f"the server kept sending ({received} bytes)"
