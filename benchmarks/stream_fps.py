"""Measure the frame rate a viewer receives from a running server's MJPEG stream.

    python -m benchmarks.stream_fps [--url http://127.0.0.1:5000/video_feed?source=NAME] [--seconds 20]

Reads the stream for a bounded time (loopback by default) and prints frames received, frames/s and the
mean JPEG size. The first second is skipped (producer start-up).
"""

import argparse
import time
import urllib.request


def measure(url: str, seconds: float, warmup: float = 1.0) -> dict:
    """Frames of ``url``'s multipart stream received in ``seconds`` after ``warmup`` seconds."""
    frames, size, start = 0, 0, None
    with urllib.request.urlopen(url, timeout=10) as response:
        t0 = time.monotonic()
        while True:
            line = response.readline()
            if not line:
                break
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
                response.readline()  # blank line ending the part's headers
                response.read(length)
                now = time.monotonic()
                if start is None and now - t0 >= warmup:
                    start = now
                elif start is not None:
                    frames += 1
                    size += length
                    if now - start >= seconds:
                        break
    elapsed = time.monotonic() - start if start else 0.0
    return {"frames": frames, "seconds": round(elapsed, 2), "fps": round(frames / elapsed, 2) if elapsed else 0.0,
            "mean_jpeg_kb": round(size / max(frames, 1) / 1024, 1)}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:5000/video_feed")
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    print(measure(args.url, args.seconds))
