"""The visitor's camera analysed in the browser (/?source=device): load time, frames per second, requests and
server CPU while it runs, and agreement with the server's model.

    python -m benchmarks.on_device [--video PATH] [--seconds 20] [--frames 200]

Starts ``main.py`` on a free loopback port and opens ``/?source=device`` in the system's headless Chromium
whose fake camera plays the video (the shared talking-head clip by default) at 640x360, 30 frames/s,
forward then back. Reports:

- load: the page's own figures, from its start to the models compiled and to its first frame analysed;
- rate: for ``--seconds`` after a 3-s warm-up, the frames the page analysed and the frames its video showed,
  per second, the page's median time per frame (its status line: the same figures), every request the page
  made in that window, and the server process's CPU time (Linux ``/proc``) as a share of one core, with the
  machine's load average (the CPU is shared: Chromium, and whatever else runs, take their parts);
- agreement: ``--frames`` frames of the video (evenly spaced), each run through the page's frame path
  (``window.deviceCheck``: BlazeFace, crop, lighting, the expression model with its flip, no tracking) and
  through the server's (``analysis.analyze_frame`` with the BlazeFace detector and the served model).
  "Same crops": the page's top label against ``predict_proba`` on the page's own 48x48 crops (the runtimes
  alone differ); "same frames": against the server's whole frame path (detector and crop included), faces
  paired by box overlap (IoU >= 0.5); and the mean absolute difference of the grey levels (0-255) of the page's
  crops and the server's crops (``faces.crop_faces``, ``normalize_lighting``) of the same boxes and rolls.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from benchmarks.load import sample
from benchmarks.pipeline import machine
from benchmarks.serving import camera_page, served
from benchmarks.video import camera_y4m, video_frames

ROOT = Path(__file__).resolve().parents[1]
SIZE = (640, 360)


def spaced_frames(video: Path, count: int) -> list[np.ndarray]:
    """``count`` frames spread evenly over the video, BGR at 640x360."""
    capture = cv2.VideoCapture(str(video))
    total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    capture.release()
    wanted = set(np.linspace(0, max(total - 1, 0), count).round().astype(int).tolist())
    frames = []
    for index, frame in enumerate(video_frames(video, max(wanted, default=-1) + 1)):
        if index in wanted:
            frames.append(cv2.resize(frame, SIZE, interpolation=cv2.INTER_AREA))
    return frames


def iou(a, b) -> float:
    ix = max(0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    union = a[2] * a[3] + b[2] * b[3] - ix * iy
    return ix * iy / union if union else 0.0


def agreement(page, frames: list[np.ndarray]) -> dict:
    """The page's frame path against the server's on the same frames (see the module docstring)."""
    from analysis import analyze_frame
    from detection import make_face_detector
    from faces import crop_faces, normalize_lighting
    from model import default_model

    model, detector = default_model(), make_face_detector("blazeface", 0.5)
    crops_same = crops_total = 0
    paired = labels_same = page_faces = server_faces = 0
    differences, ious = [], []

    for frame in frames:
        rgba = base64.b64encode(cv2.cvtColor(frame, cv2.COLOR_BGR2RGBA).tobytes()).decode()
        faces = page.evaluate("async ([data, w, h]) => window.deviceCheck("
                              "Uint8ClampedArray.from(atob(data), (c) => c.charCodeAt(0)), w, h)", [rgba, *SIZE])
        page_faces += len(faces)
        if faces:
            crops = np.array([f["crop"] for f in faces], np.uint8).reshape(-1, 48, 48)
            expected = model.predict_proba(crops)
            crops_total += len(faces)
            crops_same += sum(int(np.argmax(f["probabilities"]) == np.argmax(e))
                              for f, e in zip(faces, expected, strict=True))
        served_faces = analyze_frame(frame, model, detector)
        server_faces += len(served_faces)
        gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        for face in faces:
            best = max(served_faces, key=lambda s: iou(face["box"], s.box), default=None)
            if best is None or iou(face["box"], best.box) < 0.5:
                continue
            paired += 1
            ious.append(iou(face["box"], best.box))
            labels_same += int(np.argmax(face["probabilities"]) == np.argmax(best.probabilities))
        for face in faces:  # the server's crop of the page's box and roll: the preprocessing alone compared
            server_crop = normalize_lighting(crop_faces(gray, np.array([face["box"]]), 48, np.array([face["roll"]])))[0]
            differences.append(float(np.abs(np.array(face["crop"], np.float32).reshape(48, 48)
                                            - server_crop.astype(np.float32)).mean()))
    return {
        "frames": len(frames), "faces_page": page_faces, "faces_server": server_faces,
        "same_crops": {"faces": crops_total, "same_top_label": crops_same,
                       "share": round(crops_same / max(crops_total, 1), 4)},
        "same_frames": {"faces_paired": paired, "same_top_label": labels_same,
                        "share": round(labels_same / max(paired, 1), 4),
                        "box_iou_median": round(statistics.median(ious), 3) if ious else None},
        "crop_grey_levels_mean_abs_difference": round(statistics.mean(differences), 3) if differences else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--video", type=Path, default=ROOT.parent / "shared" / "media" / "videos" / "fer_woman2.mp4")
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--frames", type=int, default=200, help="frames compared with the server's model")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    folder = Path(tempfile.mkdtemp())
    camera = camera_y4m(args.video, folder / "camera.y4m", 300, SIZE)
    try:
        with served([]) as (server, base):
            with sync_playwright() as playwright:
                browser, page = camera_page(playwright, camera, base)
                requests: list[tuple[float, str]] = []
                page.on("request", lambda request: requests.append((time.monotonic(), request.url)))
                opened = time.monotonic()
                page.goto(base + "/?source=device")
                while not page.evaluate("window.deviceStats && window.deviceStats.frames > 0"):
                    if time.monotonic() - opened > 60:
                        raise SystemExit(f"no frame analysed in 60 s: {page.evaluate('window.deviceStats')}")
                    time.sleep(0.05)
                first_frame_s = time.monotonic() - opened
                time.sleep(3)  # warm-up
                stats = "({frames: deviceStats.frames, shown: deviceStats.shown})"
                before, cpu_before, start = page.evaluate(stats), sample(server.pid)["cpu_s"], time.monotonic()
                load_before = os.getloadavg()[0]
                time.sleep(args.seconds)
                after, cpu_after, end = page.evaluate(stats), sample(server.pid)["cpu_s"], time.monotonic()
                load_after = os.getloadavg()[0]
                final = page.evaluate("window.deviceStats")
                status = page.locator("#device-status").text_content()
                label = page.locator("#live-faces .face strong").first.text_content()
                bars = page.locator("#live-faces .face").first.text_content()
                compared = agreement(page, spaced_frames(args.video, args.frames))
                browser.close()
        seconds = end - start
        window = [url for t, url in requests if start <= t <= end]
        print(json.dumps({
            "machine": machine(), "browser": "headless Chromium (system), --disable-gpu",
            "camera": f"{args.video.name} at 640x360, 30 frames/s (fake camera)",
            "runtime": f"{final['runtime']}, {final['backend']}",
            "load": {"models_compiled_s": round(final["loadMs"] / 1000, 2),
                     "first_frame_analysed_s_page": round(final["firstFrameMs"] / 1000, 2),
                     "first_frame_seen_by_the_test_s": round(first_frame_s, 2),
                     "requests_to_load": len(requests) - len(window)},
            "rate": {"seconds": round(seconds, 1),
                     "analysed_per_s": round((after["frames"] - before["frames"]) / seconds, 1),
                     "shown_per_s": round((after["shown"] - before["shown"]) / seconds, 1),
                     "ms_per_frame_median": round(statistics.median(final["frameMs"]), 1),
                     "ms_per_stage_median": dict(zip(
                         ("rgb copy", "face search", "crops and model"),
                         np.median(np.array(final["stages"]), axis=0).round(1).tolist(), strict=True)),
                     "requests_in_window": len(window),
                     "server_cpu_share_of_one_core": round((cpu_after - cpu_before) / seconds, 4),
                     "load_average_1min": [round(load_before, 2), round(load_after, 2)]},
            "page_shows": {"status": status, "largest_face": label, "bars": bars[:120]},
            "agreement": compared,
        }, indent=2, ensure_ascii=False))
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
