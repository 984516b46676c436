"""The source catalogue, a Flask extension: which video sources the app offers, and one shared producer
(``streaming.FrameProducer``) per source.

Sources are named, never given as paths: ``webcam`` (if it opened at start), the name of a video file
directly inside ``VIDEOS_DIR`` (listed afresh on every request, symbolic links left out), the file name
of a video given at start (``SOURCE``; its folder is never shown), or a network camera given at start
(``SOURCE`` an ``rtsp://``, ``http://`` or ``https://`` URL), named by its URL without credentials.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path
from urllib.parse import urlsplit

import cv2
from flask import Flask, abort, current_app

from analysis import FaceAnalyzer, annotated_stream, reconnecting_stream
from camera import FALLBACK_FPS, VIDEO_SUFFIXES, SourceError, VideoCamera, is_network_source, mask_credentials
from model import FacialExpressionModel
from settings import AnalysisSettings
from streaming import FrameProducer, ProducerRegistry

log = logging.getLogger(__name__)


#: The source name of the webcam.
WEBCAM = "webcam"

#: Longest source name repeated in an error message (longer ones are cut, with an ellipsis).
MAX_NAME_IN_MESSAGE = 80


#: Names already logged as left out by ``list_videos`` (each is logged once, not on every request).
_unlisted: set[str] = set()


def encodes(name: str) -> bool:
    """Whether ``name`` is valid text: a file name that is not UTF-8 comes from ``os.listdir`` with
    surrogate escapes, which no page, URL or JSON answer can carry."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def list_videos(videos_dir: Path) -> list[str]:
    """Names of the video files directly inside ``videos_dir`` (sorted; symbolic links, and names that are
    not valid UTF-8, left out: the latter logged once each, with a hint to rename them)."""
    if not videos_dir.is_dir():
        return []
    names = []
    for path in videos_dir.iterdir():
        if path.suffix.lower() not in VIDEO_SUFFIXES or not path.is_file() or path.is_symlink():
            continue
        if encodes(path.name):
            names.append(path.name)
        elif path.name not in _unlisted:
            _unlisted.add(path.name)
            log.warning("video %r not offered: its file name is not valid UTF-8 (rename it)", path.name)
    return sorted(names)


def webcam_opens(index: int) -> bool:
    """Whether OpenCV can open webcam ``index`` and read a frame from it (releases it again)."""
    capture = cv2.VideoCapture(index)
    try:
        return capture.isOpened() and capture.read()[0]
    finally:
        capture.release()


def open_stream(target: int | Path | str, model: FacialExpressionModel, settings: AnalysisSettings):
    """A ``streaming.StreamFactory`` body: open ``target`` (webcam index, file, or network camera URL) and
    return its annotated stream, analysed under ``settings``; searches move to a worker thread once they take
    longer than one frame period. A network camera's stream reconnects (``analysis.reconnecting_stream``).

    Raises:
        camera.SourceError: the webcam or file does not open (a network camera is retried instead).
    """
    if is_network_source(target):
        # a network camera's rate is known only once it is open: searches get the assumed rate's period
        analyzer = FaceAnalyzer.from_settings(model, settings, search_budget=1.0 / FALLBACK_FPS,
                                              classify_budget=0.5 / FALLBACK_FPS)
        return reconnecting_stream(lambda: VideoCamera(target), analyzer, mask_credentials(target))
    camera = VideoCamera(target)
    try:
        analyzer = FaceAnalyzer.from_settings(model, settings, search_budget=1.0 / camera.fps,
                                              classify_budget=0.5 / camera.fps)
    except Exception:
        camera.release()
        raise
    return annotated_stream(camera, analyzer)


class SourceCatalog:
    """The sources of one app and their producers; ``init_app`` probes the webcam (``WEBCAM_INDEX``) once
    and settles the default source (``SOURCE``, see ``server.DEFAULT_CONFIG``). Every producer analyses its
    source under the app's one ``settings.AnalysisSettings`` (``app.extensions["analysis_settings"]``).

    Raises (from ``init_app``):
        camera.SourceError: ``SOURCE`` is ``"webcam"`` and it does not open, or a path that is not a file.
    """

    def init_app(self, app: Flask) -> None:
        config = app.config
        self.videos_dir = Path(config["VIDEOS_DIR"])
        self.producers = ProducerRegistry(config["IDLE_TIMEOUT"])
        self.webcam_index = config["WEBCAM_INDEX"]
        self.webcam_missing = False  # a webcam was asked for and did not open
        if self.webcam_index is not None and not webcam_opens(int(self.webcam_index)):
            log.info("webcam %s does not open: not offered", self.webcam_index)
            self.webcam_index, self.webcam_missing = None, True
        if config["SOURCE"] == WEBCAM and self.webcam_index is None:
            raise SourceError(f"webcam {config['WEBCAM_INDEX']} cannot be opened")
        self.auto = config["SOURCE"] == "auto"  # the default follows what is there (see current_default)
        self.default, self._extra = self._choose_default(config["SOURCE"])
        log.info("default source: %s", self.current_default() or "none")
        self.model: FacialExpressionModel = app.extensions["model"]
        self.settings: AnalysisSettings = app.extensions["analysis_settings"]
        app.extensions["sources"] = self

    def _choose_default(self, source: str) -> tuple[str | None, dict[str, Path]]:
        """The name of a default source given at start (``None`` for ``"auto"``), and {name: path} of a
        ``source`` file that is not a listed video."""
        videos = list_videos(self.videos_dir)
        if source == "auto":
            return None, {}
        if source == WEBCAM or source in videos:
            return source, {}
        if is_network_source(source):  # named by its address without credentials; opened when watched
            parts = urlsplit(source)
            name = f"{parts.scheme}://{parts.hostname}{f':{parts.port}' if parts.port else ''}{parts.path}"
            return name, {name: source}
        path = Path(source).resolve()
        if path.parent == self.videos_dir.resolve() and path.name in videos:
            return path.name, {}
        if not path.is_file():
            raise SourceError(f"video file not found: {source}")
        name = path.name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")  # shown: valid text
        name = name if name not in (WEBCAM, *videos) else f"file-{name}"
        return name, {name: path}

    def names(self) -> list[str]:
        """Every source offered now, in the page's order."""
        return [*self._extra, *([WEBCAM] if self.webcam_index is not None else []), *list_videos(self.videos_dir)]

    def label(self, name: str) -> str:
        """How the page shows source ``name``: ``"webcam 0"``, a video's file name, or a network camera's
        last path segment (its host when the path has none: ``rtsp://192.168.1.64:554/`` shows ``192.168.1.64``)."""
        if name == WEBCAM and self.webcam_index is not None:
            return f"webcam {int(self.webcam_index)}"
        if is_network_source(name):
            parts = urlsplit(name)
            return parts.path.rstrip("/").rsplit("/", 1)[-1] or parts.hostname or name
        return name

    def current_default(self) -> str | None:
        """The default source now: with ``SOURCE`` ``"auto"`` the webcam if it opened at start, else the first
        video in ``VIDEOS_DIR`` now (a video dropped there later becomes the default, a deleted one stops
        being it); otherwise ``SOURCE``'s, unless it has gone since the start (a deleted video): ``None``."""
        if self.auto:
            if self.webcam_index is not None:
                return WEBCAM
            videos = list_videos(self.videos_dir)
            return videos[0] if videos else None
        return self.default if self.default in self.names() else None

    def missing_default_message(self) -> str:
        """Why there is no default source now (``current_default`` is ``None``)."""
        if self.auto:
            return "no video source: no webcam opens and videos/ holds no video"
        return f"the default source {_shorten(self.default)!r} is gone; available: {', '.join(self.names()) or 'none'}"

    def resolve(self, name: str | None) -> tuple[str, int | Path]:
        """``(name, webcam index or file path)`` of a requested source; empty or ``None``: the default.

        Raises:
            werkzeug.exceptions.NotFound: the name is not offered (or there is no default).
        """
        if not name:
            name = self.current_default()
            if name is None:
                abort(404, description=self.missing_default_message())
        if name == WEBCAM and self.webcam_index is not None:
            return WEBCAM, int(self.webcam_index)
        if name in list_videos(self.videos_dir):  # only names listed there: no paths, no links
            return name, self.videos_dir / name
        if name in self._extra:
            return name, self._extra[name]
        abort(404, description=f"unknown source {_shorten(name)!r}; available: {', '.join(self.names()) or 'none'}")

    def producer(self, name: str | None) -> FrameProducer:
        """The shared producer of a requested source (see ``resolve`` for the errors)."""
        name, target = self.resolve(name)
        return self.producers.get(name, functools.partial(open_stream, target, self.model, self.settings))


def _shorten(name: str) -> str:
    return name if len(name) <= MAX_NAME_IN_MESSAGE else name[:MAX_NAME_IN_MESSAGE] + "…"


def catalog() -> SourceCatalog:
    """The current app's catalogue."""
    return current_app.extensions["sources"]
