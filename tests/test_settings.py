"""Issue 33: one ``AnalysisSettings`` value, checked once, read by the streams, photos, browser cameras and
archives; and ``checks.check_number``, the one number check."""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest
from helpers import astronaut_bgr

from analysis import FaceAnalyzer
from checks import check_number
from main import parse_args
from serving import serve_config
from settings import AnalysisSettings


@pytest.mark.parametrize(("arguments", "message"), [
    ({"integer": True, "minimum": 1, "maximum": 10}, "n must be an integer from 1 to 10, not "),
    ({"minimum": 1}, "n must be a number of at least 1, not "),
    ({"minimum": 0, "maximum": 1}, "n must be a number from 0 to 1, not "),
    ({"above": 0, "maximum": 4}, "n must be a number above 0 and at most 4, not "),
    ({"maximum": -10}, "n must be a number of at most -10, not "),
])
@pytest.mark.parametrize("value", [True, False, "1", None, float("nan"), -5])
def test_check_number_refuses_flags_text_nan_and_the_out_of_range(arguments, message, value):
    with pytest.raises(ValueError) as error:
        check_number(value, "n", **arguments)
    assert str(error.value) == message + repr(value)


def test_check_number_takes_numpy_numbers_and_gives_plain_ones():
    assert check_number(np.int64(3), "n", integer=True, minimum=1) == 3
    assert type(check_number(np.int64(3), "n", integer=True)) is int
    assert type(check_number(np.float32(0.5), "n", minimum=0, maximum=1)) is float
    with pytest.raises(ValueError, match="integer"):
        check_number(2.0, "n", integer=True)


@pytest.mark.parametrize(("field", "value"), [
    ("detector", "yunet"), ("runtime", "onnx"), ("min_score", 1.5), ("min_score", "0.5"), ("min_score", True),
    ("detect_every", 0), ("detect_every", 1.5), ("detect_every", True), ("smoothing_half_life", -0.1),
])
def test_a_bad_setting_is_refused_by_its_name(field, value):
    with pytest.raises(ValueError, match="detector" if field == "detector" else field):
        AnalysisSettings(**{field: value})


def test_settings_are_frozen_and_hold_plain_numbers():
    settings = AnalysisSettings(min_score=np.float32(0.25), detect_every=np.int64(3), smoothing_half_life=1)
    assert (type(settings.min_score), type(settings.detect_every), type(settings.smoothing_half_life)) == (
        float, int, float)
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.min_score = 0.9


def test_old_config_keys_override_the_settings_given():
    base = AnalysisSettings(detector="haar", detect_every=2)
    settings = AnalysisSettings.from_config({"MIN_SCORE": 0.7, "VIDEOS_DIR": "x"}, base)
    assert settings == AnalysisSettings(detector="haar", detect_every=2, min_score=0.7)
    assert AnalysisSettings.from_config({}) == AnalysisSettings()


@pytest.mark.parametrize("command", [[], ["annotate", "clip.mp4"]])
def test_the_command_line_builds_the_settings_once_for_either_command(command):
    args = parse_args([*command, "--detector", "haar", "--min-score", "0.3", "--detect-every", "2",
                       "--smoothing", "0", "--runtime", "keras"])
    assert args.settings == AnalysisSettings(detector="haar", min_score=0.3, detect_every=2, smoothing_half_life=0,
                                             runtime="keras")
    if not command:
        assert not {"DETECTOR", "MIN_SCORE", "DETECT_EVERY", "SMOOTHING_HALF_LIFE", "RUNTIME"} & set(serve_config(args))


def frame_answer(client, frame: np.ndarray, client_id: str = "settings-page-0001") -> dict:
    return client.post(f"/api/frames?client={client_id}", data=cv2.imencode(".jpg", frame)[1].tobytes(),
                       content_type="image/jpeg").get_json()


def test_the_app_keeps_one_settings_value_that_streams_photos_and_cameras_read(make_app, face_video, monkeypatch):
    made = []
    original = FaceAnalyzer.from_settings.__func__
    monkeypatch.setattr(FaceAnalyzer, "from_settings",
                        classmethod(lambda cls, model, settings, **budgets: made.append(settings)
                                    or original(cls, model, settings, **budgets)))
    settings = AnalysisSettings(detector="haar", min_score=0.2, detect_every=3, smoothing_half_life=0.0)
    app = make_app(settings=settings)
    assert app.extensions["analysis_settings"] is settings
    assert not {"DETECTOR", "MIN_SCORE", "DETECT_EVERY", "SMOOTHING_HALF_LIFE", "RUNTIME"} & set(app.config)
    client = app.test_client()
    assert "Haar cascade" in client.get("/").get_data(as_text=True)  # the page
    assert frame_answer(client, astronaut_bgr())["faces"]  # a browser camera
    response = client.get(f"/events?source={face_video[0].name}", buffered=False)  # a stream
    next(iter(response.response))
    response.close()
    assert len(made) == 2 and all(m is settings for m in made)


def test_the_least_score_of_the_settings_filters_photos_and_cameras(make_app):
    photo = cv2.imencode(".png", astronaut_bgr())[1].tobytes()
    client = make_app().test_client()
    assert client.post("/api/predict", data=photo, content_type="image/png").get_json()["faces"]
    strict = make_app(settings=AnalysisSettings(min_score=1.0)).test_client()
    assert strict.post("/api/predict", data=photo, content_type="image/png").get_json()["faces"] == []
    assert frame_answer(strict, astronaut_bgr())["faces"] == []


def test_the_old_config_keys_still_reach_the_settings(make_app):
    app = make_app(settings=AnalysisSettings(detect_every=4), MIN_SCORE=0.6)
    assert app.extensions["analysis_settings"] == AnalysisSettings(detect_every=4, min_score=0.6)
    assert "MIN_SCORE" not in app.config
