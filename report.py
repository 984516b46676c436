"""Offline video reports: the annotated video, a CSV of every face in every frame, a plot over time.

    python main.py annotate VIDEO [--output DIR] [--smoothing SECONDS]

The stream's frame path, unpaced: ``camera.VideoCamera`` (every frame, no loop), ``analysis.FaceAnalyzer``
(full-frame searches in line, so a report does not depend on timing), ``drawing``.
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from analysis import SMOOTHING_HALF_LIFE, FaceAnalyzer
from camera import SourceError, VideoCamera
from detection import DEFAULT_DETECTOR, DETECT_EVERY, MIN_SCORE, make_face_detector
from drawing import EMOTION_COLORS, draw_faces
from faces import EMOTIONS_LIST, Face
from model import FacialExpressionModel

log = logging.getLogger(__name__)

CSV_COLUMNS = ("frame", "time_s", "face_id", "x", "y", "w", "h", "score", *EMOTIONS_LIST, "emotion")


def csv_row(index: int, seconds: float, face: Face) -> list:
    """The report CSV's row (``CSV_COLUMNS``) of one tracked face of frame ``index`` at ``seconds``
    (``score`` empty where the detector gives none)."""
    score = "" if face.score is None else f"{face.score:.4f}"
    return [index, f"{seconds:.3f}", face.id, *face.box, score, *(f"{p:.4f}" for p in face.probabilities),
            face.emotion]


def annotate_video(video: str | Path, output_dir: str | Path, model: FacialExpressionModel,
                   smoothing_half_life: float = SMOOTHING_HALF_LIFE, progress: bool = True,
                   detector: str = DEFAULT_DETECTOR, detect_every: int = DETECT_EVERY,
                   min_score: float = MIN_SCORE) -> dict[str, Path]:
    """Annotate every frame of ``video`` and write ``<stem>_annotated.mp4``, ``<stem>_faces.csv`` (one row
    per face per frame: frame index, time in s, face id, box in pixels, detector score, the seven
    probabilities, the emotion) and ``<stem>_emotions.png`` (each emotion's mean probability over the
    faces, against time).

    ``detector`` is one of ``detection.DETECTORS`` and ``min_score`` its least confidence (see
    ``detection.make_face_detector``); ``detect_every`` as for ``detection.FaceFinder``.

    Returns:
        The three paths, keyed ``"video"``, ``"csv"``, ``"plot"``.

    Raises:
        SourceError: the video cannot be opened or has no frame.
        ValueError, RuntimeError: an unknown or unavailable detector (see ``detection.make_face_detector``).
    """
    video, output_dir = Path(video), Path(output_dir)
    analyzer = FaceAnalyzer(model, make_face_detector(detector, min_score), smoothing_half_life,
                            detect_every)
    camera = VideoCamera(video, paced=False, loop=False)
    output_dir.mkdir(parents=True, exist_ok=True)
    paths = {"video": output_dir / f"{video.stem}_annotated.mp4", "csv": output_dir / f"{video.stem}_faces.csv",
             "plot": output_dir / f"{video.stem}_emotions.png"}
    writer = None
    times, mean_probabilities = [], []
    try:
        with paths["csv"].open("w", newline="") as csv_file:
            rows = csv.writer(csv_file)
            rows.writerow(CSV_COLUMNS)
            # until the file ends: the container's frame count is only an estimate, used for the bar
            for captured in tqdm(camera.frames(), total=camera.frame_count, unit="frame", desc=video.name,
                                 disable=not progress):
                frame = captured.frame
                faces = analyzer(frame, 1.0 / camera.fps)
                if writer is None:
                    writer = cv2.VideoWriter(str(paths["video"]), cv2.VideoWriter_fourcc(*"mp4v"), camera.fps,
                                             (frame.shape[1], frame.shape[0]))
                writer.write(draw_faces(frame, faces))
                rows.writerows(csv_row(captured.index, captured.time, face) for face in faces)
                times.append(captured.time)
                mean_probabilities.append(np.mean([face.probabilities for face in faces], axis=0)
                                          if faces else np.full(len(EMOTIONS_LIST), np.nan))
    finally:
        camera.release()
        analyzer.close()
        if writer is not None:
            writer.release()
    if writer is None:
        raise SourceError(f"no frame could be read from {video.name}")
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
