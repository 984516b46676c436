"""The visitor's own camera: frames a page sends from ``getUserMedia``, each answered with its faces.

A page makes a client id, sends one JPEG frame at a time (``POST /api/frames?client=ID``; the next when
the answer has come, so the delay never grows) and draws the answer over its video. The server keeps each
client's face tracker (``analysis.FaceAnalyzer``: ids and smoothing, as for a server-side stream) and
forgets it after ``CLIENT_IDLE`` seconds without a frame, whether or not other requests come (a sweeper
thread runs while any client is kept), handing the freed memory back to the system. At most
``MAX_BROWSER_CLIENTS`` clients at once; one more gets 503. Frames are never stored or logged.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from dataclasses import dataclass, field

from flask import Flask, current_app
from werkzeug.exceptions import BadRequest, Conflict, ServiceUnavailable

from analysis import MAX_CUT_GAP, FaceAnalyzer
from checks import check_number
from native import release_free_memory
from settings import AnalysisSettings

log = logging.getLogger(__name__)

#: A client id: what ``crypto.randomUUID()`` makes, or any 8-64 letters, digits and dashes.
CLIENT_ID = re.compile(r"[A-Za-z0-9-]{8,64}")


@dataclass
class _Client:
    analyzer: FaceAnalyzer
    last_frame: float = field(default_factory=time.monotonic)
    busy: threading.Lock = field(default_factory=threading.Lock)


class BrowserClients:
    """A Flask extension: the browser clients' face analyzers, made on a client's first frame under the app's
    one ``settings.AnalysisSettings`` (``app.extensions["analysis_settings"]``).

    Raises (from ``init_app``):
        ValueError: ``MAX_BROWSER_CLIENTS`` is not an integer of at least 1.

    Raises (from ``analyze``; ``check`` raises the first two):
        BadRequest: a malformed client id.
        ServiceUnavailable: a new client while ``MAX_BROWSER_CLIENTS`` are active (503).
        Conflict: a frame while the same client's previous one is still being analysed (409).
    """

    def init_app(self, app: Flask) -> None:
        self.limit = check_number(app.config["MAX_BROWSER_CLIENTS"], "MAX_BROWSER_CLIENTS", integer=True, minimum=1)
        self.idle = float(app.config["CLIENT_IDLE"])
        self.settings: AnalysisSettings = app.extensions["analysis_settings"]
        self._clients: dict[str, _Client] = {}
        self._lock = threading.Lock()
        self._sweeper: threading.Thread | None = None  # runs while any client is kept
        app.extensions["browser_clients"] = self

    def active(self) -> int:
        """Clients that sent a frame within ``CLIENT_IDLE`` seconds (the others are forgotten now)."""
        with self._lock:
            forgotten = self._forget_idle()
            count = len(self._clients)
        if forgotten:
            release_free_memory()
        return count

    def kept(self) -> int:
        """Clients whose trackers are held now (idle ones the sweeper has not yet forgotten included)."""
        with self._lock:
            return len(self._clients)

    def _forget_idle(self) -> int:
        """Forget the clients idle for ``CLIENT_IDLE`` s (call under ``_lock``); how many."""
        cutoff = time.monotonic() - self.idle
        idle = [key for key, client in self._clients.items() if client.last_frame < cutoff]
        for key in idle:
            self._clients.pop(key).analyzer.close()
        return len(idle)

    def _sweep(self) -> None:
        """The sweeper thread: every ``CLIENT_IDLE``/4 s (0.1-5 s) forget idle clients and hand their memory
        back to the system (``native.release_free_memory``), until none is kept; ``analyze`` starts it again
        for the next new client."""
        period = min(max(self.idle / 4, 0.1), 5.0)
        while True:
            time.sleep(period)
            with self._lock:
                forgotten = self._forget_idle()
                if not self._clients:
                    self._sweeper = None  # decided under the lock: the next new client starts another
            if forgotten:
                log.info("forgot %d browser camera(s) idle for %g s", forgotten, self.idle)
                release_free_memory()
            if self._sweeper is not threading.current_thread():
                return

    def check(self, client_id: str | None) -> None:
        """Raise what ``analyze`` would refuse ``client_id`` with (a malformed id, or a new client while the
        server is full), so that a refused request costs no decoding; ``analyze`` checks again."""
        self._check_id(client_id)
        with self._lock:
            self._forget_idle()
            if client_id not in self._clients:
                self._check_room()

    @staticmethod
    def _check_id(client_id: str | None) -> None:
        if not client_id or not CLIENT_ID.fullmatch(client_id):
            raise BadRequest("send the page's client id as ?client=ID (8-64 letters, digits or dashes)")

    def _check_room(self) -> None:
        if len(self._clients) >= self.limit:
            error = ServiceUnavailable(f"the server is already analysing {self.limit} cameras; "
                                       "try again when one has closed")
            error.retry_after = 5
            raise error

    def analyze(self, client_id: str | None, frame, model):
        """The tracked faces (``faces.Face``, with ids) of the client's next BGR frame."""
        self._check_id(client_id)
        with self._lock:
            self._forget_idle()
            client = self._clients.get(client_id)
            if client is None:
                self._check_room()
                analyzer = FaceAnalyzer.from_settings(model, self.settings, max_cut_gap=MAX_CUT_GAP)
                client = self._clients[client_id] = _Client(analyzer, last_frame=0.0)
                if self._sweeper is None:
                    self._sweeper = threading.Thread(target=self._sweep, name="browser-clients", daemon=True)
                    self._sweeper.start()
            if not client.busy.acquire(blocking=False):
                raise Conflict("this page's previous frame is still being analysed: send one frame at a time")
            now = time.monotonic()  # under the lock: _forget_idle never sees a client in use as idle
            dt = now - client.last_frame if client.last_frame else 1 / 15
            client.last_frame = now
        try:
            return client.analyzer(frame, dt)
        finally:
            client.busy.release()


def browser_clients() -> BrowserClients:
    """The current app's browser clients."""
    return current_app.extensions["browser_clients"]
