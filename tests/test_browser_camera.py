"""The visitor's own camera: /api/frames with per-page trackers, its limits, and the page in real
Chromium with a fake camera playing a video of a real face."""

import io
import shutil
import time

import numpy as np
import pytest
from helpers import astronaut_bgr, decoded_frames
from PIL import Image

from benchmarks.serving import launch_with_fake_camera
from benchmarks.video import camera_y4m


def jpeg(frame) -> bytes:
    out = io.BytesIO()
    Image.fromarray(frame[..., ::-1]).save(out, "JPEG", quality=85)
    return out.getvalue()


CLIENT = "0f8c2f52-5a0e-4d4b-9a49-6c1b8a3b0d11"


def send(client, frame, client_id=CLIENT):
    return client.post(f"/api/frames?client={client_id}", data=jpeg(frame), content_type="image/jpeg")


def test_a_client_keeps_its_face_ids_across_frames(client, face_video):
    answers = [send(client, frame) for frame in decoded_frames(face_video[0])[:6]]
    assert all(a.status_code == 200 for a in answers)
    faces = [a.get_json()["faces"] for a in answers]
    assert all(len(f) == 1 for f in faces)
    assert {f[0]["id"] for f in faces} == {1}
    for f in faces:
        assert sum(f[0]["probabilities"].values()) == pytest.approx(1, abs=2e-3) and 0 <= f[0]["score"] <= 1
    other = send(client, decoded_frames(face_video[0])[0], client_id="another-page-1234").get_json()
    assert other["faces"][0]["id"] == 1  # another page has a tracker of its own


def test_answers_match_the_openapi_description(client, face_video):
    import jsonschema

    spec = client.get("/api/openapi.json").get_json()
    answer = send(client, decoded_frames(face_video[0])[0])
    schema = spec["paths"]["/api/frames"]["post"]["responses"]["200"]["content"]["application/json"]["schema"]
    jsonschema.validate(answer.get_json(), {**schema, "components": spec["components"]})
    with pytest.raises(jsonschema.ValidationError):  # the id is required
        jsonschema.validate({"width": 1, "height": 1, "faces": [{**answer.get_json()["faces"][0], "id": None}]},
                            {**schema, "components": spec["components"]})
    responses = spec["paths"]["/api/frames"]["post"]["responses"]
    refused = [client.post("/api/frames?client=x", data=b"x", content_type="image/jpeg"),
               client.post(f"/api/frames?client={CLIENT}", data=b"not an image", content_type="image/jpeg"),
               client.post(f"/api/frames?client={CLIENT}", data=b"x", content_type="text/plain"),
               client.post(f"/api/frames?client={CLIENT}", data=jpeg(astronaut_bgr()), content_type="image/jpeg",
                           headers={"Origin": "http://attacker.example"})]
    assert [r.status_code for r in refused] == [400, 400, 415, 403]
    for response in refused:  # every refusal is documented, with its body's schema
        ref = responses[str(response.status_code)]["content"]["application/json"]["schema"]
        jsonschema.validate(response.get_json(), {**ref, "components": spec["components"]})


def test_the_client_limit_answers_503(make_app):
    client = make_app(MAX_BROWSER_CLIENTS=1).test_client()
    frame = astronaut_bgr()
    assert send(client, frame, "first-page-0001").status_code == 200
    refused = send(client, frame, "second-page-0002")
    assert refused.status_code == 503 and "cameras" in refused.get_json()["error"]
    assert refused.headers["Retry-After"] == "5"
    assert send(client, frame, "first-page-0001").status_code == 200  # the first goes on
    # refused before its body is decoded: the refusal, not the body's error
    garbage = client.post("/api/frames?client=second-page-0002", data=b"not a jpeg", content_type="image/jpeg")
    assert garbage.status_code == 503
    garbage = client.post("/api/frames?client=bad/id", data=b"not a jpeg", content_type="image/jpeg")
    assert garbage.status_code == 400 and "client id" in garbage.get_json()["error"]


def test_an_idle_client_is_forgotten(make_app):
    app = make_app(MAX_BROWSER_CLIENTS=1, CLIENT_IDLE=0.5)
    client = app.test_client()
    frame = astronaut_bgr()
    assert send(client, frame, "first-page-0001").get_json()["faces"][0]["id"] == 1
    assert send(client, frame, "first-page-0001").get_json()["faces"][0]["id"] == 1
    time.sleep(0.7)
    assert app.extensions["browser_clients"].active() == 0
    assert send(client, frame, "second-page-0002").status_code == 200  # its place is free


@pytest.mark.parametrize("client_id, status", [("", 400), ("short", 400), ("x" * 65, 400), ("a/b-c-d-e-f", 400)])
def test_a_bad_client_id_is_a_400(client, client_id, status):
    assert send(client, astronaut_bgr(), client_id).status_code == status


def test_frames_must_be_images_within_the_size_limit(client):
    assert client.post(f"/api/frames?client={CLIENT}", data=b"{}", content_type="application/json").status_code == 415
    big = np.zeros((1080, 1920, 3), np.uint8)
    assert send(client, big).status_code == 413


def test_the_page_offers_your_camera(client):
    html = client.get("/").get_data(as_text=True)
    assert 'href="/?source=browser"' in html and "Your camera" in html
    page = client.get("/?source=browser").get_data(as_text=True)
    assert 'id="camera"' in page and "never stored or logged" in page and '"cameraUrl": "/api/frames"' in page


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def wait_for_answers(page, count, deadline):
    """Wait until the page has had ``count`` answers from /api/frames (before ``deadline``, monotonic s)."""
    while page.evaluate("window.cameraStats ? window.cameraStats.answers : 0") < count:
        assert time.monotonic() < deadline, f"fewer than {count} answers: {page.evaluate('window.cameraStats')}"
        time.sleep(0.2)


def camera_message(page, deadline):
    """The text of the page's camera message, once it shows (before ``deadline``, monotonic s)."""
    error = page.locator("#camera-error")
    while not error.is_visible():
        assert time.monotonic() < deadline, "the page shows no message"
        time.sleep(0.2)
    return error.text_content()


@pytest.fixture()
def fake_camera(face_video, tmp_path):
    """A Y4M file of the face video played forward then back, the size Chromium's fake camera plays: the
    camera loops it without a jump, so the face keeps its track (a jump back starts a new one)."""
    return camera_y4m(face_video[0], tmp_path / "face.y4m", fps=20)


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (.ci/run installs it)")
@pytest.mark.parametrize("granted", [True, False])
def test_the_page_analyses_the_visitors_camera(live_server, fake_camera, granted):
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = launch_with_fake_camera(playwright, fake_camera, CHROMIUM)
        context = browser.new_context()
        if granted:
            context.grant_permissions(["camera"], origin=live_server)
        page = context.new_page()
        page.goto(live_server + "/?source=browser")
        deadline = time.monotonic() + 60
        if granted:
            wait_for_answers(page, 8, deadline)  # past the camera's start-up
            first = page.evaluate("window.cameraStats")["last"]["faces"]
            wait_for_answers(page, 16, deadline)
            faces = page.evaluate("window.cameraStats")["last"]["faces"]
            # the same face keeps its id 8 answers on
            assert len(first) == len(faces) == 1 and faces[0]["id"] == first[0]["id"], (first, faces)
            assert sum(faces[0]["probabilities"].values()) == pytest.approx(1, abs=2e-3)
            assert page.locator("#live-faces .face").count() == 1
            assert page.locator("#live-announcer").text_content().startswith("Largest face: ")
            # a hidden tab sends nothing, and goes on when it is shown again
            page.evaluate("Object.defineProperty(document, 'hidden', {value: true, configurable: true})")
            hidden_at, quiet_since = page.evaluate("window.cameraStats.answers"), time.monotonic()
            while time.monotonic() - quiet_since < 2:  # the frame on its way when it was hidden is answered
                assert time.monotonic() < deadline + 30, "the hidden tab kept sending frames"
                time.sleep(0.2)
                if (answers := page.evaluate("window.cameraStats.answers")) != hidden_at:
                    hidden_at, quiet_since = answers, time.monotonic()
            assert page.evaluate("window.cameraStats.answers") == hidden_at
            page.evaluate("delete document.hidden; document.dispatchEvent(new Event('visibilitychange'))")
            wait_for_answers(page, hidden_at + 3, time.monotonic() + 30)
            # a camera that stops (unplugged) ends the loop with a message
            page.evaluate("document.getElementById('camera').srcObject.getVideoTracks()[0].stop()")
            assert "camera stopped" in camera_message(page, time.monotonic() + 30)
            stopped_at = page.evaluate("window.cameraStats.answers")
            time.sleep(2)
            assert page.evaluate("window.cameraStats.answers") <= stopped_at + 1
        else:
            assert "denied" in camera_message(page, deadline)
        browser.close()


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (.ci/run installs it)")
def test_a_page_beyond_the_client_limit_is_told_and_gets_in_once_the_first_is_forgotten(face_video, fake_camera,
                                                                                         tmp_path):
    """Two tabs, room for one: the second shows the 503's message, and once the first has closed and its
    tracker is forgotten (30 s without frames), the second's retries get answers."""
    from helpers import start_server, stop_server

    sync_api = pytest.importorskip("playwright.sync_api")
    process, base = start_server(["--source", str(face_video[0]), "--max-browser-clients", "1"], tmp_path / "log")
    try:
        with sync_api.sync_playwright() as playwright:
            browser = launch_with_fake_camera(playwright, fake_camera, CHROMIUM)
            context = browser.new_context()
            context.grant_permissions(["camera"], origin=base)
            first, second = context.new_page(), context.new_page()
            first.goto(base + "/?source=browser")
            deadline = time.monotonic() + 60
            wait_for_answers(first, 3, deadline)
            second.goto(base + "/?source=browser")
            assert "already analysing 1 cameras" in camera_message(second, deadline)
            first.close()
            wait_for_answers(second, 1, time.monotonic() + 60)
            browser.close()
    finally:
        stop_server(process)
