"""Issue 35, serving: slow clients that would lock everyone out, malformed EXIF flooding the log, a
camera's password off the command line and its 401 named, and the memory of browser cameras that leave."""

import io
import re
import socket
import struct
import threading
import time
import urllib.request
import warnings
from pathlib import Path

import pytest
from helpers import astronaut_bgr, start_server, stop_server
from PIL import Image

import main
import serving
from images import decode_image

#: A line of main.py's log format.
LOG_LINE = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR|CRITICAL) [\w.]+: ")


def port_of(base: str) -> int:
    return int(base.rsplit(":", 1)[1])


def probe(base: str, timeout: float = 3.0) -> int:
    """``GET /``'s status, or 0 when it is not answered within ``timeout`` s."""
    try:
        with urllib.request.urlopen(base + "/", timeout=timeout) as answer:
            answer.read()
            return answer.status
    except OSError:
        return 0


@pytest.mark.slow
def test_slow_clients_do_not_lock_others_out(face_video, tmp_path):
    """110 connections each sending one byte of a request every 2 s for 20 s: with waitress's defaults
    (100 connections at most, idle ones closed only after 30 s of silence) the page went unanswered."""
    from benchmarks.slow_clients import hold_slow_connections

    log = tmp_path / "server.log"
    process, base = start_server(["--source", str(face_video[0])], log)
    try:
        probes, closed = hold_slow_connections(base, 110, 20, 2, lambda: probe(base, timeout=3.0))
    finally:
        stop_server(process)
    assert probes and all(status == 200 for status in probes), probes
    text = log.read_text()
    assert "had not sent a whole request" in text  # the header deadline closed them, not the end of the test
    assert closed >= 100, closed


def test_a_request_that_arrives_too_slowly_is_disconnected():
    """``watch_connections`` closes a connection whose headers trickle in past the header deadline, and
    leaves a quick one alone."""
    from waitress import create_server

    def hello(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
        return [b"ok"]

    server = create_server(hello, host="127.0.0.1", port=0, threads=2, ident=None)
    stop = threading.Event()
    threading.Thread(target=server.run, daemon=True).start()
    threading.Thread(target=serving.watch_connections, args=(server, stop, 30, 4.0, 2.0), daemon=True).start()
    try:
        port = server.effective_port
        trickle = socket.create_connection(("127.0.0.1", port), timeout=10)
        started, closed_after = time.monotonic(), None
        for byte in b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"x" * 30:
            try:
                trickle.send(bytes([byte]))
                time.sleep(0.3)
                if trickle.recv(1, socket.MSG_DONTWAIT) == b"":
                    closed_after = time.monotonic() - started
                    break
            except BlockingIOError:
                continue
            except OSError:
                closed_after = time.monotonic() - started
                break
        trickle.close()
        assert closed_after is not None and 2 <= closed_after <= 6, closed_after
        quick = socket.create_connection(("127.0.0.1", port), timeout=10)
        quick.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert quick.recv(100).startswith(b"HTTP/1.1 200")
        quick.close()
    finally:
        stop.set()
        server.close()


def test_the_connection_limit_and_idle_sweep_are_set(monkeypatch):
    """``serve`` hands waitress the limit it was given and sweeps idle connections every 5 s."""
    import waitress

    seen = {}

    def fake_create_server(app, **kwargs):
        seen.update(kwargs)
        raise OSError(98, "Address already in use")  # stop there: nothing else is needed

    monkeypatch.setattr(waitress, "create_server", fake_create_server)
    assert serving.serve_main(main.parse_args(["--max-connections", "300", "--no-webcam"])) == 1
    assert seen["connection_limit"] == 300 and seen["cleanup_interval"] == 5 and seen["channel_timeout"] == 30
    # each MJPEG viewer's send buffer is bounded near this (waitress's 16 MiB let 30 viewers hold 250-850 MiB)
    assert seen["outbuf_high_watermark"] == serving.OUTBUF_HIGH_WATERMARK <= 1024 * 1024
    assert main.parse_args([]).max_connections == serving.MAX_CONNECTIONS > 100  # waitress's default was 100


def jpeg_with_malformed_exif(segments: int = 30) -> bytes:
    """A small JPEG with ``segments`` EXIF blocks, each naming a tag whose data lies past its end."""
    out = io.BytesIO()
    Image.fromarray(astronaut_bgr()[..., ::-1]).save(out, "JPEG")
    data = out.getvalue()
    tiff = b"MM\x00\x2a\x00\x00\x00\x08" + struct.pack(">H", 1) + struct.pack(">HHII", 0x0112, 3, 1000, 99999)
    exif = b"Exif\x00\x00" + tiff
    segment = b"\xff\xe1" + struct.pack(">H", len(exif) + 2) + exif
    return data[:2] + segment * segments + data[2:]


def test_library_warnings_become_one_log_line_without_paths(caplog):
    with warnings.catch_warnings():
        warnings.simplefilter("default")
        main.log_warnings()
        for _ in range(5):  # a burst of bad uploads
            decoded = decode_image(jpeg_with_malformed_exif())
            assert decoded.frame.shape == (512, 512, 3)
    lines = [r for r in caplog.records if "Skipping tag" in r.getMessage()]
    assert len(lines) == 1, [r.getMessage() for r in lines]
    assert lines[0].name == "PIL.TiffImagePlugin" and lines[0].levelname == "WARNING"
    assert "site-packages" not in lines[0].getMessage() and "/" not in lines[0].getMessage()


@pytest.mark.slow
def test_uploads_with_malformed_exif_leave_only_log_lines(face_video, tmp_path):
    log = tmp_path / "server.log"
    process, base = start_server(["--source", str(face_video[0])], log)
    try:
        for _ in range(5):
            request = urllib.request.Request(base + "/api/predict", data=jpeg_with_malformed_exif(30),
                                             headers={"Content-Type": "image/jpeg"})
            with urllib.request.urlopen(request, timeout=30) as answer:
                assert answer.status == 200
    finally:
        stop_server(process)
    lines = log.read_text().splitlines()
    assert lines and all(LOG_LINE.match(line) for line in lines), [line for line in lines if not LOG_LINE.match(line)]
    assert sum("Skipping tag" in line for line in lines) == 1
    assert "site-packages" not in log.read_text()


def test_the_source_comes_from_a_file_or_the_environment(tmp_path, monkeypatch):
    secret = tmp_path / "camera.url"
    secret.write_text("rtsp://admin:secret@10.0.0.5:554/stream1\n")
    monkeypatch.delenv(serving.SOURCE_VARIABLE, raising=False)
    args = main.parse_args(["--source-file", str(secret)])
    assert (args.source, args.source_origin) == ("rtsp://admin:secret@10.0.0.5:554/stream1", "file")
    monkeypatch.setenv(serving.SOURCE_VARIABLE, "rtsp://admin:other@10.0.0.6/live")
    assert main.parse_args([]).source == "rtsp://admin:other@10.0.0.6/live"
    assert main.parse_args(["--source", "clip.mp4"]).source == "clip.mp4"  # the option comes first
    assert main.parse_args(["--source-file", str(secret)]).source.endswith("10.0.0.5:554/stream1")


@pytest.mark.parametrize("content, message", [(None, "cannot read --source-file"), ("", "is empty"),
                                              ("\n  \n", "is empty")])
def test_a_source_file_that_cannot_be_used_is_a_usage_error(tmp_path, capsys, content, message):
    path = tmp_path / "camera.url"
    if content is not None:
        path.write_text(content)
    with pytest.raises(SystemExit) as exit_:
        main.parse_args(["--source-file", str(path)])
    assert exit_.value.code == 2 and message in capsys.readouterr().err


def test_source_and_source_file_together_are_refused(tmp_path, capsys):
    (tmp_path / "u").write_text("clip.mp4")
    with pytest.raises(SystemExit):
        main.parse_args(["--source", "x.mp4", "--source-file", str(tmp_path / "u")])
    assert "not both" in capsys.readouterr().err


def test_a_password_on_the_command_line_is_warned_about(tmp_path, caplog):
    serving.warn_about_exposed_secrets(main.parse_args(["--source", "rtsp://admin:secret@10.0.0.5/s"]))
    assert "--source-file" in caplog.text and "FER_SOURCE" in caplog.text and "secret" not in caplog.text
    caplog.clear()
    path = tmp_path / "camera.url"
    path.write_text("rtsp://admin:secret@10.0.0.5/s")
    path.chmod(0o600)
    serving.warn_about_exposed_secrets(main.parse_args(["--source-file", str(path)]))
    assert caplog.text == ""
    path.chmod(0o644)
    serving.warn_about_exposed_secrets(main.parse_args(["--source-file", str(path)]))
    assert "chmod 600" in caplog.text and "secret" not in caplog.text


@pytest.mark.slow
def test_a_camera_password_from_a_file_is_not_in_ps_and_a_401_is_named(tmp_path):
    from test_network_camera import refusing_camera

    with refusing_camera(401) as url:
        secret_url = url.replace("http://", "http://admin:s3cret-pw@")
        path = tmp_path / "camera.url"
        path.write_text(secret_url + "\n")
        path.chmod(0o600)
        log = tmp_path / "server.log"
        process, base = start_server(["--source-file", str(path), "--no-webcam"], log)
        try:
            assert "s3cret" not in Path(f"/proc/{process.pid}/cmdline").read_bytes().decode()
            page = urllib.request.urlopen(base + "/", timeout=10).read().decode()
            assert "s3cret" not in page and "admin" not in page
            with urllib.request.urlopen(base + "/video_feed", timeout=20) as stream:
                stream.read(2000)  # the message frame: the camera cannot be opened
            deadline = time.monotonic() + 30
            while "authentication failed" not in log.read_text():
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.2)
        finally:
            stop_server(process)
    text = log.read_text()
    assert "s3cret" not in text and "admin" not in text


def test_browser_cameras_that_leave_are_forgotten_without_other_requests(make_app, monkeypatch):
    import analysis
    import server.clients

    closed, trims = [], []
    real_close = analysis.FaceAnalyzer.close
    monkeypatch.setattr(analysis.FaceAnalyzer, "close", lambda self: closed.append(self) or real_close(self))
    monkeypatch.setattr(server.clients, "release_free_memory", lambda: trims.append(time.monotonic()))
    app = make_app(CLIENT_IDLE=3.0)  # longer than two frames' analysis takes on a loaded 2-core machine
    client = app.test_client()
    out = io.BytesIO()
    Image.fromarray(astronaut_bgr()[..., ::-1]).save(out, "JPEG")
    for client_id in ("client-one", "client-two"):
        answer = client.post(f"/api/frames?client={client_id}", data=out.getvalue(), content_type="image/jpeg")
        assert answer.status_code == 200
    clients = app.extensions["browser_clients"]
    assert len(clients._clients) == 2
    ours = [client.analyzer for client in clients._clients.values()]  # other tests' apps may close theirs meanwhile
    sweeper = clients._sweeper
    assert sweeper is not None and sweeper.is_alive()
    deadline = time.monotonic() + 15
    while clients._clients:  # no request comes meanwhile: the sweeper forgets them
        assert time.monotonic() < deadline, "idle browser cameras were kept"
        time.sleep(0.1)
    assert all(any(analyzer is shut for shut in closed) for analyzer in ours) and trims  # closed, memory handed back
    deadline = time.monotonic() + 5
    while sweeper.is_alive():  # the sweeper stops too (this app's: other tests' apps may still run theirs)
        assert time.monotonic() < deadline, "the sweeper thread was kept"
        time.sleep(0.1)
    answer = client.post("/api/frames?client=client-three", data=out.getvalue(), content_type="image/jpeg")
    assert answer.status_code == 200 and clients.kept() == 1  # and a new client starts it again
