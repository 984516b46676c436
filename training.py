"""What the two training paths share: ``train.ipynb`` (Keras on TensorFlow, ``tf.data``) and
``tools/train_jax.py`` (Keras on JAX, NumPy batches, for a GPU machine without TensorFlow).

- ``make_augmentation``: the random transformations, as Keras preprocessing layers;
- ``mix_up``: mixup of a batch of faces and their targets;
- teachers: soft labels of trained networks on the training split (``write_soft_labels``,
  ``read_teachers``), kept as small files under ``docs/teachers/`` so that they outlive any machine;
- ``DistillationLoss`` and ``LabelAccuracy``: the loss and metric of a student trained on the labels and
  on the teachers' soft labels at once;
- run folders: ``check_run_folder`` (start, resume or only export; never a finished run deleted unasked)
  and ``read_history`` (the per-epoch ``history.csv`` of a run, resumed or not).

Importing this module imports Keras: set ``KERAS_BACKEND`` first where it matters.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import shutil
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import keras
import numpy as np

from faces import EMOTIONS_LIST

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent

#: Where the teachers' soft labels are committed: ``<name>.npz`` plus ``<name>.json`` (its figures).
TEACHERS_DIR = ROOT / "docs" / "teachers"

AUGMENTATIONS = ("none", "standard", "strong")


def make_augmentation(strength: str) -> keras.Sequential | None:
    """Random transformations of float32 image batches ``(N, 48, 48, 1)`` in [0, 255], as Keras
    preprocessing layers (active only in training), usable in ``tf.data`` or inside a model.

    Args:
        strength: ``"standard"``: horizontal flips, shifts up to 10% of the side, rotations up to
            0.03 turns (10.8 degrees), zooms up to 10%; ``"strong"``: shifts 15%, rotations 0.04 turns,
            zooms 20%, plus contrast changes up to 30% and Random Erasing (Zhong et al. 2020,
            arXiv:1708.04896: one rectangle of 2-20% of the face replaced by noise, half of the faces);
            ``"none"``: no augmentation.

    Returns:
        A ``keras.Sequential`` named ``"augment"``, or ``None`` for ``"none"``.

    Raises:
        ValueError: an unknown ``strength``.
    """
    if strength not in AUGMENTATIONS:
        raise ValueError(f"augmentation must be one of {AUGMENTATIONS}, not {strength!r}")
    if strength == "none":
        return None
    layers = keras.layers
    shift, turn, zoom = {"standard": (0.1, 0.03, 0.1), "strong": (0.15, 0.04, 0.2)}[strength]
    steps = [
        layers.RandomFlip("horizontal", dtype="float32"),
        layers.RandomTranslation(shift, shift, fill_mode="nearest", dtype="float32"),
        layers.RandomRotation(turn, fill_mode="nearest", dtype="float32"),
        layers.RandomZoom(zoom, fill_mode="nearest", dtype="float32"),
    ]
    if strength == "strong":
        steps += [layers.RandomContrast(0.3, value_range=(0, 255), dtype="float32"),
                  layers.RandomErasing(factor=(0.5, 0.5), scale=(0.02, 0.2), value_range=(0, 255),
                                       dtype="float32")]
    return keras.Sequential(steps, name="augment")


def mix_up(x: np.ndarray, y: np.ndarray, alpha: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Mixup (Zhang et al. 2018, arXiv:1710.09412): each sample becomes ``lam * itself + (1 - lam) * a
    partner`` from the same batch, images and targets alike, with ``lam ~ Beta(alpha, alpha)`` per sample.

    Args:
        x: float32 images ``(N, ...)``.
        y: float32 targets ``(N, K)`` (one-hot labels, optionally followed by teacher probabilities:
            both are mixed with the same weights, so each row still sums as before).
        alpha: the Beta distribution's parameter, > 0 (the recipes of Khaireddin & Chen 2021 and of
            LetheSec's ResNet18 use mixup with alpha 0.2 to 1).
        rng: the random generator (one per training run, for reproducible runs).

    Returns:
        ``(x, y)`` mixed, float32, same shapes.

    Raises:
        ValueError: ``alpha`` <= 0, ``y`` not 2-D, or ``x`` and ``y`` of different lengths.
    """
    if not alpha > 0:
        raise ValueError(f"mixup alpha must be > 0, not {alpha!r}")
    if np.ndim(y) != 2:
        raise ValueError(f"y must be 2-D targets (N, K) (one-hot labels, not class numbers), got shape {np.shape(y)}")
    if len(x) != len(y):
        raise ValueError(f"x and y must have the same length, got {len(x)} and {len(y)}")
    lam = rng.beta(alpha, alpha, size=len(x)).astype(np.float32)
    partner = rng.permutation(len(x))
    lam_x = lam.reshape((-1,) + (1,) * (x.ndim - 1))
    mixed_x = lam_x * x + (1 - lam_x) * x[partner]
    mixed_y = lam[:, None] * y + (1 - lam[:, None]) * y[partner]
    return mixed_x.astype(np.float32), mixed_y.astype(np.float32)


def soft_label_keys(paths: Sequence[str | os.PathLike]) -> list[str]:
    """The keys of soft labels: ``"<class>/<file name>"`` of each image path (its last two parts), so
    that they match wherever the data set lies."""
    return [f"{Path(p).parent.name}/{Path(p).name}" for p in paths]


def npz_path(path: str | os.PathLike) -> Path:
    """``path`` ending in ``.npz``: the suffix added, not substituted, so "half0.5" keeps its ".5"."""
    path = Path(path)
    return path if path.suffix == ".npz" else path.with_name(path.name + ".npz")


def _distributions(keys: Sequence[str], probabilities: np.ndarray, name: str) -> np.ndarray:
    probabilities = np.asarray(probabilities, dtype=np.float32)
    if probabilities.shape != (len(keys), len(EMOTIONS_LIST)):
        raise ValueError(f"{name} must be ({len(keys)}, {len(EMOTIONS_LIST)}), got {probabilities.shape}")
    if (probabilities < 0).any() or not np.allclose(probabilities.sum(axis=1), 1, atol=1e-3):
        raise ValueError(f"each row of {name} must be a probability distribution")
    return probabilities


def write_soft_labels(path: str | os.PathLike, keys: Sequence[str], probabilities: np.ndarray,
                      publictest: tuple[Sequence[str], np.ndarray] | None = None, **figures) -> Path:
    """Save a teacher's soft labels: ``<path>.npz`` (``.npz`` added unless ``path`` ends with it) holding
    ``keys`` (str ``(N,)``) and ``probabilities`` (float16 ``(N, 7)``, rows summing to 1 within float16
    rounding), and ``<path>.json`` with ``figures`` (how they were made: the network, its PublicTest
    accuracy, the views averaged ...).

    Args:
        path: the file to write, with or without ``.npz``; its folder is created.
        keys: the images, as ``soft_label_keys`` names them, in the rows' order.
        probabilities: ``(len(keys), 7)`` rows of probabilities.
        publictest: optionally the same views' probabilities on PublicTest, ``(test keys, (M, 7))``, stored as
            ``publictest_keys`` and ``publictest_probabilities`` (float16): what ``tools.choose_teachers``
            scores sets of teachers by where their networks are gone (``read_publictest``).
        figures: JSON-serialisable facts about the teacher, stored beside it.

    Raises:
        ValueError: ``probabilities`` is not ``(len(keys), 7)``, or has a row that is not a distribution
            (the same for ``publictest``).
        TypeError: ``figures`` that JSON cannot hold (checked before either file is written).
    """
    arrays = {"keys": np.asarray(keys, dtype=str),
              "probabilities": _distributions(keys, probabilities, "probabilities").astype(np.float16)}
    if publictest is not None:
        test_keys, test_probabilities = publictest
        arrays["publictest_keys"] = np.asarray(test_keys, dtype=str)
        arrays["publictest_probabilities"] = _distributions(
            test_keys, test_probabilities, "publictest probabilities").astype(np.float16)
    path = npz_path(path)
    description = json.dumps({"classes": list(EMOTIONS_LIST), **figures}, indent=2) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **arrays)
    path.with_suffix(".json").write_text(description)
    return path


def read_publictest(file: str | os.PathLike, keys: Sequence[str]) -> np.ndarray:
    """A teacher's stored PublicTest probabilities (``write_soft_labels``'s ``publictest``) for the images
    ``keys``: float32 ``(len(keys), 7)``.

    Args:
        file: a soft-label file, or a bare name looked up in ``TEACHERS_DIR`` (as ``read_teachers``).
        keys: PublicTest images as ``soft_label_keys`` names them, in the order wanted.

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file holds no PublicTest probabilities (teachers written before session 16 by
            ``tools.soft_labels``: score their networks instead), or not for every key (names the first).
    """
    path = _teacher_path(file)
    with np.load(path) as data:
        if "publictest_probabilities" not in data.files:
            raise ValueError(f"{path.name} holds no PublicTest probabilities: give its network's files instead")
        stored_keys, probabilities = data["publictest_keys"], data["publictest_probabilities"].astype(np.float32)
    return _rows(path, stored_keys, probabilities, keys, "PublicTest probabilities")


def _rows(path: Path, stored_keys: np.ndarray, probabilities: np.ndarray, keys: Sequence[str], what: str) -> np.ndarray:
    """The rows of ``probabilities`` (stored under ``stored_keys`` in ``path``) for ``keys``, in their order.

    Raises:
        ValueError: a key without a row (the count and the first named).
    """
    index = {key: i for i, key in enumerate(stored_keys.tolist())}
    missing = [key for key in keys if key not in index]
    if missing:
        raise ValueError(f"{path.name} has no {what} for {len(missing)} of the {len(keys)} images "
                         f"(first: {missing[0]}); it was made on another data set")
    return probabilities[[index[key] for key in keys]]


def _teacher_path(file: str | os.PathLike) -> Path:
    """The soft-label file ``file`` names: a path, or a bare name in ``TEACHERS_DIR``.

    Raises:
        FileNotFoundError: neither exists.
    """
    path = Path(file)
    if not path.exists() and path.parent == Path():  # a name: docs/teachers/<name>[.npz]
        path = npz_path(TEACHERS_DIR / path.name)
    if not path.is_file():
        raise FileNotFoundError(f"teacher file not found: {file}")
    return path


def read_teachers(files: Sequence[str | os.PathLike], keys: Sequence[str]) -> np.ndarray:
    """The teacher ensemble's soft labels for the images ``keys``: the mean of the teachers' probabilities.

    Args:
        files: ``.npz`` files written by ``write_soft_labels`` (a bare name, with or without ``.npz``, is looked up in
            ``TEACHERS_DIR``), at least one.
        keys: the images, as ``soft_label_keys`` names them, in the order wanted.

    Returns:
        float32 ``(len(keys), 7)``, rows summing to 1.

    Raises:
        ValueError: no file, or a file without soft labels for some of the keys (names the first).
        FileNotFoundError: a file does not exist.
    """
    if not files:
        raise ValueError("no teacher file given")
    total = np.zeros((len(keys), len(EMOTIONS_LIST)), dtype=np.float64)
    for file in files:
        path = _teacher_path(file)
        with np.load(path) as data:
            stored_keys, probabilities = data["keys"], data["probabilities"].astype(np.float64)
        total += _rows(path, stored_keys, probabilities, keys, "soft labels")
    ensemble = total / len(files)
    return (ensemble / ensemble.sum(axis=1, keepdims=True)).astype(np.float32)


class RunFolderError(Exception):
    """A run folder holds files that this run would overwrite, or a run it cannot continue."""


def check_run_folder(folder: str | os.PathLike, options: Mapping[str, object], epochs: int,
                     overwrite: bool = False, *, spell: Callable[[str], str] = str,
                     restart_hint: str = "pass --overwrite") -> str:
    """What a training run with ``options`` does in ``folder``, and the folder made ready for it.

    Returns:
        ``"resume"``: ``backup/`` holds an unfinished run with the same options, go on from its last
        epoch; ``"export"``: a finished run with the same options (no backup, as ``BackupAndRestore``
        leaves it when ``fit`` ends, ``best.weights.h5`` and ``epochs`` rows of ``history.csv``, or a run
        stopped during its export): train nothing, write its model files again; ``"fresh"``: train from
        the first epoch, ``options.json`` written, after deleting what an earlier run left when
        ``overwrite``, or when it holds nothing worth keeping (only ``options.json``, or the weights of a
        first epoch killed before its backup).

    Args:
        folder: the run folder (created when missing).
        options: JSON-serialisable values of everything that changes what is trained (architecture,
            schedule, seed ...), compared with the ``options.json`` of the run in ``folder``.
        epochs: the number of epochs of the run (of ``options``): a run with that many rows of history and
            no backup has finished.
        overwrite: delete another run's files (``options.json``, ``backup/``, ``best.weights.h5``,
            ``history.csv``) and start again.
        spell: how the messages name an option (``--seed`` on a command line, ``SEED`` in the notebook).
        restart_hint: how the messages say to set ``overwrite``.

    Raises:
        RunFolderError: unless ``overwrite``: ``folder`` holds a run with other options (each named with
            both values), a run's files without ``options.json``, an ``options.json`` that does not parse,
            or an unfinished run of two epochs or more whose backup is gone (it cannot be resumed).
    """
    folder = Path(folder)
    options = json.loads(json.dumps(options))  # as options.json will hold them: tuples as lists ...
    saved_file, backup, best = folder / "options.json", folder / "backup", folder / "best.weights.h5"
    history_csv = folder / "history.csv"
    if overwrite:
        if saved_file.exists() or backup.exists() or best.exists():
            log.info("deleting the previous run's files in %s to start again", folder)
        shutil.rmtree(backup, ignore_errors=True)
        for path in (saved_file, best, history_csv):  # the model files: replaced at the export
            path.unlink(missing_ok=True)
    try:
        saved = json.loads(saved_file.read_text()) if saved_file.is_file() else None
        if saved is not None and not isinstance(saved, dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError) as error:
        raise RunFolderError(f"cannot read {saved_file} ({error}): {restart_hint} to start again") from error
    if saved is None and (backup.exists() or best.exists()):
        raise RunFolderError(f"{folder} holds another run's files (no options.json): {restart_hint} to "
                             "delete them and start again, or choose another folder")
    done = len(read_history(history_csv).get("epoch", ()))
    if backup.exists() or (best.exists() and (done >= 2 or done >= epochs)):  # a run worth keeping
        differing = [f"{spell(name)} {saved.get(name)!r} (now {value!r})"
                     for name, value in options.items() if saved.get(name) != value]
        if differing:
            raise RunFolderError(f"{folder} holds a run with other options: {', '.join(differing)}; run it with "
                                 f"its own options, {restart_hint} to start again, or choose another folder")
        if backup.exists():
            return "resume"
        if done >= epochs:
            return "export"
        raise RunFolderError(f"{folder} holds {done} of {epochs} epochs and no backup/ to resume from: "
                             f"{restart_hint} to start again, or choose another folder")
    folder.mkdir(parents=True, exist_ok=True)
    best.unlink(missing_ok=True)  # at most a first epoch killed before its backup
    history_csv.unlink(missing_ok=True)  # CSVLogger appends
    saved_file.write_text(json.dumps(options, indent=1) + "\n")
    return "fresh"


def read_history(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """The columns of a ``CSVLogger`` file as float64 arrays of one row per epoch, in epoch order.

    A run killed after an epoch's row was written but before its backup repeats that epoch when it
    resumes; the last row of each epoch is kept. Empty dict when the file is missing or empty.
    """
    path = Path(path)
    if not path.is_file() or path.stat().st_size == 0:
        return {}
    with path.open(newline="") as f:
        rows = {int(float(row["epoch"])): row for row in csv.DictReader(f)}
    if not rows:
        return {}
    names = list(next(iter(rows.values())))
    return {name: np.array([_number(rows[epoch][name]) for epoch in sorted(rows)]) for name in names}


def _number(text: str | None) -> float:
    """A ``CSVLogger`` cell as a float: NaN for its "NA" (a metric missing from an epoch's logs)."""
    try:
        return float(text)
    except (TypeError, ValueError):
        return float("nan")


@keras.saving.register_keras_serializable(package="fer")
class DistillationLoss(keras.losses.Loss):
    """Knowledge distillation (Hinton, Vinyals & Dean 2015, arXiv:1503.02531) from soft labels:
    ``alpha * T**2 * KL(teacher_T || student_T) + (1 - alpha) * cross-entropy(labels, student)``,
    where ``p_T`` is a distribution softened by the temperature ``T`` (``softmax(log p / T)``) and the
    factor ``T**2`` keeps the soft term's gradients the size of the hard term's, as in the paper.

    ``y_true`` is ``(N, 2 * C)``: the (possibly smoothed or mixed) one-hot labels, then the teacher
    ensemble's probabilities; ``y_pred`` is the student's probabilities ``(N, C)`` (the model's softmax
    output: its log is the logits up to a constant, so no logits output is needed). Where ``y_true``
    is only ``(N, C)`` (validation data, without teachers) the loss is the cross-entropy alone.

    Args:
        alpha: weight of the distillation term, in [0, 1]; 0 is plain cross-entropy.
        temperature: ``T`` > 0 (Hinton et al. used 1 to 20; 4 is common for small image classifiers).
        label_smoothing: of the cross-entropy term, in [0, 1).
        num_classes: ``C``.

    Raises:
        ValueError: an argument out of its range.
    """

    def __init__(self, alpha: float = 0.5, temperature: float = 4.0, label_smoothing: float = 0.0,
                 num_classes: int = len(EMOTIONS_LIST), name: str = "distillation", **kwargs) -> None:
        if not 0 <= alpha <= 1:
            raise ValueError(f"alpha must be in [0, 1], not {alpha!r}")
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, not {temperature!r}")
        if not 0 <= label_smoothing < 1:
            raise ValueError(f"label_smoothing must be in [0, 1), not {label_smoothing!r}")
        super().__init__(name=name, **kwargs)
        self.alpha, self.temperature = float(alpha), float(temperature)
        self.label_smoothing, self.num_classes = float(label_smoothing), int(num_classes)

    def call(self, y_true, y_pred):
        ops, c = keras.ops, self.num_classes
        y_pred = ops.cast(y_pred, "float32")
        y_true = ops.cast(y_true, "float32")
        cross_entropy = keras.losses.categorical_crossentropy(
            y_true[:, :c], y_pred, label_smoothing=self.label_smoothing)
        if y_true.shape[-1] == c or self.alpha == 0:
            return cross_entropy
        return self.alpha * self.distillation_term(y_true[:, c:], y_pred) + (1 - self.alpha) * cross_entropy

    def distillation_term(self, teacher, y_pred):
        """``T**2 * KL(teacher_T || student_T)`` per sample, ``(N,)`` float32."""
        ops, t, eps = keras.ops, self.temperature, 1e-7
        log_student = ops.log_softmax(ops.log(ops.clip(y_pred, eps, 1.0)) / t, axis=-1)
        log_teacher = ops.log_softmax(ops.log(ops.clip(teacher, eps, 1.0)) / t, axis=-1)
        return t * t * ops.sum(ops.exp(log_teacher) * (log_teacher - log_student), axis=-1)

    def get_config(self) -> dict:
        return {**super().get_config(), "alpha": self.alpha, "temperature": self.temperature,
                "label_smoothing": self.label_smoothing, "num_classes": self.num_classes}


def _label_accuracy(y_true, y_pred):
    ops = keras.ops
    labels = y_true[:, :y_pred.shape[-1]]
    return ops.cast(ops.equal(ops.argmax(labels, axis=-1), ops.argmax(y_pred, axis=-1)), "float32")


class LabelAccuracy(keras.metrics.MeanMetricWrapper):
    """Accuracy against the label columns of ``y_true`` (its first ``C`` columns, the argmax of mixed
    labels under mixup), so that it reads the same with and without teacher columns; named
    ``"accuracy"`` like Keras's, which the notebook's history and plots use."""

    def __init__(self, name: str = "accuracy", dtype=None) -> None:
        super().__init__(_label_accuracy, name=name, dtype=dtype)
