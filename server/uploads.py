"""Uploads cost what they are worth: at most ``MAX_UPLOADS`` photos decoded and analysed at once, on worker
threads of lower CPU priority than the streams, the rest waiting ``UPLOAD_WAIT`` seconds at most and then
answered 503 with ``Retry-After``; freed memory handed back to the system once a burst is over.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from flask import Flask, current_app
from werkzeug.exceptions import ServiceUnavailable

from checks import check_number
from native import release_free_memory

log = logging.getLogger(__name__)

T = TypeVar("T")

#: How much lower the upload workers' CPU priority is than the rest of the server's (Linux ``nice``
#: steps): live streams get the CPU first and uploads wait (README, "Security").
UPLOAD_NICENESS = 10


def _lower_priority() -> None:
    """Lower the calling thread's CPU priority by ``UPLOAD_NICENESS`` steps from the one it has (Linux threads have
    their own nice value; 19, the lowest, at most), so that it stays below the server's also when the server itself
    runs under ``nice``; elsewhere nothing."""
    try:
        thread = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, thread, min(os.getpriority(os.PRIO_PROCESS, thread) + UPLOAD_NICENESS, 19))
    except (AttributeError, OSError):
        pass


class UploadLimiter:
    """A Flask extension: ``run(work)`` runs ``work()`` on one of ``MAX_UPLOADS`` low-priority worker
    threads once a slot is free within ``UPLOAD_WAIT`` seconds.

    Raises:
        ValueError: (from ``init_app``) ``MAX_UPLOADS`` is not an integer of at least 1.
        werkzeug.exceptions.ServiceUnavailable: (from ``run``) no slot within the wait (503, ``Retry-After`` set).
    """

    def init_app(self, app: Flask) -> None:
        slots = check_number(app.config["MAX_UPLOADS"], "MAX_UPLOADS", integer=True, minimum=1)
        self.wait = float(app.config["UPLOAD_WAIT"])
        self._slots = threading.BoundedSemaphore(slots)
        self._pool = ThreadPoolExecutor(slots, thread_name_prefix="upload", initializer=_lower_priority)
        self._active, self._lock = 0, threading.Lock()
        app.extensions["uploads"] = self

    def run(self, work: Callable[[], T]) -> T:
        if not self._slots.acquire(timeout=self.wait):
            error = ServiceUnavailable("too many photos are being analysed at once; try again in a second")
            error.retry_after = 1
            raise error
        with self._lock:
            self._active += 1
        try:
            return self._pool.submit(work).result()
        finally:
            with self._lock:
                self._active -= 1
                last = self._active == 0
            self._slots.release()
            if last:  # a burst is over: its decoded images' memory goes back to the system
                release_free_memory()


def uploads() -> UploadLimiter:
    """The current app's limiter."""
    return current_app.extensions["uploads"]
