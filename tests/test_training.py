"""training.py: the distillation loss, mixup, teachers' soft-label files; tools/train_jax.py on tiny data."""

import functools
import json
import os
import subprocess
import sys
import tarfile

import keras
import numpy as np
import pytest
from helpers import FER_DIR, ROOT, make_tiny_fer, requires_fer

import training
from model import EMOTIONS_LIST, FacialExpressionModel, fer2013_files
from training import (
    DistillationLoss,
    LabelAccuracy,
    mix_up,
    read_publictest,
    read_teachers,
    soft_label_keys,
    write_soft_labels,
)

C = len(EMOTIONS_LIST)


def distributions(n, seed):
    return np.random.default_rng(seed).dirichlet(np.ones(C), n).astype(np.float32)


def numpy_loss(labels, teacher, student, alpha, t):
    cross_entropy = -(labels * np.log(student)).sum(axis=1)
    soften = lambda p: p ** (1 / t) / (p ** (1 / t)).sum(axis=1, keepdims=True)  # noqa: E731
    pt, ps = soften(teacher), soften(student)
    kl = (pt * (np.log(pt) - np.log(ps))).sum(axis=1)
    return alpha * t * t * kl + (1 - alpha) * cross_entropy, kl


def test_distillation_loss_combines_both_terms():
    labels = np.eye(C, dtype=np.float32)[[0, 3, 6, 2]]
    teacher, student = distributions(4, 1), distributions(4, 2)
    expected, kl = numpy_loss(labels, teacher, student, alpha=0.3, t=4.0)
    assert (kl > 0.01).all()  # both terms matter in this case
    got = DistillationLoss(alpha=0.3, temperature=4.0)(np.concatenate([labels, teacher], axis=1), student)
    assert float(got) == pytest.approx(expected.mean(), rel=1e-4)
    cross_entropy = float(DistillationLoss(alpha=0.0)(np.concatenate([labels, teacher], axis=1), student))
    assert cross_entropy == pytest.approx(-(labels * np.log(student)).sum(axis=1).mean(), rel=1e-4)
    assert float(got) != pytest.approx(cross_entropy, rel=1e-2)


def test_distillation_term_vanishes_when_the_student_matches_the_teacher():
    labels, teacher = np.eye(C, dtype=np.float32)[[1, 4]], distributions(2, 3)
    loss = DistillationLoss(alpha=1.0, temperature=2.0)
    assert float(loss(np.concatenate([labels, teacher], axis=1), teacher)) == pytest.approx(0.0, abs=1e-5)


def test_distillation_loss_without_teacher_columns_is_the_cross_entropy():
    labels, student = np.eye(C, dtype=np.float32)[[5, 0]], distributions(2, 4)
    got = float(DistillationLoss(alpha=0.9, label_smoothing=0.1)(labels, student))
    smoothed = labels * 0.9 + 0.1 / C
    assert got == pytest.approx(-(smoothed * np.log(student)).sum(axis=1).mean(), rel=1e-4)


@pytest.mark.parametrize("kwargs", [{"alpha": 1.5}, {"alpha": -0.1}, {"temperature": 0}, {"label_smoothing": 1}])
def test_distillation_loss_refuses_out_of_range_settings(kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        DistillationLoss(**kwargs)


def test_label_accuracy_reads_only_the_label_columns():
    labels = np.eye(C, dtype=np.float32)[[0, 1]]
    teacher = np.eye(C, dtype=np.float32)[[2, 2]]  # would score 0 if the teacher's columns were read
    metric = LabelAccuracy()
    metric.update_state(np.concatenate([labels, teacher], axis=1), labels * 0.9 + 0.1 / C)
    assert float(metric.result()) == 1.0 and metric.name == "accuracy"


def test_mix_up_mixes_faces_and_targets_with_the_same_weights():
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (6, 48, 48, 1)).astype(np.float32)
    y = np.concatenate([np.eye(C, dtype=np.float32)[:6], distributions(6, 5)], axis=1)
    mixed_x, mixed_y = mix_up(x, y, 0.4, rng)
    assert mixed_x.shape == x.shape and mixed_y.shape == y.shape and mixed_x.dtype == np.float32
    np.testing.assert_allclose(mixed_y[:, :C].sum(axis=1), 1, atol=1e-6)
    np.testing.assert_allclose(mixed_y[:, C:].sum(axis=1), 1, atol=1e-5)
    mixed = 0
    for i in range(6):  # sample i = lam * sample i + (1 - lam) * sample j: read lam and j off the labels
        lam = mixed_y[i, i]
        others = [k for k in range(6) if k != i and mixed_y[i, k] > 0]
        j = others[0] if others else i
        mixed += j != i
        np.testing.assert_allclose(mixed_x[i], lam * x[i] + (1 - lam) * x[j], atol=1e-3)
        np.testing.assert_allclose(mixed_y[i, C:], lam * y[i, C:] + (1 - lam) * y[j, C:], atol=1e-5)
    assert mixed >= 3
    with pytest.raises(ValueError, match="alpha"):
        mix_up(x, y, 0, rng)
    with pytest.raises(ValueError, match="2-D"):  # class numbers would broadcast to (N, N)
        mix_up(x, y.argmax(axis=1), 0.4, rng)


def tiny_teacher(tmp_path, folder, seed=0, name="teacher"):
    keys = soft_label_keys([path for path, _ in fer2013_files(folder)])
    probabilities = distributions(len(keys), seed)
    return write_soft_labels(tmp_path / name, keys, probabilities, note="random"), keys, probabilities


def test_soft_labels_round_trip_in_any_key_order_and_average(tmp_path):
    make_tiny_fer(tmp_path / "fer", {"train": 2})
    first, keys, p1 = tiny_teacher(tmp_path, tmp_path / "fer" / "train", 0, "a")
    second, _, p2 = tiny_teacher(tmp_path, tmp_path / "fer" / "train", 1, "b")
    assert json.loads(first.with_suffix(".json").read_text())["classes"] == list(EMOTIONS_LIST)
    with np.load(first) as data:
        assert data["probabilities"].dtype == np.float16 and data["probabilities"].shape == (len(keys), C)
    reversed_keys = keys[::-1]
    np.testing.assert_allclose(read_teachers([first], reversed_keys), p1[::-1], atol=2e-3)
    np.testing.assert_allclose(read_teachers([first, second], keys), (p1 + p2) / 2, atol=2e-3)


def test_teachers_are_found_by_name_in_the_teachers_folder(tmp_path, monkeypatch):
    make_tiny_fer(tmp_path / "fer", {"train": 1})
    path, keys, p = tiny_teacher(tmp_path, tmp_path / "fer" / "train")
    monkeypatch.setattr(training, "TEACHERS_DIR", tmp_path)
    np.testing.assert_allclose(read_teachers([path.stem], keys), p, atol=2e-3)
    np.testing.assert_allclose(read_teachers([path.name], keys), p, atol=2e-3)


def test_bad_teacher_files_are_refused_with_a_message(tmp_path):
    make_tiny_fer(tmp_path / "fer", {"train": 1})
    path, keys, _ = tiny_teacher(tmp_path, tmp_path / "fer" / "train")
    with pytest.raises(ValueError, match="no soft labels for 1 of .*first: angry/other.jpg"):
        read_teachers([path], keys + ["angry/other.jpg"])
    with pytest.raises(FileNotFoundError, match="missing.npz"):
        read_teachers([tmp_path / "missing.npz"], keys)
    with pytest.raises(ValueError, match="no teacher"):
        read_teachers([], keys)
    with pytest.raises(ValueError, match="probability distribution"):
        write_soft_labels(tmp_path / "bad", keys, np.full((len(keys), C), 0.5))
    with pytest.raises(ValueError, match=r"must be \(7, 7\)"):
        write_soft_labels(tmp_path / "bad", keys, np.full((len(keys), 3), 1 / 3))
    with pytest.raises(TypeError):  # figures JSON cannot hold: neither file written
        write_soft_labels(tmp_path / "bad", keys, distributions(len(keys), 0), when=object())
    assert not list(tmp_path.glob("bad*"))


def test_a_teacher_name_with_a_dot_keeps_it(tmp_path):
    make_tiny_fer(tmp_path / "fer", {"train": 1})
    half, keys, probabilities = tiny_teacher(tmp_path, tmp_path / "fer" / "train", name="half0.5")
    other, _, _ = tiny_teacher(tmp_path, tmp_path / "fer" / "train", seed=1, name="half0.7")
    assert (half.name, other.name) == ("half0.5.npz", "half0.7.npz") and half.with_suffix(".json").is_file()
    np.testing.assert_allclose(read_teachers([half], keys), probabilities, atol=2e-3)


@pytest.mark.parametrize("teacher", sorted(training.TEACHERS_DIR.glob("*.npz")), ids=lambda p: p.stem)
def test_committed_teachers_are_distributions_over_the_training_split(teacher):
    with np.load(teacher) as data:
        keys, probabilities = data["keys"], data["probabilities"]
    assert probabilities.dtype == np.float16 and probabilities.shape == (len(keys), C) and len(keys) == 28_709
    np.testing.assert_allclose(probabilities.astype(np.float32).sum(axis=1), 1, atol=1e-2)
    figures = json.loads(teacher.with_suffix(".json").read_text())
    assert 0 < figures["publictest_served"]["accuracy"] <= 1
    if (FER_DIR / "train").is_dir():
        assert sorted(keys.tolist()) == sorted(soft_label_keys([p for p, _ in fer2013_files(FER_DIR / "train")]))


@requires_fer
def test_fer2013_files_follow_the_order_of_the_split_loader():
    files = fer2013_files(FER_DIR / "test")
    assert len(files) == 3589 and [label for _, label in files] == sorted(label for _, label in files)
    assert files[0][0].parent.name == EMOTIONS_LIST[0]


@pytest.mark.slow
def test_jax_trainer_packs_trains_one_epoch_and_exports_files_the_app_loads(tmp_path):
    from model import make_model

    pytest.importorskip("jax", reason="jax is a test requirement (requirements-dev.txt)")
    make_tiny_fer(tmp_path / "fer", {"train": 3, "test": 2})
    teacher, _, _ = tiny_teacher(tmp_path, tmp_path / "fer" / "train")
    out = tmp_path / "run"
    env = {**os.environ, "KERAS_BACKEND": "jax"}
    for command in (["pack", "--data", str(tmp_path / "fer"), "--out", str(tmp_path / "pack.npz"),
                     "--teachers", str(teacher)],
                    ["train", "--pack", str(tmp_path / "pack.npz"), "--out", str(out), "--epochs", "1",
                     "--batch-size", "8", "--width", "0.5", "--soft-labels"]):
        done = subprocess.run([sys.executable, "-m", "tools.train_jax", *command], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["backend"].startswith("jax") and metrics["epochs"] == 1
    # the FER+ labels by default: scored on the 13 PublicTest faces that the crowd does not leave out (of 14)
    assert metrics["labels"] == "ferplus" and metrics["publictest_images"] == 13
    assert 0 <= metrics["publictest_neutral_called_sad"] <= 1 and 0 <= metrics["publictest_fer2013_accuracy"] <= 1
    train_keys = soft_label_keys([path for path, _ in fer2013_files(tmp_path / "fer" / "train")])
    soft = read_teachers([out / "soft_labels.npz"], train_keys)  # a teacher for every training face, left-out ones too
    assert soft.shape == (21, C) and np.allclose(soft.sum(axis=1), 1, atol=1e-3)
    figures = json.loads((out / "soft_labels.json").read_text())  # tools.soft_labels' figures and the run's
    assert figures["publictest_images"] == 13 and 0 <= figures["publictest_served"]["accuracy"] <= 1
    assert set(figures["publictest_ten_crop_ferplus"]["per_class_recall"]) == set(EMOTIONS_LIST)
    test_keys = soft_label_keys([path for path, _ in fer2013_files(tmp_path / "fer" / "test")])
    assert read_publictest(out / "soft_labels.npz", test_keys).shape == (14, C)  # every PublicTest face
    assert metrics["jit_compile"] is True  # else every step runs op by op (the augmentation layers refuse XLA)
    assert metrics["teachers"] == [str(teacher)] and metrics["alpha"] == 0.5 and metrics["mixup"] == 0.2
    half_width = make_model(architecture="vgg", crop=40, width=0.5)  # the trainer's defaults at --width 0.5
    assert metrics["width"] == 0.5 and metrics["parameters"] == half_width.count_params() < 5_744_711 / 3
    assert 0 <= metrics["publictest_accuracy_keras_flip"] <= 1
    model = FacialExpressionModel(out / "model.json", out / "model_weights.h5")  # TensorFlow's Keras, LiteRT
    probabilities = model.predict_proba(np.zeros((2, 48, 48), np.uint8))
    assert probabilities.shape == (2, C) and np.allclose(probabilities.sum(axis=1), 1, atol=1e-4)
    assert len(list(out.glob("model_weights.*.tflite"))) == 1
    best = (out / "best.weights.h5").read_bytes()
    again = subprocess.run([sys.executable, "-m", "tools.train_jax", *command], cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=600)  # the same command after the end
    assert again.returncode == 0 and "writing its model files again" in again.stderr, again.stderr[-3000:]
    assert (out / "best.weights.h5").read_bytes() == best and len((out / "history.csv").read_text().splitlines()) == 2


@pytest.fixture
def tiny_pack(tmp_path):
    """A pack of a tiny FER2013 (3 training and 2 PublicTest faces a class, with votes) and an empty folder for
    what a device call would bring back: the device scripts' input and $OUT."""
    pytest.importorskip("jax", reason="jax is a test requirement (requirements-dev.txt)")
    from tools.train_jax import pack

    make_tiny_fer(tmp_path / "fer", {"train": 3, "test": 2})
    out = tmp_path / "out"
    out.mkdir()
    return pack(tmp_path / "fer", tmp_path / "pack.npz", []), out


@pytest.mark.slow
def test_device_script_trains_and_returns_the_weights_in_parts_that_join_into_the_model(tmp_path, tiny_pack):
    packed, out = tiny_pack
    env = {**os.environ, "OUT": str(out), "PYTHON": sys.executable}
    done = subprocess.run(["bash", "tools/device_train.sh", str(packed), str(tmp_path / "run"), "600", "--epochs", "1",
                           "--batch-size", "8", "--width", "0.5"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "probe" not in done.stdout + done.stderr  # --epochs given: no probe run
    parts = sorted(out.glob("model_weights.h5.part-*"))
    assert parts and all(part.stat().st_size <= 15 * 2**20 for part in parts)
    (tmp_path / "model_weights.h5").write_bytes(b"".join(part.read_bytes() for part in parts))
    assert sorted(path.name for path in out.iterdir() if "part-" not in path.name) == ["run.tar", "train.log"]
    with tarfile.open(out / "run.tar") as files:  # with the 2 parts, 4 files for a run: two runs fit one call's 8
        assert sorted(files.getnames()) == ["history.csv", "metrics.json", "model.json"]
        for name in files.getnames():
            (tmp_path / name).write_bytes(files.extractfile(name).read())
    assert json.loads((tmp_path / "metrics.json").read_text())["epochs"] == 1
    model = FacialExpressionModel(tmp_path / "model.json", tmp_path / "model_weights.h5", runtime="keras")
    assert model.predict_proba(np.zeros((1, 48, 48), np.uint8)).shape == (1, C)
    assert (out / "train.log").stat().st_size > 0 and (tmp_path / "history.csv").is_file()
    refused = tmp_path / "refused"  # the trainer fails in a folder that holds a run's files: nothing comes back
    refused.mkdir()
    done = subprocess.run(["bash", "tools/device_train.sh", str(tmp_path / "gone.npz"), str(tmp_path / "run"), "600",
                           "--epochs=2", "--batch-size", "8", "--width", "0.5"], cwd=ROOT,
                          env={**env, "OUT": str(refused)}, capture_output=True, text=True, timeout=600)
    assert done.returncode == 1 and "the run failed" in done.stderr, done.stdout[-3000:] + done.stderr[-3000:]
    assert "probe" not in done.stderr and sorted(path.name for path in refused.iterdir()) == ["train.log"]


@pytest.mark.parametrize("option", [["--width", "0"], ["--width", "5"], ["--epochs", "0"], ["--batch-size", "1"],
                                    ["--crop", "8"], ["--learning-rate", "0"], ["--mixup", "-1"], ["--alpha", "2"],
                                    ["--label-smoothing", "1"], ["--temperature", "0"], ["--weight-decay", "-1"]])
def test_jax_trainer_refuses_bad_options_before_it_starts(tmp_path, option, capsys):
    from tools import train_jax

    with pytest.raises(SystemExit) as refused:
        train_jax.main(["train", "--pack", str(tmp_path / "missing.npz"), "--out", str(tmp_path / "run"), *option])
    message = capsys.readouterr().err.splitlines()[-1]
    assert refused.value.code == 2 and f"{option[0]} must be" in message and option[1] in message
    assert not (tmp_path / "run").exists()


def test_jax_trainer_keeps_a_finished_run_and_refuses_other_options_in_its_folder(tmp_path):
    from tools.train_jax import check_run_folder, main, parse_args
    from training import RunFolderError

    run = tmp_path / "run"
    command = ["train", "--pack", str(tmp_path / "missing.npz"), "--out", str(run), "--epochs", "3"]
    assert check_run_folder(parse_args(command)) == "fresh" and (run / "options.json").is_file()
    (run / "backup").mkdir()
    assert check_run_folder(parse_args(command)) == "resume"  # same options, a backup: go on
    with pytest.raises(RunFolderError, match=r"--width 1.0 \(now 0.5\)"):
        check_run_folder(parse_args([*command, "--width", "0.5"]))
    (run / "backup").rmdir()  # fit ended
    (run / "best.weights.h5").write_bytes(b"the trained weights")
    (run / "history.csv").write_text("epoch,val_accuracy\n0,0.3\n1,0.4\n2,0.5\n")  # its 3 epochs
    assert check_run_folder(parse_args(command)) == "export"  # a finished run: export again, keep its weights
    assert (run / "best.weights.h5").read_bytes() == b"the trained weights"
    (run / "options.json").unlink()  # files of a run without options: kept unless --overwrite
    with pytest.raises(RunFolderError, match="--overwrite"):
        check_run_folder(parse_args(command))
    assert (run / "best.weights.h5").is_file()
    assert check_run_folder(parse_args([*command, "--overwrite"])) == "fresh"
    assert not (run / "best.weights.h5").exists()
    (run / "backup").mkdir()
    with pytest.raises(SystemExit, match=r"--seed 1 \(now 2\)"):  # the command line, before any data is read
        main([*command, "--seed", "2"])


@pytest.mark.slow  # builds Keras models (TensorFlow)
def test_an_ensemble_loads_as_one_model_and_averages_its_members(tmp_path):
    from model import FacialExpressionModel, make_model
    from tools import ensemble

    members = []
    for seed in (1, 2):
        keras.utils.set_random_seed(seed)
        network = make_model(architecture="course")
        (tmp_path / f"m{seed}.json").write_text(network.to_json())
        network.save(tmp_path / f"m{seed}.h5", include_optimizer=False)
        members.append([str(tmp_path / f"m{seed}.json"), str(tmp_path / f"m{seed}.h5")])
    ensemble.main(["--member", *members[0], "--member", *members[1], "--out", str(tmp_path / "out")])
    faces = np.random.default_rng(0).integers(0, 256, (5, 48, 48), dtype=np.uint8)
    load = functools.partial(FacialExpressionModel, runtime="keras", flip_tta=False)
    together = load(tmp_path / "out" / "model.json", tmp_path / "out" / "model_weights.h5").predict_proba(faces)
    apart = [load(*m).predict_proba(faces) for m in members]
    assert not np.allclose(apart[0], apart[1], atol=1e-3)
    np.testing.assert_allclose(together, (apart[0] + apart[1]) / 2, atol=1e-5)
    with pytest.raises(SystemExit):
        ensemble.main(["--member", *members[0], "--out", str(tmp_path / "one")])  # one member: refused
    written = (tmp_path / "out" / "model_weights.h5").read_bytes()
    with pytest.raises(SystemExit):  # an existing model is not replaced unasked
        ensemble.main(["--member", *members[1], "--member", *members[0], "--out", str(tmp_path / "out")])
    assert (tmp_path / "out" / "model_weights.h5").read_bytes() == written
    ensemble.main(["--split", str(tmp_path / "out" / "model.json"), str(tmp_path / "out" / "model_weights.h5"),
                   "--out", str(tmp_path / "members")])  # and back: each member as a network of its own
    for i, alone in enumerate(apart):
        member = tmp_path / "members" / f"member_{i}"
        np.testing.assert_allclose(load(member / "model.json", member / "model_weights.h5").predict_proba(faces),
                                   alone, atol=1e-5)
        make_model(architecture="course").load_weights(member / "model_weights.h5")  # as INITIAL_WEIGHTS loads them
    with pytest.raises(ValueError):  # the error the notebook turns into its INITIAL_WEIGHTS message
        make_model(architecture="course").load_weights(tmp_path / "out" / "model_weights.h5")
    with pytest.raises(SystemExit):  # one network is not an ensemble
        ensemble.main(["--split", *members[0], "--out", str(tmp_path / "not-split")])
    assert not (tmp_path / "not-split").exists()
    with pytest.raises(SystemExit):  # nor is a file that is not there
        ensemble.main(["--split", str(tmp_path / "none.json"), members[0][1], "--out", str(tmp_path / "not-split")])
    (tmp_path / "members" / "member_0" / "model_weights.h5").unlink()
    with pytest.raises(SystemExit):  # member_1 is taken: nothing is written, member_0 included
        ensemble.main(["--split", str(tmp_path / "out" / "model.json"), str(tmp_path / "out" / "model_weights.h5"),
                       "--out", str(tmp_path / "members")])
    assert not (tmp_path / "members" / "member_0" / "model_weights.h5").exists()
    keras.utils.set_random_seed(3)
    third = make_model(architecture="course")
    (tmp_path / "m3.json").write_text(third.to_json())
    third.save(tmp_path / "m3.h5", include_optimizer=False)
    apart.append(load(tmp_path / "m3.json", tmp_path / "m3.h5").predict_proba(faces))
    pair = [str(tmp_path / "out" / "model.json"), str(tmp_path / "out" / "model_weights.h5")]
    single = [str(tmp_path / "m3.json"), str(tmp_path / "m3.h5")]
    for name, order in (("three", [pair, single]), ("three-reversed", [single, pair])):
        ensemble.main([*(arg for member in order for arg in ("--member", *member)), "--out", str(tmp_path / name)])
        three = load(tmp_path / name / "model.json", tmp_path / name / "model_weights.h5")
        np.testing.assert_allclose(three.predict_proba(faces), sum(apart) / 3, atol=1e-5)  # equal weights, not nested
    networks = ensemble.split_ensemble(tmp_path / "three" / "model.json", tmp_path / "three" / "model_weights.h5")
    for network, alone in zip(networks, apart, strict=True):  # the networks themselves, in their order (no flip TTA)
        np.testing.assert_allclose(network.predict(faces.astype(np.float32)[..., None], verbose=0), alone, atol=1e-5)


@pytest.mark.slow  # builds Keras models (TensorFlow)
def test_a_network_with_nested_models_is_not_taken_for_an_ensemble(tmp_path):
    from tools.ensemble import _networks_of, make_ensemble

    face = keras.Input((48, 48, 1))
    branches = [keras.Sequential([keras.layers.Flatten(), keras.layers.Dense(7)], name=f"branch_{i}") for i in (0, 1)]
    merged = keras.layers.Add()([branch(face) for branch in branches])
    network = keras.Model(face, keras.layers.Softmax()(merged), name="ensemble")  # even under that name
    assert _networks_of(network) == [network]
    (tmp_path / "net.json").write_text(network.to_json())
    network.save(tmp_path / "net.h5", include_optimizer=False)
    joined = make_ensemble([(tmp_path / "net.json", tmp_path / "net.h5")] * 2)
    assert len(_networks_of(joined)) == 2  # each file one member, not its two branches


def test_an_ensemble_needs_two_members():
    from tools.ensemble import make_ensemble

    with pytest.raises(ValueError, match="at least two"):
        make_ensemble([("model.json", "model_weights.h5")])


def test_soft_labels_refuse_to_replace_a_teacher_or_a_negative_limit(tmp_path, capsys):
    from tools import soft_labels

    (tmp_path / "kept.npz").write_bytes(b"a committed teacher")
    for command, message in ((["--name", "kept"], "kept.npz exists"), (["--name", "new", "--limit", "-1"], "--limit")):
        with pytest.raises(SystemExit) as refused:
            soft_labels.main([*command, "--out", str(tmp_path)])
        assert refused.value.code == 2 and message in capsys.readouterr().err
    assert (tmp_path / "kept.npz").read_bytes() == b"a committed teacher"


def test_unpack_names_what_is_wrong_with_a_pack(tmp_path):
    from tools.train_jax import unpack

    with pytest.raises(FileNotFoundError, match="no pack at"):
        unpack(tmp_path / "missing.npz")
    (tmp_path / "text.npz").write_text("not a pack")
    with pytest.raises(ValueError, match="not a .npz file"):
        unpack(tmp_path / "text.npz")
    np.savez(tmp_path / "other.npz", faces=np.zeros(3))
    with pytest.raises(ValueError, match=r"not a pack written by .*\(no train_jpeg"):
        unpack(tmp_path / "other.npz")


def test_read_history_keeps_one_row_per_epoch_in_epoch_order(tmp_path):
    from training import read_history

    assert read_history(tmp_path / "missing.csv") == {}
    path = tmp_path / "history.csv"
    path.write_text("epoch,accuracy,val_accuracy\n0,0.5,0.4\n1,0.6,NA\n1,0.7,0.55\n2,0.8,0.6\n")  # epoch 1 repeated
    history = read_history(path)
    assert history["epoch"].tolist() == [0, 1, 2] and history["accuracy"].tolist() == [0.5, 0.7, 0.8]
    path.write_text("epoch,accuracy,val_accuracy\n0,0.5,NA\n")
    assert np.isnan(read_history(path)["val_accuracy"][0])


def test_a_notebook_run_folder_names_parameters_its_way(tmp_path):
    from training import RunFolderError, check_run_folder

    run, options = tmp_path / "run", {"SEED": 1, "TEACHERS": ("a", "b")}
    assert check_run_folder(run, options, 5) == "fresh"
    (run / "backup").mkdir()
    assert check_run_folder(run, options, 5) == "resume"  # a tuple compared as options.json holds it
    with pytest.raises(RunFolderError, match=r"SEED 1 \(now 2\).*set OVERWRITE"):
        check_run_folder(run, {**options, "SEED": 2}, 5, restart_hint="set OVERWRITE")
    (run / "options.json").write_text("[1, 2]")  # not an object
    with pytest.raises(RunFolderError, match="cannot read"):
        check_run_folder(run, options, 5)
    assert check_run_folder(run, options, 5, overwrite=True) == "fresh"
    assert not (run / "backup").exists()


def test_a_run_folder_without_anything_worth_keeping_starts_again(tmp_path):
    from training import RunFolderError, check_run_folder

    run = tmp_path / "run"
    assert check_run_folder(run, {"OPTIMIZER": "sdg"}, 5) == "fresh"  # then failed before its first epoch ended
    assert check_run_folder(run, {"OPTIMIZER": "sgd"}, 5) == "fresh"  # the typo corrected: not refused
    # killed during epoch 1, after its best weights and before its backup: not a finished run
    (run / "best.weights.h5").write_bytes(b"one epoch, partly")
    (run / "history.csv").write_text("epoch,val_accuracy\n0,0.3\n")
    assert check_run_folder(run, {"OPTIMIZER": "sgd"}, 5) == "fresh"
    assert not (run / "best.weights.h5").exists() and not (run / "history.csv").exists()
    # three of five epochs and the backup gone: neither resumable nor finished, and not deleted unasked
    (run / "best.weights.h5").write_bytes(b"three epochs")
    (run / "history.csv").write_text("epoch,val_accuracy\n0,0.3\n1,0.4\n2,0.5\n")
    with pytest.raises(RunFolderError, match="3 of 5 epochs and no backup"):
        check_run_folder(run, {"OPTIMIZER": "sgd"}, 5)
    with pytest.raises(RunFolderError, match=r"OPTIMIZER 'sgd' \(now 'adam'\)"):
        check_run_folder(run, {"OPTIMIZER": "adam"}, 5)
    assert (run / "best.weights.h5").read_bytes() == b"three epochs"
    assert check_run_folder(run, {"OPTIMIZER": "sgd"}, 3) == "export"  # a 3-epoch run: finished


@pytest.mark.slow  # runs the app's model on a tiny data set
def test_soft_labels_report_the_crowd_figures_where_the_votes_are(tmp_path):
    import json

    from tools import soft_labels

    make_tiny_fer(tmp_path / "fer", {"train": 1, "test": 2})
    soft_labels.main(["--name", "tiny", "--data", str(tmp_path / "fer"), "--out", str(tmp_path), "--limit", "3"])
    figures = json.loads((tmp_path / "tiny.json").read_text())
    assert figures["images"] == 3 and 0 <= figures["publictest_served_ferplus"]["ferplus_accuracy"] <= 1
    assert set(figures["publictest_ten_crop_ferplus"]["per_class_recall"]) == set(EMOTIONS_LIST)


def test_choose_teachers_scores_every_set_and_prefers_the_smaller_on_ties():
    from tools.choose_teachers import score_sets

    majority = np.array([0, 1, 2, 3])
    right = np.eye(7)[majority]
    wrong = np.eye(7)[[1, 1, 1, 1]]  # right on one face of four
    half = np.eye(7)[[0, 1, 4, 4]]  # right on two
    sets = score_sets(["right", "wrong", "half"], [right, wrong, half], majority)
    assert len(sets) == 7  # every non-empty subset of three
    assert sets[0]["teachers"] == ["right"] and sets[0]["ferplus_accuracy"] == 1.0
    assert {tuple(s["teachers"]): s["ferplus_accuracy"] for s in sets}[("wrong",)] == 0.25
    assert [s["ferplus_accuracy"] for s in sets] == sorted((s["ferplus_accuracy"] for s in sets), reverse=True)
    with pytest.raises(ValueError, match="one probability array per candidate"):
        score_sets(["a", "b"], [right], majority)


def test_choose_teachers_scores_teachers_by_their_stored_publictest_probabilities(tmp_path, capsys):
    from datasets import ferplus_labels
    from tools import choose_teachers

    make_tiny_fer(tmp_path / "fer", {"train": 1, "test": 2})
    train_keys = soft_label_keys([path for path, _ in fer2013_files(tmp_path / "fer" / "train")])
    test_files = fer2013_files(tmp_path / "fer" / "test")
    test_keys = soft_label_keys([path for path, _ in test_files])
    crowd = ferplus_labels([path for path, _ in test_files], tmp_path / "fer" / "ferplus.csv")
    right = np.eye(C)[crowd.majority] * 0.9 + 0.1 / C  # right on every face the crowd keeps
    wrong = np.eye(C)[(crowd.majority + 1) % C] * 0.9 + 0.1 / C
    soft = distributions(len(train_keys), 0)
    for name, test in (("right", right), ("wrong", wrong)):
        write_soft_labels(tmp_path / name, train_keys, soft, publictest=(test_keys[::-1], test[::-1]))
    np.testing.assert_allclose(read_publictest(tmp_path / "right.npz", test_keys), right, atol=2e-3)
    sets = tmp_path / "sets.json"
    choose_teachers.main(["--teacher", str(tmp_path / "wrong.npz"), "--teacher", str(tmp_path / "right.npz"),
                          "--data", str(tmp_path / "fer"), "--out", str(sets)])
    assert json.loads(capsys.readouterr().out.splitlines()[-1]) == [str(tmp_path / "right.npz")]  # as TEACHERS takes it
    figures = json.loads(sets.read_text())
    assert figures["images"] == 13 and figures["sets"][0]["ferplus_accuracy"] == 1.0 and len(figures["sets"]) == 3
    old = write_soft_labels(tmp_path / "old", train_keys, soft)  # written before session 16: no PublicTest
    with pytest.raises(ValueError, match="holds no PublicTest probabilities"):
        read_publictest(old, test_keys)
    with pytest.raises(ValueError, match="no PublicTest probabilities for 1 of"):
        read_publictest(tmp_path / "right.npz", [*test_keys, "happy/missing.jpg"])
    for argv in ([], ["--teacher", "right", "--served"]):
        with pytest.raises(SystemExit):
            choose_teachers.main([*argv, "--data", str(tmp_path / "fer")])


def test_a_pack_holds_the_ferplus_labels_and_one_without_votes_trains_only_on_fer2013s(tmp_path, caplog):
    from datasets import ferplus_labels
    from tools.train_jax import main, pack, unpack

    make_tiny_fer(tmp_path / "fer", {"train": 2, "test": 1})
    data = unpack(pack(tmp_path / "fer", tmp_path / "pack.npz", []))
    files = fer2013_files(tmp_path / "fer" / "train")
    crowd = ferplus_labels([path for path, _ in files], tmp_path / "fer" / "ferplus.csv")
    np.testing.assert_array_equal(data["train_votes"], crowd.distributions)
    np.testing.assert_array_equal(data["train_majority"], crowd.majority)
    assert data["train_included"].tolist() == crowd.included.tolist() and not data["test_included"][0]
    assert data["train_keys"] == soft_label_keys([path for path, _ in files])
    make_tiny_fer(tmp_path / "bare", {"train": 2, "test": 1}, votes=False)
    bare = pack(tmp_path / "bare", tmp_path / "bare.npz", [])
    assert "no FER+ votes" in caplog.text and "train_votes" not in unpack(bare)
    with pytest.raises(FileNotFoundError, match="FER\\+ votes not found"):  # votes named but missing: an error
        pack(tmp_path / "bare", tmp_path / "other.npz", [], votes=tmp_path / "bare" / "ferplus.csv")
    with pytest.raises(SystemExit, match="has no FER\\+ votes.*--labels fer2013"):  # before any training
        main(["train", "--pack", str(bare), "--out", str(tmp_path / "run"), "--epochs", "1"])


@pytest.mark.slow
def test_device_ensemble_trains_runs_side_by_side_and_returns_soft_labels_and_chosen_weights(tmp_path, tiny_pack):
    packed, out = tiny_pack
    tiny = "--epochs 1 --batch-size 8 --width 0.5"
    command = ["bash", "tools/device_ensemble.sh", str(packed), "900", "--weights", "2", f"{tiny} --crop 44", tiny]
    done = subprocess.run(command, cwd=ROOT, env={**os.environ, "OUT": str(out), "PYTHON": sys.executable},
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert sorted(path.name for path in out.iterdir()) == ["run-2", "runs.tar"]  # only run 2's weights come back
    with tarfile.open(out / "runs.tar") as runs:
        names = runs.getnames()
        assert {"./run-1/run.tar", "./run-1/train.log", "./run-2/run.tar", "./run-2/train.log"} <= set(names)
        assert not any("part-" in name for name in names)
        runs.extractall(tmp_path / "runs", filter="data")
    for i, crop in ((1, 44), (2, 40)):
        with tarfile.open(tmp_path / "runs" / f"run-{i}" / "run.tar") as run:
            assert {"soft_labels.npz", "soft_labels.json"} <= set(run.getnames())
            metrics = json.loads(run.extractfile("metrics.json").read())
            assert metrics["seed"] == 100 + i and metrics["crop"] == crop and metrics["labels"] == "ferplus"
            if i == 2:
                (tmp_path / "model.json").write_bytes(run.extractfile("model.json").read())
    parts = sorted((out / "run-2").glob("model_weights.h5.part-*"))
    (tmp_path / "model_weights.h5").write_bytes(b"".join(part.read_bytes() for part in parts))
    model = FacialExpressionModel(tmp_path / "model.json", tmp_path / "model_weights.h5", runtime="keras")
    assert model.predict_proba(np.zeros((1, 48, 48), np.uint8)).shape == (1, C)
    refused = subprocess.run(["bash", "tools/device_ensemble.sh", str(packed), "900", "--weights", "x", tiny], cwd=ROOT,
                             capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2 and "--weights must" in refused.stderr
