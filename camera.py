"""The first room of the frame path: ``VideoCamera``, a source of frames from a webcam or a video file.

The live stream and the offline reports read their frames through it (``frames()``, a generator, as in
miguelgrinberg/flask-video-streaming's cameras); everything after it (finding faces, classifying,
tracking, drawing) is in ``analysis`` and the modules it chains. Frames are OpenCV's BGR ``uint8``
arrays ``(height, width, 3)``.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple
from urllib.parse import urlsplit, urlunsplit

import cv2
import numpy as np

log = logging.getLogger(__name__)

#: File name endings taken for videos (the page's list of ``videos/``, the folders of a report).
VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv")

#: Frame rate assumed for a file whose container states none in 1-240 frames/s (frames/s).
FALLBACK_FPS = 25.0

#: URL schemes of network cameras (read by OpenCV's FFmpeg backend).
NETWORK_SCHEMES = ("rtsp", "http", "https")

#: Seconds a network camera may take to connect, and to deliver each frame, before it counts as lost.
NETWORK_TIMEOUT = 5.0


def is_network_source(source) -> bool:
    """Whether ``source`` is the URL of a network camera (``rtsp://``, ``http://``, ``https://``)."""
    return isinstance(source, str) and urlsplit(source).scheme.lower() in NETWORK_SCHEMES


def mask_credentials(url: str) -> str:
    """``url`` for messages: any user name and password, and any query (cameras take passwords there
    too, ``?user=admin&pwd=...``) shown as ``***`` (``rtsp://***@host/path``, ``http://host/video.cgi?***``)."""
    parts = urlsplit(url)
    if parts.query or parts.fragment:
        parts = parts._replace(query="***" if parts.query else "", fragment="")
    if parts.username is None and parts.password is None:
        return urlunsplit(parts)
    host = parts.hostname or ""
    if ":" in host:  # an IPv6 address
        host = f"[{host}]"
    return urlunsplit(parts._replace(netloc=f"***@{host}{f':{parts.port}' if parts.port else ''}"))


class SourceError(OSError):
    """A video source cannot be opened or stopped delivering frames."""


class AuthenticationError(SourceError):
    """A network camera refused its user name and password (HTTP or RTSP 401 or 403)."""


def network_failure(url: str) -> SourceError:
    """Why the network camera at ``url`` cannot be opened, as the error to raise: asks it once more through
    PyAV (FFmpeg, as OpenCV, but which tells the reason), within ``NETWORK_TIMEOUT``. 401 or 403 (HTTP, and
    RTSP, whose answers FFmpeg maps to the same errors) is ``AuthenticationError``, "authentication failed";
    any other reason is named (``Connection refused``, ``Server returned 404 Not Found``). Messages show the
    URL with its credentials masked (``mask_credentials``), never FFmpeg's own text that names it."""
    name = mask_credentials(url)
    try:
        import av
    except ImportError:
        return SourceError(f"cannot open video source {name}")
    unauthorized = tuple(getattr(av.error, kind) for kind in ("HTTPUnauthorizedError", "HTTPForbiddenError")
                         if hasattr(av.error, kind))
    try:
        av.open(url, timeout=NETWORK_TIMEOUT).close()
    except unauthorized as exc:
        status = 401 if type(exc).__name__ == "HTTPUnauthorizedError" else 403
        return AuthenticationError(f"authentication failed for {name} ({status}): check the user name and "
                                   "password in the source's URL")
    except (av.error.FFmpegError, OSError) as exc:
        reason = getattr(exc, "strerror", None) or type(exc).__name__  # strerror: FFmpeg's text without the URL
        return SourceError(f"cannot open video source {name}: {reason}")
    return SourceError(f"cannot open video source {name} (FFmpeg opens it, OpenCV does not)")


class CapturedFrame(NamedTuple):
    """One frame of a source: ``frame`` BGR uint8 ``(height, width, 3)``; ``index`` its number in the file
    (from 0, starting again when a file loops; a webcam counts the frames read); ``time`` in seconds since
    the first frame: for a file its timestamp (right for variable-frame-rate video, as phones record; ``index
    / fps`` where the container has none), for a webcam when it was read."""

    frame: np.ndarray
    index: int
    time: float


class VideoCamera:
    """Frames from a webcam or a video file.

    A file plays at its own frame rate when ``paced``: ``read`` waits until the next frame is due, never
    running faster than real time, and drops frames (decoded but not returned) when the caller falls
    behind; with ``loop`` it starts again at its end. Unpaced, it returns every frame as fast as it is
    read (offline reports). A webcam delivers frames at its own pace.

    A network camera (an ``rtsp://``, ``http://`` or ``https://`` URL, OpenCV's FFmpeg backend) delivers
    frames at its own pace too; it counts as lost when it takes longer than ``NETWORK_TIMEOUT`` to
    connect or to deliver a frame (``analysis.reconnecting_stream`` then tries again). Its credentials
    never appear in messages.

    Args:
        source: webcam index (``int``, default 0), the path of a video file, or a network camera's URL.
        paced: files only, as above.
        loop: files only: start again at the end (else ``read`` returns ``None`` there).

    Raises:
        SourceError: the source cannot be opened (``read`` raises it for a source without frames).
    """

    def __init__(self, source: int | str | os.PathLike = 0, paced: bool = True, loop: bool = True) -> None:
        self.source = source
        self.is_network = is_network_source(source)
        self.is_file = not isinstance(source, int) and not self.is_network
        self.paced, self.loop = paced, loop
        self.frames_dropped = 0
        self._capture: cv2.VideoCapture | None = self._open()
        fps = self._capture.get(cv2.CAP_PROP_FPS)
        #: frames/s of a file as its container states it (FALLBACK_FPS if none in 1-240); of a webcam, assumed
        self.fps = fps if self.is_file and math.isfinite(fps) and 1 <= fps <= 240 else FALLBACK_FPS
        count = int(self._capture.get(cv2.CAP_PROP_FRAME_COUNT)) if self.is_file else 0
        #: frames in the file as its container states it (an estimate), or None
        self.frame_count = count if count > 0 else None
        self._start = 0.0  # monotonic time at which frame 0 of the current pass is due (webcam: was read)
        self._next_index = 0  # index of the next frame read
        log.info("opened %s (%s)", self.name, f"{self.fps:.2f} frames/s" if self.is_file else "live")

    @property
    def name(self) -> str:
        """The file's name (not its folder), the URL without credentials, or ``webcam N``, for messages."""
        if self.is_network:
            return mask_credentials(self.source)
        return Path(self.source).name if self.is_file else f"webcam {self.source}"

    def _open(self) -> cv2.VideoCapture:
        if self.is_file and not Path(self.source).is_file():
            raise SourceError(f"video file not found: {self.name}")
        started = time.monotonic()
        if self.is_network:
            milliseconds = int(NETWORK_TIMEOUT * 1000)
            capture = cv2.VideoCapture(self.source, cv2.CAP_FFMPEG, [
                cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, milliseconds, cv2.CAP_PROP_READ_TIMEOUT_MSEC, milliseconds])
        else:
            capture = cv2.VideoCapture(str(self.source) if self.is_file else self.source)
        if not capture.isOpened():
            capture.release()
            # a camera that answered at once gave a reason (OpenCV keeps it to itself); one that timed out
            # is unreachable, and asking again would only double the wait
            if self.is_network and time.monotonic() - started < 0.8 * NETWORK_TIMEOUT:
                raise network_failure(self.source)
            raise SourceError(f"cannot open video source {self.name}")
        return capture

    def read(self) -> CapturedFrame | None:
        """The next frame (see the class docstring); ``None`` at the end of a file that does not loop.

        Raises:
            SourceError: the webcam stopped, or the file yields no frame even from its start, or the
                camera was released.
        """
        if self._capture is None:
            raise SourceError(f"{self.name} is closed")
        if not self.is_file:
            ok, frame = self._capture.read()
            if not ok:
                raise SourceError(f"{self.name} stopped delivering frames")
            now = time.monotonic()
            if self._next_index == 0:
                self._start = now
            self._next_index += 1
            return CapturedFrame(frame, self._next_index - 1, now - self._start)
        if self.paced:
            self._wait_or_drop()
        ok, frame = self._capture.read()
        if not ok:
            if not self.loop:
                if self._next_index == 0:
                    raise SourceError(f"no frame could be read from {self.name}")
                return None
            self._capture.release()  # the end of the file: play it again from the start
            self._capture = self._open()
            self._next_index = 0
            self._start = time.monotonic()
            ok, frame = self._capture.read()
            if not ok:
                raise SourceError(f"no frame could be read from {self.name}")
        index = self._next_index
        self._next_index += 1
        return CapturedFrame(frame, index, self._file_time(index))

    def _file_time(self, index: int) -> float:
        """Seconds from the file's first frame to the frame just read: the difference of their timestamps
        (``CAP_PROP_POS_MSEC``); where that is missing or does not increase, the last frame read's time plus
        one frame period per frame since (``index / fps`` for a file without timestamps)."""
        msec = self._capture.get(cv2.CAP_PROP_POS_MSEC)
        if index == 0:
            self._first_msec, self._last = msec, (0, 0.0)
            return 0.0
        seconds = (msec - self._first_msec) / 1000
        last_index, last_seconds = self._last
        if not (math.isfinite(seconds) and seconds > last_seconds):
            seconds = last_seconds + (index - last_index) / self.fps
        self._last = (index, seconds)
        return seconds

    def _wait_or_drop(self) -> None:
        """Paced files: sleep until the next frame is due, or skip the frames already overdue."""
        now = time.monotonic()
        if self._next_index == 0:
            self._start = now
        due = int((now - self._start) * self.fps)  # the frame that should be on screen now
        if self._next_index > due:
            time.sleep(self._start + self._next_index / self.fps - now)
        while self._next_index < due and self._capture.grab():  # behind: drop frames
            self._next_index += 1
            self.frames_dropped += 1

    def frames(self) -> Iterator[CapturedFrame]:
        """``read`` until the end (a webcam or a looping file: until it fails); releases the source
        when the iteration ends or is closed.

        Raises:
            SourceError: as ``read``.
        """
        try:
            while (captured := self.read()) is not None:
                yield captured
        finally:
            self.release()

    def release(self) -> None:
        """Release the capture device or file (idempotent)."""
        if getattr(self, "_capture", None) is not None:
            self._capture.release()
            self._capture = None

    def __enter__(self) -> VideoCamera:
        return self

    def __exit__(self, *exc_info) -> None:
        self.release()

    def __del__(self) -> None:
        self.release()
