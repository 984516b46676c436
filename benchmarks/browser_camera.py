"""The visitor's own camera, as a browser sends it: answers per second, request-to-answer time, server CPU.

    python -m benchmarks.browser_camera [--video PATH] [--seconds 20] [--model MODEL_JSON WEIGHTS_H5]

Makes a 640x360 Y4M file of the video (the shared talking-head clip by default), starts ``main.py`` on a
free loopback port, and opens ``/?source=browser`` in the system's headless Chromium with that file as
its fake camera (``--use-fake-device-for-media-stream --use-file-for-fake-video-capture``). After a
5-s warm-up it counts, for ``--seconds``, the answers the page got (``window.cameraStats``: one frame in
flight at a time), their request-to-answer times as the page measured them, and the server process's
CPU time (Linux ``/proc``) per answer. Chromium runs on the same machine and takes its share of the CPU.
"""

from __future__ import annotations

import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from benchmarks.load import sample
from benchmarks.pipeline import machine
from benchmarks.serving import camera_arguments, camera_page, model_options, served
from benchmarks.video import video_fps, video_frames, write_y4m


def y4m(video: Path, out: Path, size=(640, 360), limit: int = 600) -> tuple[Path, float]:
    """A Y4M file of the video's first ``limit`` frames at ``size``, at its own frame rate; and that rate."""
    fps = video_fps(video)
    return write_y4m(out, video_frames(video, limit, size), round(fps)), fps


def main() -> None:
    args = camera_arguments(__doc__, 20)
    from playwright.sync_api import sync_playwright

    folder = Path(tempfile.mkdtemp())
    camera, fps = y4m(args.video, folder / "camera.y4m")
    try:
        with served(model_options(args)) as (server, base):
            with sync_playwright() as playwright:
                browser, page = camera_page(playwright, camera, base)
                page.goto(base + "/?source=browser")
                time.sleep(5)  # warm-up: the camera opens, the first answers come
                stats = "window.cameraStats || {answers: 0, latencies: []}"
                before, cpu_before = page.evaluate(stats), sample(server.pid)["cpu_s"]
                time.sleep(args.seconds)
                after, cpu_after = page.evaluate(stats), sample(server.pid)["cpu_s"]
                browser.close()
            answers = after["answers"] - before["answers"]
            latencies = after["latencies"][len(before["latencies"]):]
            print(json.dumps({
                "machine": machine(), "camera": f"{args.video.name} at 640x360, {fps:.2f} frames/s",
                "seconds": args.seconds,
                "answers": answers, "answers_per_s": round(answers / args.seconds, 2),
                "request_to_answer_ms": {"median": round(statistics.median(latencies), 1),
                                         "p90": round(sorted(latencies)[int(0.9 * (len(latencies) - 1))], 1)},
                "server_cpu_ms_per_answer": round(1000 * (cpu_after - cpu_before) / max(answers, 1), 1),
                "faces_in_last_answer": len(after["last"]["faces"]) if after.get("last") else 0,
                "error": after.get("error")}, indent=2))
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
