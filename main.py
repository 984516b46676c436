"""The command line: ``python main.py [serve] [options]`` serves the page and the streams;
``python main.py annotate VIDEO`` writes a report of a video. ``python main.py --help`` lists both.

Run ``python main.py`` and open http://127.0.0.1:5000. The app itself is ``server.create_app``.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path

from analysis import SMOOTHING_HALF_LIFE
from detection import DEFAULT_DETECTOR, DETECT_EVERY, DETECTORS, MIN_SCORE
from images import MAX_PIXELS, PILLOW_MAX_PIXELS
from model import RUNTIMES

log = logging.getLogger("main")

COMMANDS = ("serve", "annotate")

#: ``--host`` values that bind every interface.
ALL_INTERFACES = ("0.0.0.0", "::", "")

#: Room for a multipart upload's boundaries and part headers over the app's ``MAX_CONTENT_LENGTH``, in bytes.
MULTIPART_OVERHEAD = 64 * 1024


def positive_int(text: str) -> int:
    """argparse type: an integer of at least 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def non_negative_float(text: str) -> float:
    """argparse type: a number of at least 0."""
    value = float(text)
    if not value >= 0:  # also refuses nan
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {text}")
    return value


def score(text: str) -> float:
    """argparse type: a number from 0 to 1."""
    value = float(text)
    if not 0 <= value <= 1:  # also refuses nan
        raise argparse.ArgumentTypeError(f"must be from 0 to 1, not {text}")
    return value


def upload_pixels(text: str) -> int:
    """argparse type: a pixel count from 1 to Pillow's own limit (``images.PILLOW_MAX_PIXELS``)."""
    value = positive_int(text)
    if value > PILLOW_MAX_PIXELS:
        raise argparse.ArgumentTypeError(f"must be at most {PILLOW_MAX_PIXELS:,} (Pillow's limit), not {value:,}")
    return value


def port_number(text: str) -> int:
    """argparse type: a TCP port, 1-65535."""
    value = int(text)
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be from 1 to 65535, not {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The parser of both commands; ``serve`` is the default (see ``parse_args``)."""
    analysis = argparse.ArgumentParser(add_help=False)  # the options both commands share
    analysis.add_argument("--smoothing", type=non_negative_float, default=SMOOTHING_HALF_LIFE, metavar="SECONDS",
                          help="half-life of the smoothing of each face's probabilities over time; 0 turns it "
                               f"off (default {SMOOTHING_HALF_LIFE})")
    analysis.add_argument("--detect-every", type=positive_int, default=DETECT_EVERY, metavar="N",
                          help="search the whole frame for faces on every N-th frame and follow the faces found "
                               "between; 1: every frame (finds new faces sooner, costs more CPU; "
                               f"default {DETECT_EVERY})")
    analysis.add_argument("--detector", choices=DETECTORS, default=DEFAULT_DETECTOR,
                          help="face detector: MediaPipe's BlazeFace (default), OpenCV's Haar cascade (the "
                               "course's), or dlib's HOG detector (needs `pip install dlib-bin`)")
    analysis.add_argument("--min-score", type=score, default=MIN_SCORE, metavar="S",
                          help="least detector confidence of a face, 0-1 (BlazeFace; Haar and HOG give none; "
                               f"default {MIN_SCORE})")
    analysis.add_argument("--runtime", choices=RUNTIMES, default="litert",
                          help="litert (default): the int8 LiteRT conversion, cached beside the weights; keras: "
                               "the Keras model (imports TensorFlow, slower)")
    parser = argparse.ArgumentParser(prog="main.py", description="Real-time facial-expression recognition.",
                                     epilog="With no command, `serve` runs: `python main.py --source 0` serves "
                                            "webcam 0. `python main.py COMMAND --help` describes each command.")
    commands = parser.add_subparsers(dest="command", metavar="{serve,annotate}")
    serve = commands.add_parser("serve", parents=[analysis], help="serve the page and the streams (the default)",
                                description="Serve the facial-expression stream at http://HOST:PORT/.")
    serve.add_argument("--source", default="auto",
                       help="webcam index (e.g. 0), a video file path, or a network camera's rtsp://, http:// or "
                            "https:// URL; default: the webcam if one opens, else the first video in videos/")
    serve.add_argument("--no-webcam", action="store_true",
                       help="offer no webcam: none is probed or opened, so none can be watched (e.g. with a "
                            "--source file and --host 0.0.0.0)")
    serve.add_argument("--host", default="127.0.0.1",
                       help="address to bind (default 127.0.0.1: this machine only; 0.0.0.0 exposes the "
                            "stream to the whole network, for the names given with --allowed-host)")
    serve.add_argument("--port", type=port_number, default=5000)
    serve.add_argument("--threads", type=positive_int, default=64,
                       help="worker threads of the server; every open page holds two for as long as it is "
                            "open (the stream and its live probabilities), so N threads serve about N/2 "
                            "viewers (default 64)")
    serve.add_argument("--allowed-host", action="append", default=[], metavar="NAME",
                       help="a host name (or IPv4 address) the server also answers to, besides localhost, "
                            "127.0.0.1 and --host; repeat for more (other Host headers get 400; IPv6 literals "
                            "cannot be matched)")
    serve.add_argument("--cors-origin", action="append", default=[], metavar="ORIGIN",
                       help="another site's origin (e.g. https://example.org) whose pages may call the API and "
                            "read the streams; repeat for more (others get 403)")
    serve.add_argument("--max-upload-pixels", type=upload_pixels, default=MAX_PIXELS, metavar="N",
                       help=f"largest photo accepted, in pixels (default {MAX_PIXELS:,}, at most "
                            f"{PILLOW_MAX_PIXELS:,}; larger: 413)")
    serve.add_argument("--max-uploads", type=positive_int, default=os.cpu_count() or 1, metavar="N",
                       help="photos analysed at once; more wait up to 2 s, then get 503 (default: the number "
                            "of CPU cores)")
    serve.add_argument("--max-browser-clients", type=positive_int, default=16, metavar="N",
                       help="pages showing their visitor's own camera (/?source=browser) analysed at once; one "
                            "more gets 503 (default 16)")
    serve.add_argument("--client-timeout", type=positive_int, default=30, metavar="SECONDS",
                       help="a connection that reads nothing for this long is closed and its thread freed "
                            "(default 30)")
    annotate = commands.add_parser(
        "annotate", parents=[analysis], help="write reports of videos or whole folders of them",
        description="For each video (folders are searched recursively), write an annotated copy, a CSV of "
                    "every face in every frame analysed, and a plot of each face's emotions over time; and a "
                    "summary.csv of all. Videos whose reports exist are skipped (--force redoes them); one "
                    "that fails is named in the summary and the exit status is 1.")
    annotate.add_argument("paths", type=Path, nargs="+", metavar="PATH", help="video files or folders")
    annotate.add_argument("--output", type=Path, default=Path("reports"),
                          help="folder for the reports (default reports/)")
    annotate.add_argument("--every", type=positive_int, default=1, metavar="N",
                          help="analyse every N-th frame, tracking faces across the gaps (default 1)")
    annotate.add_argument("--start", type=non_negative_float, default=0.0, metavar="SECONDS",
                          help="analyse from this time on (default 0)")
    annotate.add_argument("--end", type=non_negative_float, default=None, metavar="SECONDS",
                          help="analyse up to this time (default: the end)")
    annotate.add_argument("--force", action="store_true", help="redo videos whose reports exist")
    parallel = annotate.add_mutually_exclusive_group()
    parallel.add_argument("--workers", type=positive_int, default=None, metavar="N",
                          help="run N videos at once on a local Ray instance (pip install \"ray[default]\")")
    parallel.add_argument("--address", default=None, metavar="ADDR",
                          help="run on an existing Ray cluster: auto, or ray://host:10001")
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse a command line; without a command (or with only options), ``serve``.

    Raises:
        SystemExit: argparse's usage error (status 2), or after ``--help``.
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or (argv[0] not in COMMANDS and argv[0] not in ("-h", "--help")):
        argv = ["serve", *argv]
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "serve" and args.no_webcam and args.source.isdigit():
        parser.error(f"--source {args.source} is a webcam, and --no-webcam offers none")
    return args


def drop_stalled_clients(server, timeout: float, stop: threading.Event) -> None:
    """Close every connection whose response has had bytes waiting for ``timeout`` s while none of them
    could be sent (its client reads nothing), until ``stop`` is set; run in a thread of its own.

    waitress's ``channel_timeout`` closes only idle connections, and the thread that serves a stream blocks
    once the stream's output buffer is full: a viewer that stops reading would hold a server thread for
    good. This watches waitress's channels (``last_activity`` is when one last sent bytes) and has the
    server's own loop close them; the blocked thread then gets ``ClientDisconnected`` and is freed.
    """
    from waitress.channel import HTTPChannel
    from waitress.server import MultiSocketServer

    # one socket: the server's own map; several (a host name with IPv4 and IPv6 addresses): the shared one
    channels = server.map if isinstance(server, MultiSocketServer) else server._map
    while not stop.wait(1.0):
        cutoff = time.time() - timeout
        for channel in list(channels.values()):
            if (isinstance(channel, HTTPChannel) and channel.requests and channel.total_outbufs_len
                    and channel.last_activity < cutoff):
                log.info("closing a connection that has read nothing for %g s", timeout)
                channel.last_activity = time.time()  # once
                channel.server.trigger.pull_trigger(channel.handle_close)  # its listening socket's loop


def serve_config(args: argparse.Namespace) -> dict:
    """The app's configuration (keys of ``server.DEFAULT_CONFIG``) for the ``serve`` options ``args``."""
    config: dict = {"SMOOTHING_HALF_LIFE": args.smoothing, "DETECTOR": args.detector, "MIN_SCORE": args.min_score,
                    "DETECT_EVERY": args.detect_every, "RUNTIME": args.runtime,
                    "ALLOWED_HOSTS": [args.host, *args.allowed_host], "CORS_ORIGINS": args.cors_origin,
                    "MAX_IMAGE_PIXELS": args.max_upload_pixels, "MAX_UPLOADS": args.max_uploads,
                    "MAX_BROWSER_CLIENTS": args.max_browser_clients}
    if args.no_webcam:
        config["WEBCAM_INDEX"] = None
    if args.source.isdigit():
        config.update(WEBCAM_INDEX=int(args.source), SOURCE="webcam")
    elif args.source != "auto":
        config["SOURCE"] = args.source
    return config


def serve_main(args: argparse.Namespace) -> int:
    """Serve until SIGTERM or Ctrl-C; 1 when the app cannot start or the port cannot be bound."""
    import cv2
    from waitress import create_server

    from native import limit_malloc_arenas
    from server import DEFAULT_CONFIG, create_app

    limit_malloc_arenas()  # before the server's threads exist: see native.limit_malloc_arenas
    # OpenCV's own warnings (probing a webcam that is not there) would repeat what the app logs
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
    config = serve_config(args)
    app = None
    try:  # the port first: a busy one fails at once, before the model loads
        server = create_server(lambda environ, start_response: app(environ, start_response),
                               host=args.host, port=args.port, threads=args.threads, ident=None,
                               channel_timeout=args.client_timeout,
                               # waitress reads a whole body before the app sees it (up to 1 GiB by
                               # default): a body over the app's limit (and the multipart headers) gets
                               # its 413 as soon as its Content-Length is read
                               max_request_body_size=DEFAULT_CONFIG["MAX_CONTENT_LENGTH"] + MULTIPART_OVERHEAD)
    except OSError as exc:
        log.error("cannot serve on %s port %d: %s", args.host, args.port, exc.strerror or exc)
        return 1
    try:
        app = create_app(config)
    except (OSError, RuntimeError, ValueError) as exc:  # SourceError is an OSError
        log.error("cannot start: %s", exc)
        server.close()
        return 1
    log.info("serving on http://%s:%d/ (%d threads)", args.host, args.port, args.threads)
    if args.host in ALL_INTERFACES and not args.allowed_host:
        log.warning("listening on every interface, but only localhost and 127.0.0.1 are answered: give the "
                    "name or address that visitors type with --allowed-host (other names get 400)")
    # SIGTERM ends the process like Ctrl-C does: out of run(), then the sources are released
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    stop = threading.Event()
    threading.Thread(target=drop_stalled_clients, args=(server, args.client_timeout, stop),
                     name="stalled-clients", daemon=True).start()
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        log.info("shutting down: releasing the video sources")
        app.extensions["sources"].producers.stop_all()
        server.close()
    return 0


def annotate_main(args: argparse.Namespace) -> int:
    """Write the reports of ``args.paths`` (``report.annotate_archive``); 1 when any video failed, 2 when
    the command cannot run at all (a missing path, Ray asked for and not installed, a bad option)."""
    from report import Options, annotate_archive

    if args.end is not None and args.end <= args.start:
        log.error("--end must be after --start")
        return 2
    options = Options(smoothing_half_life=args.smoothing, detector=args.detector, min_score=args.min_score,
                      detect_every=args.detect_every, every=args.every, start=args.start, end=args.end,
                      runtime=args.runtime)
    try:
        summaries = annotate_archive(args.paths, args.output, options, workers=args.workers, address=args.address,
                                     force=args.force)
    except (OSError, RuntimeError, ValueError) as exc:
        log.error("cannot annotate: %s", exc)
        return 2
    failed = [s for s in summaries if s.status.startswith("failed")]
    log.info("%d video(s): %d failed; summary: %s", len(summaries), len(failed), args.output / "summary.csv")
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    """Run a command line (see ``parse_args``); the exit status."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return annotate_main(args) if args.command == "annotate" else serve_main(args)


if __name__ == "__main__":
    sys.exit(main())
