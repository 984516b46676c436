"""One background producer per video source, shared by every viewer, and the generators of the two
streams a page reads: the MJPEG stream and the server-sent events of the faces.

The design follows miguelgrinberg/flask-video-streaming (``base_camera.py``): a producer thread runs a
source's annotated stream (``analysis.annotated_stream``) only while somebody watches and publishes each
frame's JPEG with its faces; every viewer waits for the next one on a shared condition (each viewer
keeps its own last-seen number, so none misses a wake-up), and the thread stops by itself once no
viewer is waiting and none has asked for a frame for ``idle_timeout`` seconds.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from camera import SourceError
from drawing import message_jpeg
from faces import Face, face_to_dict
from native import release_free_memory

log = logging.getLogger(__name__)

#: The multipart boundary of the MJPEG stream (``multipart/x-mixed-replace; boundary=frame``).
BOUNDARY = "frame"


#: What a producer runs: a callable that opens the source and returns an iterator of ``(jpeg, faces)``,
#: one per frame, that ends or raises when the source does; it is closed when the producer stops.
StreamFactory = Callable[[], Iterator[tuple[bytes, list[Face]]]]


@dataclass(frozen=True)
class Published:
    """One published frame: ``number`` counts from 1 over the producer's life; ``jpeg`` the annotated
    frame's JPEG bytes; ``faces`` the faces drawn on it."""

    number: int
    jpeg: bytes
    faces: tuple[Face, ...]


class SourceStopped(RuntimeError):
    """The producer's source failed; the message says why."""


class ServerShuttingDown(SourceStopped):
    """The producer was stopped (``FrameProducer.stop``: the server is shutting down); the source itself did
    not fail, so a viewer may come back once a server runs again."""


SHUTTING_DOWN = "the server is shutting down"


class FrameProducer:
    """Runs ``open_stream()`` in a background thread while viewers ask for frames.

    The thread stops, releasing the camera, after publishing a frame when no viewer is waiting for one
    and none has asked for ``idle_timeout`` seconds; the next viewer starts a new run. Frame numbers
    keep counting across runs, so a viewer coming back after a stop never waits for a number already used.

    Args:
        open_stream: a ``StreamFactory``; called in the producer thread, so opening a source never
            blocks a request.
        idle_timeout: seconds, as above.
        name: the source's name, for logs.
    """

    def __init__(self, open_stream: StreamFactory, idle_timeout: float = 5.0, name: str = "") -> None:
        self._open_stream = open_stream
        self.idle_timeout = idle_timeout
        self.name = name
        self._condition = threading.Condition()
        self._frame: Published | None = None  # the latest frame of the current run
        self._number = 0  # frames published over this producer's life
        self._error: str | None = None
        self._thread: threading.Thread | None = None  # the running producer; None once it decided to stop
        self._last_thread: threading.Thread | None = None  # the latest one started, perhaps still releasing
        self._waiting = 0  # viewers blocked in wait_for_frame
        self._last_request = 0.0
        self._stopping = False

    @property
    def running(self) -> bool:
        """Whether a producer thread is alive (including one that is releasing its camera)."""
        return self._last_thread is not None and self._last_thread.is_alive()

    def wait_for_frame(self, after: int = 0, timeout: float = 10.0) -> Published:
        """Block until a frame numbered above ``after`` is published and return it.

        Starts a producer thread if none is running. Pass the ``number`` of the last frame you got
        (0 at first: you get the latest frame at once if there is one).

        Raises:
            SourceStopped: the source failed (its message; also when it failed between this viewer's
                last frame, ``after`` > 0, and this call), or no frame came within ``timeout`` seconds;
                ``ServerShuttingDown`` (a subclass) when ``stop`` ended the run.
        """
        deadline = time.monotonic() + timeout
        with self._condition:
            if self._thread is None:  # not running: start a run (after the last one has released its camera)
                if self._error is not None and after > 0:
                    # a viewer of the run that failed, busy sending a frame when it failed: tell it rather
                    # than reopen the source behind its back (new viewers, after=0, start a new run)
                    raise self._stopped()
                self._frame, self._error = None, None
                self._thread = threading.Thread(target=self._run, args=(self._last_thread,),
                                                name=f"producer {self.name}", daemon=True)
                self._last_thread = self._thread
                self._thread.start()
            self._waiting += 1
            try:
                while self._error is None and (self._frame is None or self._frame.number <= after):
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise SourceStopped(f"no frame from {self.name} within {timeout:g} s")
                    self._condition.wait(remaining)
                if self._error is not None:
                    raise self._stopped()
                return self._frame
            finally:
                self._waiting -= 1
                self._last_request = time.monotonic()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the producer thread after its current frame and wait up to ``timeout`` s for it to
        release its camera; waiting viewers get ``ServerShuttingDown``. Later viewers start it again."""
        with self._condition:
            self._stopping = True
            self._error = SHUTTING_DOWN
            self._condition.notify_all()
        thread = self._last_thread
        if thread is not None:
            thread.join(timeout)
        with self._condition:
            self._stopping = False

    def _stopped(self) -> SourceStopped:
        """The error for viewers of a run that ended with ``self._error``."""
        return ServerShuttingDown(self._error) if self._error == SHUTTING_DOWN else SourceStopped(self._error)

    def _run(self, previous: threading.Thread | None) -> None:
        if previous is not None:
            previous.join()  # a webcam can be opened only once its last user has released it
        stream = None
        try:
            stream = self._open_stream()
            for jpeg, faces in stream:
                with self._condition:
                    self._number += 1
                    self._frame = Published(self._number, jpeg, tuple(faces))
                    self._condition.notify_all()
                    if self._stopping or (
                            self._waiting == 0 and time.monotonic() - self._last_request >= self.idle_timeout):
                        self._thread = None  # decided under the lock: a later viewer starts a new run
                        break
            else:
                raise SourceStopped(f"{self.name} ended")
            log.info("producer %s stopped: no viewer for %g s", self.name, self.idle_timeout)
        except Exception as exc:  # any failure of the source ends this run; viewers get the message
            log.warning("producer %s stopped: %s", self.name, exc, exc_info=not isinstance(exc, SourceError))
            with self._condition:
                # a source's own message names it without folders or credentials; anything else may
                # carry paths: viewers get its kind, the log the details
                self._error = (str(exc) or type(exc).__name__) if isinstance(exc, SourceError | SourceStopped) \
                    else f"the stream failed ({type(exc).__name__}; see the server's log)"
                self._thread = None
                self._condition.notify_all()
        finally:
            if stream is not None and hasattr(stream, "close"):
                stream.close()  # a generator's finally: the source is released
            release_free_memory()


class ProducerRegistry:
    """At most one ``FrameProducer`` per source key, created on first use."""

    def __init__(self, idle_timeout: float = 5.0) -> None:
        self.idle_timeout = idle_timeout
        self._producers: dict[str, FrameProducer] = {}
        self._lock = threading.Lock()

    def stop_all(self, timeout: float = 5.0) -> None:
        """``stop`` every producer (at shutdown: cameras are released before the process ends)."""
        with self._lock:
            producers = list(self._producers.values())
        for producer in producers:
            producer.stop(timeout)

    def get(self, key: str, open_stream: StreamFactory) -> FrameProducer:
        """The producer of ``key``, created with ``open_stream`` if there is none yet."""
        with self._lock:
            producer = self._producers.get(key)
            if producer is None:
                producer = self._producers[key] = FrameProducer(open_stream, self.idle_timeout, name=key)
            return producer


def mjpeg_stream(producer: FrameProducer, timeout: float = 10.0,
                 message: Callable[[str], bytes] = message_jpeg) -> Iterator[bytes]:
    """Yield the producer's frames as parts of a ``multipart/x-mixed-replace`` body.

    Each part is ``--frame``, ``Content-Type: image/jpeg`` and ``Content-Length`` headers, and the JPEG.
    When the source fails, or no frame comes within ``timeout`` seconds, the stream ends after one last
    part, the JPEG ``message(reason)`` (a picture of the message, so the viewer sees why). A viewer
    that disconnects simply stops iterating.
    """
    number = 0
    while True:
        try:
            frame = producer.wait_for_frame(number, timeout)
        except SourceStopped as exc:
            log.warning("stream of %s ended: %s", producer.name, exc)
            yield _part(message(f"Stream ended: {exc}"))
            return
        number = frame.number
        yield _part(frame.jpeg)


def result_events(producer: FrameProducer, max_rate: float = 5.0, timeout: float = 10.0) -> Iterator[str]:
    """Yield server-sent events ``data: {"frame": n, "faces": [...]}`` for the producer's frames, at most
    ``max_rate`` per second (frames in between are skipped), until the source stops; then one event
    ``event: end`` with ``data: {"error": reason}``, on which the page stops listening. When the server shuts
    down, the events end without it: the source did not end, and the page connects again."""
    number, interval = 0, 1.0 / max_rate
    while True:
        started = time.monotonic()
        try:
            frame = producer.wait_for_frame(number, timeout)
        except ServerShuttingDown:
            return
        except SourceStopped as exc:
            yield f"event: end\ndata: {json.dumps({'error': str(exc)})}\n\n"
            return
        number = frame.number
        faces = [face_to_dict(face) for face in frame.faces]
        yield f"data: {json.dumps({'frame': frame.number, 'faces': faces})}\n\n"
        time.sleep(max(0.0, interval - (time.monotonic() - started)))


def _part(jpeg: bytes) -> bytes:
    return (f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n".encode()
            + jpeg + b"\r\n")
