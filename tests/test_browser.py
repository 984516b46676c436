"""The page in a real headless browser (Debian's chromium, driven by Playwright): the stream moves,
live probabilities arrive, and a photo upload shows its faces. .ci/run installs chromium."""

import re
import shutil
import time

import pytest
from helpers import astronaut_bgr

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is a test requirement")
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (.ci/run installs it)")]

# the flags this sandbox needs: no GPU, no network but loopback, root without a sandbox
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


def wait_until(condition, seconds=20.0):
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


@pytest.fixture()
def page(live_server):
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1100, "height": 900})
        page.goto(live_server + "/")
        yield page
        browser.close()


def test_stream_image_changes_and_live_bars_arrive(page):
    stream = page.locator("#stream")
    wait_until(lambda: stream.evaluate("image => image.naturalWidth") > 0)
    first = stream.screenshot()
    wait_until(lambda: stream.screenshot() != first)  # the face moves across the test video
    snapshots = []  # the panel is replaced with every frame's faces (none for a moment when the video loops):
    wait_until(lambda: snapshots.append(page.evaluate(  # its text and bars read at once, until it shows a face
        "() => [document.querySelector('#live-faces').innerText, document.querySelectorAll('#live-faces .bar').length]"
    )) or snapshots[-1][0].startswith("Face"))
    text, bars = snapshots[-1]
    assert re.match(r"Face \d+: (angry|disgust|fear|happy|neutral|sad|surprise)\n", text)
    assert bars == 7


def test_photo_upload_shows_the_face_and_its_probabilities(page, tmp_path):
    import cv2

    photo = tmp_path / "astronaut.jpg"
    cv2.imwrite(str(photo), astronaut_bgr())
    page.set_input_files("#photo-input", str(photo))
    page.wait_for_selector("#photo-faces .face", timeout=20000)
    assert page.locator("#photo-faces .face").count() == 1
    assert page.locator("#photo-canvas").is_visible()
    assert page.inner_text("#photo-error") == ""


def test_bad_photo_shows_the_error(page, tmp_path):
    bad = tmp_path / "notes.png"
    bad.write_text("not an image")
    page.set_input_files("#photo-input", str(bad))
    sync_api.expect(page.locator("#photo-error")).to_contain_text("not an image", timeout=20000)


def test_the_stream_comes_back_after_the_server_restarts(face_video, tmp_path):
    """EventSource reconnects by itself; the page then asks for the MJPEG stream again (an <img> would
    keep its last frame for good)."""
    from helpers import free_port, start_server, stop_server

    port = free_port()
    process, base = start_server(["--source", str(face_video[0])], tmp_path / "log", port=port)
    try:
        with sync_api.sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page()
            page.goto(base + "/")
            page.wait_for_selector("#live-faces .face", timeout=20000)
            stop_server(process)
            with page.expect_request(lambda request: "/video_feed" in request.url, timeout=90000) as request:
                process, _ = start_server(["--source", str(face_video[0])], tmp_path / "log", port=port)
            assert "reload=" in request.value.url
            page.wait_for_selector("#live-faces .face", timeout=20000)  # the bars are live again
            browser.close()
    finally:
        stop_server(process)
