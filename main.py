"""The command line: ``python main.py [serve] [options]`` serves the page and the streams;
``python main.py annotate VIDEO`` writes a report of a video. ``python main.py --help`` lists both.

Run ``python main.py`` and open http://127.0.0.1:5000. The app itself is ``server.create_app``; running it
under waitress is ``serving.serve_main``; ``annotate`` is ``archive.annotate_archive``.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path

from detection import DETECTORS
from images import MAX_PIXELS, PILLOW_MAX_PIXELS
from model import RUNTIMES
from runtimes import usable_cores
from serving import HEADER_TIMEOUT, MAX_CONNECTIONS, REQUEST_TIMEOUT, resolve_source, serve_main
from settings import AnalysisSettings

log = logging.getLogger("main")

COMMANDS = ("serve", "annotate")

#: The analysis options' defaults (``--smoothing``, ``--detect-every``, ``--detector``, ``--min-score``,
#: ``--runtime``): those of ``settings.AnalysisSettings``.
DEFAULTS = AnalysisSettings()

#: ``annotate``'s exit status when another run holds the output folder (``--if-locked exit``): sysexits'
#: EX_TEMPFAIL, "try again later".
EXIT_LOCKED = 75


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
    analysis.add_argument("--model", type=Path, nargs=2, default=None, metavar=("MODEL_JSON", "WEIGHTS_H5"),
                          help="the expression model's files, as the notebook exports them (default: model.json and "
                               "model_weights.h5 beside main.py), e.g. a larger network where accuracy counts "
                               "more than time")
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
    serve.add_argument("--max-uploads", type=positive_int, default=usable_cores(), metavar="N",
                       help="photos analysed at once; more wait up to 2 s, then get 503 (default: the number "
                            "of CPU cores this process may use)")
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
    for path in args.model or ():
        if not path.is_file():
            parser.error(f"--model: no file {path}")
    if args.command == "serve":
        resolve_source(args, parser)
    if args.command == "serve" and args.no_webcam and args.source.isdigit():
        parser.error(f"--source {args.source} is a webcam, and --no-webcam offers none")
    return args


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
    options = Options(settings=args.settings, every=args.every, start=args.start, end=args.end,
                      model_files=tuple(args.model) if args.model else None)
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
