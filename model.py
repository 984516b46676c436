"""The facial-expression classifier: its architecture, its loader, and the classification step of the
frame path (``classify_faces``: boxes of a frame in, ``Face`` records out).

Everything the network needs besides the 48x48 grayscale crop lives inside the
network itself (the 1/255 rescaling is its first layer), so the training
notebook, the stream and any other caller share one preprocessing path:
give ``FacialExpressionModel.predict_proba`` uint8 crops, get probabilities.
Serving never imports Keras or TensorFlow once the LiteRT conversion is cached (see
``FacialExpressionModel``); building and training models does.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import os
import re
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from datasets import FER_DIR, INPUT_SIZE, fer2013_files, load_fer2013_split
from faces import EMOTIONS_LIST, Face, crop_faces
from native import quiet_stderr

if TYPE_CHECKING:  # Keras (and with it TensorFlow) is imported only where a function needs it
    import keras

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent

#: The shipped model: the architecture (Keras JSON) and the weights (Keras HDF5); train.ipynb exports one network,
#: tools.ensemble joins several (the shipped files hold two).
MODEL_JSON = ROOT / "model.json"
MODEL_WEIGHTS = ROOT / "model_weights.h5"

__all__ = ["EMOTIONS_LIST", "INPUT_SIZE", "FacialExpressionModel", "ModelLoadError", "classify_faces",
           "FER_DIR", "default_model", "fer2013_files", "load_fer2013_split", "make_model", "recalibrate_batch_norm"]

#: Inputs per forward pass in ``predict_proba`` (faces times test-time views); larger batches are split.
MAX_BATCH = 256

ARCHITECTURES = ("course", "vgg")

#: Inference back-ends of ``FacialExpressionModel``: ``"litert"`` (the default) runs an int8
#: dynamic-range quantized LiteRT conversion of the Keras model, ``"keras"`` the Keras model itself.
RUNTIMES = ("litert", "keras")


def _litert_threads() -> int:
    """Two where the process may use two cores: fewer where its CPU affinity, its cgroup's CPU quota
    (``cpu.max``, as ``docker --cpus`` sets it) or ``OMP_NUM_THREADS`` (Ray sets it to a task's CPUs in its
    workers) allow fewer."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    with contextlib.suppress(OSError, ValueError):
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            cores = min(cores, max(1, int(quota) // int(period)))
    omp = os.environ.get("OMP_NUM_THREADS", "").strip()
    return max(1, min(2, cores, int(omp) if omp.isdigit() else 2))


#: Threads of the LiteRT interpreter by default (``_litert_threads``). With two, one face's forward pass
#: takes about half as long, which keeps an HD stream at its source's frame rate on a two-core machine
#: (README, "Face detectors"); the CPU per face stays about the same.
LITERT_THREADS = _litert_threads()


def make_model(
    input_shape: tuple[int, int, int] = (INPUT_SIZE, INPUT_SIZE, 1),
    num_classes: int = len(EMOTIONS_LIST),
    architecture: str = "course",
    crop: int | None = None,
    width: float = 1.0,
) -> keras.Model:
    """Build an untrained classifier.

    Args:
        input_shape: ``(height, width, channels)`` of one face; the network expects raw
            grayscale intensities in [0, 255] (float32) and rescales them itself.
        num_classes: number of output probabilities.
        architecture: ``"course"``: the CNN of the facial-expression-recognition course this
            project descends from: four convolution blocks (64 3x3, 128 5x5, 512 3x3, 512 3x3;
            each BatchNormalization, ReLU, 2x2 max-pooling, dropout 0.25), then Dense 256 and
            Dense 512 (each BatchNormalization, ReLU, dropout 0.25) and a softmax;
            4,478,727 parameters on 48x48x1 input.
            ``"vgg"``: the VGG variant of Khaireddin & Chen 2021 (arXiv:2105.03588): four stages of two
            3x3 convolutions (64, 128, 256, 512 filters; each BatchNormalization, ReLU) and 2x2
            max-pooling, then, smaller than the paper's two 4096-unit layers (usef-kh/fer
            ``models/vgg.py``), one Dense 512 (BatchNormalization, ReLU) between dropouts of 0.3 (the
            paper's 0.2, a little more for the smaller head) and a softmax; 7,055,431 parameters.
        crop: if set, the network's first step after rescaling is a ``crop`` x ``crop`` center crop
            (``keras.layers.CenterCrop``), so it still takes 48x48 faces but computes on the crop:
            40 gives the VGG variant 5,744,711 parameters and (40/48)^2 of its convolutions' multiply-adds.
            With the notebook's random shifts in front, training sees random crops and serving the
            center one, as in the 40x40 crops of Khaireddin & Chen 2021 / usef-kh/fer.
        width: the width multiplier (MobileNets, Howard et al. 2017, arXiv:1704.04861): every
            convolution's filters and every hidden Dense layer's units are multiplied by it (rounded,
            at least 1). 0.5 gives the 40x40 VGG variant 1,439,783 parameters and about a quarter of
            the multiply-adds. The exported ``model.json`` holds the resulting sizes, so loading needs
            no width.

    Returns:
        An uncompiled ``keras.Model`` mapping ``(N, *input_shape)`` float32 to ``(N, num_classes)``
        float32 probabilities. The last layer is float32 even under a mixed-precision policy.

    Raises:
        ValueError: for an unknown architecture, a crop not between 16 and the input's side, or a width
            not above 0 and at most 4.
    """
    keras = _import_keras()
    layers = keras.layers
    if architecture not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {architecture!r}; expected one of {ARCHITECTURES}")
    if crop is not None and not 16 <= crop <= min(input_shape[:2]):
        raise ValueError(f"crop must be between 16 and {min(input_shape[:2])} pixels, not {crop}")
    if isinstance(width, bool) or not isinstance(width, int | float) or not 0 < width <= 4:
        raise ValueError(f"width must be a number above 0 and at most 4, not {width!r}")

    def sized(n: int) -> int:
        return max(1, round(n * width))

    inputs = keras.Input(shape=input_shape, name="face")
    x = layers.Rescaling(1.0 / 255, name="rescale")(inputs)
    if crop is not None:
        x = layers.CenterCrop(crop, crop, name="center_crop")(x)
    if architecture == "course":
        for filters, kernel in ((64, 3), (128, 5), (512, 3), (512, 3)):
            x = _conv_bn_relu(x, sized(filters), kernel)
            x = layers.MaxPooling2D(2)(x)
            x = layers.Dropout(0.25)(x)
        x = layers.Flatten()(x)
        for units in (256, 512):
            x = _dense_bn_relu(x, sized(units))
            x = layers.Dropout(0.25)(x)
    else:  # vgg
        for filters in (64, 128, 256, 512):
            x = _conv_bn_relu(x, sized(filters), 3, use_bias=False)
            x = _conv_bn_relu(x, sized(filters), 3, use_bias=False)
            x = layers.MaxPooling2D(2)(x)
        x = layers.Flatten()(x)
        x = layers.Dropout(0.3)(x)
        x = _dense_bn_relu(x, sized(512))
        x = layers.Dropout(0.3)(x)
    outputs = layers.Dense(num_classes, activation="softmax", dtype="float32", name="probabilities")(x)
    return keras.Model(inputs, outputs, name=f"fer_{architecture}")


def _import_keras():
    """Keras (TensorFlow's C++ start-up chatter kept out of the logs)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    return keras


def _conv_bn_relu(x, filters: int, kernel: int, use_bias: bool = True):
    layers = _import_keras().layers
    x = layers.Conv2D(filters, kernel, padding="same", use_bias=use_bias)(x)
    return layers.Activation("relu")(layers.BatchNormalization()(x))


def _dense_bn_relu(x, units: int):
    layers = _import_keras().layers
    return layers.Activation("relu")(layers.BatchNormalization()(layers.Dense(units)(x)))


def recalibrate_batch_norm(model: keras.Model, faces: np.ndarray, batch_size: int = 256) -> int:
    """Recompute every BatchNormalization layer's statistics on un-augmented faces ("precise BN").

    During training, a BatchNormalization layer keeps an exponential moving average of the mean and
    variance of the batches it sees, and those batches are augmented (shifted, zoomed, rotated, with
    "nearest" fill at the borders; with ``AUGMENT="strong"`` also contrast changes and erased patches),
    while serving sees plain faces. This replaces the moving averages with the average, over all
    batches of ``faces`` in training mode and weighted by batch size, of each batch's mean and
    variance: PreciseBN (Wu & Johnson 2021, "Rethinking 'Batch' in BatchNorm", arXiv:2105.07576,
    section 3; like fvcore's ``update_bn_stats``, the variance is the average of the batch variances,
    without the spread of the batch means), here on faces without augmentation. What it gave this
    project's networks: README, "What was tried" (docs/benchmarks/snapshots.txt,
    docs/benchmarks/course-recalibrated.txt). Only the moving statistics change; Dropout is active
    during the pass, as in training.

    Args:
        model: a built ``keras.Model``, modified in place, including BatchNormalization layers inside
            nested models and layers set to ``trainable=False``.
        faces: uint8 grayscale faces ``(N, 48, 48)`` in [0, 255] (the training split, without
            augmentation, shuffled so that each batch mixes classes), ``N >= 2``; all are used.
        batch_size: faces per training-mode forward pass (each BatchNormalization normalises with the
            batch's own statistics, so this should be near the training batch size, 64 to 256).

    Returns:
        The number of BatchNormalization layers recalibrated (0 leaves the model unchanged).

    Raises:
        TypeError / ValueError: ``faces`` is not uint8 or not ``(N, 48, 48)``, or holds fewer than
            two faces, or ``batch_size`` is not an int of at least 2 (a variance needs two samples).
    """
    faces = _as_face_batch(faces)
    if len(faces) < 2:
        raise ValueError(f"faces must hold at least two faces to recalibrate on, got {len(faces)}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 2:
        raise ValueError(f"batch_size must be an int of at least 2, not {batch_size!r}")
    keras = _import_keras()
    norms = [layer for layer in _all_layers(model) if isinstance(layer, keras.layers.BatchNormalization)]
    if not norms:
        return 0
    saved = [(layer.momentum, layer.trainable) for layer in norms]
    try:
        for layer in norms:
            layer.trainable = True  # a frozen BatchNormalization does not update its statistics
        # new = old * momentum + batch * (1 - momentum); momentum seen / (seen + n) for a batch of n
        # faces makes the stored value the mean over the faces seen so far, batch by batch
        for start in range(0, len(faces), batch_size):
            batch = faces[start:start + batch_size]
            for layer in norms:
                layer.momentum = start / (start + len(batch))
            model(batch.astype(np.float32)[..., np.newaxis], training=True)
    finally:
        for layer, (momentum, trainable) in zip(norms, saved, strict=True):
            layer.momentum, layer.trainable = momentum, trainable
    log.info("recalibrated %d BatchNormalization layers on %d faces", len(norms), len(faces))
    return len(norms)


def _all_layers(model: keras.Model) -> list[keras.layers.Layer]:
    found = []
    for layer in model.layers:
        found.append(layer)
        if hasattr(layer, "layers"):  # a nested keras.Model
            found.extend(_all_layers(layer))
    return found


class ModelLoadError(RuntimeError):
    """The model files exist but cannot be read as a facial-expression model."""


class FacialExpressionModel:
    """A trained classifier loaded once from ``model.json`` + ``model_weights.h5``.

    The two files are what ``train.ipynb`` exports (one network) or ``tools.ensemble`` writes (several
    networks averaged, as the shipped files are): the architecture as Keras JSON (``model.to_json()``)
    and the weights as a Keras HDF5 file.

    With the default LiteRT runtime the network that runs is an int8 dynamic-range conversion of the
    Keras model, cached beside the weights as ``<weights stem>.<key>.tflite``, where the key is a hash
    of both files: the first load converts (this imports TensorFlow and takes seconds), later loads of
    the same files read the cache and never import TensorFlow; changed files get a new key, so a stale
    conversion is never used (older ``.tflite`` files of those weights are removed). Where the weights'
    folder cannot be written, the cache goes to ``user_cache_dir()``; a cache that cannot be read or
    loaded (cut short) is converted again and replaced.

    Args:
        model_json_file: path of the architecture JSON.
        model_weights_file: path of the HDF5 weights.
        flip_tta: test-time augmentation: average the probabilities of each face and of its mirror
            image (one batch of 2N), as in the ten-crop/flip evaluation of Khaireddin & Chen 2021
            (arXiv:2105.03588) reduced to the flip; about twice the compute per face.
        shift_tta: if above 0, also average over the face shifted by this many pixels in the four
            diagonal directions (the border repeated): five positions, ten views with ``flip_tta``. For a
            model that computes on its central 40x40 (``make_model(crop=40)``) a shift of 4 turns the
            center crop into the four corner crops: the ten-crop evaluation of Khaireddin & Chen 2021.
            Five (or ten) times the compute per face.
        runtime: ``"litert"`` (default): the int8 conversion above (``keras.Model.export(format="litert")``
            with ``tf.lite.Optimize.DEFAULT``: int8 weights, activations quantized on the fly), run by
            ``ai_edge_litert``'s interpreter on ``threads`` threads. ``"keras"``: the Keras model's compiled
            inference function. Their speed and accuracy: README, "Runtime" (docs/benchmarks/evaluate-*.txt).
        threads: LiteRT only: the interpreter's threads (an int of at least 1; default ``LITERT_THREADS``).
            Processes that share a machine's cores with others (the archive's Ray workers) use 1.

    Raises:
        FileNotFoundError: a file does not exist.
        ModelLoadError: a file is not a valid model, or the model's input is not
            ``(48, 48, 1)`` or its output not ``len(EMOTIONS_LIST)`` wide, or the LiteRT
            conversion failed (``runtime="keras"`` avoids it).
        ValueError: an unknown ``runtime``, a ``shift_tta`` that is not an int from 0 to 11, or ``threads``
            not an int of at least 1.
    """

    def __init__(self, model_json_file: str | os.PathLike = MODEL_JSON,
                 model_weights_file: str | os.PathLike = MODEL_WEIGHTS, flip_tta: bool = True,
                 runtime: str = "litert", shift_tta: int = 0, threads: int = LITERT_THREADS) -> None:
        if runtime not in RUNTIMES:
            raise ValueError(f"unknown runtime {runtime!r}; expected one of {RUNTIMES}")
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
            raise ValueError(f"threads must be a whole number of at least 1, not {threads!r}")
        if isinstance(shift_tta, bool) or not isinstance(shift_tta, int) or not 0 <= shift_tta < INPUT_SIZE // 4:
            raise ValueError(f"shift_tta must be a whole number of pixels from 0 to {INPUT_SIZE // 4 - 1}, "
                             f"not {shift_tta!r}")
        self.flip_tta, self.runtime, self.shift_tta = flip_tta, runtime, shift_tta
        self._json_path, self._weights_path = Path(model_json_file), Path(model_weights_file)
        for path in (self._json_path, self._weights_path):
            if not path.is_file():
                raise FileNotFoundError(f"model file not found: {path}")
        self._model: keras.Model | None = None
        self._interpreter: _LiteRTRunner | None = None
        if runtime == "litert":
            self._interpreter = self._litert_runner(threads)
        else:
            self._model = _load_keras_model(self._json_path, self._weights_path)
        log.info("loaded %s + %s, runtime %s", self._json_path, self._weights_path, runtime)

    @property
    def keras_model(self) -> keras.Model:
        """The underlying ``keras.Model`` (input float32 ``(N, 48, 48, 1)`` in [0, 255]); loaded on first
        use under the LiteRT runtime (which imports TensorFlow)."""
        if self._model is None:
            self._model = _load_keras_model(self._json_path, self._weights_path)
        return self._model

    def _litert_runner(self, threads: int) -> _LiteRTRunner:
        """The LiteRT model of the two files, from its cache when one can be read and loaded, else
        converted and cached (see the class docstring); one process at a time converts the same files."""
        digest = hashlib.sha256()
        for path in (self._json_path, self._weights_path):
            digest.update(path.read_bytes())
        name = f"{self._weights_path.stem}.{digest.hexdigest()[:16]}.tflite"
        runner = self._cached_runner(name, threads, warn=True)
        if runner is not None:
            return runner
        with _conversion_lock(name):
            runner = self._cached_runner(name, threads, warn=False)  # converted by another process meanwhile
            if runner is not None:
                return runner
            content = _convert_to_litert(self.keras_model)
            runner = _LiteRTRunner(content, threads)
            for folder in _cache_folders(self._weights_path.parent):
                try:  # stale conversions removed beside the weights only: the user's folder serves every install
                    _write_cache(folder, name, self._weights_path.stem, content,
                                 remove_stale=folder == self._weights_path.parent)
                    break
                except OSError as exc:
                    log.warning("cannot cache the LiteRT conversion in %s (%s)", folder, exc)
            else:
                log.warning("the LiteRT conversion of %s is not cached: converting on every start",
                            self._weights_path)
        return runner

    def _cached_runner(self, name: str, threads: int, warn: bool) -> _LiteRTRunner | None:
        """The cached conversion ``name`` from the first cache folder that has a usable one, else None."""
        for folder in _cache_folders(self._weights_path.parent):
            cache = folder / name
            try:
                return _LiteRTRunner(cache.read_bytes(), threads)
            except FileNotFoundError:
                continue
            except (OSError, ModelLoadError) as exc:  # unreadable, or cut short: not used, and replaced
                if warn:
                    log.warning("the cached LiteRT conversion %s cannot be used: %s", cache, exc)
        return None

    def predict_proba(self, faces: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
        """Classify a batch of face crops.

        Args:
            faces: uint8 grayscale crops, shape ``(N, 48, 48)`` (a list of ``(48, 48)`` arrays
                is stacked); ``N`` may be 0.

        Returns:
            float32 array ``(N, 7)``: each row the probabilities of ``EMOTIONS_LIST``, summing to 1.

        Raises:
            TypeError: ``faces`` is not uint8.
            ValueError: ``faces`` is not of shape ``(N, 48, 48)``.
        """
        faces = _as_face_batch(faces)
        if len(faces) == 0:
            return np.zeros((0, len(EMOTIONS_LIST)), dtype=np.float32)
        x = faces.astype(np.float32)[..., np.newaxis]
        views = (5 if self.shift_tta else 1) * (2 if self.flip_tta else 1)
        chunk = max(1, MAX_BATCH // views)  # at most MAX_BATCH inputs per forward pass, views included
        return np.concatenate([self._predict(x[i:i + chunk]) for i in range(0, len(x), chunk)])

    def _predict(self, x: np.ndarray) -> np.ndarray:
        # predict_on_batch runs Keras's compiled inference function: about 4x faster than an eager call here
        forward = self._interpreter if self._interpreter is not None else self.keras_model.predict_on_batch
        views = [x]
        if self.shift_tta:
            k = self.shift_tta
            padded = np.pad(x, ((0, 0), (k, k), (k, k), (0, 0)), mode="edge")
            views += [padded[:, k + dy:k + dy + INPUT_SIZE, k + dx:k + dx + INPUT_SIZE]
                      for dy in (-k, k) for dx in (-k, k)]
        if self.flip_tta:
            views += [view[:, :, ::-1] for view in views]
        if len(views) == 1:
            return np.asarray(forward(x), dtype=np.float32)
        outputs = np.asarray(forward(np.concatenate(views)), dtype=np.float32)
        return outputs.reshape(len(views), len(x), -1).mean(axis=0)

    def predict_emotion(self, face: np.ndarray) -> str:
        """Return the most probable label of ``EMOTIONS_LIST`` for one uint8 ``(48, 48)`` crop.

        Raises:
            TypeError, ValueError: as ``predict_proba``.
        """
        face = np.asarray(face)
        if face.shape != (INPUT_SIZE, INPUT_SIZE):
            raise ValueError(f"face must have shape ({INPUT_SIZE}, {INPUT_SIZE}), got {face.shape}")
        return EMOTIONS_LIST[int(np.argmax(self.predict_proba(face[np.newaxis])[0]))]


def classify_faces(model: FacialExpressionModel, gray: np.ndarray, boxes: np.ndarray,
                   scores: np.ndarray | None = None, chosen: np.ndarray | None = None,
                   rolls: np.ndarray | None = None) -> list[Face]:
    """Crop every box of a uint8 grayscale frame to 48x48, classify all crops in one batch, and return
    one ``Face`` per box, in the order of ``boxes``. ``scores``: the detector's confidence of each box
    (NaN where it gives none), or ``None``. ``chosen``: bool ``(N,)``, the boxes to classify (default:
    all); the others' faces have ``probabilities`` ``None`` (``tracking.FaceTracker`` fills them in).
    ``rolls``: ``(N,)`` degrees, each face's roll (``detection.detect_faces_and_rolls``): a rolled face is
    cut with its eyes level (``faces.crop_faces``); ``None`` or NaN: cut as it is."""
    boxes = np.asarray(boxes).reshape(-1, 4)
    chosen = np.ones(len(boxes), bool) if chosen is None else np.asarray(chosen, bool)
    rolls = None if rolls is None else np.asarray(rolls, dtype=np.float32).reshape(-1)[chosen]
    classified = iter(model.predict_proba(crop_faces(gray, boxes[chosen], INPUT_SIZE, rolls)))
    scores = [None] * len(boxes) if scores is None else [None if np.isnan(s) else float(s) for s in scores]
    return [Face(tuple(int(v) for v in box), next(classified) if classify else None, score)
            for box, score, classify in zip(boxes, scores, chosen, strict=True)]


def default_model(runtime: str = "litert") -> FacialExpressionModel:
    """The shipped model (``MODEL_JSON`` + ``MODEL_WEIGHTS``, flip TTA) on ``runtime`` (one of ``RUNTIMES``),
    loaded once per process and runtime.

    Raises:
        ValueError: an unknown runtime; and ``FacialExpressionModel``'s errors.
    """
    return _shipped_model(runtime)


@functools.cache
def _shipped_model(runtime: str) -> FacialExpressionModel:  # one cache key per runtime, however it is named
    return FacialExpressionModel(MODEL_JSON, MODEL_WEIGHTS, runtime=runtime)


def _load_keras_model(json_path: Path, weights_path: Path) -> keras.Model:
    """The Keras model of the two files, checked (see ``FacialExpressionModel``'s errors). TensorFlow's
    C++ start-up lines (CUDA probing, absl) are kept off stderr while it loads; errors are raised."""
    with quiet_stderr():
        keras = _import_keras()
        try:
            model = keras.models.model_from_json(json_path.read_text(encoding="utf-8"))
        except (ValueError, TypeError, KeyError, json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ModelLoadError(f"{json_path} is not a Keras model architecture: {exc}") from exc
        if not isinstance(model, keras.Model):  # Keras returns unknown class names as a plain dict
            raise ModelLoadError(f"{json_path} is not a Keras model architecture")
        expected_in = (None, INPUT_SIZE, INPUT_SIZE, 1)
        expected_out = (None, len(EMOTIONS_LIST))
        if tuple(model.input_shape) != expected_in or tuple(model.output_shape) != expected_out:
            raise ModelLoadError(
                f"{json_path} maps {model.input_shape} to {model.output_shape}; "
                f"expected {expected_in} to {expected_out}")
        try:
            model.load_weights(weights_path)
        except Exception as exc:  # h5py/Keras raise OSError, ValueError or KeyError by case
            raise ModelLoadError(f"{weights_path} does not hold weights for {json_path}: {exc}") from exc
    log.info("loaded the Keras model %s (%d parameters)", model.name, model.count_params())
    return model


def _convert_to_litert(model: keras.Model) -> bytes:
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


def user_cache_dir() -> Path:
    """Where LiteRT conversions are cached when the weights' folder cannot be written (a read-only
    install, a container): ``$XDG_CACHE_HOME/facial-expression-stream``, by default under ``~/.cache``.

    Raises:
        RuntimeError: no ``XDG_CACHE_HOME`` and no home folder (``Path.home``).
    """
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "facial-expression-stream"


def _cache_folders(weights_folder: Path) -> Iterator[Path]:
    """The folders a LiteRT cache is looked for and written in, in order: the weights' own, then (asked for
    only when that one did not serve) the user's, where there is one."""
    yield weights_folder
    try:
        yield user_cache_dir()
    except RuntimeError as exc:  # a container's user without a home
        log.info("no user cache folder: %s", exc)


@contextlib.contextmanager
def _conversion_lock(name: str) -> Iterator[None]:
    """Hold an exclusive lock on ``<temp folder>/facial-expression-stream-<name>.lock`` (``fcntl.flock``),
    so that processes starting together on the same weights (the server and ``annotate``, an archive's
    Ray workers) convert once, not once each (seconds of CPU and about 1 GB of memory each). Where the
    lock cannot be had (no ``fcntl``, a lock file of another user), the conversion goes ahead unlocked."""
    try:
        import fcntl

        descriptor = os.open(Path(tempfile.gettempdir()) / f"facial-expression-stream-{name}.lock",
                             os.O_RDWR | os.O_CREAT, 0o666)
    except (ImportError, OSError) as exc:
        log.info("converting without a lock: %s", exc)
        yield
        return
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info("another process is converting the same weights to LiteRT: waiting for it")
            fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)  # releases the lock


def _write_cache(folder: Path, name: str, stem: str, content: bytes, remove_stale: bool = True) -> None:
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


class _LiteRTRunner:
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


def _as_face_batch(faces: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
    if not isinstance(faces, np.ndarray):
        try:
            faces = np.stack([np.asarray(f) for f in faces]) if len(faces) else np.zeros(
                (0, INPUT_SIZE, INPUT_SIZE), np.uint8)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"faces must be a (N, {INPUT_SIZE}, {INPUT_SIZE}) array: {exc}") from exc
    if faces.dtype != np.uint8:
        raise TypeError(f"faces must be uint8 grayscale in [0, 255], got dtype {faces.dtype}")
    if faces.ndim != 3 or faces.shape[1:] != (INPUT_SIZE, INPUT_SIZE):
        raise ValueError(f"faces must have shape (N, {INPUT_SIZE}, {INPUT_SIZE}), got {faces.shape}")
    return faces
