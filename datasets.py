"""The training data: FER2013's images (Kaggle's folder layout) and the FER+ crowd votes on them.

- ``fer2013_files`` / ``load_fer2013_split``: one split's images and their original FER2013 labels;
- ``read_ferplus_votes`` / ``ferplus_labels`` (``load_ferplus_split`` with the faces): the ten FER+ votes
  of each image, as the seven-class vote distribution the network is trained on, the crowd's majority it is
  scored against, and which images the FER+ protocol leaves out (``unknown`` or not-a-face won the vote);
- ``ferplus_scores``: the figures reported everywhere (crowd-majority accuracy, per-class recall, the
  confusion matrix, crowd-neutral faces called sad).

NumPy and OpenCV only: no Keras.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from faces import EMOTIONS_LIST

ROOT = Path(__file__).resolve().parent

#: FER2013 (Kaggle's image layout: ``train/<class>/*.jpg``, ``test/<class>/*.jpg``) where the tools look
#: for it unless given ``--data``: ``data/fer2013`` in the project, where README's "Retrain" unpacks it,
#: else ``../shared/fer2013`` beside the project (the development machines' copy) when only that exists.
FER_DIR = next((d for d in (ROOT / "data" / "fer2013", ROOT.parent / "shared" / "fer2013") if d.is_dir()),
               ROOT / "data" / "fer2013")

#: Side of the square grayscale face crop, in pixels (FER2013's size).
INPUT_SIZE = 48

#: The columns of FER+'s ``fer2013new.csv`` (microsoft/FERPlus), in its order: eight emotions, then
#: ``unknown`` and ``NF`` (not a face).
FERPLUS_COLUMNS = ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt",
                   "unknown", "NF")

#: The FER+ column of each class of ``EMOTIONS_LIST`` (FER+'s ``contempt`` has no class here).
FERPLUS_NAMES = {"angry": "anger", "disgust": "disgust", "fear": "fear", "happy": "happiness",
                 "neutral": "neutral", "sad": "sadness", "surprise": "surprise"}

#: How a user gets the votes (named by every error about them).
FERPLUS_SOURCE = ("the FER+ votes come from fer2013new.csv of github.com/microsoft/FERPlus (MIT licence), one row "
                  "per image as <data>/ferplus.csv with a 'file' column (<split>/<class>/<image>.jpg) and the "
                  f"columns {', '.join(FERPLUS_COLUMNS)}; LABELS='fer2013' trains on FER2013's own labels without them")


def fer2013_files(folder: str | os.PathLike) -> list[tuple[Path, int]]:
    """``(path, label)`` of every image of one FER2013 split in the Kaggle layout, ``folder/<class>/*.jpg``:
    class by class in the order of ``EMOTIONS_LIST`` (the label is the index into it), each class's files
    in sorted order. This is the order of ``load_fer2013_split`` and of the teachers' soft labels
    (``training.soft_label_keys``).

    Raises:
        FileNotFoundError: no ``*.jpg`` under ``folder/<class>/``.
    """
    files = [(path, label) for label, name in enumerate(EMOTIONS_LIST)
             for path in sorted((Path(folder) / name).glob("*.jpg"))]
    if not files:
        raise FileNotFoundError(f"no images under {folder}/<class>/*.jpg for the classes {EMOTIONS_LIST}")
    return files


def load_ferplus_split(folder: str | os.PathLike, csv_path: str | os.PathLike | None = None
                       ) -> tuple[np.ndarray, np.ndarray, FerPlusLabels]:
    """One split's faces, their FER2013 labels and their FER+ labels: ``load_fer2013_split`` and
    ``ferplus_labels`` on the same files, listed once.

    Args:
        folder: the split's folder (``<data>/test``).
        csv_path: the votes; default ``ferplus.csv`` in the folder above ``folder``.

    Raises:
        as ``load_fer2013_split`` and ``ferplus_labels``.
    """
    files = fer2013_files(folder)
    faces, labels = load_fer2013_split(folder, files)
    votes = Path(folder).parent / "ferplus.csv" if csv_path is None else csv_path
    return faces, labels, ferplus_labels([path for path, _ in files], votes, labels)


def load_fer2013_split(folder: str | os.PathLike, files: Sequence[tuple[Path, int]] | None = None
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Read one FER2013 split in the Kaggle image layout, ``folder/<class>/*.jpg``.

    Args:
        folder: the split's folder (e.g. ``data/fer2013/test``), holding one sub-folder per name
            of ``EMOTIONS_LIST``; images are decoded by OpenCV as the app decodes frames.
        files: ``fer2013_files(folder)`` when the caller has listed it already.

    Returns:
        uint8 faces ``(N, 48, 48)`` and int64 labels ``(N,)`` (indices into ``EMOTIONS_LIST``), in the
        order of ``fer2013_files``.

    Raises:
        FileNotFoundError: no ``*.jpg`` under ``folder/<class>/``.
        ValueError: an image cannot be decoded or is not 48x48.
    """
    import cv2  # here, so that reading the votes does not need OpenCV

    faces, labels = [], []
    for path, label in fer2013_files(folder) if files is None else files:
        face = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        if face is None or face.shape != (INPUT_SIZE, INPUT_SIZE):
            raise ValueError(f"{path} is not a {INPUT_SIZE}x{INPUT_SIZE} image")
        faces.append(face)
        labels.append(label)
    return np.stack(faces), np.array(labels, dtype=np.int64)


def ferplus_key(path: str | os.PathLike) -> str:
    """The key of an image in ``ferplus.csv``: ``"<split>/<class>/<file name>"``, its path's last three parts."""
    return "/".join(Path(path).parts[-3:])


def read_ferplus_votes(csv_path: str | os.PathLike) -> dict[str, np.ndarray]:
    """The FER+ votes of every image listed in ``csv_path``.

    Args:
        csv_path: a CSV with a header row ``file`` + ``FERPLUS_COLUMNS`` (in any order; other columns
            ignored), ``file`` being ``<split>/<class>/<image>.jpg``.

    Returns:
        ``{file: votes}``, votes float64 ``(10,)`` in ``FERPLUS_COLUMNS`` order, each >= 0 (ten taggers
        an image; a few averaged counts are not whole).

    Raises:
        FileNotFoundError: no such file (the message says where the votes come from).
        ValueError: a missing column, or a count that is not a number >= 0 (the file and line named).
    """
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise FileNotFoundError(f"FER+ votes not found: {csv_path}; {FERPLUS_SOURCE}")
    votes = {}
    with csv_path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = [name for name in ("file", *FERPLUS_COLUMNS) if name not in (reader.fieldnames or ())]
        if missing:
            raise ValueError(f"{csv_path} is not a FER+ vote file: no column {', '.join(missing)}; {FERPLUS_SOURCE}")
        for line, row in enumerate(reader, start=2):
            try:
                counts = np.array([float(row[name]) for name in FERPLUS_COLUMNS])
            except (TypeError, ValueError) as exc:
                raise ValueError(f"{csv_path}, line {line}: a vote count is not a number ({exc})") from exc
            if not np.isfinite(counts).all() or (counts < 0).any():
                raise ValueError(f"{csv_path}, line {line}: vote counts must be numbers >= 0")
            votes[row["file"]] = counts
    return votes


@dataclass(frozen=True)
class FerPlusLabels:
    """The FER+ labels of a list of images (``ferplus_labels``), one row each, in the list's order.

    Attributes:
        distributions: float32 ``(N, 7)``: the votes for the classes of ``EMOTIONS_LIST`` divided by their
            sum (``contempt``, ``unknown`` and ``NF`` dropped), the training target; rows sum to 1, or are all
            0 where none of the seven got a vote.
        majority: int64 ``(N,)``: the crowd's majority, the index into ``EMOTIONS_LIST`` of the class with
            most votes; a tie goes to the image's FER2013 label when it is one of the tied classes, else to
            the first of them in ``EMOTIONS_LIST`` order.
        included: bool ``(N,)``: False where FER+'s protocol leaves the image out of training and scoring:
            ``unknown`` or ``NF`` got more votes than every emotion (contempt included), or none of the
            seven classes got a vote.
    """

    distributions: np.ndarray
    majority: np.ndarray
    included: np.ndarray


def ferplus_labels(paths: Sequence[str | os.PathLike], csv_path: str | os.PathLike,
                   original: Sequence[int] | np.ndarray | None = None) -> FerPlusLabels:
    """The FER+ labels of FER2013 images (see ``FerPlusLabels``).

    Args:
        paths: the images, ``.../<split>/<class>/<image>.jpg`` (as ``fer2013_files`` lists them).
        csv_path: the votes (``read_ferplus_votes``), e.g. ``<data>/ferplus.csv``.
        original: the images' FER2013 labels (indices into ``EMOTIONS_LIST``), for breaking ties of the
            majority; default: each path's class folder.

    Raises:
        FileNotFoundError, ValueError: as ``read_ferplus_votes``; ValueError also when an image has no
            row (the count and the first named: the votes were made for another copy of FER2013).
    """
    votes = read_ferplus_votes(csv_path)
    keys = [ferplus_key(path) for path in paths]
    missing = [key for key in keys if key not in votes]
    if missing:
        raise ValueError(f"{csv_path} has no votes for {len(missing)} of the {len(keys)} images (first: "
                         f"{missing[0]}): it does not match this copy of FER2013; {FERPLUS_SOURCE}")
    table = np.array([votes[key] for key in keys], dtype=np.float64).reshape(-1, len(FERPLUS_COLUMNS))
    seven = table[:, [FERPLUS_COLUMNS.index(FERPLUS_NAMES[name]) for name in EMOTIONS_LIST]]
    totals = seven.sum(axis=1, keepdims=True)
    distributions = np.divide(seven, totals, out=np.zeros_like(seven), where=totals > 0).astype(np.float32)
    emotions = table[:, :FERPLUS_COLUMNS.index("unknown")].max(axis=1)
    included = (table[:, FERPLUS_COLUMNS.index("unknown"):].max(axis=1) <= emotions) & (totals[:, 0] > 0)
    if original is None:
        original = [EMOTIONS_LIST.index(Path(path).parent.name) if Path(path).parent.name in EMOTIONS_LIST else -1
                    for path in paths]
    original = np.asarray(original, dtype=np.int64).reshape(-1)
    top = seven == seven.max(axis=1, keepdims=True)
    majority = top.argmax(axis=1)
    rows = np.arange(len(keys))
    keep_original = (original >= 0) & top[rows, np.clip(original, 0, len(EMOTIONS_LIST) - 1)]
    majority = np.where(keep_original, original, majority).astype(np.int64)
    return FerPlusLabels(distributions, majority, included)


def ferplus_scores(probabilities: np.ndarray, majority: np.ndarray, original: np.ndarray | None = None) -> dict:
    """The figures of a classifier against the FER+ crowd, as the README, the notebook and
    ``benchmarks.evaluate`` report them.

    Args:
        probabilities: float ``(N, 7)``, the classifier's outputs over ``EMOTIONS_LIST`` (already restricted
            to the images FER+ keeps: ``FerPlusLabels.included``).
        majority: int ``(N,)``, the crowd's majority (``FerPlusLabels.majority``).
        original: int ``(N,)``, FER2013's labels of the same images, or None.

    Returns:
        ``ferplus_accuracy`` (the share whose top class is the crowd's majority), ``per_class_recall``
        (against the crowd), ``confusion_matrix`` (counts, rows the crowd's class, columns the predicted one,
        both in ``EMOTIONS_LIST`` order), ``neutral_called_sad`` (the share of crowd-neutral faces whose top
        class is sad), ``images``, and, with ``original``, ``fer2013_accuracy`` (against the original labels).

    Raises:
        ValueError: shapes that do not match.
    """
    probabilities = np.asarray(probabilities)
    majority = np.asarray(majority).reshape(-1)
    classes = len(EMOTIONS_LIST)
    if probabilities.shape != (len(majority), classes):
        raise ValueError(f"probabilities must be ({len(majority)}, {classes}), got {probabilities.shape}")
    predicted = probabilities.argmax(axis=1)
    counts = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(counts, (majority, predicted), 1)
    rows = np.maximum(counts.sum(axis=1), 1)
    neutral, sad = EMOTIONS_LIST.index("neutral"), EMOTIONS_LIST.index("sad")
    scores = {
        "images": int(len(majority)),
        "ferplus_accuracy": round(float(np.trace(counts) / max(counts.sum(), 1)), 4),
        "per_class_recall": {name: round(float(counts[i, i] / rows[i]), 4) for i, name in enumerate(EMOTIONS_LIST)},
        "neutral_called_sad": round(float(counts[neutral, sad] / rows[neutral]), 4),
        "confusion_matrix": counts.tolist(),
    }
    if original is not None:
        original = np.asarray(original).reshape(-1)
        if len(original) != len(majority):
            raise ValueError(f"original must have {len(majority)} labels, got {len(original)}")
        scores["fer2013_accuracy"] = round(float((predicted == original).mean()) if len(original) else 0.0, 4)
    return scores
