"""The runtimes that run a trained classifier: the int8 LiteRT conversion (``convert_to_litert``), its cache
on disk (``write_cache``, ``cache_folders``, ``conversion_lock``), the full-int8 conversion that may ship beside
the weights (``convert_to_full_int8``, ``full_int8_name``) and the interpreter (``LiteRTRunner``).
``model.FacialExpressionModel`` chooses between this and the Keras model itself.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from datasets import INPUT_SIZE
from faces import EMOTIONS_LIST
from native import quiet_stderr

if TYPE_CHECKING:
    import keras

log = logging.getLogger(__name__)

#: Inference back-ends of ``FacialExpressionModel``: ``"litert"`` (the default) runs an int8
#: dynamic-range quantized LiteRT conversion of the Keras model, ``"keras"`` the Keras model itself.
RUNTIMES = ("litert", "keras")


def usable_cores() -> int:
    """The CPU cores this process may run on, at least 1: the standard library's count (``os.process_cpu_count``,
    Python 3.13+, else the CPU affinity mask, else every core), so a process pinned to some cores (``taskset``,
    a container's ``--cpuset-cpus``) counts only those. A container's CPU quota (``docker --cpus``) is not a
    core count: set ``OMP_NUM_THREADS`` there (``litert_threads`` reads it)."""
    if hasattr(os, "process_cpu_count"):
        return os.process_cpu_count() or 1
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0)) or 1
    return os.cpu_count() or 1


def litert_threads() -> int:
    """Two where the process may use two cores: fewer where ``usable_cores`` or ``OMP_NUM_THREADS`` (Ray sets it
    to a task's CPUs in its workers) allow fewer."""
    omp = os.environ.get("OMP_NUM_THREADS", "").strip()
    return max(1, min(2, usable_cores(), int(omp) if omp.isdigit() else 2))


#: Threads of the LiteRT interpreter by default (``litert_threads``). With two, one face's forward pass
#: takes about half as long, which keeps an HD stream at its source's frame rate on a two-core machine
#: (README, "Face detectors"); the CPU per face stays about the same.
LITERT_THREADS = litert_threads()


class ModelLoadError(RuntimeError):
    """The model files exist but cannot be read as a facial-expression model."""


def convert_to_litert(model: keras.Model) -> bytes:
    """The int8 dynamic-range LiteRT flatbuffer of a Keras model (imports TensorFlow).

    Raises:
        ModelLoadError: the converter failed.
    """
    logging.getLogger("tensorflow").setLevel(logging.WARNING)  # its "Assets written to ..." lines
    try:
        # TensorFlow's C++ start-up lines (CUDA probing, absl) go to stderr directly; errors are raised
        with quiet_stderr(), tempfile.TemporaryDirectory() as folder:
            import tensorflow as tf  # Keras's backend here

            path = Path(folder) / "model.tflite"
            model.export(str(path), format="litert", verbose=False, optimizations=[tf.lite.Optimize.DEFAULT])
            return path.read_bytes()
    except Exception as exc:  # the converter raises many kinds of errors
        raise ModelLoadError(f"LiteRT conversion of {model.name} failed (use runtime='keras'): {exc}") from exc


def model_key(model_json_file: str | os.PathLike, model_weights_file: str | os.PathLike) -> str:
    """16 hex digits of the SHA-256 of the two model files, in that order: the key in their LiteRT files' names
    (``<weights stem>.<key>.tflite``, ``full_int8_name``), so a changed model never uses an old conversion."""
    digest = hashlib.sha256()
    for path in (model_json_file, model_weights_file):
        digest.update(Path(path).read_bytes())
    return digest.hexdigest()[:16]


def cache_name(model_weights_file: str | os.PathLike, key: str) -> str:
    """The name of the cached dynamic-range conversion of a model: ``<weights stem>.<key>.tflite`` (``key``:
    ``model_key``)."""
    return f"{Path(model_weights_file).stem}.{key}.tflite"


def full_int8_name(model_weights_file: str | os.PathLike, key: str) -> str:
    """The name of the full-int8 conversion of a model (``convert_to_full_int8``) that the LiteRT runtime
    uses in place of its dynamic-range one when it lies beside the weights: ``<weights stem>.<key>.int8.tflite``
    (``key``: ``model_key``)."""
    return f"{Path(model_weights_file).stem}.{key}.int8.tflite"


def shipped_full_int8(model_weights_file: str | os.PathLike, key: str) -> Path | None:
    """The full-int8 conversion shipped beside the weights for the model of ``key`` (``full_int8_name``), or
    None where there is none: what the LiteRT runtime and the on-device page serve first."""
    path = Path(model_weights_file).parent / full_int8_name(model_weights_file, key)
    return path if path.is_file() else None


def convert_to_full_int8(model: keras.Model, faces: np.ndarray) -> bytes:
    """The LiteRT flatbuffer of a Keras model with int8 weights and activations, float input and output
    (imports TensorFlow). Needs representative faces to set the activations' ranges: made where the training
    faces are (``tools/export_full_int8.py``) and shipped as a file (FER2013's images cannot ship). On the small
    network it runs 3.7 times as fast as the dynamic-range conversion (docs/benchmarks/full-int8.txt).

    Args:
        model: input float32 ``(N, 48, 48, 1)`` in [0, 255].
        faces: uint8 ``(N, 48, 48)`` representative faces (a few hundred training faces).

    Raises:
        ModelLoadError: the converter failed.
    """
    logging.getLogger("tensorflow").setLevel(logging.WARNING)
    try:
        with quiet_stderr(), tempfile.TemporaryDirectory() as folder:
            import tensorflow as tf

            path = Path(folder) / "model.tflite"
            # Keras's LiteRT export traces the model in inference mode (a plain SavedModel export kept the
            # BatchNormalization layers' batch statistics: 42.5% FER+ on the small network)
            model.export(str(path), format="litert", verbose=False, optimizations=[tf.lite.Optimize.DEFAULT],
                         representative_dataset=lambda: (
                             [face.reshape(1, INPUT_SIZE, INPUT_SIZE, 1).astype(np.float32)] for face in faces),
                         target_spec={"supported_ops": [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]})
            return path.read_bytes()
    except Exception as exc:  # the converter raises many kinds of errors
        raise ModelLoadError(f"full-int8 LiteRT conversion of {model.name} failed: {exc}") from exc


def user_cache_dir() -> Path:
    """Where LiteRT conversions are cached when the weights' folder cannot be written (a read-only
    install, a container): the user's cache folder for ``facial-expression-stream`` as ``platformdirs``
    names it (on Linux ``$XDG_CACHE_HOME/facial-expression-stream``, by default under ``~/.cache``).

    Raises:
        RuntimeError: no home folder to put it in.
    """
    import platformdirs

    return Path(platformdirs.user_cache_dir("facial-expression-stream", appauthor=False))


def cache_folders(weights_folder: Path) -> Iterator[Path]:
    """The folders a LiteRT cache is looked for and written in, in order: the weights' own, then (asked for
    only when that one did not serve) the user's, where there is one."""
    yield weights_folder
    try:
        yield user_cache_dir()
    except RuntimeError as exc:  # a container's user without a home
        log.info("no user cache folder: %s", exc)


@contextlib.contextmanager
def conversion_lock(name: str) -> Iterator[None]:
    """Hold an exclusive lock (``filelock``) on ``<temp folder>/facial-expression-stream-<name>.lock``, so
    that processes starting together on the same weights (the server and ``annotate``, an archive's Ray
    workers) convert once, not once each (seconds of CPU and about 1 GB of memory each). Where the lock
    cannot be had (a lock file of another user, a read-only temporary folder), the conversion goes ahead
    unlocked."""
    from filelock import FileLock, Timeout

    lock = FileLock(Path(tempfile.gettempdir()) / f"facial-expression-stream-{name}.lock", mode=0o666)
    try:
        try:
            lock.acquire(timeout=0)
        except Timeout:
            log.info("another process is converting the same weights to LiteRT: waiting for it")
            lock.acquire()
    except OSError as exc:
        log.info("converting without a lock: %s", exc)
        yield
        return
    try:
        yield
    finally:
        lock.release()


def write_cache(folder: Path, name: str, stem: str, content: bytes, remove_stale: bool = True) -> None:
    """Write ``folder/name`` atomically (a temporary file, flushed to disk, renamed: complete or absent,
    readable by every user), then remove temporary files that a killed process left there over an hour
    ago and, with ``remove_stale``, the folder's other conversions of weights ``stem``
    (``<stem>.<16 hex digits>.tflite``).

    Raises:
        OSError: the folder cannot be created or written (nothing is left behind).
    """
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=folder, prefix=f".{name}.", delete=False) as out:
        temporary = out.name
    try:
        with open(temporary, "wb") as out:
            out.write(content)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temporary, 0o644)  # NamedTemporaryFile makes it 0600: another user could not read it
        os.replace(temporary, folder / name)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    ours = re.compile(rf"{re.escape(stem)}\.[0-9a-f]{{16}}\.tflite")
    leftover = re.compile(rf"\.{re.escape(stem)}\.[0-9a-f]{{16}}\.tflite\..+")
    for path in folder.iterdir():
        with contextlib.suppress(OSError):
            if (remove_stale and ours.fullmatch(path.name) and path.name != name) or (
                    leftover.fullmatch(path.name) and time.time() - path.stat().st_mtime > 3600):
                path.unlink()
    log.info("cached the LiteRT conversion as %s", folder / name)


class LiteRTRunner:
    """A LiteRT flatbuffer run by one interpreter of ``threads`` threads, callable on float32 ``(N, 48, 48, 1)``.

    One interpreter behind a lock (an interpreter is not thread-safe; a call on a few faces takes about
    a millisecond), its input resized when the batch size changes.

    Raises:
        ModelLoadError: the flatbuffer cannot be read, or does not map ``(N, 48, 48, 1)`` to ``(N, 7)``.
    """

    def __init__(self, content: bytes, threads: int = 1) -> None:
        from ai_edge_litert.interpreter import Interpreter

        try:
            with quiet_stderr():  # LiteRT's C++ "INFO: Created TensorFlow Lite XNNPACK delegate" line
                self._interpreter = Interpreter(model_content=content, num_threads=threads)
                self._interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise ModelLoadError(f"not a LiteRT model: {exc}") from exc
        inputs, outputs = self._interpreter.get_input_details(), self._interpreter.get_output_details()
        if (len(inputs) != 1 or list(inputs[0]["shape"][1:]) != [INPUT_SIZE, INPUT_SIZE, 1]
                or len(outputs) != 1 or list(outputs[0]["shape"][1:]) != [len(EMOTIONS_LIST)]):
            raise ModelLoadError("the LiteRT model does not map (N, 48, 48, 1) faces to 7 probabilities")
        self._input, self._output = inputs[0]["index"], outputs[0]["index"]
        self._batch = -1
        self._lock = threading.Lock()

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=np.float32)
        with self._lock:
            if len(x) != self._batch:
                self._interpreter.resize_tensor_input(self._input, x.shape)
                self._interpreter.allocate_tensors()
                self._batch = len(x)
            self._interpreter.set_tensor(self._input, x)
            self._interpreter.invoke()
            return self._interpreter.get_tensor(self._output).copy()
