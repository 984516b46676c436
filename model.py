"""The served facial-expression classifier: ``FacialExpressionModel`` (the exported files loaded, run by
LiteRT or Keras) and the classification step of the frame path (``classify_faces``: boxes of a frame in,
``Face`` records out). The networks' architectures live in ``networks``, the LiteRT conversion and its cache
in ``runtimes``, the training data in ``datasets``; their public names are also importable from here.

Everything the network needs besides the 48x48 grayscale crop lives inside the
network itself (the 1/255 rescaling is its first layer), so the training
notebook, the stream and any other caller share one preprocessing path:
give ``FacialExpressionModel.predict_proba`` uint8 crops, get probabilities.
Serving never imports Keras or TensorFlow once the LiteRT conversion is cached (see
``FacialExpressionModel``); building and training models does.
"""

from __future__ import annotations

import functools
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from checks import check_number
from datasets import FER_DIR, INPUT_SIZE, fer2013_files, load_fer2013_split
from faces import EMOTIONS_LIST, Face, crop_faces, normalize_lighting
from native import quiet_stderr
from networks import ARCHITECTURES, as_face_batch, import_keras, make_model, recalibrate_batch_norm
from runtimes import (
    LITERT_THREADS,
    RUNTIMES,
    LiteRTRunner,
    ModelLoadError,
    cache_folders,
    cache_name,
    conversion_lock,
    convert_to_litert,
    model_key,
    shipped_full_int8,
    user_cache_dir,
    write_cache,
)

if TYPE_CHECKING:  # Keras (and with it TensorFlow) is imported only where a function needs it
    import keras

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent

#: The shipped model: the architecture (Keras JSON) and the weights (Keras HDF5); train.ipynb exports one network,
#: tools.ensemble joins several (the shipped files hold two).
MODEL_JSON = ROOT / "model.json"
MODEL_WEIGHTS = ROOT / "model_weights.h5"

__all__ = ["ARCHITECTURES", "EMOTIONS_LIST", "FER_DIR", "INPUT_SIZE", "LITERT_THREADS", "RUNTIMES",
           "FacialExpressionModel", "ModelLoadError", "classify_faces", "default_model", "fer2013_files",
           "load_fer2013_split", "make_model", "recalibrate_batch_norm", "user_cache_dir"]

#: Inputs per forward pass in ``predict_proba`` (faces times test-time views); larger batches are split.
MAX_BATCH = 256

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
        threads = check_number(threads, "threads", integer=True, minimum=1)
        shift_tta = check_number(shift_tta, "shift_tta (pixels)", integer=True, minimum=0, maximum=INPUT_SIZE // 4 - 1)
        self.flip_tta, self.runtime, self.shift_tta = flip_tta, runtime, shift_tta
        self._json_path, self._weights_path = Path(model_json_file), Path(model_weights_file)
        for path in (self._json_path, self._weights_path):
            if not path.is_file():
                raise FileNotFoundError(f"model file not found: {path}")
        self._model: keras.Model | None = None
        self._interpreter: LiteRTRunner | None = None
        #: the LiteRT model's quantization: "full int8" (``runtimes.full_int8_name`` beside the weights) or
        #: "dynamic-range int8" (converted here and cached); None under the Keras runtime
        self.litert_quantization: str | None = None
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

    def _litert_runner(self, threads: int) -> LiteRTRunner:
        """The LiteRT model of the two files, from its cache when one can be read and loaded, else
        converted and cached (see the class docstring); one process at a time converts the same files."""
        key = model_key(self._json_path, self._weights_path)
        shipped = shipped_full_int8(self._weights_path, key)
        if shipped is not None:  # a full-int8 conversion made where the training faces are, shipped beside them
            try:
                runner = LiteRTRunner(shipped.read_bytes(), threads)
                self.litert_quantization = "full int8"
                return runner
            except (OSError, ModelLoadError) as exc:
                log.warning("the full-int8 conversion %s cannot be used (%s): converting", shipped, exc)
        self.litert_quantization = "dynamic-range int8"
        name = cache_name(self._weights_path, key)
        runner = self._cached_runner(name, threads, warn=True)
        if runner is not None:
            return runner
        with conversion_lock(name):
            runner = self._cached_runner(name, threads, warn=False)  # converted by another process meanwhile
            if runner is not None:
                return runner
            content = convert_to_litert(self.keras_model)
            runner = LiteRTRunner(content, threads)
            for folder in cache_folders(self._weights_path.parent):
                try:  # stale conversions removed beside the weights only: the user's folder serves every install
                    write_cache(folder, name, self._weights_path.stem, content,
                                 remove_stale=folder == self._weights_path.parent)
                    break
                except OSError as exc:
                    log.warning("cannot cache the LiteRT conversion in %s (%s)", folder, exc)
            else:
                log.warning("the LiteRT conversion of %s is not cached: converting on every start",
                            self._weights_path)
        return runner

    def _cached_runner(self, name: str, threads: int, warn: bool) -> LiteRTRunner | None:
        """The cached conversion ``name`` from the first cache folder that has a usable one, else None."""
        for folder in cache_folders(self._weights_path.parent):
            cache = folder / name
            try:
                return LiteRTRunner(cache.read_bytes(), threads)
            except FileNotFoundError:
                continue
            except (OSError, ModelLoadError) as exc:  # unreadable, or cut short: not used, and replaced
                if warn:
                    log.warning("the cached LiteRT conversion %s cannot be used: %s", cache, exc)
        return None

    @property
    def views(self) -> int:
        """Forward passes per face: 1, times 2 with ``flip_tta``, times 5 with ``shift_tta``."""
        return (5 if self.shift_tta else 1) * (2 if self.flip_tta else 1)

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
        faces = as_face_batch(faces)
        if len(faces) == 0:
            return np.zeros((0, len(EMOTIONS_LIST)), dtype=np.float32)
        x = faces.astype(np.float32)[..., np.newaxis]
        chunk = max(1, MAX_BATCH // self.views)  # at most MAX_BATCH inputs per forward pass, views included
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
    cut with its eyes level (``faces.crop_faces``); ``None`` or NaN: cut as it is. A crop darker or flatter
    than the training faces is lifted to their range first (``faces.normalize_lighting``)."""
    boxes = np.asarray(boxes).reshape(-1, 4)
    chosen = np.ones(len(boxes), bool) if chosen is None else np.asarray(chosen, bool)
    rolls = None if rolls is None else np.asarray(rolls, dtype=np.float32).reshape(-1)[chosen]
    crops = normalize_lighting(crop_faces(gray, boxes[chosen], INPUT_SIZE, rolls))
    classified = iter(model.predict_proba(crops))
    scores = [None] * len(boxes) if scores is None else [None if np.isnan(s) else float(s) for s in scores]
    return [Face(tuple(int(v) for v in box), next(classified) if classify else None, score)
            for box, score, classify in zip(boxes, scores, chosen, strict=True)]


def default_model(runtime: str = "litert") -> FacialExpressionModel:
    """The shipped model (``MODEL_JSON`` + ``MODEL_WEIGHTS``, flip TTA) on ``runtime`` (one of ``RUNTIMES``),
    loaded once per process and runtime.

    Raises:
        ValueError: an unknown runtime; and ``FacialExpressionModel``'s errors.
    """
    return cached_model(MODEL_JSON, MODEL_WEIGHTS, runtime)


def cached_model(model_json_file: str | os.PathLike, model_weights_file: str | os.PathLike,
                 runtime: str = "litert") -> FacialExpressionModel:
    """``FacialExpressionModel(model_json_file, model_weights_file, runtime=runtime)`` (flip TTA), loaded once
    per process, files (by their resolved paths) and runtime.

    Raises:
        ``FacialExpressionModel``'s errors (not cached: a later call tries again).
    """
    return _cached_model(str(Path(model_json_file).resolve()), str(Path(model_weights_file).resolve()), runtime)


@functools.cache
def _cached_model(model_json_file: str, model_weights_file: str, runtime: str) -> FacialExpressionModel:
    return FacialExpressionModel(model_json_file, model_weights_file, runtime=runtime)


def _load_keras_model(json_path: Path, weights_path: Path) -> keras.Model:
    """The Keras model of the two files, checked (see ``FacialExpressionModel``'s errors). TensorFlow's
    C++ start-up lines (CUDA probing, absl) are kept off stderr while it loads; errors are raised."""
    with quiet_stderr():
        keras = import_keras()
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


