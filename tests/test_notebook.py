"""train.ipynb runs headless (papermill) on a tiny data set and exports files the app can load."""

import json

import cv2
import numpy as np
import pytest
from helpers import ROOT, astronaut_bgr

from model import EMOTIONS_LIST, FacialExpressionModel

papermill = pytest.importorskip("papermill", reason="papermill is a test requirement (requirements-dev.txt)")


def make_tiny_fer(root, per_class):
    """FER2013's folder layout with ``per_class[split]`` 48x48 JPEGs per class, cut from a real face."""
    gray = cv2.cvtColor(astronaut_bgr(), cv2.COLOR_BGR2GRAY)
    rng = np.random.default_rng(0)
    for split, n in per_class.items():
        for name in EMOTIONS_LIST:
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(n):
                x, y, size = rng.integers(150, 190), rng.integers(40, 80), rng.integers(90, 130)
                crop = cv2.resize(gray[y:y + size, x:x + size], (48, 48), interpolation=cv2.INTER_AREA)
                cv2.imwrite(str(folder / f"{split}_{i}.jpg"), crop)


@pytest.mark.slow
@pytest.mark.parametrize("architecture, crop, parameters", [
    (None, 40, 5_744_711),  # the default: the shipped model's recipe
    ("course", None, 4_478_727),  # the course's CNN, one parameter away
])
def test_notebook_trains_and_exports(tmp_path, architecture, crop, parameters):
    data, out = tmp_path / "fer2013", tmp_path / "out"
    make_tiny_fer(data, {"train": 3, "test": 2})
    chosen = {"ARCHITECTURE": architecture} if architecture else {}
    papermill.execute_notebook(
        str(ROOT / "train.ipynb"), str(tmp_path / "run.ipynb"), cwd=str(ROOT), kernel_name="python3",
        progress_bar=False,
        parameters={"DATA_DIR": str(data), "OUTPUT_DIR": str(out), "CHECKPOINT_DIR": str(tmp_path / "ck"),
                    "FIGURES_DIR": str(tmp_path / "fig"), "EPOCHS": 1, "BATCH_SIZE": 8, **chosen})
    model = FacialExpressionModel(out / "model.json", out / "model_weights.h5")
    probabilities = model.predict_proba(np.zeros((2, 48, 48), np.uint8))
    assert probabilities.shape == (2, 7)
    assert len(list(out.glob("model_weights.*.tflite"))) == 1  # the LiteRT conversion, cached by the notebook
    assert model.keras_model.count_params() == parameters
    metrics = json.loads((tmp_path / "fig" / "metrics.json").read_text())
    assert metrics["crop"] == crop and metrics["parameters"] == parameters
    assert metrics["epochs"] == 1 and metrics["publictest_images"] == 14
    assert metrics["batch_norm_recalibrated_on"] == 21  # every training face, once
    assert 0 <= metrics["publictest_accuracy"] <= 1
    for figure in ("class_counts.png", "learning_curves.png", "confusion_matrix.png"):
        assert (tmp_path / "fig" / figure).stat().st_size > 1000
