"""Hostile and heavy uploads against a server this script starts: memory, answers, and a live viewer's rate.

    python -m benchmarks.uploads [--video PATH] [--uploads 20] [--max-upload-pixels N]

1. Bombs: ``--uploads`` concurrent uploads of a JPEG whose header declares 4900x5000 pixels (24.5 MP; a
   black picture at quality 1, 288 KB). The server's RSS is sampled every 0.1 s: its baseline (after a
   warm-up upload), its peak during the burst, and 15 s after; every answer's status is counted.
2. Heavy: ``--uploads`` concurrent uploads of an ordinary 2-megapixel photo (the public-domain astronaut,
   1732x1155 JPEG) while one viewer reads the MJPEG stream of ``--video``: the viewer's frames per second
   and its longest gap between two frames during the burst, against the video's own rate; the answers'
   statuses and seconds.

With ``--max-upload-pixels 25000000`` the bombs pass the pixel limit and are decoded (at a reduced size).
Traffic stays on 127.0.0.1; every loop is bounded in count and time.
"""

from __future__ import annotations

import argparse
import collections
import io
import json
import statistics
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from benchmarks.load import sample
from benchmarks.pipeline import machine
from benchmarks.serving import served

ROOT = Path(__file__).resolve().parents[1]


def jpeg(image: Image.Image, quality: int) -> bytes:
    out = io.BytesIO()
    image.save(out, "JPEG", quality=quality)
    return out.getvalue()


def bomb() -> bytes:
    return jpeg(Image.new("L", (4900, 5000)), 1)


def photo_2mp() -> bytes:
    from skimage import data  # a test requirement; the public-domain astronaut

    return jpeg(Image.fromarray(data.astronaut()).resize((1732, 1155), Image.Resampling.BICUBIC), 90)


def post(url: str, body: bytes) -> tuple[int, float]:
    start = time.perf_counter()
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "image/jpeg"})
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            answer.read()
            status = answer.status
    except urllib.error.HTTPError as error:
        status = error.code
    return status, time.perf_counter() - start


def burst(url: str, body: bytes, count: int) -> list[tuple[int, float]]:
    results: list = [None] * count

    def one(i):
        results[i] = post(url, body)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return [r or (0, 0.0) for r in results]


def sampled(pid: int, stop: threading.Event, out: list) -> None:
    while not stop.wait(0.1):
        out.append(sample(pid)["rss_mib"])


def viewer(url: str, stop: threading.Event, times: list) -> None:
    with urllib.request.urlopen(url, timeout=30) as stream:
        while not stop.is_set():
            line = stream.readline()
            if not line:
                return
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
                stream.readline()
                stream.read(length)
                times.append(time.monotonic())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--video", type=Path, default=None)
    parser.add_argument("--uploads", type=int, default=20)
    parser.add_argument("--max-upload-pixels", type=int, default=None)
    args = parser.parse_args()
    if not 1 <= args.uploads <= 100:
        parser.error("uploads must be 1-100")
    video = args.video or next((ROOT / "videos").glob("*.mp4"))
    capture = cv2.VideoCapture(str(video))
    source_fps = capture.get(cv2.CAP_PROP_FPS)
    capture.release()
    extra = ["--max-upload-pixels", str(args.max_upload_pixels)] if args.max_upload_pixels else []
    report: dict = {"machine": machine(), "video": video.name, "source_fps": round(source_fps, 2),
                    "uploads": args.uploads, "server_options": extra}
    with served(["--source", str(video), *extra]) as (server, base):
        photo = photo_2mp()
        post(base + "/api/predict", photo)  # warm-up: the upload workers and their detectors exist
        time.sleep(2)
        baseline = sample(server.pid)["rss_mib"]
        rss, stop = [], threading.Event()
        sampler = threading.Thread(target=sampled, args=(server.pid, stop, rss), daemon=True)
        sampler.start()
        answers = burst(base + "/api/predict", bomb(), args.uploads)
        time.sleep(15)
        stop.set()
        sampler.join()
        report["bombs"] = {
            "statuses": dict(collections.Counter(status for status, _ in answers)),
            "slowest_answer_s": round(max(s for _, s in answers), 2),
            "rss_mib": {"baseline": baseline, "peak": max(rss), "peak_minus_baseline": round(max(rss) - baseline, 1),
                        "after_15_s": rss[-1], "after_minus_baseline": round(rss[-1] - baseline, 1)}}
        times, stop = [], threading.Event()
        watcher = threading.Thread(target=viewer, args=(base + "/video_feed", stop, times), daemon=True)
        watcher.start()
        time.sleep(5)  # the stream runs at its rate
        before = len(times)
        start = time.monotonic()
        answers = burst(base + "/api/predict", photo, args.uploads)
        elapsed = time.monotonic() - start
        during = [t for t in times[before:] if t <= start + elapsed]
        gaps = np.diff([times[before - 1], *during]) if during else np.array([elapsed])
        stop.set()
        report["photos_2mp"] = {
            "statuses": dict(collections.Counter(status for status, _ in answers)),
            "answer_s": {"median": round(statistics.median(s for _, s in answers), 2),
                         "max": round(max(s for _, s in answers), 2)},
            "burst_s": round(elapsed, 2),
            "viewer_fps_during": round(len(during) / elapsed, 2),
            "viewer_fps_share_of_source": round(len(during) / elapsed / source_fps, 3),
            "viewer_longest_gap_s": round(float(gaps.max()), 3)}
        print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
