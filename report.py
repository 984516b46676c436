"""One video's report: the annotated video, a CSV of every face in every frame, a plot over time, and its
summary row (``annotate_video``; ``annotate_one`` runs it as one task of an archive: see ``archive.py``).

One video runs the stream's frame path, unpaced: ``camera.VideoCamera`` (every frame, no loop),
``analysis.FaceAnalyzer`` (full-frame searches in line, so a report does not depend on timing),
``drawing``. Every file is written under a temporary name (``partial_path``:
``.<name>.<pid>-<random>.partial<suffix>``, made with the permissions of any new file: 0644 under the usual
umask 022) and renamed into place only when whole; whatever stops a video (an error, Ctrl-C, SIGTERM)
removes its temporary files.
"""

from __future__ import annotations

import collections
import csv
import fractions
import json
import logging
import math
import os
import secrets
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from analysis import FaceAnalyzer
from camera import SourceError, VideoCamera
from checks import check_number
from drawing import EMOTION_COLORS, draw_faces
from faces import EMOTIONS_LIST, Face
from model import FacialExpressionModel, cached_model, default_model
from settings import AnalysisSettings

log = logging.getLogger(__name__)

CSV_COLUMNS = ("frame", "time_s", "face_id", "x", "y", "w", "h", "score", *EMOTIONS_LIST, "emotion")

#: The summary's columns: one row per video (``video``: its file name; ``report``: the name its report files
#: start with, which tells apart videos of the same file name; ``share_<emotion>``: that emotion's share of
#: the face-frames whose label it was; ``dominant_by_face``: ``id:emotion`` of each face id, most seen first).
SUMMARY_COLUMNS = ("video", "report", "status", "frames", "duration_s", "face_frames", "distinct_faces",
                   *(f"share_{name}" for name in EMOTIONS_LIST), "dominant_by_face")

#: Faces whose timelines the plot draws, the most seen first.
PLOTTED_FACES = 4

#: The mark of a temporary file: ``.<final name>.<pid>-<random>.partial<suffix>``.
PARTIAL_MARK = ".partial"


def partial_path(path: Path) -> Path:
    """A temporary name for ``path``, beside it, that no other process or call uses (its PID and 8 random
    hex digits), ending with ``path``'s suffix (OpenCV's writer and Matplotlib choose the format by it)."""
    return path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}{PARTIAL_MARK}{path.suffix}")


def is_partial(path: Path) -> bool:
    """Whether ``path`` is a temporary file of a report (``partial_path``)."""
    return path.name.startswith(".") and PARTIAL_MARK in path.name


@dataclass(frozen=True)
class Options:
    """How each video of an archive is analysed (``annotate_one``): ``settings`` (``settings.AnalysisSettings``:
    the detector, its least score, detect-every, smoothing and the model's runtime, as for the live streams)
    and the frames analysed (``every``, ``start``, ``end``: see ``annotate_video``); ``model_files``: the
    expression model's ``(model.json, weights.h5)`` paths, ``None`` for the shipped model."""

    settings: AnalysisSettings = field(default_factory=AnalysisSettings)
    every: int = 1
    start: float = 0.0
    end: float | None = None
    model_files: tuple[Path, Path] | None = None


@dataclass
class VideoSummary:
    """A video's row of the summary (``SUMMARY_COLUMNS``)."""

    video: str
    report: str = ""
    status: str = "ok"
    frames: int = 0
    duration_s: float = 0.0
    face_frames: int = 0
    distinct_faces: int = 0
    shares: dict[str, float] = field(default_factory=dict)
    dominant_by_face: list[tuple[int, str]] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        """Whether the video failed (its status is ``"failed: reason"``)."""
        return self.status.startswith("failed")

    def row(self) -> list:
        return [self.video, self.report, self.status, self.frames, f"{self.duration_s:.3f}", self.face_frames,
                self.distinct_faces, *(f"{self.shares.get(name, 0.0):.4f}" for name in EMOTIONS_LIST),
                ";".join(f"{face_id}:{emotion}" for face_id, emotion in self.dominant_by_face)]


def csv_row(index: int, seconds: float, face: Face) -> list:
    """The report CSV's row (``CSV_COLUMNS``) of one tracked face of frame ``index`` at ``seconds``
    (``score`` empty where the detector gives none)."""
    score = "" if face.score is None else f"{face.score:.4f}"
    return [index, f"{seconds:.3f}", face.id, *face.box, score, *(f"{p:.4f}" for p in face.probabilities),
            face.emotion]


#: The annotated video's time unit (s): 1/90,000, MPEG's clock, fine enough for any frame time.
TIME_BASE = fractions.Fraction(1, 90_000)


class AnnotatedVideoWriter:
    """The annotated copy of a video: H.264 (browsers play it) with the source's audio, through PyAV (whose
    wheel ships FFmpeg with libx264); without PyAV, MPEG-4 Part 2 (``mp4v``) through OpenCV, with a warning.

    Args:
        path: the ``.mp4`` to write.
        fps: frames per second of the frames written (their rate; each frame's own time, where ``write``
            is given one, places it: variable-frame-rate video keeps its timing, except through OpenCV).
        size: ``(width, height)`` of the frames (H.264 needs even sides: an odd last row or column is cut).
        audio_from: a video whose audio is copied in (the whole source, written frame for frame), or None.
    """

    def __init__(self, path: Path, fps: float, size: tuple[int, int], audio_from: Path | None = None) -> None:
        self.size = (size[0] - size[0] % 2, size[1] - size[1] % 2)
        self._count = 0
        try:
            import av
        except ImportError:
            av = None
        if av is None or "libx264" not in av.codecs_available:
            log.warning("PyAV with libx264 is not installed (pip install av): writing %s as mp4v, which not "
                        "every browser plays, without audio", path.name)
            self._av, self._writer = None, cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
            return
        self._av, self._rate = av, fractions.Fraction(fps).limit_denominator(1001)
        self._container = av.open(str(path), "w", format="mp4")
        self._video = self._container.add_stream("libx264", rate=self._rate,
                                                 options={"crf": "23", "preset": "veryfast"})
        self._video.width, self._video.height, self._video.pix_fmt = *self.size, "yuv420p"
        self._video.codec_context.time_base = TIME_BASE  # frames placed by their own times
        self._first_time, self._last_pts = None, -1
        self._source = self._audio = self._copy = None  # streams are all added before the first packet
        if audio_from is not None:
            self._source = av.open(str(audio_from))
            self._audio = next((s for s in self._source.streams if s.type == "audio"), None)
            try:
                self._copy = None if self._audio is None else self._container.add_stream_from_template(self._audio)
            except ValueError as exc:  # an audio codec MP4 cannot hold (WMA, u-law): the picture alone
                log.warning("%s: its audio (%s) cannot go into MP4, left out: %s", audio_from.name,
                            self._audio.codec_context.name, exc)
                self._copy = None
            if self._copy is None:
                self._source.close()
                self._source = None

    def write(self, frame: np.ndarray, time: float | None = None) -> None:
        """Append a BGR uint8 frame of the size given, shown at ``time`` (seconds; the first frame written
        is at 0) or, without one, one frame period after the previous frame."""
        if self._av is None:
            self._writer.write(frame)
            return
        picture = self._av.VideoFrame.from_ndarray(np.ascontiguousarray(frame[:self.size[1], :self.size[0]]),
                                                   format="bgr24")
        if time is None:
            time = (self._first_time or 0.0) + self._count / self._rate
        if self._first_time is None:
            self._first_time = time
        # the encoder needs increasing timestamps: equal or earlier ones move one tick on
        picture.pts = self._last_pts = max(round((time - self._first_time) / TIME_BASE), self._last_pts + 1)
        picture.time_base = TIME_BASE
        self._count += 1
        for packet in self._video.encode(picture):
            self._container.mux(packet)

    def close(self, complete: bool = True) -> None:
        """Finish the file (and copy the audio in); with ``complete`` false, only close it (it is thrown
        away)."""
        if self._av is None:
            self._writer.release()
            return
        try:
            if complete:
                for packet in self._video.encode():
                    self._container.mux(packet)
                if self._source is not None:
                    for packet in self._source.demux(self._audio):
                        if packet.dts is not None:
                            packet.stream = self._copy
                            self._container.mux(packet)
        finally:
            if self._source is not None:
                self._source.close()
            self._container.close()


def report_paths(output_dir: Path, name: str) -> dict[str, Path]:
    """The report files of a video named ``name`` (a file stem): the three reports and its summary row."""
    return {"video": output_dir / f"{name}_annotated.mp4", "csv": output_dir / f"{name}_faces.csv",
            "plot": output_dir / f"{name}_emotions.png", "summary": output_dir / f"{name}_summary.json"}


def annotate_video(video: str | Path, output_dir: str | Path, model: FacialExpressionModel,
                   settings: AnalysisSettings | None = None, progress: bool = True, every: int = 1,
                   start: float = 0.0, end: float | None = None,
                   name: str | None = None) -> tuple[dict[str, Path], VideoSummary]:
    """Annotate ``video`` and write ``<name>_annotated.mp4`` (H.264 with the source's audio when the whole
    video is analysed frame by frame; see ``AnnotatedVideoWriter``), ``<name>_faces.csv`` (one row per face per
    frame analysed: frame index, time in s, face id, box in pixels, detector score, the seven
    probabilities, the emotion) and ``<name>_emotions.png`` (the seven probabilities over time, smoothed as
    in the video, of each of the ``PLOTTED_FACES`` most seen faces: ``plot_emotions``), ``name`` being the
    file's stem by default. Each file is written under a temporary name and renamed when all three are
    complete, so a crash never leaves a report that looks whole.

    ``settings`` (``settings.AnalysisSettings``; default: its defaults) gives the detector, its least score,
    detect-every and the smoothing half-life (its ``runtime`` is ``model``'s business: the caller loads it).
    ``every``: analyse every this-many-th frame (an integer of at least 1; faces are tracked across the gaps);
    ``start``, ``end``: the part of the video analysed, in seconds.

    Returns:
        The paths of its files (``report_paths``: keyed ``"video"``, ``"csv"``, ``"plot"`` and ``"summary"``,
        the summary row's JSON) and the video's summary row.

    Raises:
        SourceError: the video cannot be opened or has no frame in the part asked for.
        ValueError, RuntimeError: an unknown or unavailable detector (see ``detectors.make_face_detector``),
            ``every`` below 1, or ``end`` not after ``start``.
    """
    video, output_dir = Path(video), Path(output_dir)
    every = check_number(every, "every", integer=True, minimum=1)
    if start < 0 or (end is not None and end <= start):
        raise ValueError(f"the part analysed must start at 0 s or later and end after it, not {start}-{end}")
    analyzer = FaceAnalyzer.from_settings(model, settings or AnalysisSettings())
    try:
        camera = VideoCamera(video, paced=False, loop=False)
    except BaseException:
        analyzer.close()
        raise
    output_dir.mkdir(parents=True, exist_ok=True)
    paths = report_paths(output_dir, name or video.stem)
    partial = {kind: partial_path(path) for kind, path in paths.items()}
    try:
        return _annotate_into(video, camera, analyzer, paths, partial, name or video.stem, every, start, end,
                              progress)
    finally:  # whatever stopped it (an error, Ctrl-C, SIGTERM), nothing half written stays behind
        for path in partial.values():
            path.unlink(missing_ok=True)


def _annotate_into(video: Path, camera: VideoCamera, analyzer: FaceAnalyzer, paths: dict[str, Path],
                   partial: dict[str, Path], name: str, every: int, start: float, end: float | None,
                   progress: bool) -> tuple[dict[str, Path], VideoSummary]:
    """``annotate_video``'s work: write the reports to ``partial``'s names and rename them to ``paths``'."""
    writer = None
    summary = VideoSummary(video.name, name)
    times, by_face = [], collections.defaultdict(list)  # face id -> [(time, probabilities)]
    labels: collections.Counter = collections.Counter()
    complete = False
    try:
        with partial["csv"].open("w", newline="") as csv_file:
            rows = csv.writer(csv_file)
            rows.writerow(CSV_COLUMNS)
            total = camera.frame_count and math.ceil(camera.frame_count / every)
            for captured in tqdm(camera.frames(), total=total, unit="frame", desc=video.name, leave=False,
                                 disable=not progress):
                if captured.time < start or captured.index % every:
                    continue
                if end is not None and captured.time >= end:
                    break
                frame = captured.frame
                faces = analyzer(frame, captured.time - times[-1] if times else every / camera.fps)
                if writer is None:  # the audio fits the picture only when every frame of the whole is written
                    whole = every == 1 and start == 0 and end is None
                    writer = AnnotatedVideoWriter(partial["video"], camera.fps / every,
                                                  (frame.shape[1], frame.shape[0]), video if whole else None)
                writer.write(draw_faces(frame, faces), captured.time)
                rows.writerows(csv_row(captured.index, captured.time, face) for face in faces)
                times.append(captured.time)
                for face in faces:
                    by_face[face.id].append((captured.time, face.probabilities))
                    labels[face.id, face.emotion] += 1
        complete = True
    finally:
        camera.release()
        analyzer.close()
        if writer is not None:
            writer.close(complete)
    if writer is None:
        raise SourceError(f"no frame could be read from {video.name} in the part asked for")
    plot_emotions(by_face, partial["plot"], title=video.name)
    summary.frames, summary.duration_s = len(times), times[-1] - times[0] + every / camera.fps
    summary.face_frames = sum(labels.values())
    summary.distinct_faces = len(by_face)
    emotions = collections.Counter()
    for (_, emotion), count in labels.items():
        emotions[emotion] += count
    if summary.face_frames:
        summary.shares = {name: emotions[name] / summary.face_frames for name in EMOTIONS_LIST}
    seen = sorted(by_face, key=lambda face_id: -len(by_face[face_id]))
    summary.dominant_by_face = [(face_id, max(EMOTIONS_LIST, key=lambda e: labels[face_id, e])) for face_id in seen]
    partial["summary"].write_text(json.dumps(asdict(summary)), encoding="utf-8")
    for kind in ("csv", "plot", "video", "summary"):  # the summary last: its presence marks a complete report
        os.replace(partial[kind], paths[kind])
    log.info("wrote %s, %s and %s", paths["video"], paths["csv"], paths["plot"])
    return paths, summary


def plot_emotions(by_face: dict[int, list], path: Path, title: str = "") -> None:
    """Save a plot of the emotions over time of the ``PLOTTED_FACES`` most seen faces, one panel each:
    ``by_face`` maps a face id to its ``(time in s, probabilities (7,))``, one per frame it was seen."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    faces = sorted(by_face, key=lambda face_id: -len(by_face[face_id]))[:PLOTTED_FACES] or [None]
    fig, axes = plt.subplots(len(faces), 1, figsize=(10, 1.2 + 2.2 * len(faces)), sharex=True, squeeze=False)
    for ax, face_id in zip(axes[:, 0], faces, strict=True):
        samples = by_face.get(face_id, [])
        times = np.array([t for t, _ in samples])
        probabilities = np.array([p for _, p in samples]).reshape(-1, len(EMOTIONS_LIST))
        for i, name in enumerate(EMOTIONS_LIST):
            b, g, r = EMOTION_COLORS[name]
            ax.plot(times, probabilities[:, i], ".", markersize=2, label=name, color=(r / 255, g / 255, b / 255))
        ax.set(ylabel="probability" if face_id is None else f"face {face_id}", ylim=(0, 1))
        ax.grid(alpha=0.3)
    axes[0, 0].set_title(title if faces != [None] else f"{title}: no face")
    axes[-1, 0].set_xlabel("time (s)")
    axes[0, 0].legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, markerscale=4)
    fig.tight_layout()
    fig.savefig(path, dpi=90, format="png")
    plt.close(fig)


def annotate_one(video: Path, name: str, output_dir: Path, options: Options, progress: bool = False) -> VideoSummary:
    """One video of an archive, as a task: its reports and summary row; a failure is the row's status
    (``"failed: reason"``), logged by the run that gathers the rows (``archive.annotate_archive``: a Ray worker's
    log is not the user's)."""
    try:
        model = (default_model(options.settings.runtime) if options.model_files is None
                 else cached_model(*options.model_files, runtime=options.settings.runtime))
        _, summary = annotate_video(video, output_dir, model, options.settings, progress=progress, every=options.every,
                                    start=options.start, end=options.end, name=name)
        return summary
    except Exception as exc:  # noqa: BLE001  (any failure of one video is that video's status)
        log.debug("cannot annotate %s", video, exc_info=True)
        return VideoSummary(video.name, name, status=f"failed: {exc or type(exc).__name__}")
