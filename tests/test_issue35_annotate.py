"""Issue 35, archives: two `annotate` runs on one output folder, a run interrupted (Ctrl-C, SIGTERM) with its
output folder inside the folder searched, Ray and a stale cluster record, and the permissions of the reports."""

import csv
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import pytest
from helpers import ROOT, make_face_video

import archive
import report
from archive import LOCK_NAME, OWNER_NAME, find_videos, ray_init_arguments
from main import EXIT_LOCKED, main
from report import is_partial, partial_path


@pytest.fixture()
def clips(tmp_path):
    """A folder of four 30-frame clips of a face (a run on them takes some seconds)."""
    folder = tmp_path / "clips"
    folder.mkdir()
    for name in ("a", "b", "c", "d"):
        make_face_video(folder / f"{name}.mp4", n_frames=30, travel=0.3)
    return folder


def annotate(*args: str, **kwargs) -> subprocess.Popen:
    """``python main.py annotate ARGS`` as a user runs it in a terminal (SIGINT as there, even when these tests
    run in the background, where it is ignored), its output in a pipe."""
    return subprocess.Popen([sys.executable, str(ROOT / "main.py"), "annotate", *args], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL), **kwargs)


def wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def frame_count(video: Path) -> int:
    capture = cv2.VideoCapture(str(video))
    count = 0
    while capture.grab():
        count += 1
    capture.release()
    return count


def assert_reports_whole(output: Path) -> list[str]:
    """Every report marked done (its ``_summary.json`` is there) is whole: its CSV has one row per frame
    (one face in each), its video that many frames; no temporary file is left. Returns the reports' names."""
    assert not [p.name for p in output.iterdir() if is_partial(p)], "temporary files left"
    names = []
    for summary_path in sorted(output.glob("*_summary.json")):
        name = summary_path.name.removesuffix("_summary.json")
        summary = json.loads(summary_path.read_text())
        with (output / f"{name}_faces.csv").open() as f:
            rows = list(csv.DictReader(f))
        assert [int(r["frame"]) for r in rows] == list(range(summary["frames"])), name  # not interleaved
        assert frame_count(output / f"{name}_annotated.mp4") == summary["frames"], name
        assert (output / f"{name}_emotions.png").stat().st_size > 5000
        names.append(name)
    return names


@pytest.mark.slow
def test_a_second_run_on_the_same_folder_exits_at_once_and_a_third_waits(clips, tmp_path):
    for name in "abcd":  # longer clips: the first run outlasts the second one's start
        make_face_video(clips / f"{name}.mp4", n_frames=90, travel=0.3)
    output = tmp_path / "reports"
    first = annotate(str(clips), "--output", str(output))
    try:
        wait_for(lambda: (output / OWNER_NAME).is_file() or first.poll() is not None, 120, "the first run's lock")
        assert first.poll() is None, first.communicate()[0]
        started = time.monotonic()
        second = subprocess.run([sys.executable, str(ROOT / "main.py"), "annotate", str(clips), "--output",
                                 str(output)], cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert second.returncode == EXIT_LOCKED, second.stderr
        assert f"process {first.pid}" in second.stderr and "--if-locked wait" in second.stderr
        assert time.monotonic() - started < 30  # at once: its imports, not the first run's length
        third = annotate(str(clips), "--output", str(output), "--if-locked", "wait", "--force")
        assert first.wait(timeout=300) == 0, first.communicate()[0]
        out, _ = third.communicate(timeout=300)
        assert third.returncode == 0, out
        assert "waiting for it" in out
    finally:
        for process in (first,):
            if process.poll() is None:
                process.kill()
    assert assert_reports_whole(output) == ["a", "b", "c", "d"]
    with (output / "summary.csv").open() as f:
        assert [(r["video"], r["status"], r["frames"]) for r in csv.DictReader(f)] == [
            (f"{name}.mp4", "ok", "90") for name in "abcd"]
    assert not (output / OWNER_NAME).exists()


def test_a_locked_folder_names_the_run_that_holds_it(tmp_path, caplog):
    output = tmp_path / "reports"
    with archive.output_lock(output):
        assert (output / OWNER_NAME).read_text().strip() == str(os.getpid())
        with pytest.raises(archive.OutputLocked, match=f"process {os.getpid()}"):
            with archive.output_lock(output):  # another lock object: as another run would take it
                pass
        assert main(["annotate", str(tmp_path / "nothing-to-do"), "--output", str(output)]) == 2  # a missing path
    (tmp_path / "empty").mkdir()
    assert main(["annotate", str(tmp_path / "empty"), "--output", str(output)]) == 0  # free again


@pytest.mark.slow
@pytest.mark.parametrize("signum, status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_mid_run_removes_the_temporary_files_and_the_rerun_finishes(clips, signum, status):
    output = clips / "reports"  # inside the folder searched
    run = annotate(str(clips), "--output", str(output))
    try:
        wait_for(lambda: output.is_dir() and any(is_partial(p) for p in output.iterdir()) or run.poll() is not None,
                 120, "the first video's temporary files")
        assert run.poll() is None, run.communicate()[0]
        sent = time.monotonic()
        run.send_signal(signum)
        out, _ = run.communicate(timeout=30)
        assert run.returncode == status, out
        assert time.monotonic() - sent < 10, "it took long to stop"
        assert "temporary files removed" in out
    finally:
        if run.poll() is None:
            run.kill()
    assert not [p.name for p in output.iterdir() if is_partial(p)]
    done = assert_reports_whole(output)
    assert len(done) < 4
    rerun = subprocess.run([sys.executable, str(ROOT / "main.py"), "annotate", str(clips), "--output", str(output)],
                           cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert assert_reports_whole(output) == ["a", "b", "c", "d"]
    with (output / "summary.csv").open() as f:
        assert [r["video"] for r in csv.DictReader(f)] == ["a.mp4", "b.mp4", "c.mp4", "d.mp4"]


def test_ctrl_c_while_the_plot_is_drawn_leaves_nothing_half_written(clips, monkeypatch):
    """The old code removed temporary files only while frames were read: Ctrl-C during the plot left the
    finished CSV and video under their temporary names, and with the output inside the folder searched the
    rerun took the temporary video for a source and failed."""
    output = clips / "reports"

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(report, "plot_emotions", interrupted)
    assert main(["annotate", str(clips / "a.mp4"), str(clips / "b.mp4"), "--output", str(output)]) == 130
    # no report, no temporary file, no lock owner (the lock file itself stays: removing one is a race)
    assert sorted(p.name for p in output.iterdir()) in ([], [LOCK_NAME])
    monkeypatch.undo()
    assert main(["annotate", str(clips), "--output", str(output)]) == 0
    assert assert_reports_whole(output) == ["a", "b", "c", "d"]


def test_the_output_folder_inside_the_input_is_never_searched(clips):
    output = clips / "reports"
    output.mkdir()
    (output / "nested").mkdir()
    make_face_video(output / "nested" / "copy.mp4", n_frames=3)  # even a real video there is not a source
    for leftover in (partial_path(output / "a_annotated.mp4"), output / ".a_annotated.mp4.partial.mp4"):
        leftover.write_bytes(b"half a video")
    assert [p.name for p in find_videos([clips], reports_dir=output)] == ["a.mp4", "b.mp4", "c.mp4", "d.mp4"]
    # the output folder being the folder searched: its annotated videos and temporary files are left out
    shutil.rmtree(output)
    make_face_video(clips / "a_annotated.mp4", n_frames=3)
    partial_path(clips / "b_annotated.mp4").write_bytes(b"half a video")
    assert [p.name for p in find_videos([clips], reports_dir=clips)] == ["a.mp4", "b.mp4", "c.mp4", "d.mp4"]


def test_a_killed_runs_temporary_files_are_removed_by_the_next(clips, tmp_path):
    output = tmp_path / "reports"
    output.mkdir()
    leftover = output / ".a_faces.csv.99999-0123abcd.partial.csv"  # as a run killed with SIGKILL leaves it
    leftover.write_text("frame\n")
    assert main(["annotate", str(clips / "a.mp4"), "--output", str(output)]) == 0
    assert not leftover.exists() and assert_reports_whole(output) == ["a"]


def test_the_summary_has_the_permissions_of_the_reports(clips, tmp_path):
    old = os.umask(0o022)
    try:
        assert main(["annotate", str(clips / "a.mp4"), "--output", str(tmp_path / "out")]) == 0
    finally:
        os.umask(old)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in (tmp_path / "out").iterdir()
             if not p.name.startswith(".")}
    assert set(modes) == {"a_annotated.mp4", "a_faces.csv", "a_emotions.png", "a_summary.json", "summary.csv"}
    assert set(modes.values()) == {0o644}, modes


def test_workers_start_a_private_ray_instance_and_an_address_joins_it():
    assert ray_init_arguments(2, None)["address"] == "local"  # never a cluster recorded in /tmp/ray
    assert ray_init_arguments(2, None)["num_cpus"] == 2
    joined = ray_init_arguments(None, "ray://head:10001")
    assert joined["address"] == "ray://head:10001" and "num_cpus" not in joined


class Done:
    """A finished fake task's result (hashable, as Ray's object references are)."""

    def __init__(self, value):
        self.value = value


class FakeRay:
    """Stands in for the ``ray`` module: runs each task at once, in this process; records ``init``."""

    def __init__(self):
        self.inits = []

    def init(self, **kwargs):
        self.inits.append(kwargs)

    def remote(self, num_cpus=1):
        def wrap(function):
            class Task:
                @staticmethod
                def remote(*args):
                    return Done(function(*args))
            return Task
        return wrap

    def wait(self, pending, num_returns=1, timeout=None):
        return pending[:num_returns], pending[num_returns:]

    def get(self, future):
        return future.value

    def shutdown(self):
        pass


def test_workers_with_a_ray_address_in_the_environment_still_start_their_own(clips, tmp_path, monkeypatch):
    fake = FakeRay()
    monkeypatch.setitem(sys.modules, "ray", fake)
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:1")  # as a stale record would name a dead cluster
    assert main(["annotate", str(clips / "a.mp4"), "--output", str(tmp_path / "w"), "--workers", "2"]) == 0
    assert fake.inits[0]["address"] == "local" and fake.inits[0]["num_cpus"] == 2
    assert main(["annotate", str(clips / "b.mp4"), "--output", str(tmp_path / "w"), "--address", "auto"]) == 0
    assert fake.inits[1]["address"] == "auto"


@pytest.mark.slow
def test_a_stale_ray_record_does_not_stop_workers(clips):
    pytest.importorskip("ray")
    with tempfile.TemporaryDirectory(prefix="r35", dir="/tmp") as temp:  # short: Ray's socket paths
        record = Path(temp) / "ray"
        record.mkdir()
        (record / "ray_current_cluster").write_text("127.0.0.1:1")  # a cluster that died without cleaning up
        env = {**os.environ, "RAY_TMPDIR": temp}
        env.pop("RAY_ADDRESS", None)
        done = subprocess.run([sys.executable, str(ROOT / "main.py"), "annotate", str(clips / "a.mp4"),
                               str(clips / "b.mp4"), "--output", str(Path(temp) / "out"), "--workers", "2"],
                              cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
        assert done.returncode == 0, done.stderr[-3000:]
        assert assert_reports_whole(Path(temp) / "out") == ["a", "b"]
