"""Slow clients against a server on 127.0.0.1: can they lock other users out?

    python -m benchmarks.slow_clients [--connections 110] [--seconds 20] [--byte-every 2] [VIDEO]

Starts ``main.py`` on a free loopback port (``--source VIDEO``, default the first of ``videos/``), opens
``--connections`` connections that each send one byte of a request every ``--byte-every`` seconds (a
"slowloris" client), and probes ``/`` once per round, with a 3 s limit, while they do. Prints one JSON line:
each probe's seconds (null: no answer within 3 s), how many slow connections the server closed, and the
server's threads before and at most during the run. Only 127.0.0.1 is ever contacted, and the run stops by
itself after ``--seconds``.
"""

from __future__ import annotations

import argparse
import json
import socket
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

from benchmarks.load import sample
from benchmarks.serving import ROOT, served


def hold_slow_connections(base: str, connections: int, seconds: float, byte_every: float,
                          probe: Callable[[], object]) -> tuple[list, int]:
    """Open ``connections`` connections to the server at ``base`` (``http://127.0.0.1:PORT``) and send one
    byte of a request on each every ``byte_every`` seconds for ``seconds``, calling ``probe()`` once a round.

    Returns:
        ``(probes, closed)``: what each call of ``probe`` returned, and how many slow connections the server
        closed meanwhile (the rest are closed here at the end).
    """
    port = int(base.rsplit(":", 1)[1])
    request = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Padding: " + b"x" * 100
    slow = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(connections)]
    started, sent, probes, closed = time.monotonic(), 0, [], 0
    try:
        while time.monotonic() - started < seconds:
            for connection in list(slow):
                try:
                    connection.send(request[sent % len(request):sent % len(request) + 1])
                except OSError:  # closed by the server
                    slow.remove(connection)
                    connection.close()
                    closed += 1
            sent += 1
            probes.append(probe())
            time.sleep(max(0.0, started + byte_every * sent - time.monotonic()))
    finally:
        for connection in slow:
            connection.close()
    return probes, closed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("video", nargs="?", type=Path, default=None)
    parser.add_argument("--connections", type=int, default=110)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--byte-every", type=float, default=2.0)
    args = parser.parse_args()
    video = args.video or sorted((ROOT / "videos").glob("*.mp4"))[0]
    with served(["--source", str(video), "--no-webcam"]) as (server, base):
        before, threads = sample(server.pid)["threads"], []

        def probe() -> float | None:
            asked = time.monotonic()
            try:
                with urllib.request.urlopen(base + "/", timeout=3) as answer:
                    answer.read()
                return round(time.monotonic() - asked, 3)
            except OSError:
                return None
            finally:
                threads.append(sample(server.pid)["threads"])

        probes, closed = hold_slow_connections(base, args.connections, args.seconds, args.byte_every, probe)
    print(json.dumps({"connections": args.connections, "seconds": args.seconds, "byte_every_s": args.byte_every,
                      "probes_s": probes, "probes_unanswered": probes.count(None), "closed_by_server": closed,
                      "threads_before": before, "threads_during_max": max(threads, default=before)}))


if __name__ == "__main__":
    main()
