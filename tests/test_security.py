"""Hostile pages and uploads: Host names, other sites' origins, CORS, the upload limit, paths in
messages, and clients that stop reading."""

import io
import socket
import threading
import time

import pytest
from helpers import astronaut_bgr, read_until_closed, start_server, stop_server
from PIL import Image


def png() -> bytes:
    out = io.BytesIO()
    Image.fromarray(astronaut_bgr()[..., ::-1]).save(out, "PNG")
    return out.getvalue()


@pytest.mark.parametrize("host, status", [("localhost", 200), ("127.0.0.1:5000", 200),
                                          ("attacker.example", 400), ("127.0.0.1.attacker.example", 400),
                                          ("camera.lan:5000", 200)])
def test_only_expected_host_names_are_served(make_app, host, status):
    client = make_app(ALLOWED_HOSTS=["camera.lan"]).test_client()
    for path in ("/", "/video_feed", "/api/openapi.json"):
        response = client.get(path, headers={"Host": host}, buffered=False)
        assert response.status_code == status, (path, host)
        if status == 400:
            assert "--allowed-host" in response.get_data(as_text=True)
        response.close()


@pytest.mark.parametrize("headers", [{"Origin": "http://attacker.example"}, {"Origin": "null"},
                                     {"Sec-Fetch-Site": "cross-site"}, {"Sec-Fetch-Site": "same-site"},
                                     {"Origin": "http://localhost:9999"}])
def test_costly_requests_from_other_sites_are_refused(client, headers):
    response = client.post("/api/predict", data=png(), content_type="image/png", headers=headers)
    assert response.status_code == 403 and "other sites" in response.get_json()["error"]
    for path in ("/video_feed", "/events"):
        response = client.get(path, headers=headers)
        assert response.status_code == 403, path
    assert client.get("/", headers=headers).status_code == 200  # a link to the page is fine


@pytest.mark.parametrize("headers", [{}, {"Origin": "http://localhost"}, {"Sec-Fetch-Site": "same-origin"},
                                     {"Sec-Fetch-Site": "none"}])
def test_the_page_itself_and_tools_without_origin_are_served(client, headers):
    response = client.post("/api/predict", data=png(), content_type="image/png", headers=headers)
    assert response.status_code == 200
    assert "Access-Control-Allow-Origin" not in response.headers


def test_a_cors_origin_is_let_in_with_its_headers(make_app):
    client = make_app(CORS_ORIGINS=["https://lab.example/"]).test_client()
    headers = {"Origin": "https://lab.example"}
    preflight = client.options("/api/predict", headers={**headers, "Access-Control-Request-Method": "POST"})
    assert preflight.headers["Access-Control-Allow-Origin"] == "https://lab.example"
    assert "POST" in preflight.headers["Access-Control-Allow-Methods"]
    response = client.post("/api/predict", data=png(), content_type="image/png", headers=headers)
    assert response.status_code == 200 and response.headers["Access-Control-Allow-Origin"] == "https://lab.example"
    assert "Origin" in response.headers["Vary"]
    other = client.post("/api/predict", data=png(), content_type="image/png", headers={"Origin": "https://x.example"})
    assert other.status_code == 403 and "Access-Control-Allow-Origin" not in other.headers


def test_uploads_beyond_the_limit_wait_then_get_503(make_app, monkeypatch):
    import server.api

    real = server.api.analyze_frame
    monkeypatch.setattr(server.api, "analyze_frame", lambda *args: time.sleep(1.0) or real(*args))
    app = make_app(MAX_UPLOADS=1, UPLOAD_WAIT=0.2)
    answers = []

    def upload():
        answers.append(app.test_client().post("/api/predict", data=png(), content_type="image/png"))

    first = threading.Thread(target=upload)
    first.start()
    time.sleep(0.3)  # the first holds the only slot
    upload()
    first.join()
    busy = answers[0]
    assert busy.status_code == 503 and busy.headers["Retry-After"] == "1" and "try again" in busy.get_json()["error"]
    assert answers[1].status_code == 200
    upload()  # the slot is free again
    assert answers[2].status_code == 200


def test_upload_workers_run_at_a_lower_cpu_priority(client):
    import os

    client.post("/api/predict", data=png(), content_type="image/png")
    workers = [t for t in threading.enumerate() if t.name.startswith("upload")]
    assert workers
    for worker in workers:
        assert os.getpriority(os.PRIO_PROCESS, worker.native_id) > os.getpriority(os.PRIO_PROCESS, 0)


def test_upload_priority_is_lowered_from_the_threads_own_also_under_nice():
    import os

    from server.uploads import UPLOAD_NICENESS, _lower_priority

    seen = {}

    def work():  # a thread of a server started under `nice -n 4`: its uploads go 10 steps lower still
        thread = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, thread, min(os.getpriority(os.PRIO_PROCESS, thread) + 4, 19))
        seen["before"] = os.getpriority(os.PRIO_PROCESS, thread)
        _lower_priority()
        seen["after"] = os.getpriority(os.PRIO_PROCESS, thread)

    worker = threading.Thread(target=work)
    worker.start()
    worker.join()
    assert seen["after"] == min(seen["before"] + UPLOAD_NICENESS, 19) and seen["before"] >= 4


def test_messages_name_sources_without_their_folder(make_app, tmp_path):
    videos = tmp_path / "private-folder"
    videos.mkdir()
    (videos / "broken.mp4").write_bytes(b"not a video")
    client = make_app(VIDEOS_DIR=videos).test_client()
    body = client.get("/events?source=broken.mp4").get_data(as_text=True)
    assert "broken.mp4" in body and "private-folder" not in body and str(tmp_path) not in body
    long_name = "x" * 5000
    answer = client.get(f"/video_feed?source={long_name}").get_data(as_text=True)
    assert len(answer) < 1000 and "unknown source" in answer


@pytest.mark.slow
def test_a_viewer_that_reads_nothing_is_dropped(face_video, tmp_path):
    log = tmp_path / "log"
    process, base = start_server(["--source", str(face_video[0]), "--client-timeout", "2"], log)
    try:
        stalled = socket.socket()
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)  # before connecting: a small window
        stalled.connect(("127.0.0.1", int(base.rsplit(":", 1)[1])))
        stalled.sendall(b"GET /video_feed HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        deadline = time.monotonic() + 60
        while "closing a connection that has read nothing" not in log.read_text():
            assert time.monotonic() < deadline, "the stalled viewer was not dropped"
            time.sleep(0.5)
        stalled.settimeout(10)
        read_until_closed(stalled, deadline + 30)  # what was sent before the close, then the end of the stream
        stalled.close()
        while "Client disconnected while serving /video_feed" not in log.read_text():  # its thread is freed
            assert time.monotonic() < deadline + 40, "the stream's thread did not notice"
            time.sleep(0.2)
    finally:
        stop_server(process)


def test_a_stalled_client_is_dropped_when_the_server_listens_on_several_sockets():
    """A host name with IPv4 and IPv6 addresses makes waitress listen on two sockets (a MultiSocketServer,
    whose channels are in another map): its stalled clients are dropped all the same."""
    from waitress import create_server
    from waitress.server import MultiSocketServer

    from serving import drop_stalled_clients

    def endless(environ, start_response):
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return iter(lambda: b"x" * 65536, None)

    server = create_server(endless, listen="127.0.0.1:0 127.0.0.1:0", threads=2, ident=None)
    assert isinstance(server, MultiSocketServer)
    stop = threading.Event()
    threading.Thread(target=server.run, daemon=True).start()
    threading.Thread(target=drop_stalled_clients, args=(server, 1.0, stop), daemon=True).start()
    try:
        stalled = socket.socket()
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
        stalled.connect(("127.0.0.1", int(server.effective_listen[1][1])))
        stalled.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        time.sleep(4)  # reads nothing for longer than the timeout
        stalled.settimeout(10)
        read_until_closed(stalled, time.monotonic() + 10)  # what was sent before the close, then the end
        stalled.close()
    finally:
        stop.set()
        server.close()


@pytest.mark.slow
def test_a_body_over_the_limit_is_refused_before_it_is_sent(live_server):
    """The server answers 413 as soon as it reads a Content-Length over the upload limit, without waiting
    for (and spooling) the body."""
    client = socket.create_connection(("127.0.0.1", int(live_server.rsplit(":", 1)[1])), timeout=10)
    client.sendall(b"POST /api/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/png\r\n"
                   b"Content-Length: 104857600\r\n\r\n")
    answer = client.recv(4096)
    client.close()
    assert answer.startswith(b"HTTP/1.1 413")
