"""Fold a FER+ recalibration into a model: a 7-to-7 logistic layer on its probabilities, fitted to the crowd's votes.

    python -m tools.recalibrate_ferplus --model model.json --weights model_weights.h5 --out checkpoints/floor

A network trained on FER2013's original labels inherits their bias (a quarter of the faces the FER+ crowd
calls neutral come out sad). This fits ``softmax(W p + b)`` (``W`` 7x7, ``b`` 7), ``p`` the model's
probabilities of one view of a face (the face, and its mirror, each a sample), by multinomial logistic
regression (scikit-learn, L-BFGS) against the FER+ vote distribution of every training image that the FER+
protocol keeps (the cross-entropy against the votes: each image is seven samples weighted by its votes).
The inverse regularisation strength ``C`` is chosen on PublicTest's crowd-majority accuracy as served
(flip TTA averages the recalibrated outputs of the two views). The layer is then appended to the Keras model
(a ``Dense(7, softmax)`` named ``ferplus_recalibration``) and written as ``OUT/model.json`` +
``OUT/model_weights.h5``, so every runtime (Keras, LiteRT, a browser) serves it without extra code.
Prints the figures before and after on PublicTest (``datasets.ferplus_scores``) as JSON.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np

from datasets import FER_DIR, ferplus_scores, load_ferplus_split
from model import EMOTIONS_LIST, MODEL_JSON, MODEL_WEIGHTS, FacialExpressionModel

log = logging.getLogger("recalibrate_ferplus")

#: The inverse regularisation strengths tried (scikit-learn's ``C``).
C_GRID = (0.01, 0.1, 1.0, 10.0, 100.0)


def views(model: FacialExpressionModel, faces: np.ndarray) -> np.ndarray:
    """float32 ``(2, N, 7)``: the probabilities of each face and of its mirror image, one view at a time."""
    return np.stack([model.predict_proba(faces), model.predict_proba(np.ascontiguousarray(faces[:, :, ::-1]))])


def fit(features: np.ndarray, distributions: np.ndarray, c: float) -> tuple[np.ndarray, np.ndarray]:
    """``(W, b)`` (float32 ``(7, 7)`` as a Dense kernel, ``(7,)``) of a multinomial logistic regression of the
    vote ``distributions`` ``(N, 7)`` on ``features`` ``(N, 7)``: cross-entropy against the distributions."""
    from sklearn.linear_model import LogisticRegression

    classes = distributions.shape[1]
    x = np.repeat(features, classes, axis=0)
    y = np.tile(np.arange(classes), len(features))
    weight = distributions.reshape(-1)
    keep = weight > 0
    regression = LogisticRegression(C=c, max_iter=2000).fit(x[keep], y[keep], sample_weight=weight[keep])
    kernel = np.zeros((features.shape[1], classes), np.float32)
    bias = np.full(classes, -1e4, np.float32)  # a class without any vote stays impossible
    kernel[:, regression.classes_] = regression.coef_.T
    bias[regression.classes_] = regression.intercept_
    return kernel, bias


def apply(features: np.ndarray, kernel: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """``softmax(features @ kernel + bias)`` over the last axis."""
    logits = features @ kernel + bias
    logits -= logits.max(axis=-1, keepdims=True)
    e = np.exp(logits)
    return e / e.sum(axis=-1, keepdims=True)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=MODEL_JSON)
    parser.add_argument("--weights", type=Path, default=MODEL_WEIGHTS)
    parser.add_argument("--data", type=Path, default=FER_DIR, help="FER2013 with train/, test/ and ferplus.csv")
    parser.add_argument("--out", type=Path, required=True, help="folder for the recalibrated model.json + weights")
    args = parser.parse_args()
    if (args.out / "model.json").exists() or (args.out / "model_weights.h5").exists():
        raise SystemExit(f"{args.out} already holds model files: choose another --out")
    model = FacialExpressionModel(args.model, args.weights, flip_tta=False)
    split = {}
    for name in ("train", "test"):
        faces, original, crowd = load_ferplus_split(args.data / name)
        keep = crowd.included
        log.info("%s: %d faces kept of %d; running the model on both views", name, keep.sum(), len(keep))
        split[name] = (views(model, faces[keep]), crowd.distributions[keep], crowd.majority[keep], original[keep])
    train_views, train_votes, _, _ = split["train"]
    test_views, _, test_majority, test_original = split["test"]
    before = ferplus_scores(test_views.mean(axis=0), test_majority, test_original)
    features = np.concatenate(list(train_views))
    targets = np.concatenate([train_votes, train_votes])
    trials = []
    for c in C_GRID:
        kernel, bias = fit(features, targets, c)
        served = apply(test_views, kernel, bias).mean(axis=0)  # flip TTA: the mean of the two views' outputs
        trials.append((float((served.argmax(axis=1) == test_majority).mean()), c, kernel, bias))
        log.info("C %g: PublicTest FER+ majority accuracy %.4f", c, trials[-1][0])
    _, best_c, kernel, bias = max(trials, key=lambda trial: trial[0])
    after = ferplus_scores(apply(test_views, kernel, bias).mean(axis=0), test_majority, test_original)

    import keras

    network = model.keras_model
    layer = keras.layers.Dense(len(EMOTIONS_LIST), activation="softmax", name="ferplus_recalibration")
    recalibrated = keras.Model(network.input, layer(network.output), name=f"{network.name}_ferplus")
    layer.set_weights([kernel, bias])
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "model.json").write_text(recalibrated.to_json(indent=1))
    recalibrated.save(args.out / "model_weights.h5", include_optimizer=False)
    print(json.dumps({"model": str(args.model), "weights": str(args.weights), "C": best_c,
                      "trials": {str(c): accuracy for accuracy, c, _, _ in trials},
                      "publictest_before": before, "publictest_after": after,
                      "out": str(args.out)}, indent=1))


if __name__ == "__main__":
    main()
