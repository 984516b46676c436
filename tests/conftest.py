"""Fixtures only (helpers are in helpers.py): the shipped model, a video made from a public-domain face,
the app (and a factory of apps with other settings), its test client, and a real server process."""

from __future__ import annotations

import threading
import time

import pytest
from helpers import make_face_video, start_server, stop_server

from model import FacialExpressionModel, default_model
from server import create_app


@pytest.fixture(scope="session")
def fer_model() -> FacialExpressionModel:
    return default_model()


@pytest.fixture(scope="session")
def face_video(tmp_path_factory):
    """(path, per-frame face boxes, fps) of a 2 s, 20 frames/s, 640x360 video of the astronaut."""
    path = tmp_path_factory.mktemp("videos") / "astronaut.mp4"
    boxes = make_face_video(path)
    return path, boxes, 20.0


@pytest.fixture()
def videos_dir(face_video, tmp_path):
    """A videos/ folder holding a copy of the face video."""
    videos = tmp_path / "videos"
    videos.mkdir()
    (videos / face_video[0].name).write_bytes(face_video[0].read_bytes())
    return videos


@pytest.fixture()
def make_app(fer_model, videos_dir):
    """``make_app(settings=None, **overrides)``: an app on the shipped model and ``videos_dir``, no webcam, idle
    after 1 s, with ``overrides`` of its config (``VIDEOS_DIR=...``, ``SOURCE=...``) and its analysis
    ``settings`` (a ``settings.AnalysisSettings``; default: the defaults)."""
    def make(settings=None, **overrides):
        config = {"MODEL": fer_model, "VIDEOS_DIR": videos_dir, "WEBCAM_INDEX": None, "IDLE_TIMEOUT": 1.0,
                  "TESTING": True}
        return create_app({**config, **overrides}, settings)

    return make


@pytest.fixture()
def app(make_app):
    return make_app()


@pytest.fixture()
def client(app):
    return app.test_client()


@pytest.fixture()
def live_server(face_video, tmp_path):
    """Base URL of ``python main.py --source <the test video>`` on a free loopback port."""
    process, base = start_server(["--source", str(face_video[0])], tmp_path / "server.log")
    yield base
    stop_server(process)


@pytest.fixture(scope="session", autouse=True)
def producers_stopped_at_exit():
    """Let the stream producers of all tests stop (they idle out) before the interpreter exits."""
    yield
    deadline = time.monotonic() + 10
    for thread in threading.enumerate():
        if thread.name.startswith("producer "):
            thread.join(max(0.0, deadline - time.monotonic()))
