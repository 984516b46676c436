"""FacialExpressionModel on the shipped weights: shapes, probabilities, bad inputs, bad files."""

import json
import subprocess
import sys

import numpy as np
import pytest
from helpers import FER_DIR, ROOT, make_tiny_fer, requires_fer

from datasets import ferplus_scores, load_ferplus_split
from model import (
    EMOTIONS_LIST,
    FacialExpressionModel,
    ModelLoadError,
    load_fer2013_split,
    make_model,
    recalibrate_batch_norm,
)


def faces(n, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, 48, 48), dtype=np.uint8)


@pytest.mark.parametrize("n", [0, 1, 5])
def test_predict_proba_shapes_and_sums(fer_model, n):
    p = fer_model.predict_proba(faces(n))
    assert p.shape == (n, len(EMOTIONS_LIST))
    assert p.dtype == np.float32
    assert np.all(p >= 0)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-4)


def test_batch_equals_one_by_one(fer_model):
    batch = faces(4, seed=1)
    together = fer_model.predict_proba(batch)
    alone = np.concatenate([fer_model.predict_proba(batch[i:i + 1]) for i in range(4)])
    np.testing.assert_allclose(together, alone, atol=1e-4)


def test_list_of_crops_is_accepted(fer_model):
    batch = faces(3, seed=2)
    np.testing.assert_allclose(fer_model.predict_proba(list(batch)), fer_model.predict_proba(batch), atol=1e-6)


def test_predict_emotion_is_argmax(fer_model):
    face = faces(1, seed=3)[0]
    label = fer_model.predict_emotion(face)
    assert label == EMOTIONS_LIST[int(np.argmax(fer_model.predict_proba(face[None])[0]))]


@pytest.mark.parametrize("architecture, crop, width, parameters", [
    ("course", None, 1.0, 4_478_727), ("vgg", None, 1.0, 7_055_431), ("vgg", 40, 1.0, 5_744_711),
    ("vgg", 40, 0.5, 1_439_783), ("mobile", 40, 1.0, 547_463)])
@pytest.mark.slow  # builds or runs Keras models (TensorFlow)
def test_architectures_have_the_documented_size(architecture, crop, width, parameters):
    assert make_model(architecture=architecture, crop=crop, width=width).count_params() == parameters


@pytest.mark.slow  # builds or runs Keras models (TensorFlow)
def test_flops_are_counted_from_the_layers():
    import keras

    from networks import count_flops

    inputs = keras.Input((48, 48, 1))
    x = keras.layers.Conv2D(8, 3, padding="same")(inputs)  # 48 * 48 * 9 * 1 * 8 multiply-adds
    x = keras.layers.DepthwiseConv2D(3, strides=2, padding="same")(x)  # 24 * 24 * 9 * 8
    x = keras.layers.Flatten()(x)
    outputs = keras.layers.Dense(7)(x)  # 24 * 24 * 8 * 7
    expected = 2 * (48 * 48 * 9 * 8 + 24 * 24 * 9 * 8 + 24 * 24 * 8 * 7)
    assert count_flops(keras.Model(inputs, outputs)) == expected
    # the VGG variant on 40x40 crops: 1.31 GFLOP for the two networks that issue 37 counted; the small one
    # fits EfficientFace's 154 MFLOP with its mirror (flip TTA)
    vgg = count_flops(make_model(architecture="vgg", crop=40))
    mobile = count_flops(make_model(architecture="mobile", crop=40))
    assert 0.64e9 < vgg < 0.66e9 and 2 * mobile < 0.15e9 and mobile * 9 < vgg


@pytest.mark.slow  # builds or runs Keras models (TensorFlow)
def test_the_width_multiplier_scales_every_convolution_and_hidden_layer():
    def layer_sizes(model):  # (layer type, filters or units) of every Conv2D and Dense layer
        return [(layer.__class__.__name__, getattr(layer, "filters", None) or layer.units)
                for layer in model.layers if hasattr(layer, "filters") or hasattr(layer, "units")]

    full = layer_sizes(make_model(architecture="vgg", crop=40))
    half = layer_sizes(make_model(architecture="vgg", crop=40, width=0.5))
    assert [name for name, _ in full] == [name for name, _ in half]
    assert [n // 2 for _, n in full[:-1]] == [n for _, n in half[:-1]]  # all but the output layer
    assert full[-1] == half[-1] == ("Dense", len(EMOTIONS_LIST))


@pytest.mark.parametrize("width", [0, -1, 5, True, "half", float("nan")])
def test_a_width_that_is_not_a_positive_multiplier_is_refused(width):
    with pytest.raises(ValueError, match="width"):
        make_model(architecture="vgg", crop=40, width=width)


@pytest.mark.slow  # builds or runs Keras models (TensorFlow)
def test_a_cropping_model_takes_whole_faces_and_computes_on_their_center():
    model = make_model(architecture="vgg", crop=40)
    assert model.input_shape == (None, 48, 48, 1)
    assert model.get_layer("center_crop").compute_output_shape((None, 48, 48, 1)) == (None, 40, 40, 1)
    # pixels outside the central 40x40 do not change the output
    rng = np.random.default_rng(0)
    faces = rng.integers(0, 256, (2, 48, 48, 1)).astype(np.float32)
    framed = faces.copy()
    framed[:, :4], framed[:, -4:], framed[:, :, :4], framed[:, :, -4:] = 0, 255, 0, 255
    np.testing.assert_allclose(model.predict_on_batch(faces), model.predict_on_batch(framed), atol=1e-6)


@pytest.mark.parametrize("crop", [8, 49, 0])
def test_a_crop_outside_the_face_is_refused(crop):
    with pytest.raises(ValueError, match="crop"):
        make_model(architecture="vgg", crop=crop)


@pytest.mark.slow  # builds or runs Keras models (TensorFlow)
def test_shipped_model_is_the_one_its_metrics_describe(fer_model):
    import keras

    metrics = json.loads((ROOT / "docs" / "metrics.json").read_text())
    members = metrics.get("members", [metrics])  # an ensemble's (tools.ensemble) lists its networks'
    built = [make_model(architecture=m["architecture"], crop=m.get("crop"), width=m.get("width", 1.0)) for m in members]
    shipped = fer_model.keras_model
    recalibration = [layer for layer in shipped.layers if layer.name == "ferplus_recalibration"]  # issue 31's floor
    assert shipped.count_params() == metrics["parameters"]
    assert shipped.count_params() - sum(layer.count_params() for layer in recalibration) == sum(
        network.count_params() for network in built)
    networks = [layer for layer in shipped.layers if isinstance(layer, keras.Model)]
    if "members" not in metrics:
        networks = [shipped]
    assert len(networks) == len(built)
    for network, expected in zip(networks, built, strict=True):
        assert [layer.__class__.__name__ for layer in network.layers] == \
            [layer.__class__.__name__ for layer in expected.layers]


@pytest.mark.parametrize("bad, error", [
    (np.zeros((2, 48, 48), np.float32), TypeError),
    (np.zeros((2, 48, 48), np.int64), TypeError),
    (np.zeros((48, 48), np.uint8), ValueError),
    (np.zeros((2, 48, 48, 1), np.uint8), ValueError),
    (np.zeros((2, 64, 64), np.uint8), ValueError),
    (np.zeros((2, 48, 47), np.uint8), ValueError),
    ([np.zeros((48, 48), np.uint8), np.zeros((40, 40), np.uint8)], ValueError),
])
def test_bad_input_raises(fer_model, bad, error):
    with pytest.raises(error, match="faces must"):
        fer_model.predict_proba(bad)


def test_predict_emotion_rejects_a_batch(fer_model):
    with pytest.raises(ValueError, match="shape"):
        fer_model.predict_emotion(faces(2))


def test_missing_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing.json"):
        FacialExpressionModel(tmp_path / "nothing.json", ROOT / "model_weights.h5")
    with pytest.raises(FileNotFoundError, match="nothing.h5"):
        FacialExpressionModel(ROOT / "model.json", tmp_path / "nothing.h5")


@pytest.mark.parametrize("json_text", ["not json at all", '{"class_name": "Nothing"}', "\xff\xfe"])
def test_corrupt_architecture(tmp_path, json_text):
    path = tmp_path / "model.json"
    path.write_text(json_text, encoding="latin-1")
    with pytest.raises(ModelLoadError, match="model.json"):
        FacialExpressionModel(path, ROOT / "model_weights.h5")


def test_architecture_of_another_shape(tmp_path):
    path = tmp_path / "model.json"
    path.write_text(make_model(input_shape=(64, 64, 1)).to_json())
    with pytest.raises(ModelLoadError, match="expected"):
        FacialExpressionModel(path, ROOT / "model_weights.h5")


@pytest.mark.parametrize("content", [b"", b"\x89HDF\r\n\x1a\n" + b"\0" * 100, b"random bytes" * 50])
def test_corrupt_weights(tmp_path, content):
    path = tmp_path / "model_weights.h5"
    path.write_bytes(content)
    with pytest.raises(ModelLoadError, match="model_weights.h5"):
        FacialExpressionModel(ROOT / "model.json", path)


def test_exported_json_is_keras_json():
    config = json.loads((ROOT / "model.json").read_text())
    assert config["class_name"] == "Functional"


@requires_fer
@pytest.mark.slow  # the whole PublicTest split or a whole real clip
def test_publictest_accuracy(fer_model):
    """The shipped model against the FER+ crowd's majority on PublicTest: 83.68% measured as served, 7.2% of
    crowd-neutral faces called sad (docs/metrics.json), so a model that lost more than half a point fails, and
    so do the model it replaced (run 7: 82.30%, 7.9%), issue 31's floor (77.65%, 10.5%) and the networks
    trained on FER2013's own labels (67.0%, 26.8%)."""
    faces, labels, crowd = load_ferplus_split(FER_DIR / "test")
    scores = ferplus_scores(fer_model.predict_proba(faces[crowd.included]), crowd.majority[crowd.included])
    assert len(labels) == 3589 and scores["images"] == 3553
    assert scores["ferplus_accuracy"] >= 0.831, scores
    assert scores["neutral_called_sad"] <= 0.085, scores


def test_flip_tta_makes_a_face_and_its_mirror_equal(fer_model):
    face = faces(1, seed=4)
    np.testing.assert_allclose(fer_model.predict_proba(face), fer_model.predict_proba(face[:, :, ::-1]), atol=1e-5)


@pytest.mark.slow  # builds or runs Keras models (TensorFlow)
def test_without_tta_the_mirror_differs():
    plain = FacialExpressionModel(ROOT / "model.json", ROOT / "model_weights.h5", flip_tta=False)
    face = faces(1, seed=4)
    assert np.abs(plain.predict_proba(face) - plain.predict_proba(face[:, :, ::-1])).max() > 1e-4


@pytest.mark.slow  # builds or runs Keras models (TensorFlow)
def test_shift_tta_averages_the_four_shifted_faces_and_their_mirrors():
    plain = FacialExpressionModel(ROOT / "model.json", ROOT / "model_weights.h5", flip_tta=False, runtime="keras")
    ten = FacialExpressionModel(ROOT / "model.json", ROOT / "model_weights.h5", shift_tta=4, runtime="keras")
    face = faces(2, seed=5)
    padded = np.pad(face, ((0, 0), (4, 4), (4, 4)), mode="edge")
    views = [face] + [padded[:, 4 + dy:52 + dy, 4 + dx:52 + dx] for dy in (-4, 4) for dx in (-4, 4)]
    views += [v[:, :, ::-1] for v in views]
    expected = np.mean([plain.predict_proba(np.ascontiguousarray(v)) for v in views], axis=0)
    np.testing.assert_allclose(ten.predict_proba(face), expected, atol=1e-5)
    assert np.abs(ten.predict_proba(face) - plain.predict_proba(face)).max() > 1e-4


@pytest.mark.parametrize("shift", [-1, 12, 2.5, True])
def test_a_shift_tta_off_the_face_is_refused(shift):
    with pytest.raises(ValueError, match="shift_tta"):
        FacialExpressionModel(ROOT / "model.json", ROOT / "model_weights.h5", shift_tta=shift)


@pytest.fixture(scope="module")
def keras_model():
    return FacialExpressionModel(ROOT / "model.json", ROOT / "model_weights.h5", runtime="keras")


def real_faces() -> np.ndarray:
    """48x48 crops of real faces: the astronaut, mirrored, shifted, darker and with more contrast."""
    import cv2
    from helpers import ASTRONAUT_FACE, astronaut_bgr

    gray = cv2.cvtColor(astronaut_bgr(), cv2.COLOR_BGR2GRAY)
    x, y, w, h = ASTRONAUT_FACE
    crops = [gray[y + dy:y + dy + h, x + dx:x + dx + w] for dx, dy in ((0, 0), (-8, 4), (6, -5), (10, 10))]
    crops = [cv2.resize(c, (48, 48), interpolation=cv2.INTER_AREA) for c in crops]
    crops += [c[:, ::-1] for c in crops] + [(c * 0.6).astype(np.uint8) for c in crops]
    crops += [np.clip((c.astype(int) - 128) * 1.5 + 128, 0, 255).astype(np.uint8) for c in crops[:4]]
    return np.stack(crops)


@pytest.mark.slow  # builds or runs Keras models (TensorFlow)
def test_fast_path_gives_the_keras_labels(fer_model, keras_model):
    """The default LiteRT int8 runtime agrees with the Keras model on real faces (issue 4)."""
    assert fer_model.runtime == "litert" and keras_model.runtime == "keras"
    batch = real_faces()
    fast, reference = fer_model.predict_proba(batch), keras_model.predict_proba(batch)
    np.testing.assert_array_equal(fast.argmax(axis=1), reference.argmax(axis=1))
    assert np.abs(fast - reference).max() < 0.03


@requires_fer
@pytest.mark.slow  # the whole PublicTest split or a whole real clip
def test_fast_path_keeps_the_publictest_labels(fer_model, keras_model):
    """On 700 PublicTest faces (100 per class) the two runtimes agree on at least 98% of the labels."""
    import cv2

    paths = [p for name in EMOTIONS_LIST for p in sorted((FER_DIR / "test" / name).glob("*.jpg"))[:100]]
    batch = np.stack([cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) for p in paths])
    agreement = (fer_model.predict_proba(batch).argmax(1) == keras_model.predict_proba(batch).argmax(1)).mean()
    assert agreement >= 0.98, f"labels agree on {agreement:.1%}"


def test_unknown_runtime():
    with pytest.raises(ValueError, match="runtime"):
        FacialExpressionModel(ROOT / "model.json", ROOT / "model_weights.h5", runtime="onnx")


def _normalising_model():
    """Input -> BatchNormalization -> Flatten -> Dense softmax: the layer sees the raw pixels."""
    import keras

    inputs = keras.Input((48, 48, 1))
    x = keras.layers.BatchNormalization(momentum=0.9)(inputs)
    outputs = keras.layers.Dense(len(EMOTIONS_LIST), activation="softmax")(keras.layers.Flatten()(x))
    return keras.Model(inputs, outputs)


@pytest.mark.slow  # builds or runs Keras models (TensorFlow)
@pytest.mark.parametrize("batch_size", [64, 100])
def test_recalibration_stores_the_mean_of_the_batch_statistics(batch_size):
    rng = np.random.default_rng(0)
    faces = rng.integers(0, 256, (256, 48, 48), dtype=np.uint8)
    faces[:128] //= 4  # batches of different brightness, so the per-batch statistics differ
    model = _normalising_model()
    norm = model.layers[1]
    assert recalibrate_batch_norm(model, faces, batch_size=batch_size) == 1
    batches = [faces[i:i + batch_size].astype(np.float64) for i in range(0, len(faces), batch_size)]
    sizes = [len(b) for b in batches]  # 100: batches of 100, 100 and 56, weighted by their size
    assert np.asarray(norm.moving_mean)[0] == pytest.approx(np.average([b.mean() for b in batches], weights=sizes),
                                                            rel=1e-4)
    assert np.asarray(norm.moving_variance)[0] == pytest.approx(np.average([b.var() for b in batches], weights=sizes),
                                                                rel=1e-3)
    assert norm.momentum == 0.9


@pytest.mark.slow  # builds or runs Keras models (TensorFlow)
@pytest.mark.parametrize("frozen", ["layer", "model"])
def test_recalibration_reaches_frozen_layers(frozen):
    model = _normalising_model()
    (model if frozen == "model" else model.layers[1]).trainable = False
    recalibrate_batch_norm(model, np.full((4, 48, 48), 100, np.uint8))
    assert np.asarray(model.layers[1].moving_mean)[0] == pytest.approx(100.0)
    assert model.layers[1].trainable is False


@pytest.mark.slow  # builds or runs Keras models (TensorFlow)
def test_recalibration_reaches_nested_models():
    import keras

    inner = _normalising_model()
    inputs = keras.Input((48, 48, 1))
    outer = keras.Model(inputs, inner(inputs))
    assert recalibrate_batch_norm(outer, np.full((4, 48, 48), 50, np.uint8)) == 1
    assert np.asarray(inner.layers[1].moving_mean)[0] == pytest.approx(50.0)
    assert inner.layers[1].momentum == 0.9


@pytest.mark.slow  # builds or runs Keras models (TensorFlow)
def test_recalibration_changes_only_the_statistics():
    model = _normalising_model()
    before = [np.array(w) for w in model.trainable_weights]
    recalibrate_batch_norm(model, np.full((8, 48, 48), 200, np.uint8), batch_size=4)
    assert all(np.array_equal(a, np.asarray(b)) for a, b in zip(before, model.trainable_weights, strict=True))
    assert np.asarray(model.layers[1].moving_mean)[0] == pytest.approx(200.0)


@pytest.mark.slow  # builds or runs Keras models (TensorFlow)
def test_recalibration_of_a_model_without_batch_norm_changes_nothing():
    import keras

    inputs = keras.Input((48, 48, 1))
    model = keras.Model(inputs, keras.layers.Dense(7, activation="softmax")(keras.layers.Flatten()(inputs)))
    before = [np.array(w) for w in model.weights]
    assert recalibrate_batch_norm(model, np.zeros((4, 48, 48), np.uint8)) == 0
    assert all(np.array_equal(a, np.asarray(b)) for a, b in zip(before, model.weights, strict=True))


@pytest.mark.parametrize("faces, batch_size, error", [
    (np.zeros((4, 48, 48), np.float32), 2, TypeError),
    (np.zeros((4, 40, 40), np.uint8), 2, ValueError),
    (np.zeros((1, 48, 48), np.uint8), 2, ValueError),
    (np.zeros((4, 48, 48), np.uint8), 1, ValueError),
    (np.zeros((4, 48, 48), np.uint8), True, ValueError),
])
def test_recalibration_refuses_bad_input(faces, batch_size, error):
    model = _normalising_model()
    with pytest.raises(error):
        recalibrate_batch_norm(model, faces, batch_size=batch_size)
    assert np.asarray(model.layers[1].moving_mean)[0] == 0.0


def test_fer2013_split_is_read_class_by_class(tmp_path):
    import cv2

    for label, name in enumerate(EMOTIONS_LIST):
        (tmp_path / name).mkdir()
        for i in range(label % 3):  # 0, 1 or 2 faces per class
            cv2.imwrite(str(tmp_path / name / f"{i}.jpg"), np.full((48, 48), 10 * label, np.uint8))
    faces, labels = load_fer2013_split(tmp_path)
    expected = [label for label in range(len(EMOTIONS_LIST)) for _ in range(label % 3)]
    assert faces.shape == (len(expected), 48, 48) and faces.dtype == np.uint8
    assert labels.tolist() == expected
    assert np.abs(faces.mean(axis=(1, 2)) - 10 * labels).max() < 2


@pytest.mark.parametrize("content", ["nothing", "wrong size", "not an image"])
def test_fer2013_split_that_is_not_one_is_refused(tmp_path, content):
    import cv2

    (tmp_path / "happy").mkdir()
    if content == "wrong size":
        cv2.imwrite(str(tmp_path / "happy" / "a.jpg"), np.zeros((64, 64), np.uint8))
    elif content == "not an image":
        (tmp_path / "happy" / "a.jpg").write_text("text")
    with pytest.raises(FileNotFoundError if content == "nothing" else ValueError, match="images|image"):
        load_fer2013_split(tmp_path)


@pytest.mark.parametrize("threads", [0, -1, 1.5, True])
def test_bad_thread_counts_are_refused(threads):
    with pytest.raises(ValueError, match="threads"):
        FacialExpressionModel(ROOT / "model.json", ROOT / "model_weights.h5", threads=threads)


def test_one_or_two_litert_threads_give_the_same_probabilities(fer_model):
    batch = real_faces()
    one = FacialExpressionModel(ROOT / "model.json", ROOT / "model_weights.h5", threads=1).predict_proba(batch)
    two = FacialExpressionModel(ROOT / "model.json", ROOT / "model_weights.h5", threads=2).predict_proba(batch)
    np.testing.assert_allclose(one, two, atol=1e-5)


def shipped_copy(folder):
    """The shipped model's two files copied into ``folder``, and the name its LiteRT cache has there (the
    same as beside the shipped files: the key is a hash of their contents)."""
    import shutil

    folder.mkdir(parents=True, exist_ok=True)
    for name in ("model.json", "model_weights.h5"):
        shutil.copy(ROOT / name, folder / name)
    (cache,) = ROOT.glob("model_weights.*.tflite")  # written when fer_model loaded
    return cache


def test_the_cache_goes_to_the_user_cache_folder_when_the_weights_folder_cannot_be_written(
        fer_model, tmp_path, monkeypatch):
    import model

    cache = shipped_copy(tmp_path / "install")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    user_cache = tmp_path / "cache" / "facial-expression-stream" / cache.name
    write = model.write_cache

    def read_only_install(folder, *args, **kwargs):  # the tests run as root, which chmod does not stop
        if folder == tmp_path / "install":
            raise PermissionError(13, "Permission denied", str(folder))
        return write(folder, *args, **kwargs)

    monkeypatch.setattr(model, "write_cache", read_only_install)
    monkeypatch.setattr(model, "convert_to_litert", lambda keras_model: cache.read_bytes())  # no 16-s conversion
    install = tmp_path / "install"
    first = FacialExpressionModel(install / "model.json", install / "model_weights.h5")
    assert user_cache.read_bytes() == cache.read_bytes() and not list(install.glob("*.tflite"))
    converted = []  # the next start reads the user's cache
    monkeypatch.setattr(model, "convert_to_litert", lambda keras_model: converted.append(1))
    again = FacialExpressionModel(install / "model.json", install / "model_weights.h5")
    assert converted == []
    for loaded in (first, again):
        np.testing.assert_allclose(loaded.predict_proba(faces(3)), fer_model.predict_proba(faces(3)), atol=1e-6)


def test_a_good_cache_beside_the_weights_needs_no_home_folder(fer_model, tmp_path, monkeypatch):
    import pathlib

    shipped_copy(tmp_path)
    (cache,) = ROOT.glob("model_weights.*.tflite")
    (tmp_path / cache.name).write_bytes(cache.read_bytes())
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setattr(pathlib.Path, "home", classmethod(lambda cls: (_ for _ in ()).throw(
        RuntimeError("Could not determine home directory."))))
    FacialExpressionModel(tmp_path / "model.json", tmp_path / "model_weights.h5")


def test_a_cache_write_is_atomic_readable_and_removes_only_its_own_stale_files(tmp_path):
    import os
    import time

    from runtimes import write_cache

    stale = tmp_path / "model_weights.0123456789abcdef.tflite"
    other = tmp_path / "model_weights.v2.0123456789abcdef.tflite"
    old_leftover = tmp_path / ".model_weights.0123456789abcdef.tflite.x1"
    fresh_leftover = tmp_path / ".model_weights.fedcba9876543210.tflite.x2"
    for path in (stale, other, old_leftover, fresh_leftover):
        path.write_bytes(b"x")
    os.utime(old_leftover, (time.time() - 7200,) * 2)  # a killed process's, two hours ago
    write_cache(tmp_path, "model_weights.fedcba9876543210.tflite", "model_weights", b"content", remove_stale=False)
    assert stale.exists() and not old_leftover.exists()  # the user's folder: another install's may be "stale"
    write_cache(tmp_path, "model_weights.fedcba9876543210.tflite", "model_weights", b"content")
    assert (tmp_path / "model_weights.fedcba9876543210.tflite").read_bytes() == b"content"
    assert (tmp_path / "model_weights.fedcba9876543210.tflite").stat().st_mode & 0o777 == 0o644
    assert not stale.exists()
    assert other.exists() and fresh_leftover.exists()  # another weights file's cache; a conversion under way


@pytest.mark.slow  # one LiteRT conversion
def test_a_damaged_cache_is_converted_again_and_replaced(fer_model, tmp_path):
    cache = shipped_copy(tmp_path)
    damaged = tmp_path / cache.name
    damaged.write_bytes(cache.read_bytes()[:1000])  # cut short: a crash or a full disk
    loaded = FacialExpressionModel(tmp_path / "model.json", tmp_path / "model_weights.h5")
    np.testing.assert_allclose(loaded.predict_proba(faces(3)), fer_model.predict_proba(faces(3)), atol=1e-6)
    assert damaged.stat().st_size == cache.stat().st_size


def test_two_loads_at_once_convert_once(fer_model, tmp_path, monkeypatch):
    """Two processes (here threads: flock locks are per open file) loading the same new weights at once:
    one converts, the other waits and reads its cache."""
    import threading
    import time

    import model

    cache = shipped_copy(tmp_path / "install")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    conversions = []

    def slow_conversion(keras_model):
        conversions.append(1)
        time.sleep(1.0)
        return cache.read_bytes()

    monkeypatch.setattr(model, "convert_to_litert", slow_conversion)
    monkeypatch.setattr(FacialExpressionModel, "keras_model", property(lambda self: None))  # no Keras load
    install, loaded = tmp_path / "install", []
    threads = [threading.Thread(target=lambda: loaded.append(FacialExpressionModel(
        install / "model.json", install / "model_weights.h5"))) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(loaded) == 2 and conversions == [1]
    for each in loaded:
        np.testing.assert_allclose(each.predict_proba(faces(2)), fer_model.predict_proba(faces(2)), atol=1e-6)


@pytest.mark.slow  # runs the shipped model in a process of its own
def evaluate(*arguments):
    done = subprocess.run([sys.executable, "-m", "benchmarks.evaluate", *map(str, arguments)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


def test_evaluate_reports_a_confusion_matrix_that_matches_its_figures(tmp_path):
    make_tiny_fer(tmp_path / "fer", {"test": 3})
    figure = tmp_path / "cm.png"
    report = evaluate("--data", tmp_path / "fer" / "test", "--figure", figure)  # against the FER+ crowd
    counts = np.array(report["confusion_matrix"])
    assert counts.shape == (len(EMOTIONS_LIST), len(EMOTIONS_LIST))
    assert report["excluded_images"] == 1 and counts.sum() == report["images"] == 20  # rows: the crowd's class
    assert report["ferplus_accuracy"] == round(np.trace(counts) / counts.sum(), 4)
    rows = np.maximum(counts.sum(axis=1), 1)
    assert [report["per_class_recall"][name] for name in EMOTIONS_LIST] == [round(c / r, 4) for c, r in
                                                                          zip(np.diag(counts), rows, strict=True)]
    assert 0 <= report["fer2013_accuracy"] <= 1 and 0 <= report["neutral_called_sad"] <= 1
    assert report["cpu"]["model"] and figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    original = evaluate("--data", tmp_path / "fer" / "test", "--labels", "fer2013")  # the figures of earlier sessions
    counts = np.array(original["confusion_matrix"])
    assert counts.sum(axis=1).tolist() == [3] * len(EMOTIONS_LIST)  # rows: the folder's class
    assert original["accuracy"] == round(np.trace(counts) / counts.sum(), 4)


def test_evaluate_without_votes_says_where_they_come_from(tmp_path):
    make_tiny_fer(tmp_path / "fer", {"test": 1}, votes=False)
    done = subprocess.run([sys.executable, "-m", "benchmarks.evaluate", "--data", str(tmp_path / "fer" / "test")],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode != 0 and "ferplus.csv" in done.stderr and "microsoft/FERPlus" in done.stderr


def test_confusion_figure_refuses_a_matrix_of_other_classes(tmp_path):
    from benchmarks.evaluate import save_confusion_figure

    with pytest.raises(ValueError, match="7x7"):
        save_confusion_figure(np.ones((6, 6), int), tmp_path / "cm.png", "six classes")


@pytest.mark.slow  # builds and converts a Keras model (TensorFlow)
def test_a_full_int8_conversion_beside_the_weights_is_served_for_those_weights_only(tmp_path):
    from runtimes import convert_to_full_int8, full_int8_name, model_key

    network = make_model(architecture="mobile", crop=40)
    json_path, weights_path = tmp_path / "model.json", tmp_path / "model.weights.h5"
    json_path.write_text(network.to_json())
    network.save_weights(weights_path)
    plain = FacialExpressionModel(json_path, weights_path)
    assert plain.litert_quantization == "dynamic-range int8"
    content = convert_to_full_int8(network, faces(20))
    shipped = tmp_path / full_int8_name(weights_path, model_key(json_path, weights_path))
    shipped.write_bytes(content)
    served = FacialExpressionModel(json_path, weights_path)
    assert served.litert_quantization == "full int8"
    probabilities = served.predict_proba(faces(5, seed=1))
    assert probabilities.shape == (5, 7) and np.allclose(probabilities.sum(axis=1), 1, atol=0.02)
    shipped.write_bytes(b"cut short")  # unusable: converted as usual, with a warning
    assert FacialExpressionModel(json_path, weights_path).litert_quantization == "dynamic-range int8"
    shipped.write_bytes(content)
    network.layers[-1].set_weights([w + 0.01 for w in network.layers[-1].get_weights()])
    network.save_weights(weights_path)  # other weights: another key, the file is not theirs
    assert FacialExpressionModel(json_path, weights_path).litert_quantization == "dynamic-range int8"


@pytest.mark.parametrize("architecture, crop, shift", [("vgg", 40, 4), ("vgg", 44, 2), ("mobile", 40, 4),
                                                       ("course", None, 4)])
def test_ten_crop_shift_keeps_the_corner_crops_inside_the_face(architecture, crop, shift):
    from networks import ten_crop_shift

    assert ten_crop_shift(make_model(architecture=architecture, crop=crop)) == shift
