"""Network cameras: --source with an rtsp://, http:// or https:// URL, credentials kept out of sight, and
a camera that drops and comes back (this app's own MJPEG stream, in a second server process, as the camera)."""

import contextlib
import http.server
import threading
import time

import pytest
from helpers import read_jpeg_frames, start_server, stop_server

from camera import AuthenticationError, VideoCamera, is_network_source, mask_credentials


@pytest.mark.parametrize("url, masked", [
    ("rtsp://admin:secret@10.0.0.5:554/stream1", "rtsp://***@10.0.0.5:554/stream1"),
    ("http://user@cam.lan/video.mjpg", "http://***@cam.lan/video.mjpg"),
    ("https://cam.lan/live", "https://cam.lan/live"),
    ("http://cam.lan/video.cgi?user=admin&pwd=secret", "http://cam.lan/video.cgi?***"),
])
def test_credentials_are_masked(url, masked):
    assert is_network_source(url) and mask_credentials(url) == masked


def test_a_network_source_is_offered_without_its_credentials(make_app):
    app = make_app(SOURCE="rtsp://admin:secret@127.0.0.1:9/stream1")
    html = app.test_client().get("/").get_data(as_text=True)
    assert "rtsp://127.0.0.1:9/stream1" in html and "secret" not in html and "admin" not in html


@pytest.mark.parametrize(("url", "label"), [
    ("rtsp://admin:secret@10.0.0.5:554/", "10.0.0.5"), ("rtsp://10.0.0.5:554/live/ch1/", "ch1"),
    ("http://cam.lan/video", "video")])
def test_a_network_source_has_a_label_on_the_page(make_app, url, label):
    html = make_app(SOURCE=url).test_client().get("/").get_data(as_text=True)
    assert f"<strong>{label}</strong>" in html and f">\n        {label}</a>" in html


def is_message_frame(image) -> bool:
    return image is not None and image.mean() < 60 and image.max() > 200


@pytest.mark.slow
def test_a_network_camera_is_annotated_and_reconnects(make_app, face_video, tmp_path):
    log = tmp_path / "camera.log"
    camera, base = start_server(["--source", str(face_video[0])], log)
    port = int(base.rsplit(":", 1)[1])
    url = f"http://user:secret@127.0.0.1:{port}/video_feed"
    app = make_app(SOURCE=url, IDLE_TIMEOUT=60.0)
    client = app.test_client()
    response = client.get("/video_feed", buffered=False)
    try:
        first = read_jpeg_frames(response, 3, close=False)
        assert len(first) == 3 and not any(is_message_frame(f) for f in first)
        stop_server(camera)  # the camera drops
        deadline, seen = time.monotonic() + 60, []
        while not (seen and is_message_frame(seen[-1])):
            assert time.monotonic() < deadline, "no message frame after the camera dropped"
            seen += read_jpeg_frames(response, 1, close=False)
        camera, _ = start_server(["--source", str(face_video[0])], log, port=port)  # and comes back
        deadline = time.monotonic() + 90
        while not (seen and not is_message_frame(seen[-1])):
            assert time.monotonic() < deadline, "the stream did not resume"
            seen += read_jpeg_frames(response, 1, close=False)
    finally:
        response.close()
        stop_server(camera)


def test_an_unreachable_camera_fails_within_the_timeout():
    start = time.monotonic()
    with pytest.raises(OSError, match=r"127\.0\.0\.1:9") as error:
        VideoCamera("http://user:pw@127.0.0.1:9/none")
    assert time.monotonic() - start < 10 and "pw" not in str(error.value)


@contextlib.contextmanager
def refusing_camera(status: int):
    """A camera on 127.0.0.1 that answers every request with ``status`` (401: asks for a password); yields
    its URL, ``http://127.0.0.1:PORT/video.mjpg``, without credentials."""

    class Refusing(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802  (http.server's name)
            self.send_response(status)
            if status == 401:
                self.send_header("WWW-Authenticate", 'Basic realm="camera"')
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Refusing)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/video.mjpg"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("status", [401, 403])
def test_a_camera_that_refuses_the_password_says_authentication_failed(status):
    with refusing_camera(status) as url:
        with pytest.raises(AuthenticationError, match="authentication failed") as error:
            VideoCamera(url.replace("http://", "http://admin:s3cret@"))
    assert f"({status})" in str(error.value) and "s3cret" not in str(error.value) and "admin" not in str(error.value)
    assert "http://***@127.0.0.1:" in str(error.value)


def test_a_camera_that_is_not_there_says_why():
    with refusing_camera(404) as url:
        with pytest.raises(OSError, match="404") as error:
            VideoCamera(url.replace("http://", "http://admin:s3cret@"))
    assert not isinstance(error.value, AuthenticationError) and "s3cret" not in str(error.value)
