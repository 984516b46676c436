"""The Flask app: the page embeds the stream, the stream delivers JPEG frames, bad sources get a 404."""

import json
import shutil
import threading
import time

import pytest
from helpers import MEDIA_DIR, read_jpeg_frames, requires_media

from streaming import BOUNDARY


def producer_threads():
    return [t for t in threading.enumerate() if t.name.startswith("producer ") and t.is_alive()]


def test_index_embeds_the_stream(client, face_video):
    page = client.get("/")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert f'<img id="stream" src="/video_feed?source={face_video[0].name}"' in html
    assert "the default source" in html


def test_video_feed_delivers_decodable_frames(client, face_video):
    response = client.get(f"/video_feed?source={face_video[0].name}", buffered=False)
    assert response.status_code == 200
    assert response.mimetype == "multipart/x-mixed-replace"
    assert response.headers["Content-Type"].endswith(f"boundary={BOUNDARY}")
    images = read_jpeg_frames(response, 10)
    assert len(images) == 10
    assert all(image is not None and image.shape == (360, 640, 3) for image in images)


def test_default_source_is_the_first_video(client):
    images = read_jpeg_frames(client.get("/video_feed", buffered=False), 2)
    assert len(images) == 2


def test_viewers_share_one_producer_which_stops_when_they_leave(app, face_video):
    earlier = set(producer_threads())  # other tests' apps, stopping on their own
    url = f"/video_feed?source={face_video[0].name}"
    viewers = [app.test_client().get(url, buffered=False) for _ in range(3)]
    for viewer in viewers:
        assert len(read_jpeg_frames(viewer, 3, close=False)) == 3
    ours = set(producer_threads()) - earlier
    assert len(ours) == 1
    for viewer in viewers:
        viewer.close()
    deadline = time.monotonic() + app.config["IDLE_TIMEOUT"] + 5
    while any(t.is_alive() for t in ours) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(t.is_alive() for t in ours)


@pytest.mark.parametrize("source", [
    "nothing.mp4", "../model.json", "..%2Fmodel.json", "%2e%2e/main.py", "/etc/passwd",
    "webcam",  # no webcam configured in the tests
    "astronaut.MP4", "astronaut.mp4/", "",
])
def test_unknown_source_is_a_404(client, source):
    for url in (f"/video_feed?source={source}", f"/?source={source}"):
        response = client.get(url)
        if source == "":  # an empty source means the default one
            assert response.status_code == 200
            response.close()
            continue
        assert response.status_code == 404, url
        assert "unknown source" in response.get_data(as_text=True)


def test_symlink_out_of_videos_is_not_served(app, client, tmp_path):
    outside = tmp_path / "outside.mp4"
    outside.write_bytes(b"x")
    (app.config["VIDEOS_DIR"] / "link.mp4").symlink_to(outside)
    assert client.get("/video_feed?source=link.mp4").status_code == 404
    assert "link.mp4" not in client.get("/").get_data(as_text=True)


def test_no_source_at_all(make_app, tmp_path):
    app = make_app(VIDEOS_DIR=tmp_path)
    client = app.test_client()
    page = client.get("/")
    assert page.status_code == 200
    assert 'id="no-source"' in page.get_data(as_text=True)
    assert client.get("/video_feed").status_code == 404


def test_missing_model_fails_at_start(tmp_path):
    from server import create_app

    with pytest.raises(FileNotFoundError):
        create_app({"MODEL_JSON": tmp_path / "model.json", "WEBCAM_INDEX": None})


def test_debug_is_off_and_host_is_loopback(app):
    from main import parse_args

    assert not app.debug
    args = parse_args([])
    assert (args.host, args.port, args.source) == ("127.0.0.1", 5000, "auto")


@pytest.mark.parametrize("content", [b"", b"this is not a video"])
def test_a_broken_video_ends_the_stream_with_a_message_frame(app, client, content):
    (app.config["VIDEOS_DIR"] / "broken.mp4").write_bytes(content)
    images = read_jpeg_frames(client.get("/video_feed?source=broken.mp4", buffered=False), 5)
    assert len(images) == 1  # the message, then the end of the stream
    assert images[0] is not None and images[0].std() > 5  # text on a dark background
    assert client.get("/").status_code == 200  # the server goes on serving


def test_a_webcam_that_does_not_open_is_not_offered(make_app, tmp_path):
    from camera import SourceError

    app = make_app(VIDEOS_DIR=tmp_path, WEBCAM_INDEX=99)
    assert "webcam" not in app.test_client().get("/").get_data(as_text=True).split("<main>")[0]
    with pytest.raises(SourceError, match="webcam 99"):
        make_app(VIDEOS_DIR=tmp_path, WEBCAM_INDEX=99, SOURCE="webcam")


def test_no_webcam_offers_none():
    from main import parse_args
    from serving import serve_config

    config = serve_config(parse_args(["--no-webcam", "--source", "clip.mp4"]))
    assert config["WEBCAM_INDEX"] is None and config["SOURCE"] == "clip.mp4"
    assert serve_config(parse_args(["--source", "clip.mp4"])).get("WEBCAM_INDEX", 0) == 0  # probed by default
    assert serve_config(parse_args(["--source", "2"]))["WEBCAM_INDEX"] == 2
    from model import MODEL_JSON, MODEL_WEIGHTS

    config = serve_config(parse_args(["--model", str(MODEL_JSON), str(MODEL_WEIGHTS)]))
    assert (config["MODEL_JSON"], config["MODEL_WEIGHTS"]) == (MODEL_JSON, MODEL_WEIGHTS)
    assert "MODEL_JSON" not in serve_config(parse_args([]))


@pytest.mark.parametrize("argv", [["--source", "no-such-video.mp4"], ["--port", "not-a-number"],
                                  ["--detect-every", "0"], ["--detect-every", "x"], ["--detector", "yunet"],
                                  ["--min-score", "1.5"], ["--min-score", "-0.1"], ["--min-score", "high"],
                                  ["--min-score", "nan"]])
def test_command_line_errors_exit_non_zero(argv):
    from main import main

    try:
        code = main(argv)
    except SystemExit as exc:  # argparse
        code = exc.code
    assert code != 0


@pytest.mark.parametrize("option", [["--detect-every", "-2"], ["--detect-every", "1.5"], ["--detector", "yunet"]])
def test_annotate_refuses_bad_options_before_reading_the_video(face_video, tmp_path, option):
    from main import main

    with pytest.raises(SystemExit) as exit_:
        main(["annotate", str(face_video[0]), "--output", str(tmp_path), *option])
    assert exit_.value.code == 2  # argparse's usage error
    assert not any(tmp_path.iterdir())


def read_events(response, count: int) -> list[dict]:
    """The data of the server-sent events of a streamed response, read until there are at least ``count``;
    the response is then closed."""
    events = []
    for chunk in response.response:
        events += [json.loads(line[len("data: "):]) for line in chunk.decode().splitlines()
                   if line.startswith("data: ")]
        if len(events) >= count:
            break
    response.close()
    return events


def test_events_stream_the_faces_of_the_video(client, face_video):
    response = client.get(f"/events?source={face_video[0].name}", buffered=False)
    assert response.mimetype == "text/event-stream"
    events = read_events(response, 3)
    frames = [e["frame"] for e in events]
    assert frames == sorted(frames) and len(set(frames)) == 3
    for event in events:
        assert len(event["faces"]) == 1
        face = event["faces"][0]
        assert face["id"] >= 1 and face["emotion"] in face["probabilities"]
        assert 0.5 <= face["score"] <= 1  # the default detector's confidence


def test_events_of_a_broken_video_end_with_the_reason(app, client):
    (app.config["VIDEOS_DIR"] / "broken.mp4").write_bytes(b"not a video")
    body = client.get("/events?source=broken.mp4").get_data(as_text=True)
    assert body.startswith("event: end\ndata: ") and "broken.mp4" in body


def test_a_file_given_as_the_source_is_offered_by_name_only(make_app, face_video, tmp_path):
    app = make_app(VIDEOS_DIR=tmp_path, SOURCE=str(face_video[0]))
    client = app.test_client()
    html = client.get("/").get_data(as_text=True)
    assert '<img id="stream" src="/video_feed?source=astronaut.mp4"' in html
    assert str(face_video[0].parent) not in html  # its folder is not shown to viewers
    assert len(read_jpeg_frames(client.get("/video_feed", buffered=False), 2)) == 2
    assert client.get(f"/video_feed?source={face_video[0]}").status_code == 404


def test_a_missing_file_as_the_source_fails_at_start(make_app, tmp_path):
    from camera import SourceError

    with pytest.raises(SourceError, match="not found"):
        make_app(VIDEOS_DIR=tmp_path, SOURCE=str(tmp_path / "x.mp4"))


def test_security_headers(client):
    headers = client.get("/").headers
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert "script-src 'self'" in headers["Content-Security-Policy"]
    assert headers["X-Frame-Options"] == "DENY"


@requires_media
def test_live_probabilities_of_the_real_talking_head_clip(make_app, tmp_path):
    """The stream of the real clip and its live probabilities: one tracked face whose id persists."""
    shutil.copy(MEDIA_DIR / "videos" / "fer_woman2.mp4", tmp_path / "woman.mp4")  # videos/ lists no symlinks
    app = make_app(VIDEOS_DIR=tmp_path)
    client = app.test_client()
    response = client.get("/events?source=woman.mp4", buffered=False)
    events = read_events(response, 10)
    with_faces = [e for e in events if e["faces"]]
    assert len(with_faces) >= 8
    assert len({e["faces"][0]["id"] for e in with_faces}) == 1
    for event in with_faces:
        probabilities = event["faces"][0]["probabilities"]
        assert sum(probabilities.values()) == pytest.approx(1, abs=2e-3)
    frames = read_jpeg_frames(client.get("/video_feed?source=woman.mp4", buffered=False), 2)
    assert all(f.shape == (336, 596, 3) for f in frames)


def test_help_lists_both_commands(capsys):
    from main import main

    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert "serve" in out and "annotate" in out


@pytest.mark.parametrize("argv", [["--smoothing", "-1"], ["--port", "0"], ["--threads", "0"], ["--runtime", "onnx"],
                                  ["annotate"], ["frobnicate"], ["--no-webcam", "--source", "0"]])
def test_bad_options_are_usage_errors(argv, capsys):
    from main import main

    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2 and "error:" in capsys.readouterr().err


def test_a_video_whose_name_is_not_utf8_is_left_out(app, client, face_video):
    import os

    (app.config["VIDEOS_DIR"] / os.fsdecode(b"caf\xe9.mp4")).write_bytes(face_video[0].read_bytes())
    page = client.get("/")
    assert page.status_code == 200 and face_video[0].name in page.get_data(as_text=True)
    response = client.get("/video_feed?source=nothing.mp4")
    assert response.status_code == 404 and "caf" not in response.get_data(as_text=True)


def test_the_default_follows_the_videos_folder(make_app, face_video, tmp_path):
    """With no webcam and no --source, the first video now in videos/ is the default: one dropped there
    after the start becomes it, and when it is deleted the next one does."""
    app = make_app(VIDEOS_DIR=tmp_path)
    client = app.test_client()
    assert 'id="no-source"' in client.get("/").get_data(as_text=True)
    shutil.copy(face_video[0], tmp_path / "b.mp4")
    html = client.get("/").get_data(as_text=True)
    assert '<img id="stream" src="/video_feed?source=b.mp4"' in html and "the default source" in html
    assert len(read_jpeg_frames(client.get("/video_feed", buffered=False), 1)) == 1
    shutil.copy(face_video[0], tmp_path / "a.mp4")
    assert '<img id="stream" src="/video_feed?source=a.mp4"' in client.get("/").get_data(as_text=True)
    (tmp_path / "a.mp4").unlink()
    assert '<img id="stream" src="/video_feed?source=b.mp4"' in client.get("/").get_data(as_text=True)


def test_a_default_given_at_start_and_deleted_is_named_as_gone(make_app, face_video, tmp_path):
    shutil.copy(face_video[0], tmp_path / "a.mp4")
    shutil.copy(face_video[0], tmp_path / "b.mp4")
    app = make_app(VIDEOS_DIR=tmp_path, SOURCE="a.mp4")
    client = app.test_client()
    (tmp_path / "a.mp4").unlink()
    html = client.get("/").get_data(as_text=True)
    assert 'id="no-source"' in html and "<strong>a.mp4</strong>, is no longer" in html and "b.mp4" in html
    response = client.get("/video_feed")
    assert response.status_code == 404 and "'a.mp4' is gone" in response.get_data(as_text=True)
