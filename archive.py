"""A whole archive's reports: every video under the paths given, each one task that writes its own
reports (``report.annotate_one``), and ``summary.csv`` of all.

    python main.py annotate PATH [PATH ...] [--output DIR] [--workers N | --address ADDR] [--every N]
                            [--start S] [--end S] [--force]

The tasks run in this process, or on Ray (``--workers N``: a local Ray instance of N workers; ``--address``:
an existing cluster), an optional requirement (``pip install "ray[default]"``).

One run at a time writes to an output folder (``output_lock``, a ``filelock`` lock on
``<output>/.annotate.lock``): another waits or stops at once (``OutputLocked``, naming the first run's
process). Every file is written under a temporary name (``report.partial_path``) and renamed into place only
when whole; an interrupted run (Ctrl-C, SIGTERM: ``Interrupted``) removes its temporary files, and the next
run, holding the lock, removes any that a killed one left. A folder searched for videos never yields the
output folder's files.
"""

from __future__ import annotations

import collections
import csv
import hashlib
import json
import logging
import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tqdm import tqdm

from camera import VIDEO_SUFFIXES
from report import SUMMARY_COLUMNS, Options, VideoSummary, annotate_one, is_partial, partial_path, report_paths

log = logging.getLogger(__name__)

#: The lock file of an output folder (see ``output_lock``) and the file naming the process that holds it.
LOCK_NAME = ".annotate.lock"
OWNER_NAME = ".annotate.owner"


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
