"""The visitor's camera analysed in the browser (/?source=device): the page, its policy, the two models it
downloads, and the page in real Chromium with a fake camera playing the shared clip of a real face."""

import base64
import json
import shutil
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from benchmarks.video import camera_y4m
from detectors.blazeface import BlazeFaceDetector
from faces import EMOTIONS_LIST
from faces import box_iou as iou

ROOT = Path(__file__).resolve().parents[1]
SHARED_CLIP = ROOT.parent / "shared" / "media" / "videos" / "fer_woman2.mp4"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--use-fake-device-for-media-stream"]


def test_the_page_offers_the_camera_on_the_device(client):
    assert 'href="/?source=device"' in client.get("/").get_data(as_text=True)
    response = client.get("/?source=device")
    page = response.get_data(as_text=True)
    assert response.status_code == 200 and 'id="camera"' in page and "never leaves" in page
    assert 'type="module" src="/static/device.js"' in page and 'href="/?source=browser"' in page
    config = json.loads(page.split('id="page-config">', 1)[1].split("</script>", 1)[0])
    assert config["cameraUrl"] is None and config["eventsUrl"] is None
    device = config["device"]
    assert device["expressionUrl"] == "/models/expression.tflite"
    assert device["blazefaceUrl"] == "/models/blazeface.tflite"
    assert device["blazeface"]["side"] == 192 and device["blazeface"]["minScore"] == 0.5 and device["flipTta"]


def test_only_the_device_page_may_compile_webassembly(client):
    policy = client.get("/?source=device").headers["Content-Security-Policy"]
    assert "script-src 'self' 'wasm-unsafe-eval';" in policy
    assert "'unsafe-eval'" not in policy.replace("'wasm-unsafe-eval'", "")
    assert "default-src 'self'" in policy and "object-src 'none'" in policy  # nothing from another host
    for path in ("/", "/?source=browser", "/api/openapi.json", "/static/device.js"):
        assert "wasm-unsafe-eval" not in client.get(path).headers["Content-Security-Policy"]


def test_the_expression_model_is_the_served_ones_litert_conversion(client, fer_model):
    from ai_edge_litert.interpreter import Interpreter

    response = client.get("/models/expression.tflite")
    assert response.status_code == 200 and response.headers["Cache-Control"] == "no-cache"
    interpreter = Interpreter(model_content=response.data)
    interpreter.allocate_tensors()
    (given,), (output,) = interpreter.get_input_details(), interpreter.get_output_details()
    assert list(given["shape"]) == list(given["shape_signature"]) == [2, 48, 48, 1]  # a face and its mirror
    faces = np.random.default_rng(0).integers(0, 256, (3, 48, 48), dtype=np.uint8)
    for face in faces:
        x = face.astype(np.float32)[None, ..., None]
        interpreter.set_tensor(given["index"], np.concatenate([x, x[:, :, ::-1]]))
        interpreter.invoke()
        mean = interpreter.get_tensor(output["index"]).mean(axis=0)
        np.testing.assert_allclose(mean, fer_model.predict_proba(face[None])[0], atol=1e-5)
    again = client.get("/models/expression.tflite", headers={"If-None-Match": response.headers["ETag"]})
    assert again.status_code == 304 and not again.data


def test_the_detector_model_is_the_servers(client):
    from detectors.blazeface import BLAZEFACE_MODELS
    from server.device import blazeface_path

    response = client.get("/models/blazeface.tflite")
    assert response.status_code == 200 and response.headers["ETag"]
    with client.application.test_request_context():
        path = blazeface_path()
    assert path.name == BLAZEFACE_MODELS["full"][0] and response.data == path.read_bytes()


def test_the_runtime_is_vendored_with_its_version_and_licence():
    folder = ROOT / "static" / "vendor" / "litertjs"
    note = (folder / "README.md").read_text()
    assert "@litertjs/core" in note and "2.5.3" in note and "Apache" in note
    assert "Apache License" in (folder / "LICENSE").read_text()
    assert (folder / "index.js").is_file() and (folder / "wasm" / "litert_wasm_internal.wasm").is_file()
    assert "@litertjs/wasm-utils" not in (folder / "index.js").read_text().split("\n// src/")[0]  # no bare import


# ---- in Chromium, with a fake camera playing the shared clip ----

def clip_y4m(out: Path, frames: int = 150) -> Path:
    """The shared clip's first ``frames`` frames at 640x360, played forward then back (the camera loops without
    a jump), as a Y4M file at 30 frames/s, the format of Chromium's fake camera."""
    return camera_y4m(SHARED_CLIP, out, frames, (640, 360), fps=30)


@pytest.fixture(scope="module")
def shared_camera(tmp_path_factory):
    if not SHARED_CLIP.is_file():
        pytest.skip(f"the shared clip is not here ({SHARED_CLIP})")
    return clip_y4m(tmp_path_factory.mktemp("camera") / "clip.y4m")


def wait_for(page, expression, deadline, what):
    while not page.evaluate(expression):
        assert time.monotonic() < deadline, f"{what}: {page.evaluate('window.deviceStats')}"
        time.sleep(0.2)


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (.ci/run installs it)")
def test_the_page_analyses_the_camera_in_the_browser_and_sends_nothing(live_server, shared_camera, fer_model):
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=[
            *CHROMIUM_ARGS, f"--use-file-for-fake-video-capture={shared_camera}"])
        context = browser.new_context()
        context.grant_permissions(["camera"], origin=live_server)
        page = context.new_page()
        requests = []
        page.on("request", lambda request: requests.append((time.monotonic(), request.url)))
        page.goto(live_server + "/?source=device")
        deadline = time.monotonic() + 60
        wait_for(page, "window.deviceStats.frames >= 30 && window.deviceStats.last.faces.length > 0", deadline,
                 "no labelled face")
        stats = page.evaluate("window.deviceStats")
        face = stats["last"]["faces"][0]
        assert face["id"] == 1 and face["emotion"] in EMOTIONS_LIST
        assert sum(face["probabilities"].values()) == pytest.approx(1, abs=2e-3)
        assert stats["runtime"].startswith("LiteRT.js") and "WebAssembly" in stats["backend"]
        status = page.locator("#device-status").text_content()
        assert "frames/s" in status and "ms per frame" in status and "LiteRT.js" in status
        assert page.locator("#live-faces .face").count() == 1
        assert "%" in page.locator("#live-faces .face").first.text_content()
        # after the models loaded, nothing goes to the server: count the requests over 5 s of analysis
        loaded, frames = time.monotonic(), stats["frames"]
        time.sleep(5)
        assert page.evaluate("window.deviceStats.frames") > frames + 10
        assert [url for t, url in requests if t >= loaded] == []
        assert all(url.startswith(live_server) for _, url in requests)  # nothing from another host
        # the page's frame path on one frame: its probabilities are predict_proba's on its own crops
        capture = cv2.VideoCapture(str(SHARED_CLIP))
        capture.set(cv2.CAP_PROP_POS_FRAMES, 40)
        frame = cv2.resize(capture.read()[1], (640, 360), interpolation=cv2.INTER_AREA)
        capture.release()
        rgba = base64.b64encode(cv2.cvtColor(frame, cv2.COLOR_BGR2RGBA).tobytes()).decode()
        faces = page.evaluate("async ([data, w, h]) => window.deviceCheck("
                              "Uint8ClampedArray.from(atob(data), (c) => c.charCodeAt(0)), w, h)", [rgba, 640, 360])
        assert len(faces) == 1
        crop = np.array(faces[0]["crop"], np.uint8).reshape(1, 48, 48)
        expected = fer_model.predict_proba(crop)[0]  # the same up to the kernels' rounding (WebAssembly's XNNPACK)
        np.testing.assert_allclose(faces[0]["probabilities"], expected, atol=2e-3)
        assert np.argmax(faces[0]["probabilities"]) == np.argmax(expected)
        # a 1080p frame: small faces in the small tiles, a face cut by the edge (the mirrored border), boxes as
        # the server's detector gives them
        frame = crowd_frame()
        expected = BlazeFaceDetector().detect(frame)
        rgba = base64.b64encode(cv2.cvtColor(frame, cv2.COLOR_BGR2RGBA).tobytes()).decode()
        faces = page.evaluate("async ([data, w, h]) => window.deviceCheck("
                              "Uint8ClampedArray.from(atob(data), (c) => c.charCodeAt(0)), w, h)", [rgba, 1920, 1080])
        assert len(faces) == len(expected.boxes) >= 3
        for box in expected.boxes:
            assert max(iou(box, face["box"]) for face in faces) > 0.95
        browser.close()


def crowd_frame() -> np.ndarray:
    """A 1920x1080 frame with two small faces side by side, a larger one and one cut by the left edge."""
    from helpers import astronaut_bgr

    frame = np.full((1080, 1920, 3), 90, np.uint8)
    small = cv2.resize(astronaut_bgr(), (300, 300), interpolation=cv2.INTER_AREA)[30:130, 120:220]
    frame[500:600, 900:1000] = small
    frame[500:600, 1000:1100] = small
    frame[100:612, 1300:1812] = astronaut_bgr()
    frame[600:1000, 0:300] = cv2.resize(astronaut_bgr(), (400, 400), interpolation=cv2.INTER_AREA)[:, 100:]
    return frame


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (.ci/run installs it)")
def test_a_refused_camera_is_told_with_the_server_side_camera_as_fallback(live_server):
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_context().new_page()  # no camera permission: refused
        page.goto(live_server + "/?source=device")
        error = page.locator("#camera-error")
        error.wait_for(state="visible", timeout=30000)
        assert "denied" in error.text_content()
        assert error.locator("a").get_attribute("href") == "/?source=browser"
        browser.close()


def device_page_error(live_server, chromium_args, grant_camera: bool, init_script: str | None = None) -> str:
    """The text of the device page's error box, in headless Chromium launched with ``chromium_args``."""
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=chromium_args)
        context = browser.new_context()
        if grant_camera:
            context.grant_permissions(["camera"], origin=live_server)
        if init_script:
            context.add_init_script(init_script)
        page = context.new_page()
        page.goto(live_server + "/?source=device")
        error = page.locator("#camera-error")
        error.wait_for(state="visible", timeout=30000)
        text, href = error.text_content(), error.locator("a").get_attribute("href")
        stats = page.evaluate("window.deviceStats")
        browser.close()
    assert href == "/?source=browser", text  # the server-side camera offered instead
    assert stats["frames"] == 0
    return text


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (.ci/run installs it)")
def test_a_missing_camera_is_told_with_the_server_side_camera_as_fallback(live_server):
    # no fake camera device: the permission is granted but there is no camera to open
    args = [arg for arg in CHROMIUM_ARGS if arg != "--use-fake-device-for-media-stream"]
    text = device_page_error(live_server, args, grant_camera=True)
    assert "No camera was found" in text


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (.ci/run installs it)")
def test_a_browser_without_webassembly_is_told_with_the_server_side_camera_as_fallback(live_server):
    text = device_page_error(live_server, CHROMIUM_ARGS, grant_camera=True, init_script="delete window.WebAssembly;")
    assert "cannot run WebAssembly" in text
