"""Load test: N concurrent viewers of one source for T seconds against a server this script starts.

    python -m benchmarks.load [--viewers 20] [--seconds 60] [--video PATH] [--settle 15] [--detector NAME]
        [--model MODEL_JSON WEIGHTS_H5]

Starts ``main.py --source VIDEO`` on a free loopback port, samples the server's RSS, thread count and
CPU time (cold, then as the baseline after one 3-s viewer has come and gone), holds ``--viewers`` MJPEG
viewers for ``--seconds`` (each a thread reading the stream), lets them all disconnect, and samples
again for ``--settle`` seconds. Prints per-viewer frames/s, errors, and
the samples. Traffic stays on 127.0.0.1; every loop is bounded in count and time.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import threading
import time
import urllib.request
from pathlib import Path

from benchmarks.serving import add_model_argument, model_options, served

ROOT = Path(__file__).resolve().parents[1]
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
IDLE_TIMEOUT = 5.0  # main.DEFAULT_CONFIG["IDLE_TIMEOUT"]


def sample(pid: int) -> dict:
    """RSS (MiB), threads and CPU seconds (user + system) of process ``pid`` (Linux /proc)."""
    status = Path(f"/proc/{pid}/status").read_text()
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return {"rss_mib": round(int(fields["VmRSS"].split()[0]) / 1024, 1), "threads": int(fields["Threads"]),
            "cpu_s": round((int(stat[11]) + int(stat[12])) / CLOCK_TICKS, 2)}


def viewer(url: str, stop: threading.Event, out: dict) -> None:
    frames, errors = 0, []
    try:
        with urllib.request.urlopen(url, timeout=15) as stream:
            while not stop.is_set():
                line = stream.readline()
                if not line:
                    errors.append("stream ended")
                    break
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
                    stream.readline()
                    if len(stream.read(length)) != length:
                        errors.append("short frame")
                        break
                    frames += 1
    except Exception as exc:  # noqa: BLE001  (every failure is a finding to report)
        errors.append(repr(exc))
    out.update(frames=frames, errors=errors)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--viewers", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--settle", type=float, default=15, help="seconds of sampling after the viewers leave")
    parser.add_argument("--video", type=Path, default=None)
    parser.add_argument("--detector", default=None, help="the server's --detector (default: its default)")
    add_model_argument(parser)
    args = parser.parse_args()
    if not 1 <= args.viewers <= 200 or not 0 < args.seconds <= 600:
        parser.error("viewers must be 1-200 and seconds at most 600")
    video = args.video or next((ROOT / "videos").glob("*.mp4"))
    options = (["--detector", args.detector] if args.detector else []) + model_options(args)
    with served(["--source", str(video), *options]) as (server, base):
        import cv2

        capture = cv2.VideoCapture(str(video))
        source_fps = capture.get(cv2.CAP_PROP_FPS)
        capture.release()
        samples = {"cold": sample(server.pid)}
        # the baseline: after one viewer has come and gone (the video decoder, the libraries' thread pools
        # and caches are set up by the first stream and stay), so "after" can be compared with it
        warm_up = {}
        warm_stop = threading.Event()
        warm = threading.Thread(target=viewer, args=(base + "/video_feed", warm_stop, warm_up), daemon=True)
        warm.start()
        time.sleep(3)
        warm_stop.set()
        warm.join(timeout=20)
        time.sleep(IDLE_TIMEOUT + 3)  # the producer stops IDLE_TIMEOUT s after its last viewer
        samples["idle"] = sample(server.pid)
        stop, results, threads = threading.Event(), [{} for _ in range(args.viewers)], []
        for out in results:
            thread = threading.Thread(target=viewer, args=(base + "/video_feed", stop, out), daemon=True)
            thread.start()
            threads.append(thread)
        start = time.monotonic()
        during = []
        while time.monotonic() - start < args.seconds:
            time.sleep(min(5.0, args.seconds - (time.monotonic() - start)))
            during.append(sample(server.pid))
        stop.set()
        for thread in threads:
            thread.join(timeout=20)
        elapsed = time.monotonic() - start
        samples["during_max"] = {k: max(s[k] for s in during) for k in ("rss_mib", "threads")}
        samples["during_cpu_per_s"] = round((during[-1]["cpu_s"] - samples["idle"]["cpu_s"]) / elapsed, 3)
        after = []
        settle_start = time.monotonic()
        while time.monotonic() - settle_start < args.settle:
            time.sleep(1.0)
            after.append(sample(server.pid))
        samples["after"] = after[-1] if after else sample(server.pid)
        samples["after_minus_baseline"] = {k: round(samples["after"][k] - samples["idle"][k], 1)
                                           for k in ("rss_mib", "threads")}
        rates = [r.get("frames", 0) / elapsed for r in results]
        report = {
            "video": video.name, "detector": args.detector or "default", "source_fps": round(source_fps, 2),
            "viewers": args.viewers,
            "seconds": round(elapsed, 1),
            "frames_per_s_per_viewer": {"min": round(min(rates), 2), "median": round(statistics.median(rates), 2),
                                        "max": round(max(rates), 2)},
            "errors": sum(len(r.get("errors", [])) for r in results),
            "error_examples": sorted({e for r in results for e in r.get("errors", [])})[:3],
            "server": samples,
        }
        print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
