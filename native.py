"""Process-level care of the native libraries the app loads: the C heap (glibc's malloc) and the lines
C++ libraries (TensorFlow, LiteRT) print straight to the process's stderr."""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import threading

_stderr_lock = threading.RLock()  # one swap of file descriptor 2 at a time

#: glibc's ``mallopt`` parameter number of ``M_ARENA_MAX`` (malloc.h).
_M_ARENA_MAX = -8


def limit_malloc_arenas(count: int = 2) -> None:
    """Let glibc's malloc use at most ``count`` arenas (``mallopt(M_ARENA_MAX)``), unless the
    ``MALLOC_ARENA_MAX`` environment variable already says; elsewhere than glibc, nothing.

    By default glibc gives threads up to 8 arenas per core, and the server has 64 threads: memory freed
    after many viewers stays scattered over those arenas, so the process grows with every round of
    viewers; with two arenas it stays flat (README, "Many viewers": ``python -m benchmarks.load``). Call
    it before the server's threads start."""
    libc = _glibc()
    if libc is not None and not os.environ.get("MALLOC_ARENA_MAX"):
        libc.mallopt(_M_ARENA_MAX, count)


def release_free_memory() -> None:
    """Hand the C heap's free memory back to the system (glibc's ``malloc_trim``; elsewhere nothing).

    A run with many viewers leaves megabytes of freed frame and socket buffers in the allocator's
    arenas, which glibc keeps (the process's RSS stays at its high-water mark) unless asked."""
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)


@functools.cache
def _glibc() -> ctypes.CDLL | None:
    """The C library if it is glibc (it has ``malloc_trim`` and ``mallopt``), else None."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return None
    return libc if hasattr(libc, "malloc_trim") and hasattr(libc, "mallopt") else None


@contextlib.contextmanager
def quiet_stderr():
    """Send file descriptor 2 to /dev/null for the duration (C++ libraries print there directly); one
    thread at a time (a second waits), so the real stderr is always the one restored.

    The descriptor is the process's: what other threads write to stderr meanwhile (log lines included) is
    lost too, so keep the block to the call that prints (an interpreter's construction, milliseconds).
    """
    with _stderr_lock:
        try:
            saved = os.dup(2)
        except OSError:  # no stderr at all
            yield
            return
        try:
            with open(os.devnull, "wb") as null:
                os.dup2(null.fileno(), 2)
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
