"""Soak test: the combined load of many visitors for ``--minutes``, against a server this script starts on
127.0.0.1 (and nowhere else), one line of JSON per minute.

    python -m benchmarks.soak [--minutes 10] [--viewers 30] [--event-streams 30] [--cameras 8]
                              [--burst 10] [--burst-every 30] [--threads 128] [--video PATH]

The load: ``--viewers`` MJPEG viewers of ``/video_feed`` and ``--event-streams`` readers of ``/events``
(each a thread reading as a page does, reconnecting 1 s after an error), ``--cameras`` browser-camera
clients (``POST /api/frames?client=ID``, the next frame when the answer has come, as ``static/app.js``
sends them; frames of the video at 640x360), a burst of ``--burst`` concurrent photo uploads
(``POST /api/predict``) every ``--burst-every`` s, and a probe of ``/`` every 2 s. Each minute it prints the
errors of that minute (a stream that ended or failed, an answer other than 200; the uploads' 503, which
the upload limit gives by design, counted apart), the viewers' frame rates, the events' rate, the cameras'
answers, the uploads' answers and slowest time, the slowest probe of ``/``, the server's RSS, threads and
CPU at the minute's end (``benchmarks.load.sample``), and the median, least and most of its RSS sampled every
5 s. The last line sums the whole run, with ``memory_flat``: the last minute's median RSS within 10% of the
second minute's (issue 35's test of a leak). Every loop is bounded in time.
"""

from __future__ import annotations

import argparse
import collections
import json
import statistics
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2

from benchmarks.load import sample
from benchmarks.serving import served
from benchmarks.video import video_frames

ROOT = Path(__file__).resolve().parents[1]


class Tally:
    """Counters shared by the load threads, read and reset once a minute."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: collections.Counter = collections.Counter()
        self._values: dict[str, list[float]] = collections.defaultdict(list)
        self.errors: collections.Counter = collections.Counter()  # kind of error -> count, the whole run

    def add(self, key: str, count: int = 1) -> None:
        with self._lock:
            self._counts[key] += count

    def value(self, key: str, value: float) -> None:
        with self._lock:
            self._values[key].append(value)

    def error(self, kind: str) -> None:
        with self._lock:
            self._counts["errors"] += 1
            self.errors[kind] += 1

    def take(self) -> tuple[collections.Counter, dict[str, list[float]]]:
        """The counts and values since the last call; starts again from zero."""
        with self._lock:
            counts, values = self._counts, self._values
            self._counts, self._values = collections.Counter(), collections.defaultdict(list)
        return counts, values


def read_stream(url: str, key: str, kind: str, stop: threading.Event, tally: Tally) -> None:
    """A viewer (``kind`` "mjpeg": counts JPEG parts) or an event stream (``kind`` "events": counts
    ``data:`` lines) counted under ``key``, reconnecting 1 s after an error, until ``stop``."""
    while not stop.is_set():
        try:
            with urllib.request.urlopen(url, timeout=15) as stream:
                while not stop.is_set():
                    line = stream.readline()
                    if not line:
                        tally.error(f"{kind} stream ended")
                        break
                    if kind == "mjpeg" and line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                        stream.readline()
                        if len(stream.read(length)) != length:
                            tally.error("short frame")
                            break
                        tally.add(key)
                    elif kind == "events" and line.startswith(b"data:"):
                        if b'"error"' in line:
                            tally.error("event stream ended with an error")
                        tally.add(key)
        except Exception as exc:  # noqa: BLE001  (every failure is a finding to report)
            if stop.is_set():
                return
            tally.error(f"{kind}: {type(exc).__name__}")
        stop.wait(1.0)


def post(url: str, body: bytes, timeout: float = 30) -> int:
    """POST a JPEG; the status (0: no answer)."""
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "image/jpeg"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            answer.read()
            return answer.status
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return 0


def browser_camera(base: str, client: str, frames: list[bytes], stop: threading.Event, tally: Tally) -> None:
    """One page showing its visitor's camera: the next frame as soon as the answer has come."""
    i = 0
    while not stop.is_set():
        status = post(f"{base}/api/frames?client={client}", frames[i % len(frames)])
        i += 1
        if status == 200:
            tally.add("camera_answers")
        else:
            tally.error(f"camera answered {status}")
            stop.wait(1.0 if status != 503 else 5.0)  # as the page waits


def upload_bursts(base: str, photo: bytes, size: int, every: float, stop: threading.Event, tally: Tally) -> None:
    """``size`` concurrent uploads every ``every`` s."""
    with ThreadPoolExecutor(size) as pool:
        while not stop.is_set():
            def one(_):
                started = time.monotonic()
                status = post(base + "/api/predict", photo)
                return status, time.monotonic() - started

            for status, seconds in pool.map(one, range(size)):
                tally.add(f"uploads_{status}")
                tally.value("upload_s", seconds)
                if status not in (200, 503):
                    tally.error(f"upload answered {status}")
            stop.wait(every)


def probe_page(base: str, stop: threading.Event, tally: Tally) -> None:
    """``GET /`` every 2 s: the time to its answer (an error if none within 5 s)."""
    while not stop.is_set():
        started = time.monotonic()
        try:
            with urllib.request.urlopen(base + "/", timeout=5) as answer:
                answer.read()
            tally.value("page_s", time.monotonic() - started)
        except OSError as exc:
            tally.error(f"page: {type(exc).__name__}")
        stop.wait(2.0)


def video_jpegs(video: Path, count: int = 60, size=(640, 360)) -> list[bytes]:
    """The first ``count`` frames of ``video`` at ``size``, as JPEGs (quality 80, as the page sends them)."""
    frames = [cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 80])[1].tobytes()
              for frame in video_frames(video, count, size)]
    if not frames:
        raise SystemExit(f"no frame could be read from {video}")
    return frames


#: Seconds between two samples of the server's RSS.
RSS_EVERY = 5.0


def minute_row(minute: int, seconds: float, counts: collections.Counter, values: dict, viewers: int,
               streams: int, pid: int, rss: list[float]) -> dict:
    """One line of the report: what happened in the last ``seconds``; ``rss``: the server's RSS (MiB) sampled
    every ``RSS_EVERY`` s of it (one sample is a point on a sawtooth: the uploads' decoding comes and goes)."""
    rates = [counts[f"viewer{i}"] / seconds for i in range(viewers)]
    events = [counts[f"events{i}"] / seconds for i in range(streams)]
    return {
        "minute": minute, "errors": counts["errors"],
        "viewer_fps": {"median": round(statistics.median(rates), 2), "min": round(min(rates), 2)} if rates else None,
        "events_per_s": round(statistics.median(events), 2) if events else None,
        "camera_answers_per_s": round(counts["camera_answers"] / seconds, 2),
        "uploads": {key.split("_", 1)[1]: n for key, n in sorted(counts.items()) if key.startswith("uploads_")},
        "upload_max_s": round(max(values["upload_s"]), 2) if values.get("upload_s") else None,
        "page_max_s": round(max(values["page_s"]), 3) if values.get("page_s") else None,
        "server": sample(pid),
        "rss_mib": {"median": round(statistics.median(rss), 1), "min": round(min(rss), 1),
                    "max": round(max(rss), 1)} if rss else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--viewers", type=int, default=30)
    parser.add_argument("--event-streams", type=int, default=30)
    parser.add_argument("--cameras", type=int, default=8)
    parser.add_argument("--burst", type=int, default=10, help="concurrent uploads in a burst")
    parser.add_argument("--burst-every", type=float, default=30, help="seconds between bursts")
    parser.add_argument("--threads", type=int, default=128,
                        help="the server's --threads: each viewer and event stream holds one (default 128)")
    parser.add_argument("--video", type=Path, default=None, help="the source (default: the first in videos/)")
    args = parser.parse_args()
    if not 0 < args.minutes <= 60 or not 0 <= args.viewers <= 200 or not 0 <= args.event_streams <= 200 \
            or not 0 <= args.cameras <= 64 or not 0 <= args.burst <= 50:
        parser.error("minutes 0-60, viewers and event streams at most 200, cameras 64, burst 50")
    video = args.video or next((ROOT / "videos").glob("*.mp4"))
    frames = video_jpegs(video)
    photo = frames[len(frames) // 2]
    # the server binds 127.0.0.1 (main.py's default): no --host is given
    with served(["--source", str(video), "--threads", str(args.threads)]) as (server, base):
        tally, stop, threads = Tally(), threading.Event(), []

        def start(target, *target_args):
            thread = threading.Thread(target=target, args=(*target_args, stop, tally), daemon=True)
            thread.start()
            threads.append(thread)

        print(json.dumps({"video": video.name, "viewers": args.viewers, "event_streams": args.event_streams,
                          "cameras": args.cameras, "burst": args.burst, "burst_every_s": args.burst_every,
                          "threads": args.threads, "minutes": args.minutes, "idle_server": sample(server.pid)}),
              flush=True)
        for i in range(args.viewers):
            start(read_stream, base + "/video_feed", f"viewer{i}", "mjpeg")
        for i in range(args.event_streams):
            start(read_stream, base + "/events", f"events{i}", "events")
        for i in range(args.cameras):
            start(browser_camera, base, f"soak-camera-{i:04d}", frames)
        if args.burst:
            start(upload_bursts, base, photo, args.burst, args.burst_every)
        start(probe_page, base)
        began = last = time.monotonic()
        end, minute, rows = began + 60 * args.minutes, 0, []
        while (now := time.monotonic()) < end:
            rss, minute_end = [], min(now + 60.0, end)
            while (now := time.monotonic()) < minute_end:
                time.sleep(min(RSS_EVERY, minute_end - now))
                rss.append(sample(server.pid)["rss_mib"])
            minute += 1
            counts, values = tally.take()
            row = minute_row(minute, time.monotonic() - last, counts, values, args.viewers, args.event_streams,
                             server.pid, rss)
            last = time.monotonic()
            rows.append(row)
            print(json.dumps(row), flush=True)
        stop.set()
        for thread in threads:
            thread.join(timeout=20)
        time.sleep(35)  # the browser cameras idle out (30 s) and their memory goes back
        after = sample(server.pid)
        print(json.dumps({
            "total_errors": sum(tally.errors.values()), "error_kinds": dict(tally.errors.most_common(8)),
            "viewer_fps_median_by_minute": [row["viewer_fps"]["median"] if row["viewer_fps"] else None
                                            for row in rows],
            "rss_mib_median_by_minute": [row["rss_mib"]["median"] for row in rows],
            # issue 35's test of a leak: the last minute's median RSS within 10% of the second minute's
            "memory_flat": len(rows) >= 2
            and abs(rows[-1]["rss_mib"]["median"] / rows[1]["rss_mib"]["median"] - 1) <= 0.1,
            "server_35_s_after": after}), flush=True)


if __name__ == "__main__":
    main()
