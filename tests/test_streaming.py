"""FrameProducer with a fake stream: sharing, idle stop, restart numbering, slow sources, failures."""

import threading
import time

import pytest

from camera import SourceError
from streaming import FrameProducer, ServerShuttingDown, SourceStopped, mjpeg_stream, result_events


class FakeStream:
    """Stands in for ``analysis.annotated_stream``: ``(jpeg, faces)`` every ``delay`` s, an error after
    ``fail_after`` frames, and ``released`` once closed (as the generator releases its camera)."""

    def __init__(self, delay=0.01, fail_after=None, frames=None, error=None):
        self.delay, self.fail_after, self.frames, self.count, self.released = delay, fail_after, frames, 0, False
        self.error = error or SourceError("camera unplugged")

    def __iter__(self):
        return self

    def __next__(self):
        time.sleep(self.delay)
        if self.frames is not None and self.count >= self.frames:
            self.released = True
            raise StopIteration
        self.count += 1
        if self.fail_after is not None and self.count > self.fail_after:
            self.released = True
            raise self.error
        return b"jpeg%d" % self.count, []

    def close(self):
        self.released = True


def make(delay=0.01, fail_after=None, idle_timeout=0.3, frames=None, error=None):
    cameras = []

    def factory():
        cameras.append(FakeStream(delay, fail_after, frames, error))
        return cameras[-1]

    return FrameProducer(factory, idle_timeout=idle_timeout, name="fake"), cameras


def watch_until_stopped(producer, errors):
    """A viewer: take frames until the producer raises SourceStopped; append its message to ``errors``."""
    number = 0
    try:
        while True:
            number = producer.wait_for_frame(number, timeout=5).number
    except SourceStopped as exc:
        errors.append(str(exc))


def test_viewers_get_increasing_frames_from_one_camera():
    producer, cameras = make()
    numbers = []
    frame = producer.wait_for_frame(0)
    for _ in range(5):
        frame = producer.wait_for_frame(frame.number)
        numbers.append(frame.number)
    other = producer.wait_for_frame(0)
    assert numbers == sorted(set(numbers)) and other.number >= numbers[-1]
    assert len(cameras) == 1


def test_stops_when_idle_and_releases_the_camera():
    producer, cameras = make(idle_timeout=0.2)
    producer.wait_for_frame(0)
    deadline = time.monotonic() + 5
    while producer.running and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not producer.running and cameras[0].released


def test_a_returning_viewer_gets_new_frames_after_a_restart():
    producer, cameras = make(idle_timeout=0.2)
    last = producer.wait_for_frame(0)
    for _ in range(3):
        last = producer.wait_for_frame(last.number)
    while producer.running:
        time.sleep(0.05)
    frame = producer.wait_for_frame(last.number, timeout=3)  # a new run: numbering goes on
    assert frame.number > last.number
    assert len(cameras) == 2


def test_a_source_slower_than_the_idle_timeout_is_not_restarted_under_a_waiting_viewer():
    producer, cameras = make(delay=0.4, idle_timeout=0.2)
    last = producer.wait_for_frame(0, timeout=5)
    for _ in range(3):
        last = producer.wait_for_frame(last.number, timeout=5)
    assert len(cameras) == 1 and cameras[0].count >= 4


def test_a_failing_source_raises_its_reason_to_every_viewer():
    producer, cameras = make(fail_after=2)
    errors = []
    viewers = [threading.Thread(target=watch_until_stopped, args=(producer, errors)) for _ in range(3)]
    for v in viewers:
        v.start()
    for v in viewers:
        v.join(timeout=10)
    assert errors == ["camera unplugged"] * 3
    assert cameras[0].released


def test_a_viewer_busy_when_the_source_failed_is_told_and_the_source_is_not_reopened():
    producer, cameras = make(fail_after=2)
    first = producer.wait_for_frame(0, timeout=5)
    deadline = time.monotonic() + 5
    # the viewer is busy; the run fails (the fake marks itself released as it raises: wait for the producer's
    # thread to have ended, its error recorded, too)
    while (not cameras[0].released or producer.running) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert cameras[0].released and not producer.running
    with pytest.raises(SourceStopped, match="camera unplugged"):
        producer.wait_for_frame(first.number, timeout=5)
    assert len(cameras) == 1
    assert producer.wait_for_frame(0, timeout=5).number > first.number  # a new viewer starts a new run
    assert len(cameras) == 2
    producer.stop()


def test_a_source_with_no_frame_times_out():
    producer, _ = make(delay=2.0)
    with pytest.raises(SourceStopped, match="within 0.2 s"):
        producer.wait_for_frame(0, timeout=0.2)


def test_mjpeg_stream_ends_with_the_message_frame():
    producer, _ = make(fail_after=2)
    parts = list(mjpeg_stream(producer, message=lambda text: text.encode()))
    assert len(parts) == 3
    assert parts[0].startswith(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: 5\r\n\r\njpeg1")
    assert b"Stream ended: camera unplugged" in parts[-1]


def test_a_stream_that_ends_tells_its_viewers():
    producer, cameras = make(frames=3)
    errors = []
    watch_until_stopped(producer, errors)
    assert errors == ["fake ended"] and cameras[0].released


def test_stop_releases_the_camera_and_tells_waiting_viewers():
    producer, cameras = make(delay=0.05)
    producer.wait_for_frame(0)
    errors = []
    viewer = threading.Thread(target=watch_until_stopped, args=(producer, errors))
    viewer.start()
    time.sleep(0.2)
    producer.stop()
    viewer.join(timeout=5)
    assert cameras[0].released and not producer.running
    assert errors == ["the server is shutting down"]
    assert producer.wait_for_frame(0, timeout=5).number > 0  # a later viewer starts it again


def test_events_end_without_an_end_event_at_shutdown_but_with_one_when_the_source_ends():
    """The page stops listening on ``event: end``; after a server restart it must connect again."""
    producer, _ = make(delay=0.05)
    events = result_events(producer, max_rate=100)
    assert next(events).startswith("data: ")
    threading.Timer(0.2, producer.stop).start()
    rest = list(events)  # ends once stop() is called
    assert rest and all(event.startswith("data: ") for event in rest)
    with pytest.raises(ServerShuttingDown):
        producer.wait_for_frame(10**6, timeout=5)  # a viewer of the stopped run (after > 0) is told why
    ended, _ = make(frames=3)
    assert list(result_events(ended, max_rate=100))[-1] == 'event: end\ndata: {"error": "fake ended"}\n\n'


def test_an_unexpected_error_reaches_viewers_as_its_kind_only():
    producer, cameras = make(fail_after=1, error=ValueError("cannot read /home/someone/secret/model.bin"))
    errors = []
    watch_until_stopped(producer, errors)
    assert errors == ["the stream failed (ValueError; see the server's log)"] and cameras[0].released
