"""Offline video reports: the annotated video, a CSV of every face in every frame, a plot over time.

    python main.py annotate VIDEO [--output DIR] [--smoothing SECONDS]

Uses the stream's per-frame chain (``camera.FrameAnnotator``) on every frame, unpaced.
"""

from __future__ import annotations

import csv
import itertools
import logging
import math
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from camera import (
    DETECT_EVERY,
    EMOTION_COLORS,
    FALLBACK_FPS,
    SMOOTHING_HALF_LIFE,
    FrameAnnotator,
    SourceError,
    make_face_detector,
)
from model import EMOTIONS_LIST, FacialExpressionModel

log = logging.getLogger(__name__)

CSV_COLUMNS = ("frame", "time_s", "face_id", "x", "y", "w", "h", *EMOTIONS_LIST, "emotion")


def annotate_video(video: str | Path, output_dir: str | Path, model: FacialExpressionModel,
                   smoothing_half_life: float = SMOOTHING_HALF_LIFE, progress: bool = True,
                   detector: str = "haar", detect_every: int = DETECT_EVERY) -> dict[str, Path]:
    """Annotate every frame of ``video`` and write ``<stem>_annotated.mp4``, ``<stem>_faces.csv`` (one row
    per face per frame: frame index, time in s, face id, box in pixels, the seven probabilities, the
    emotion) and ``<stem>_emotions.png`` (each emotion's mean probability over the faces, against time).

    ``detector`` is one of ``camera.DETECTORS``; ``detect_every`` as for ``camera.FrameAnnotator``.

    Returns:
        The three paths, keyed ``"video"``, ``"csv"``, ``"plot"``.

    Raises:
        SourceError: the video cannot be opened or has no frame.
        ValueError, RuntimeError: an unknown or unavailable detector (see ``camera.make_face_detector``).
    """
    video, output_dir = Path(video), Path(output_dir)
    annotator = FrameAnnotator(model, make_face_detector(detector), smoothing_half_life, detect_every)
    capture = cv2.VideoCapture(str(video))
    if not video.is_file() or not capture.isOpened():
        capture.release()
        raise SourceError(f"cannot open video {video}")
    fps = capture.get(cv2.CAP_PROP_FPS)
    fps = fps if math.isfinite(fps) and 1 <= fps <= 240 else FALLBACK_FPS
    total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    total = total if total > 0 else None
    output_dir.mkdir(parents=True, exist_ok=True)
    paths = {"video": output_dir / f"{video.stem}_annotated.mp4", "csv": output_dir / f"{video.stem}_faces.csv",
             "plot": output_dir / f"{video.stem}_emotions.png"}
    writer = None
    times, mean_probabilities = [], []
    try:
        with paths["csv"].open("w", newline="") as csv_file:
            rows = csv.writer(csv_file)
            rows.writerow(CSV_COLUMNS)
            # until read() fails: the container's frame count is only an estimate, used for the bar
            for index in tqdm(itertools.count(), total=total, unit="frame", desc=video.name, disable=not progress):
                ok, frame = capture.read()
                if not ok:
                    break
                faces = annotator(frame, 1.0 / fps)
                if writer is None:
                    writer = cv2.VideoWriter(str(paths["video"]), cv2.VideoWriter_fourcc(*"mp4v"), fps,
                                             (frame.shape[1], frame.shape[0]))
                writer.write(frame)
                seconds = index / fps
                for face in faces:
                    rows.writerow([index, f"{seconds:.3f}", face["id"], *face["box"],
                                   *(f"{face['probabilities'][name]:.4f}" for name in EMOTIONS_LIST), face["emotion"]])
                times.append(seconds)
                mean_probabilities.append(
                    np.mean([[f["probabilities"][n] for n in EMOTIONS_LIST] for f in faces], axis=0)
                    if faces else np.full(len(EMOTIONS_LIST), np.nan))
    finally:
        capture.release()
        if writer is not None:
            writer.release()
    if writer is None:
        raise SourceError(f"no frame could be read from {video}")
    plot_emotions(np.array(times), np.array(mean_probabilities), paths["plot"], title=video.name)
    log.info("wrote %s, %s and %s", *paths.values())
    return paths


def plot_emotions(times: np.ndarray, probabilities: np.ndarray, path: Path, title: str = "") -> None:
    """Save a plot of ``probabilities`` ``(frames, 7)`` (NaN where no face) against ``times`` (s)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 3.5))
    for i, name in enumerate(EMOTIONS_LIST):
        b, g, r = EMOTION_COLORS[name]
        ax.plot(times, probabilities[:, i], label=name, color=(r / 255, g / 255, b / 255), linewidth=1.2)
    ax.set(xlabel="time (s)", ylabel="mean probability over faces", ylim=(0, 1), title=title)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
