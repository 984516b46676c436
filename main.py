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

from detection import DETECTORS
from images import MAX_PIXELS, PILLOW_MAX_PIXELS
from model import RUNTIMES
from settings import AnalysisSettings

log = logging.getLogger("main")

COMMANDS = ("serve", "annotate")

#: The analysis options' defaults (``--smoothing``, ``--detect-every``, ``--detector``, ``--min-score``,
#: ``--runtime``): those of ``settings.AnalysisSettings``.
DEFAULTS = AnalysisSettings()

#: ``--host`` values that bind every interface.
ALL_INTERFACES = ("0.0.0.0", "::", "")

#: Default ``--max-connections``: open connections at most (waitress's ``connection_limit``, 100 by default,
#: which 100 slow clients filled). Each viewer of the page holds two (the stream and its events).
MAX_CONNECTIONS = 200

#: Default ``--request-timeout``: seconds a client has to send a whole request, headers and body (a 16 MiB
#: upload at 4.5 Mbit/s); and the seconds it has for the headers alone (a browser sends them at once).
REQUEST_TIMEOUT = 30
HEADER_TIMEOUT = 10.0

#: Seconds between the server's sweeps of idle connections (waitress's ``cleanup_interval``, 30 by default).
CLEANUP_INTERVAL = 5

#: The environment variable that may hold ``serve``'s source (e.g. a camera URL with its password).
SOURCE_VARIABLE = "FER_SOURCE"

#: ``annotate``'s exit status when another run holds the output folder (``--if-locked exit``): sysexits'
#: EX_TEMPFAIL, "try again later".
EXIT_LOCKED = 75

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
    analysis.add_argument("--smoothing", type=non_negative_float, default=DEFAULTS.smoothing_half_life,
                          metavar="SECONDS", help="half-life of the smoothing of each face's probabilities over "
                                                  f"time; 0 turns it off (default {DEFAULTS.smoothing_half_life})")
    analysis.add_argument("--detect-every", type=positive_int, default=DEFAULTS.detect_every, metavar="N",
                          help="search the whole frame for faces on every N-th frame and follow the faces found "
                               "between; 1: every frame (finds new faces sooner, costs more CPU; "
                               f"default {DEFAULTS.detect_every})")
    analysis.add_argument("--detector", choices=DETECTORS, default=DEFAULTS.detector,
                          help="face detector: MediaPipe's BlazeFace (default), OpenCV's Haar cascade (the "
                               "course's), or dlib's HOG detector (needs `pip install dlib-bin`)")
    analysis.add_argument("--min-score", type=score, default=DEFAULTS.min_score, metavar="S",
                          help="least detector confidence of a face, 0-1 (BlazeFace; Haar and HOG give none; "
                               f"default {DEFAULTS.min_score})")
    analysis.add_argument("--runtime", choices=RUNTIMES, default=DEFAULTS.runtime,
                          help="litert (default): the int8 LiteRT conversion, cached beside the weights; keras: "
                               "the Keras model (imports TensorFlow, slower)")
    parser = argparse.ArgumentParser(prog="main.py", description="Real-time facial-expression recognition.",
                                     epilog="With no command, `serve` runs: `python main.py --source 0` serves "
                                            "webcam 0. `python main.py COMMAND --help` describes each command.")
    commands = parser.add_subparsers(dest="command", metavar="{serve,annotate}")
    serve = commands.add_parser("serve", parents=[analysis], help="serve the page and the streams (the default)",
                                description="Serve the facial-expression stream at http://HOST:PORT/.")
    serve.add_argument("--source", default=None,
                       help="webcam index (e.g. 0), a video file path, or a network camera's rtsp://, http:// or "
                            "https:// URL; default: $FER_SOURCE if set, else the webcam if one opens, else the "
                            "first video in videos/. A URL with a password is visible to every local user "
                            "here (ps): give it with --source-file or FER_SOURCE instead")
    serve.add_argument("--source-file", type=Path, default=None, metavar="PATH",
                       help="a file holding the source (its first line), e.g. a network camera's URL with its "
                            "password, kept off the command line (make it readable by you alone: chmod 600)")
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
                       help="a connection that reads nothing for this long, or is idle for this long between "
                            "requests, is closed and its thread freed (default 30)")
    serve.add_argument("--request-timeout", type=positive_int, default=REQUEST_TIMEOUT, metavar="SECONDS",
                       help="a client must send a whole request (headers and body) within this time, and its "
                            f"headers within {HEADER_TIMEOUT:g} s (or this, if less); slower ones are "
                            f"disconnected (default {REQUEST_TIMEOUT})")
    serve.add_argument("--max-connections", type=positive_int, default=MAX_CONNECTIONS, metavar="N",
                       help="open connections at most; beyond them new ones wait in the system's queue until "
                            "one closes (default %(default)s; each viewer holds two)")
    annotate = commands.add_parser(
        "annotate", parents=[analysis], help="write reports of videos or whole folders of them",
        description="For each video (folders are searched recursively), write an annotated copy, a CSV of "
                    "every face in every frame analysed, and a plot of each face's emotions over time; and a "
                    "summary.csv of all. Videos whose reports exist are skipped (--force redoes them); one "
                    "that fails is logged with its reason as it fails, named again in the last log line and in "
                    "the summary, and the exit status is 1.")
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
    annotate.add_argument("--if-locked", choices=("wait", "exit"), default="exit",
                          help="when another annotate run is writing to the same output folder: exit at once "
                               f"with status {EXIT_LOCKED} and its process id (default), or wait for it to finish")
    parallel = annotate.add_mutually_exclusive_group()
    parallel.add_argument("--workers", type=positive_int, default=None, metavar="N",
                          help="run N videos at once on a local Ray instance (pip install \"ray[default]\")")
    parallel.add_argument("--address", default=None, metavar="ADDR",
                          help="run on an existing Ray cluster: auto, or ray://host:10001")
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse a command line; without a command (or with only options), ``serve``. ``args.settings`` is the
    ``settings.AnalysisSettings`` of the analysis options, built here once for either command.

    Raises:
        SystemExit: argparse's usage error (status 2), or after ``--help``.
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or (argv[0] not in COMMANDS and argv[0] not in ("-h", "--help")):
        argv = ["serve", *argv]
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        args.settings = AnalysisSettings(detector=args.detector, min_score=args.min_score,
                                         detect_every=args.detect_every, smoothing_half_life=args.smoothing,
                                         runtime=args.runtime)
    except ValueError as exc:  # the option types check the same: a safety net
        parser.error(str(exc))
    if args.command == "serve":
        resolve_source(args, parser)
    if args.command == "serve" and args.no_webcam and args.source.isdigit():
        parser.error(f"--source {args.source} is a webcam, and --no-webcam offers none")
    return args


def resolve_source(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    """Settle ``args.source`` from ``--source``, ``--source-file`` or ``$FER_SOURCE`` (in that order of
    precedence; at most one of the first two), else ``"auto"``; ``args.source_origin`` says which
    (``"option"``, ``"file"``, ``"environment"``, ``"default"``).

    Raises:
        SystemExit: (``parser.error``, status 2) both options given, or a source file that cannot be read or
            is empty. Messages name the file, never what it holds.
    """
    if args.source is not None and args.source_file is not None:
        parser.error("give the source with --source or --source-file, not both")
    if args.source is not None:
        args.source_origin = "option"
    elif args.source_file is not None:
        try:
            lines = args.source_file.read_text(encoding="utf-8").strip().splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            parser.error(f"cannot read --source-file {args.source_file}: {getattr(exc, 'strerror', None) or exc}")
        if not lines or not lines[0].strip():
            parser.error(f"--source-file {args.source_file} is empty: write the source (e.g. the camera's URL) "
                         "on its first line")
        args.source, args.source_origin = lines[0].strip(), "file"
    elif os.environ.get(SOURCE_VARIABLE, "").strip():
        args.source, args.source_origin = os.environ[SOURCE_VARIABLE].strip(), "environment"
    else:
        args.source, args.source_origin = "auto", "default"


def warn_about_exposed_secrets(args: argparse.Namespace) -> None:
    """Log a warning when a secret is where other local users can read it: a camera URL with a password
    (or a query, where cameras also take them) on the command line, or a ``--source-file`` that others may
    read."""
    from urllib.parse import urlsplit

    from camera import is_network_source

    if args.source_origin == "option" and is_network_source(args.source):
        parts = urlsplit(args.source)
        if parts.password or parts.query:
            log.warning("the camera's password is on the command line, where every user of this machine can "
                        "read it (ps): put the URL in a file readable by you alone and pass --source-file PATH, "
                        "or set %s", SOURCE_VARIABLE)
    if args.source_origin == "file":
        try:
            if args.source_file.stat().st_mode & 0o077:
                log.warning("--source-file %s can be read by other users: chmod 600 %s", args.source_file,
                            args.source_file)
        except OSError:
            pass


def allow_open_files(connections: int) -> None:
    """Raise the soft limit of open files (``RLIMIT_NOFILE``) to leave room for ``connections`` sockets and
    the files and libraries the server opens (256 more), up to the hard limit; a warning if that is not
    enough. Unix only; elsewhere nothing."""
    try:
        import resource
    except ImportError:
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = connections + 256
    if soft != resource.RLIM_INFINITY and soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
        if soft < needed:
            log.warning("--max-connections %d needs about %d open files and this process may open %d: "
                        "raise the limit (ulimit -n) or lower --max-connections", connections, needed, soft)


def log_warnings() -> None:
    """Route Python warnings (``warnings.warn``: Pillow's about a malformed EXIF block, NumPy's, ...) into
    ``logging``: one WARNING line of the logger named after the module that warned, in the log's format,
    without the file's path or source line, and each kind (category and place) once per process: a
    burst of bad uploads gives one line, not one per upload."""
    import warnings

    seen: set[tuple] = set()
    lock = threading.Lock()

    def show(message, category, filename, lineno, file=None, line=None) -> None:
        key = (category, filename, lineno)
        with lock:
            if key in seen:
                return
            seen.add(key)
        logging.getLogger(_module_of(filename)).warning("%s: %s (repeats are not logged)", category.__name__,
                                                        message)

    warnings.showwarning = show


def _module_of(filename: str) -> str:
    """The dotted name of the loaded module whose file is ``filename`` (``PIL.TiffImagePlugin``), else the
    file's stem: never its folder."""
    for name, module in list(sys.modules.items()):
        if getattr(module, "__file__", None) == filename:
            return name
    return Path(filename).stem or "py.warnings"


def watch_connections(server, stop: threading.Event, stall_timeout: float, request_timeout: float,
                      header_timeout: float = HEADER_TIMEOUT) -> None:
    """Close the connections that would hold the server's threads or its connection slots, every second
    until ``stop`` is set; run in a thread of its own:

    - a response whose bytes have waited ``stall_timeout`` s while none could be sent (its client reads
      nothing): ``drop_stalled_clients``;
    - a request still arriving ``request_timeout`` s after its first byte, or whose headers are not complete
      ``min(header_timeout, request_timeout)`` s after it (a slow-loris client sending a byte now and then, which
      waitress's idle timeout never catches). Each sweep that closes some logs one line.
    """
    header_timeout = min(header_timeout, request_timeout)
    started: dict = {}  # channel -> (the request it is receiving, time.monotonic() when first seen)
    while not stop.wait(1.0):
        channels = _channels(server)
        now = time.monotonic()
        slow = 0
        for channel in channels:
            request = getattr(channel, "request", None)
            if request is None or channel.requests:
                started.pop(channel, None)
                continue
            if started.get(channel, (None,))[0] is not request:
                started[channel] = (request, now)
                continue
            age = now - started[channel][1]
            if age > request_timeout or (age > header_timeout and not request.headers_finished):
                slow += 1
                started.pop(channel)
                channel.server.trigger.pull_trigger(channel.handle_close)  # in its listening socket's loop
        for channel in [c for c in started if c not in channels]:  # closed since
            started.pop(channel)
        if slow:
            log.info("closed %d connection(s) that had not sent a whole request within %g s (headers: %g s)",
                     slow, request_timeout, header_timeout)
        _drop_stalled(channels, stall_timeout)


def _channels(server) -> list:
    """The HTTP connections open now: one socket, the server's own map; several (a host name with IPv4 and
    IPv6 addresses), the shared one."""
    from waitress.channel import HTTPChannel
    from waitress.server import MultiSocketServer

    channels = server.map if isinstance(server, MultiSocketServer) else server._map
    return [channel for channel in list(channels.values()) if isinstance(channel, HTTPChannel)]


def _drop_stalled(channels: list, timeout: float) -> None:
    cutoff = time.time() - timeout
    for channel in channels:
        if channel.requests and channel.total_outbufs_len and channel.last_activity < cutoff:
            log.info("closing a connection that has read nothing for %g s", timeout)
            channel.last_activity = time.time()  # once
            channel.server.trigger.pull_trigger(channel.handle_close)  # its listening socket's loop


def drop_stalled_clients(server, timeout: float, stop: threading.Event) -> None:
    """Close every connection whose response has had bytes waiting for ``timeout`` s while none of them
    could be sent (its client reads nothing), until ``stop`` is set; run in a thread of its own.

    waitress's ``channel_timeout`` closes only idle connections, and the thread that serves a stream blocks
    once the stream's output buffer is full: a viewer that stops reading would hold a server thread for
    good. This watches waitress's channels (``last_activity`` is when one last sent bytes) and has the
    server's own loop close them; the blocked thread then gets ``ClientDisconnected`` and is freed.
    """
    while not stop.wait(1.0):
        _drop_stalled(_channels(server), timeout)


def serve_config(args: argparse.Namespace) -> dict:
    """The app's configuration (keys of ``server.DEFAULT_CONFIG``) for the ``serve`` options ``args``; the
    analysis options are ``args.settings``, given to ``create_app`` beside it."""
    config: dict = {"ALLOWED_HOSTS": [args.host, *args.allowed_host], "CORS_ORIGINS": args.cors_origin,
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
    warn_about_exposed_secrets(args)
    allow_open_files(args.max_connections)
    # OpenCV's own warnings (probing a webcam that is not there) would repeat what the app logs
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
    config = serve_config(args)
    app = None
    try:  # the port first: a busy one fails at once, before the model loads
        server = create_server(lambda environ, start_response: app(environ, start_response),
                               host=args.host, port=args.port, threads=args.threads, ident=None,
                               # idle connections closed after --client-timeout, looked for every 5 s; at
                               # most --max-connections open (more wait in the listen queue)
                               channel_timeout=args.client_timeout,
                               cleanup_interval=min(CLEANUP_INTERVAL, args.client_timeout),
                               connection_limit=args.max_connections,
                               # waitress reads a whole body before the app sees it (up to 1 GiB by
                               # default): a body over the app's limit (and the multipart headers) gets
                               # its 413 as soon as its Content-Length is read
                               max_request_body_size=DEFAULT_CONFIG["MAX_CONTENT_LENGTH"] + MULTIPART_OVERHEAD)
    except OSError as exc:
        log.error("cannot serve on %s port %d: %s", args.host, args.port, exc.strerror or exc)
        return 1
    try:
        app = create_app(config, args.settings)
    except (OSError, RuntimeError, ValueError) as exc:  # SourceError is an OSError
        log.error("cannot start: %s", exc)
        server.close()
        return 1
    log.info("serving on http://%s:%d/ (%d threads, at most %d connections)", args.host, args.port, args.threads,
             args.max_connections)
    if args.host in ALL_INTERFACES and not args.allowed_host:
        log.warning("listening on every interface, but only localhost and 127.0.0.1 are answered: give the "
                    "name or address that visitors type with --allowed-host (other names get 400)")
    # SIGTERM ends the process like Ctrl-C does: out of run(), then the sources are released
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    stop = threading.Event()
    threading.Thread(target=watch_connections, args=(server, stop, args.client_timeout, args.request_timeout),
                     name="watch-connections", daemon=True).start()
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
    """Write the reports of ``args.paths`` (``archive.annotate_archive``). The exit status: 0 done; 1 when any
    video failed; 2 when the command cannot run at all (a missing path, Ray asked for and not installed, a bad
    option); ``EXIT_LOCKED`` (75) when another run holds the output folder (``--if-locked exit``); 130 after
    Ctrl-C (SIGINT) and 143 after SIGTERM, once the run's temporary files are removed (the next run resumes:
    finished reports are kept)."""
    from archive import Interrupted, OutputLocked, annotate_archive, raise_interrupted
    from report import Options

    if args.end is not None and args.end <= args.start:
        log.error("--end must be after --start")
        return 2
    options = Options(settings=args.settings, every=args.every, start=args.start, end=args.end)
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, raise_interrupted) if main_thread else None
    try:
        summaries = annotate_archive(args.paths, args.output, options, workers=args.workers, address=args.address,
                                     force=args.force, wait_for_lock=args.if_locked == "wait")
    except OutputLocked as exc:
        log.error("%s", exc)
        return EXIT_LOCKED
    except KeyboardInterrupt as exc:
        signum = exc.signum if isinstance(exc, Interrupted) else signal.SIGINT
        log.warning("stopped by %s: temporary files removed, finished reports kept; run the same command again "
                    "to go on", signal.Signals(signum).name)
        return 128 + signum
    except (OSError, RuntimeError, ValueError) as exc:
        log.error("cannot annotate: %s", exc)
        return 2
    finally:
        if main_thread and previous is not None:
            signal.signal(signal.SIGTERM, previous)
    failed = [summary.video for summary in summaries if summary.failed]  # each logged with its reason already
    log.log(logging.WARNING if failed else logging.INFO, "%d video(s): %d failed%s; summary: %s", len(summaries),
            len(failed), f" ({', '.join(failed)})" if failed else "", args.output / "summary.csv")
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    """Run a command line (see ``parse_args``); the exit status."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    log_warnings()
    return annotate_main(args) if args.command == "annotate" else serve_main(args)


if __name__ == "__main__":
    sys.exit(main())
