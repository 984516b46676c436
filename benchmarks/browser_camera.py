"""The visitor's own camera, as a browser sends it: answers per second, request-to-answer time, server CPU.

    python -m benchmarks.browser_camera [--video PATH] [--seconds 20]

Makes a 640x360 Y4M file of the video (the shared talking-head clip by default), starts ``main.py`` on a
free loopback port, and opens ``/?source=browser`` in the system's headless Chromium with that file as
its fake camera (``--use-fake-device-for-media-stream --use-file-for-fake-video-capture``). After a
5-s warm-up it counts, for ``--seconds``, the answers the page got (``window.cameraStats``: one frame in
flight at a time), their request-to-answer times as the page measured them, and the server process's
CPU time (Linux ``/proc``) per answer. Chromium runs on the same machine and takes its share of the CPU.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import cv2

from benchmarks.load import sample
from benchmarks.pipeline import machine
from benchmarks.serving import served

ROOT = Path(__file__).resolve().parents[1]


def y4m(video: Path, out: Path, size=(640, 360), limit: int = 600) -> tuple[Path, float]:
    capture = cv2.VideoCapture(str(video))
    fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
    with out.open("wb") as f:
        f.write(f"YUV4MPEG2 W{size[0]} H{size[1]} F{round(fps)}:1 Ip A1:1 C420jpeg\n".encode())
        for _ in range(limit):
            ok, frame = capture.read()
            if not ok:
                break
            f.write(b"FRAME\n" + cv2.cvtColor(cv2.resize(frame, size, interpolation=cv2.INTER_AREA),
                                                cv2.COLOR_BGR2YUV_I420).tobytes())
    capture.release()
    return out, fps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--video", type=Path, default=ROOT.parent / "shared" / "media" / "videos" / "fer_woman2.mp4")
    parser.add_argument("--seconds", type=float, default=20)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    folder = Path(tempfile.mkdtemp())
    camera, fps = y4m(args.video, folder / "camera.y4m")
    try:
        with served([]) as (server, base):
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=shutil.which("chromium"), args=[
                    "--no-sandbox", "--disable-gpu", "--use-fake-device-for-media-stream",
                    f"--use-file-for-fake-video-capture={camera}"])
                context = browser.new_context()
                context.grant_permissions(["camera"], origin=base)
                page = context.new_page()
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
