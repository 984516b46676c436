"""Ids that hold (issue 32): one face always in view, the share of answers that give it its main id.

    python -m benchmarks.track_ids [--video PATH] [--seconds 15]

The clip (the shared talking-head clip ``fer_woman2.mp4`` by default: one face, always in view) is played
forward then backward, so it loops without a jump, at 640x360 and its own frame rate:

- **stream**: written as an MJPEG AVI and served as the stream's source (``main.py --source``); the
  benchmark reads ``/events`` (at most 5 events a second, each the faces of the newest frame) for
  ``--seconds``.
- **browser camera**: a Y4M file as headless Chromium's fake camera on ``/?source=browser``; after a 5-s
  warm-up, the page's answers of ``--seconds`` (``window.cameraStats.ids``: the track id of each answer's
  largest face).

For each, over the answers (events) with a face: the most common id of the largest face and the share of
answers that give it ("main id share"; issue 32 asks >= 0.95), how many ids were seen, and the answers
without a face. Chromium runs on the same machine and takes its share of the CPU.
"""

from __future__ import annotations

import collections
import json
import shutil
import tempfile
import time
import urllib.request
from pathlib import Path

import cv2

from benchmarks.pipeline import machine
from benchmarks.serving import camera_arguments, camera_page, served
from benchmarks.video import camera_y4m, video_fps, video_frames

SIZE = (640, 360)


def id_figures(ids: list) -> dict:
    """The main id's share of the answers with a face (``ids``: one per answer, None without a face)."""
    with_face = [i for i in ids if i is not None]
    counts = collections.Counter(with_face)
    main, count = counts.most_common(1)[0] if counts else (None, 0)
    return {"answers": len(ids), "answers_with_a_face": len(with_face), "ids_seen": len(counts),
            "main_id": main, "main_id_share": round(count / len(with_face), 4) if with_face else None}


def largest_id(faces: list) -> int | None:
    """The ``id`` of the largest face of an answer's ``faces`` (None: no face, or an untracked one)."""
    if not faces:
        return None
    return max(faces, key=lambda f: f["box"][2] * f["box"][3]).get("id")


def loop_avi(video: Path, out: Path) -> Path:
    """The clip at ``SIZE``, forward then backward, as an MJPEG AVI at the clip's own frame rate."""
    images = list(video_frames(video, None, SIZE))
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"MJPG"), video_fps(video), SIZE)
    for image in images + images[-2:0:-1]:
        writer.write(image)
    writer.release()
    return out


def stream_ids(base: str, seconds: float) -> list:
    """The largest face's id of each ``/events`` event over ``seconds``."""
    ids, end = [], time.monotonic() + seconds
    with urllib.request.urlopen(base + "/events", timeout=30) as response:
        for line in response:
            if time.monotonic() >= end:
                break
            if line.startswith(b"data: "):
                ids.append(largest_id(json.loads(line[6:]).get("faces", [])))
    return ids


def main() -> None:
    args = camera_arguments(__doc__, 15)
    from playwright.sync_api import sync_playwright

    folder = Path(tempfile.mkdtemp())
    try:
        report = {"machine": machine(), "clip": f"{args.video.name} at {SIZE[0]}x{SIZE[1]}, forward then backward, "
                                                f"{video_fps(args.video):.2f} frames/s", "seconds": args.seconds}
        source = loop_avi(args.video, folder / "loop.avi")
        with served(["--source", str(source)]) as (_, base):
            report["stream"] = id_figures(stream_ids(base, args.seconds))
        camera = camera_y4m(args.video, folder / "camera.y4m", size=SIZE, fps=round(video_fps(args.video)))
        with served([]) as (_, base), sync_playwright() as playwright:
            browser, page = camera_page(playwright, camera, base)
            page.goto(base + "/?source=browser")
            time.sleep(5)  # warm-up: the camera opens, the first answers come
            before = page.evaluate("window.cameraStats ? window.cameraStats.ids.length : 0")
            time.sleep(args.seconds)
            ids = page.evaluate("window.cameraStats ? window.cameraStats.ids : []")
            browser.close()
        report["browser_camera"] = id_figures(ids[before:])
        print(json.dumps(report, indent=2))
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
