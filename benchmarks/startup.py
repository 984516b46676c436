"""Start-up of ``python main.py``: seconds to the first answer, what it prints, and a busy port.

    python -m benchmarks.startup [--video PATH] [--runs 5] [--cold]

Each run starts ``python main.py --source VIDEO --port P`` and times, from the moment the process is
spawned, the first answer of ``/`` and the first JPEG of ``/video_feed``, then stops it (SIGTERM). The
first run may convert the model to LiteRT (it is cached beside the weights afterwards); ``--cold``
deletes that cache first, so the first run shows the cost of a fresh clone's first start. Lines that
are not the app's own log lines (TensorFlow, CUDA, absl, OpenCV) are counted. Then a run on a port that
is already taken: its exit status, seconds, and what it printed.
"""

from __future__ import annotations

import argparse
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from benchmarks.pipeline import machine
from benchmarks.serving import free_port

ROOT = Path(__file__).resolve().parents[1]

#: A line in main.py's log format from any Python logger but TensorFlow's and absl's; every other line
#: (TensorFlow's and absl's C++ logs, CUDA probing, OpenCV's warnings) is counted as noise.
OWN_LINE = re.compile(r"\d{4}-\d\d-\d\d \S+ (DEBUG|INFO|WARNING|ERROR|CRITICAL) (?!tensorflow|absl)[\w.]+: ")


def start_once(video: Path) -> dict:
    """One start: seconds to the first answer of / and to the first frame of the stream, and its output."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryFile() as output:
        started = time.perf_counter()
        process = subprocess.Popen([sys.executable, "main.py", "--source", str(video), "--port", str(port)], cwd=ROOT,
                                   stdout=output, stderr=subprocess.STDOUT)
        try:
            while True:
                try:
                    urllib.request.urlopen(base + "/", timeout=5).read()
                    page = time.perf_counter() - started
                    break
                except OSError:  # refused, or not answered yet (the port is bound before the model loads)
                    if process.poll() is not None or time.perf_counter() - started > 120:
                        raise RuntimeError("the server did not start") from None
                    time.sleep(0.02)
            with urllib.request.urlopen(base + "/video_feed", timeout=30) as stream:
                while not stream.readline().lower().startswith(b"content-length"):
                    pass
                frame = time.perf_counter() - started
        finally:
            process.terminate()
            process.wait(timeout=30)
        output.seek(0)
        lines = output.read().decode(errors="replace").splitlines()
    return {"page_s": page, "frame_s": frame, "lines": lines}


def busy_port(video: Path) -> dict:
    """A start on a port another socket holds."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "main.py", "--source", str(video), "--port",
                               str(taken.getsockname()[1])], cwd=ROOT, capture_output=True, text=True, timeout=120)
    return {"status": done.returncode, "seconds": time.perf_counter() - started,
            "lines": (done.stdout + done.stderr).strip().splitlines()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--video", type=Path, default=None)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--cold", action="store_true", help="delete the cached LiteRT conversion first")
    args = parser.parse_args()
    video = args.video or next((ROOT / "videos").glob("*.mp4"))
    if args.cold:
        for cache in ROOT.glob("model_weights.*.tflite"):
            cache.unlink()
    print(f"machine: {machine()}; video: {video.name}\n")
    print("| run | to the first answer of / (s) | to the first frame of the stream (s) | lines printed | "
          "noise lines (not in the app's log format) |")
    print("|---|---|---|---|---|")
    runs = [start_once(video) for _ in range(args.runs)]
    for i, run in enumerate(runs, 1):
        foreign = [line for line in run["lines"] if not OWN_LINE.match(line)]
        print(f"| {i}{' (cold)' if args.cold and i == 1 else ''} | {run['page_s']:.2f} | {run['frame_s']:.2f} | "
              f"{len(run['lines'])} | {len(foreign)} |")
    later = runs[1:] or runs
    print(f"\nruns 2-{len(runs)}: median {statistics.median(r['page_s'] for r in later):.2f} s to the first answer, "
          f"{statistics.median(r['frame_s'] for r in later):.2f} s to the first frame")
    print("\nlines of run 1 that are not the app's own:")
    for line in runs[0]["lines"]:
        if not OWN_LINE.match(line):
            print("    " + line)
    print("\noutput of the last run:")
    for line in runs[-1]["lines"]:
        print("    " + line)
    busy = busy_port(video)
    print(f"\nbusy port: exit status {busy['status']} after {busy['seconds']:.2f} s, {len(busy['lines'])} line(s):")
    for line in busy["lines"]:
        print("    " + line)


if __name__ == "__main__":
    main()
