"""train.ipynb runs headless (papermill) on a tiny data set and exports files the app can load."""

import functools
import json

import numpy as np
import pytest
from helpers import ROOT, make_tiny_fer

from model import FacialExpressionModel, fer2013_files
from training import soft_label_keys, write_soft_labels

papermill = pytest.importorskip("papermill", reason="papermill is a test requirement (requirements-dev.txt)")


@pytest.mark.slow
@pytest.mark.parametrize("architecture, labels, crop, parameters", [
    (None, None, 40, 5_744_711),  # the default: the shipped model's recipe, on the FER+ votes
    ("course", "fer2013", None, 4_478_727),  # the course's CNN on FER2013's own labels, one parameter away each
    ("mobile", None, 40, 547_463),  # the small network (issue 37)
])
def test_notebook_trains_and_exports(tmp_path, architecture, labels, crop, parameters):
    data, out = tmp_path / "fer2013", tmp_path / "out"
    make_tiny_fer(data, {"train": 3, "test": 2}, votes=labels is None)  # LABELS=fer2013 needs no votes
    chosen = {"ARCHITECTURE": architecture} if architecture else {}
    chosen |= {"LABELS": labels} if labels else {}
    papermill.execute_notebook(
        str(ROOT / "train.ipynb"), str(tmp_path / "run.ipynb"), cwd=str(ROOT), kernel_name="python3",
        progress_bar=False,
        parameters={"DATA_DIR": str(data), "OUTPUT_DIR": str(out), "CHECKPOINT_DIR": str(tmp_path / "ck"),
                    "FIGURES_DIR": str(tmp_path / "fig"), "EPOCHS": 1, "BATCH_SIZE": 8, **chosen})
    model = FacialExpressionModel(out / "model.json", out / "model_weights.h5")
    probabilities = model.predict_proba(np.zeros((2, 48, 48), np.uint8))
    assert probabilities.shape == (2, 7)
    # the LiteRT conversion the app serves: cached by the notebook, or the small network's full int8, exported
    served = "full int8" if architecture == "mobile" else "dynamic-range int8"
    assert len(list(out.glob("model_weights.*.tflite"))) == 1
    assert len(list(out.glob("model_weights.*.int8.tflite"))) == (architecture == "mobile")
    assert model.litert_quantization == served
    assert model.keras_model.count_params() == parameters
    metrics = json.loads((tmp_path / "fig" / "metrics.json").read_text())
    assert metrics["crop"] == crop and metrics["parameters"] == parameters
    assert metrics["labels"] == (labels or "ferplus") and metrics["litert_quantization"] == served
    # FER+: the first angry face of each split is won by "unknown", left out of scoring
    assert metrics["epochs"] == 1 and metrics["publictest_images"] == (14 if labels else 13)
    assert metrics["batch_norm_recalibrated_on"] == 21  # every training face, once
    assert ("publictest_fer2013_accuracy" in metrics) == (labels is None)
    assert 0 <= metrics["publictest_accuracy"] <= 1
    for figure in ("class_counts.png", "learning_curves.png", "confusion_matrix.png"):
        assert (tmp_path / "fig" / figure).stat().st_size > 1000


@pytest.mark.slow
def test_notebook_without_votes_names_the_file_and_the_way_around(tmp_path):
    data = tmp_path / "fer2013"
    make_tiny_fer(data, {"train": 1, "test": 1}, votes=False)
    with pytest.raises(papermill.PapermillExecutionError, match="ferplus.csv") as error:
        papermill.execute_notebook(
            str(ROOT / "train.ipynb"), str(tmp_path / "run.ipynb"), cwd=str(ROOT), kernel_name="python3",
            progress_bar=False,
            parameters={"DATA_DIR": str(data), "OUTPUT_DIR": str(tmp_path / "out"),
                        "CHECKPOINT_DIR": str(tmp_path / "ck"), "FIGURES_DIR": str(tmp_path / "fig")})
    assert "microsoft/FERPlus" in str(error.value) and "LABELS='fer2013'" in str(error.value)
    assert not (tmp_path / "out" / "model.json").exists()


@pytest.mark.slow
def test_notebook_distils_teachers_with_mixup_and_exports(tmp_path):
    data, out = tmp_path / "fer2013", tmp_path / "out"
    make_tiny_fer(data, {"train": 3, "test": 2})
    keys = soft_label_keys([path for path, _ in fer2013_files(data / "train")])
    teacher = write_soft_labels(tmp_path / "teacher", keys,
                                np.random.default_rng(0).dirichlet(np.ones(7), len(keys)), note="random")
    parameters = {"DATA_DIR": str(data), "OUTPUT_DIR": str(out), "CHECKPOINT_DIR": str(tmp_path / "ck"),
                  "FIGURES_DIR": str(tmp_path / "fig"), "EPOCHS": 1, "BATCH_SIZE": 8,
                  "TEACHERS": str(teacher),  # as `papermill -p TEACHERS NAME` passes it
                  "ALPHA": 0.7, "MIXUP": 0.2, "LABEL_SMOOTHING": 0.1, "AUGMENT": "strong", "LIVE_PLOT": False}
    run = functools.partial(papermill.execute_notebook, str(ROOT / "train.ipynb"), str(tmp_path / "run.ipynb"),
                            cwd=str(ROOT), kernel_name="python3", progress_bar=False)
    run(parameters=parameters)
    model = FacialExpressionModel(out / "model.json", out / "model_weights.h5")
    assert model.predict_proba(np.zeros((1, 48, 48), np.uint8)).shape == (1, 7)
    metrics = json.loads((tmp_path / "fig" / "metrics.json").read_text())
    assert metrics["teachers"] == [str(teacher)] and metrics["alpha"] == 0.7 and metrics["mixup"] == 0.2
    assert metrics["augment"] == "strong" and metrics["epochs"] == 1
    history = (tmp_path / "ck" / "history.csv").read_text().splitlines()
    assert history[0].split(",")[:3] == ["epoch", "accuracy", "epoch_seconds"] and len(history) == 2

    # the same parameters again: the finished run is exported again, nothing trained, nothing deleted
    best = (tmp_path / "ck" / "best.weights.h5").read_bytes()
    (out / "model.json").unlink()
    run(parameters=parameters)
    assert (out / "model.json").is_file() and (tmp_path / "ck" / "best.weights.h5").read_bytes() == best
    assert (tmp_path / "ck" / "history.csv").read_text().splitlines() == history
    # other parameters in its folder: refused, naming each, before anything is read or trained
    with pytest.raises(papermill.PapermillExecutionError, match=r"SEED 1 \(now 2\)"):
        run(parameters={**parameters, "SEED": 2})
    assert (tmp_path / "ck" / "best.weights.h5").read_bytes() == best
