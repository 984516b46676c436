"""Offline video reports: the annotated video, a CSV of every face in every frame, a plot over time, and
for a whole archive a summary of every video.

    python main.py annotate PATH [PATH ...] [--output DIR] [--workers N | --address ADDR] [--every N]
                            [--start S] [--end S] [--force]

One video runs the stream's frame path, unpaced: ``camera.VideoCamera`` (every frame, no loop),
``analysis.FaceAnalyzer`` (full-frame searches in line, so a report does not depend on timing),
``drawing``. An archive (``annotate_archive``) is a list of videos, each one task that writes its own
reports: in this process, or on Ray (``--workers N``: a local Ray instance of N workers; ``--address``: an
existing cluster), an optional requirement (``pip install "ray[default]"``).

One run at a time writes to an output folder (``output_lock``, a ``filelock`` lock on
``<output>/.annotate.lock``): another waits or stops at once (``OutputLocked``, naming the first run's
process). Every file is written under a temporary name (``.<name>.<pid>-<random>.partial<suffix>``, made with
the permissions of any new file: 0644 under the usual umask 022) and renamed into place only when whole; an
interrupted run (Ctrl-C, SIGTERM: ``Interrupted``) removes its temporary files, and the next run, holding the
lock, removes any that a killed one left. A folder searched for videos never yields the output folder's files.
"""

from __future__ import annotations

import collections
import csv
import fractions
import hashlib
import json
import logging
import math
import os
import secrets
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from analysis import FaceAnalyzer
from camera import VIDEO_SUFFIXES, SourceError, VideoCamera
from checks import check_number
from drawing import EMOTION_COLORS, draw_faces
from faces import EMOTIONS_LIST, Face
from model import FacialExpressionModel, default_model
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

#: The lock file of an output folder (see ``output_lock``) and the file naming the process that holds it.
LOCK_NAME = ".annotate.lock"
OWNER_NAME = ".annotate.owner"

#: The mark of a temporary file: ``.<final name>.<pid>-<random>.partial<suffix>``.
PARTIAL_MARK = ".partial"


class OutputLocked(RuntimeError):
    """Another run is writing to the output folder; ``pid`` is its process id (``None``: not known)."""

    def __init__(self, output_dir: Path, pid: int | None) -> None:
        holder = f"process {pid}" if pid else "another process"
        super().__init__(f"another annotate run ({holder}) is writing to {output_dir}: wait for it to end, or "
                         "run with --if-locked wait")
        self.pid = pid


class Interrupted(KeyboardInterrupt):
    """The run was stopped by a signal (SIGINT, SIGTERM); ``signum`` says which. A ``KeyboardInterrupt``, so
    that no ``except Exception`` stops it on its way out."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"stopped by {signal.Signals(signum).name}")
        self.signum = signum


def raise_interrupted(signum: int, frame=None) -> None:
    """A signal handler: raise ``Interrupted(signum)`` in the main thread (install it for SIGTERM)."""
    raise Interrupted(signum)


def partial_path(path: Path) -> Path:
    """A temporary name for ``path``, beside it, that no other process or call uses (its PID and 8 random
    hex digits), ending with ``path``'s suffix (OpenCV's writer and Matplotlib choose the format by it)."""
    return path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}{PARTIAL_MARK}{path.suffix}")


def is_partial(path: Path) -> bool:
    """Whether ``path`` is a temporary file of a report (``partial_path``)."""
    return path.name.startswith(".") and PARTIAL_MARK in path.name


def remove_partials(output_dir: Path, pid: int | None = None) -> int:
    """Delete the temporary report files in ``output_dir`` (of process ``pid`` only, or of any); how many."""
    removed = 0
    if not output_dir.is_dir():
        return 0
    for path in output_dir.iterdir():
        if is_partial(path) and (pid is None or f".{pid}-" in path.name):
            try:
                path.unlink()
                removed += 1
            except FileNotFoundError:
                pass
    return removed


@contextmanager
def output_lock(output_dir: Path, wait: bool = False) -> Iterator[None]:
    """Hold ``output_dir``'s lock for the block (``filelock``: an OS lock on ``<output_dir>/.annotate.lock``,
    released by the system if the process dies) and name this process in ``.annotate.owner``. Once held,
    temporary files left by an earlier run that was killed are removed.

    Args:
        output_dir: the folder (made if missing).
        wait: wait for another run to release it; else raise at once.

    Raises:
        OutputLocked: another process holds it and ``wait`` is false (its PID in the message).
    """
    from filelock import FileLock, Timeout

    output_dir.mkdir(parents=True, exist_ok=True)
    lock, owner = FileLock(output_dir / LOCK_NAME), output_dir / OWNER_NAME
    try:
        lock.acquire(timeout=0)
    except Timeout:
        pid = _owner_pid(owner)
        if not wait:
            raise OutputLocked(output_dir, pid) from None
        log.info("another annotate run (process %s) is writing to %s: waiting for it", pid or "?", output_dir)
        lock.acquire()  # polls: Ctrl-C stops the wait
    try:
        tmp = partial_path(owner)
        tmp.write_text(f"{os.getpid()}\n")
        os.replace(tmp, owner)
        left = remove_partials(output_dir)
        if left:
            log.info("removed %d temporary file(s) of an earlier run that did not finish", left)
        yield
    finally:
        owner.unlink(missing_ok=True)
        lock.release()


def _owner_pid(owner: Path) -> int | None:
    """The PID written in an owner file, or None (missing, or being written: the lock is taken first)."""
    for _ in range(10):  # the holder writes it just after taking the lock
        try:
            return int(owner.read_text().strip())
        except (OSError, ValueError):
            time.sleep(0.05)
    return None


@dataclass(frozen=True)
class Options:
    """How each video of an archive is analysed: ``settings`` (``settings.AnalysisSettings``: the detector, its
    least score, detect-every, smoothing and the model's runtime, as for the live streams) and the frames
    analysed (``every``, ``start``, ``end``: see ``annotate_video``)."""

    settings: AnalysisSettings = field(default_factory=AnalysisSettings)
    every: int = 1
    start: float = 0.0
    end: float | None = None


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
        ValueError, RuntimeError: an unknown or unavailable detector (see ``detection.make_face_detector``),
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


def find_videos(paths: list[Path], reports_dir: Path | None = None) -> list[Path]:
    """The video files among ``paths``: files as given, folders searched recursively (``VIDEO_SUFFIXES``),
    in order, each once (a file named twice, by different paths too, is found once). A folder search never
    yields what the reports folder ``reports_dir`` holds: nothing below it when it lies inside the folder
    searched, and when it is that folder itself, the annotated videos (``*_annotated.mp4``) and temporary
    files (``is_partial``) of earlier runs.

    Raises:
        FileNotFoundError: a path that does not exist.
    """
    reports_dir = reports_dir.resolve() if reports_dir is not None else None
    found: dict[Path, Path] = {}  # resolved path -> the path as found
    for path in map(Path, paths):
        if path.is_dir():
            inside = reports_dir is not None and reports_dir != path.resolve() and reports_dir.is_relative_to(
                path.resolve())
            for video in sorted(p for p in path.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES and p.is_file()):
                resolved = video.resolve()
                if is_partial(resolved) or (inside and resolved.is_relative_to(reports_dir)):
                    continue
                if not (resolved.parent == reports_dir and resolved.name.endswith("_annotated.mp4")):
                    found.setdefault(resolved, video)
        elif path.exists():
            found.setdefault(path.resolve(), path)
        else:
            raise FileNotFoundError(f"no such file or folder: {path}")
    return list(found.values())


def report_names(videos: list[Path]) -> list[str]:
    """A report name per video: its stem, or its stem and a short hash of its path where stems repeat."""
    stems = collections.Counter(video.stem for video in videos)
    return [video.stem if stems[video.stem] == 1 else
            f"{video.stem}-{hashlib.sha1(str(video.resolve()).encode()).hexdigest()[:8]}" for video in videos]


def annotate_one(video: Path, name: str, output_dir: Path, options: Options, progress: bool = False) -> VideoSummary:
    """One video of an archive, as a task: its reports and summary row; a failure is the row's status
    (``"failed: reason"``), logged by the run that gathers the rows (``_annotate_all``: a Ray worker's log is
    not the user's)."""
    try:
        model = default_model(options.settings.runtime)
        _, summary = annotate_video(video, output_dir, model, options.settings, progress=progress, every=options.every,
                                    start=options.start, end=options.end, name=name)
        return summary
    except Exception as exc:  # noqa: BLE001  (any failure of one video is that video's status)
        log.debug("cannot annotate %s", video, exc_info=True)
        return VideoSummary(video.name, name, status=f"failed: {exc or type(exc).__name__}")


def ray_init_arguments(workers: int | None, address: str | None) -> dict:
    """``ray.init``'s arguments for ``--workers N`` (``address`` None) or ``--address ADDR``.

    Without an address Ray is told ``"local"``: it starts a private instance of ``workers`` CPUs, stopped at the
    end. Ray's own default (``None``) would join the cluster named by ``RAY_ADDRESS`` or recorded in
    ``/tmp/ray/ray_current_cluster``, and fail when that record is stale (its cluster died without cleaning
    up). With an address, that cluster is joined, with its own CPUs and the code as it is on its machines.
    """
    if address is None:
        return {"address": "local", "num_cpus": workers, "include_dashboard": False, "log_to_driver": False,
                "runtime_env": {"working_dir": None}, "ignore_reinit_error": True}
    return {"address": address, "include_dashboard": False, "log_to_driver": False, "ignore_reinit_error": True}


def annotate_archive(paths: list[Path], output_dir: Path, options: Options, workers: int | None = None,
                     address: str | None = None, force: bool = False, progress: bool = True,
                     wait_for_lock: bool = False) -> list[VideoSummary]:
    """Reports of every video under ``paths`` and ``output_dir/summary.csv``; see the module docstring.

    A video whose report files exist is skipped (its row is read from its ``<name>_summary.json``) unless
    ``force``. A video that fails is reported in its row (status ``failed: reason``) and the others go on.
    The whole run holds ``output_dir``'s lock (``output_lock``; ``wait_for_lock``: wait for another run
    rather than stop).

    Raises:
        FileNotFoundError: a path that does not exist.
        RuntimeError: Ray is asked for (``workers`` or ``address``) and not installed.
        OutputLocked: another run holds the output folder and ``wait_for_lock`` is false.
        KeyboardInterrupt (``Interrupted`` for a signal): the run was stopped; its temporary files are
            removed, the reports finished before stay, and no summary is written.
    """
    output_dir = output_dir.resolve()
    videos = [video.resolve() for video in find_videos(paths, reports_dir=output_dir)]  # Ray workers: another folder
    names = report_names(videos)
    with output_lock(output_dir, wait=wait_for_lock):
        try:
            summaries = _annotate_all(videos, names, output_dir, options, workers, address, force, progress)
        except BaseException:
            remove_partials(output_dir)  # ours, and those of Ray workers stopped mid-video
            raise
        write_summary(summaries, output_dir / "summary.csv")
    return summaries


def _annotate_all(videos: list[Path], names: list[str], output_dir: Path, options: Options, workers: int | None,
                  address: str | None, force: bool, progress: bool) -> list[VideoSummary]:
    """``annotate_archive``'s work, under the lock: the summary rows, in the order of ``videos``."""
    todo = [(video, name) for video, name in zip(videos, names, strict=True)
            if force or not all(p.is_file() for p in report_paths(output_dir, name).values())]
    done = {video: VideoSummary(**{"report": name, **json.loads(report_paths(output_dir, name)["summary"].read_text())})
            for video, name in zip(videos, names, strict=True) if (video, name) not in todo}
    if workers or address:
        try:
            import ray
        except ImportError as exc:
            raise RuntimeError('--workers and --address need Ray: pip install "ray[default]"') from exc
        handler = signal.getsignal(signal.SIGTERM)
        try:
            ray.init(**ray_init_arguments(workers, address))
        finally:
            if threading.current_thread() is threading.main_thread():
                signal.signal(signal.SIGTERM, handler)  # ray.init installs its own (sys.exit)
        try:
            task = ray.remote(num_cpus=1)(annotate_one)
            pending = {task.remote(video, name, output_dir, options): video for video, name in todo}
            with tqdm(total=len(pending), unit="video", desc="videos", disable=not progress) as bar:
                while pending:
                    ready, _ = ray.wait(list(pending), num_returns=1, timeout=1.0)  # a signal stops it within 1 s
                    if ready:
                        video = pending.pop(ready[0])
                        done[video] = log_failure(video, ray.get(ready[0]))
                        bar.update()
        finally:
            ray.shutdown()
    else:
        for video, name in tqdm(todo, unit="video", desc="videos", disable=not progress):
            done[video] = log_failure(video, annotate_one(video, name, output_dir, options, progress))
    return [done[video] for video in videos]


def log_failure(video: Path, summary: VideoSummary) -> VideoSummary:
    """``summary``, once a failed video's path and reason are logged (a warning, as each video ends: the
    summary's row is not the only place that names it)."""
    if summary.failed:
        log.warning("%s failed: %s", video, summary.status.removeprefix("failed: "))
    return summary


def write_summary(summaries: list[VideoSummary], path: Path) -> None:
    """``summary.csv``, written under a temporary name (with the permissions of any new file, as the reports)
    and renamed."""
    partial = partial_path(path)
    try:
        with partial.open("x", newline="", encoding="utf-8") as out:
            rows = csv.writer(out)
            rows.writerow(SUMMARY_COLUMNS)
            rows.writerows(summary.row() for summary in summaries)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
