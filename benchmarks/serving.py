"""A ``main.py`` server process for the benchmarks: a free loopback port, started, waited for, stopped."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def served(args: list[str], timeout: float = 120) -> Iterator[tuple[subprocess.Popen, str]]:
    """``python main.py ARGS --port P`` (output discarded) until ``/`` answers; yields the process and its
    base URL, and stops it (SIGTERM) afterwards.

    Raises:
        SystemExit: it did not answer within ``timeout`` seconds.
    """
    port = free_port()
    process = subprocess.Popen([sys.executable, "main.py", *args, "--port", str(port)], cwd=ROOT,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                urllib.request.urlopen(base + "/", timeout=2).read()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("the server did not start") from None
                time.sleep(0.2)
        yield process, base
    finally:
        process.terminate()
        process.wait(timeout=20)
