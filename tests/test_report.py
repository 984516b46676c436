"""`python main.py annotate PATH...`: annotated MP4, per-face CSV and plot per video through the stream's
pipeline, and for an archive the summary, skipping what is done, failures apart, Ray workers."""

import csv
import sys

import cv2
import numpy as np
import pytest
from helpers import MEDIA_DIR, astronaut_bgr, make_face_video, requires_media

from main import main
from model import EMOTIONS_LIST
from report import CSV_COLUMNS, SUMMARY_COLUMNS, annotate_video
from settings import AnalysisSettings


def test_annotate_writes_video_csv_and_plot(face_video, tmp_path):
    path, boxes, fps = face_video
    assert main(["annotate", str(path), "--output", str(tmp_path)]) == 0
    video, table, plot = (tmp_path / f"astronaut{suffix}"
                          for suffix in ("_annotated.mp4", "_faces.csv", "_emotions.png"))
    capture = cv2.VideoCapture(str(video))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == len(boxes)
    assert capture.get(cv2.CAP_PROP_FPS) == pytest.approx(fps)
    capture.release()
    with table.open() as f:
        rows = list(csv.DictReader(f))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert [int(r["frame"]) for r in rows] == list(range(len(boxes)))  # one face in every frame
    assert {r["face_id"] for r in rows} == {"1"}
    assert all(0.5 <= float(r["score"]) <= 1 for r in rows)
    assert float(rows[10]["time_s"]) == pytest.approx(10 / fps)
    for row in rows:
        assert sum(float(row[name]) for name in EMOTIONS_LIST) == pytest.approx(1, abs=2e-3)
        assert row["emotion"] == max(EMOTIONS_LIST, key=lambda name: float(row[name]))
    assert plot.stat().st_size > 5000


@pytest.mark.parametrize("content", [None, b"", b"not a video"])
def test_annotate_bad_video_exits_non_zero(tmp_path, content, caplog):
    path = tmp_path / "input.mp4"
    if content is not None:
        path.write_bytes(content)
    # a missing path: the command cannot run (2); a file that is not a video: that video failed (1)
    assert main(["annotate", str(path), "--output", str(tmp_path / "out")]) == (2 if content is None else 1)
    if content is not None:  # the log a user watches names the failure: as it happens, with its reason, and at the end
        warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
        reason = read_summary(tmp_path / "out")[0]["status"].removeprefix("failed: ")
        assert reason and f"{path.resolve()} failed: {reason}" in warnings
        assert "1 video(s): 1 failed (input.mp4)" in warnings[-1]


def label_changes_per_face_second(rows: list[dict], fps: float) -> float:
    """Changes of the shown label between consecutive frames of the same face, per second of face time."""
    last, changes = {}, 0
    for row in rows:
        face, frame = row["face_id"], int(row["frame"])
        if face in last and last[face][0] == frame - 1 and last[face][1] != row["emotion"]:
            changes += 1
        last[face] = (frame, row["emotion"])
    return changes / (len(rows) / fps)


@requires_media
@pytest.mark.slow  # a whole real clip, twice
def test_annotate_a_real_clip_with_and_without_smoothing(fer_model, tmp_path):
    """On the real talking-head clip: a face in most frames, one face id for most of it, and smoothing
    makes the shown label change less often."""
    video = MEDIA_DIR / "videos" / "fer_woman2.mp4"
    capture = cv2.VideoCapture(str(video))
    frames, fps = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)), capture.get(cv2.CAP_PROP_FPS)
    capture.release()
    rates = {}
    for half_life in (0.0, 0.3):
        paths, _ = annotate_video(video, tmp_path / str(half_life), fer_model,
                                  AnalysisSettings(smoothing_half_life=half_life), progress=False)
        with paths["csv"].open() as f:
            rows = list(csv.DictReader(f))
        assert len({int(r["frame"]) for r in rows}) > 0.9 * frames
        ids = [r["face_id"] for r in rows]
        assert max(ids.count(i) for i in set(ids)) > 0.5 * len(rows)
        rates[half_life] = label_changes_per_face_second(rows, fps)
    assert rates[0.3] < 0.7 * rates[0.0], rates


@pytest.fixture()
def archive(tmp_path):
    """A folder of three small clips of a real face (one in a sub-folder) and a corrupt file."""
    folder = tmp_path / "archive"
    (folder / "day2").mkdir(parents=True)
    for path in (folder / "a.mp4", folder / "b.mp4", folder / "day2" / "a.mp4"):
        make_face_video(path, n_frames=12, travel=0.3)
    (folder / "corrupt.mp4").write_bytes(b"\x00\x00\x00 ftypisom" + b"x" * 500)
    (folder / "notes.txt").write_text("not a video")
    return folder


def read_summary(output):
    with (output / "summary.csv").open() as f:
        return list(csv.DictReader(f))


def test_an_archive_gets_reports_and_a_summary_and_a_corrupt_file_fails_alone(archive, tmp_path):
    output = tmp_path / "reports"
    assert main(["annotate", str(archive), "--output", str(output)]) == 1  # the corrupt file failed
    rows = read_summary(output)
    assert tuple(rows[0]) == SUMMARY_COLUMNS
    assert [r["video"] for r in rows] == ["a.mp4", "b.mp4", "corrupt.mp4", "a.mp4"]
    reports = [r["report"] for r in rows]  # the two a.mp4 told apart by the names of their reports
    assert reports[1:3] == ["b", "corrupt"] and len(set(reports)) == 4 and reports[0].startswith("a-")
    ok = [r for r in rows if r["status"] == "ok"]
    assert len(ok) == 3 and rows[2]["status"].startswith("failed: ")
    for row in ok:
        assert int(row["frames"]) == 12 and int(row["face_frames"]) == 12 and int(row["distinct_faces"]) == 1
        assert sum(float(row[f"share_{name}"]) for name in EMOTIONS_LIST) == pytest.approx(1, abs=1e-3)
        assert row["dominant_by_face"].startswith("1:")
    names = sorted(p.name for p in output.iterdir())
    assert all(f"{row['report']}_annotated.mp4" in names for row in ok)
    assert "b_annotated.mp4" in names and "b_emotions.png" in names and "summary.csv" in names
    assert sum(name.endswith("_annotated.mp4") for name in names) == 3  # the two a.mp4 get names of their own
    assert not any(".partial" in name for name in names)  # nothing half written


def test_a_second_run_skips_what_is_done_and_force_redoes_it(archive, tmp_path):
    output = tmp_path / "reports"
    main(["annotate", str(archive / "a.mp4"), str(archive / "b.mp4"), "--output", str(output)])
    report = output / "b_faces.csv"
    first = report.stat().st_mtime_ns
    assert main(["annotate", str(archive / "a.mp4"), str(archive / "b.mp4"), "--output", str(output)]) == 0
    assert report.stat().st_mtime_ns == first
    assert [r["status"] for r in read_summary(output)] == ["ok", "ok"]  # the rows of the earlier run
    assert main(["annotate", str(archive / "b.mp4"), "--output", str(output), "--force"]) == 0
    assert report.stat().st_mtime_ns > first


def test_a_video_named_twice_is_annotated_once(archive, tmp_path):
    output = tmp_path / "reports"
    assert main(["annotate", str(archive / "b.mp4"), str(archive / "day2" / ".." / "b.mp4"), str(archive / "day2"),
                 str(archive / "day2" / "a.mp4"), "--output", str(output)]) == 0
    assert [(r["video"], r["report"]) for r in read_summary(output)] == [("b.mp4", "b"), ("a.mp4", "a")]


def test_reports_inside_the_folder_searched_are_not_taken_for_videos(archive, tmp_path):
    output = archive / "day2" / "reports"
    for _ in range(2):
        assert main(["annotate", str(archive / "day2"), "--output", str(output)]) == 0
    assert [r["video"] for r in read_summary(output)] == ["a.mp4"]
    assert not any(p.name.startswith("a_annotated_") for p in output.iterdir())


def test_annotate_runs_the_runtime_asked_for(archive, tmp_path, monkeypatch):
    import report

    asked, load = [], report.default_model
    monkeypatch.setattr(report, "default_model", lambda runtime="litert": asked.append(runtime) or load(runtime))
    assert main(["annotate", str(archive / "b.mp4"), "--output", str(tmp_path / "out"), "--runtime", "keras"]) == 0
    assert asked == ["keras"]


def test_annotate_runs_the_model_files_asked_for(archive, tmp_path, monkeypatch, caplog):
    import report
    from model import MODEL_JSON, MODEL_WEIGHTS

    asked, load = [], report.cached_model
    monkeypatch.setattr(report, "cached_model",
                        lambda *files, runtime: asked.append(files) or load(*files, runtime=runtime))
    assert main(["annotate", str(archive / "b.mp4"), "--output", str(tmp_path / "out"),
                 "--model", str(MODEL_JSON), str(MODEL_WEIGHTS)]) == 0
    assert asked == [(MODEL_JSON, MODEL_WEIGHTS)]
    with pytest.raises(SystemExit):  # argparse's usage error, naming the missing file
        main(["annotate", str(archive / "b.mp4"), "--model", str(tmp_path / "none.json"), str(MODEL_WEIGHTS)])


def test_every_start_and_end_choose_the_frames_analysed(archive, tmp_path):
    output = tmp_path / "reports"
    assert main(["annotate", str(archive / "b.mp4"), "--output", str(output), "--every", "3", "--start", "0.1",
                 "--end", "0.5"]) == 0
    with (output / "b_faces.csv").open() as f:
        frames = [int(r["frame"]) for r in csv.DictReader(f)]
    assert frames == [3, 6, 9]  # 20 frames/s: frames 2-9 lie in 0.1-0.5 s, every third is analysed
    assert read_summary(output)[0]["frames"] == "3"


def test_workers_without_ray_give_a_clear_message(archive, tmp_path, monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray fails as if it were not installed
    assert main(["annotate", str(archive / "b.mp4"), "--output", str(tmp_path / "r"), "--workers", "2"]) == 2
    assert "pip install" in caplog.text and "Ray" in caplog.text


@pytest.mark.slow
def test_two_local_ray_workers_give_the_same_face_rows(archive, tmp_path):
    pytest.importorskip("ray")
    assert main(["annotate", str(archive), "--output", str(tmp_path / "one")]) == 1  # the corrupt file fails
    assert main(["annotate", str(archive), "--output", str(tmp_path / "two"), "--workers", "2"]) == 1
    for path in (tmp_path / "one").glob("*_faces.csv"):
        assert path.read_text() == (tmp_path / "two" / path.name).read_text()
    assert read_summary(tmp_path / "one") == read_summary(tmp_path / "two")
    assert [r["status"][:7] for r in read_summary(tmp_path / "two")] == ["ok", "ok", "failed:", "ok"]


def encode(out, stream, frames):
    """Encode ``frames`` (PyAV frames) on ``stream`` and mux the packets into ``out``, then flush the encoder."""
    for frame in [*frames, None]:
        for packet in stream.encode(frame):
            out.mux(packet)


def clip_with_audio(path, frames=24, fps=20, video_codec="libx264", audio_codec="aac", audio_format="fltp"):
    """A clip of the moving astronaut with a 440 Hz tone (H.264 and AAC in MP4 by default, written with PyAV)."""
    import av
    from helpers import decoded_frames

    silent = path.with_suffix(".silent.mp4")
    make_face_video(silent, n_frames=frames, fps=fps)
    pictures = decoded_frames(silent)
    with av.open(str(path), "w") as out:
        video = out.add_stream(video_codec, rate=fps)
        video.width, video.height, video.pix_fmt = 640, 360, "yuv420p"
        audio = out.add_stream(audio_codec, rate=44100)
        video_frames = [av.VideoFrame.from_ndarray(picture, format="bgr24") for picture in pictures]
        for i, frame in enumerate(video_frames):
            frame.pts = i
        encode(out, video, video_frames)
        samples = (0.2 * np.sin(2 * np.pi * 440 * np.arange(44100 * frames // fps) / 44100)).astype(np.float32)
        if audio_format == "s16":
            samples = (samples * 32767).astype(np.int16)
        chunks = []
        for start in range(0, len(samples), 1024):
            chunk = av.AudioFrame.from_ndarray(samples[np.newaxis, start:start + 1024], format=audio_format,
                                               layout="mono")
            chunk.sample_rate, chunk.pts = 44100, start
            chunks.append(chunk)
        encode(out, audio, chunks)
    return path


def test_the_annotated_video_is_h264_with_the_sources_audio(tmp_path):
    av = pytest.importorskip("av")
    source = clip_with_audio(tmp_path / "talk.mp4")
    assert main(["annotate", str(source), "--output", str(tmp_path / "out")]) == 0
    with av.open(str(tmp_path / "out" / "talk_annotated.mp4")) as result:
        kinds = {stream.type: stream.codec_context.name for stream in result.streams}
    assert kinds == {"video": "h264", "audio": "aac"}


def test_audio_that_mp4_cannot_hold_is_left_out_and_the_report_made(tmp_path):
    av = pytest.importorskip("av")
    source = clip_with_audio(tmp_path / "talk.avi", video_codec="mpeg4", audio_codec="pcm_mulaw", audio_format="s16")
    assert main(["annotate", str(source), "--output", str(tmp_path / "out")]) == 0
    with av.open(str(tmp_path / "out" / "talk_annotated.mp4")) as result:
        assert [stream.type for stream in result.streams] == ["video"]


def variable_rate_clip(path, av):
    """A 4-s H.264 clip of the astronaut: 30 frames at 30 frames/s, then 30 at 10 frames/s (a phone
    records its rate as the light allows). Returns each frame's time in seconds."""
    import fractions

    image = cv2.resize(astronaut_bgr(), (320, 320))
    times = [i / 30 for i in range(30)] + [1 + i / 10 for i in range(30)]
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 320, 320, "yuv420p"
        stream.codec_context.time_base = fractions.Fraction(1, 90_000)
        pictures = []
        for t in times:
            picture = av.VideoFrame.from_ndarray(image, format="bgr24")
            picture.pts, picture.time_base = round(t * 90_000), fractions.Fraction(1, 90_000)
            pictures.append(picture)
        encode(out, stream, pictures)
    return times


def test_a_variable_frame_rate_video_keeps_its_timing(tmp_path):
    av = pytest.importorskip("av")
    times = variable_rate_clip(tmp_path / "phone.mp4", av)
    assert main(["annotate", str(tmp_path / "phone.mp4"), "--output", str(tmp_path / "out")]) == 0
    with (tmp_path / "out" / "phone_faces.csv").open() as f:
        rows = {int(row["frame"]): float(row["time_s"]) for row in csv.DictReader(f)}
    assert len(rows) == 60
    assert [rows[i] for i in range(60)] == pytest.approx(times, abs=0.002)  # not frame / average rate
    with av.open(str(tmp_path / "out" / "phone_annotated.mp4")) as result:
        written = sorted(float(frame.time) for frame in result.decode(video=0))
    assert written == pytest.approx(times, abs=0.002)
    assert main(["annotate", str(tmp_path / "phone.mp4"), "--output", str(tmp_path / "part"), "--start", "2"]) == 0
    with (tmp_path / "part" / "phone_faces.csv").open() as f:
        assert min(int(row["frame"]) for row in csv.DictReader(f)) == 40  # the frame at 2.0 s
