"""PublicTest accuracy of trained weights before and after ``recalibrate_batch_norm``, and of combinations.

    python -m benchmarks.snapshots WEIGHTS [WEIGHTS ...] [--model model.json] [--data data/fer2013]

For each weights file (all of the architecture in ``--model``): accuracy with flip TTA and without, with
the stored batch-norm statistics and after recomputing them on the training split (shuffled with seed 0,
batches of 256). For two or more files, also the ensemble of the recalibrated networks (probabilities
averaged) and their weights averaged (Izmailov et al. 2018, arXiv:1803.05407) then recalibrated. Keras
runtime, OpenCV decoding. The README's "What was tried" quotes its output (docs/benchmarks/snapshots.txt).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from model import FER_DIR, FacialExpressionModel, load_fer2013_split, recalibrate_batch_norm

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("weights", type=Path, nargs="+")
    parser.add_argument("--model", type=Path,
                        help="the networks' architecture (default: the model.json beside the first WEIGHTS)")
    parser.add_argument("--data", type=Path, default=FER_DIR)
    args = parser.parse_args()
    args.model = args.model or args.weights[0].with_name("model.json")
    test_x, test_y = load_fer2013_split(args.data / "test")
    train_x, _ = load_fer2013_split(args.data / "train")
    train_x = train_x[np.random.default_rng(0).permutation(len(train_x))]

    def accuracy(probabilities: np.ndarray) -> float:
        return round(float((probabilities.argmax(axis=1) == test_y).mean()), 4)

    def probabilities(model: FacialExpressionModel, flip: bool = True) -> np.ndarray:
        model.flip_tta = flip
        return model.predict_proba(test_x)

    models, recalibrated = [], []
    for path in args.weights:
        model = FacialExpressionModel(args.model, path, runtime="keras")
        row = {"weights": str(path), "flip": accuracy(probabilities(model)),
               "no_tta": accuracy(probabilities(model, False))}
        models.append(model.keras_model.get_weights())
        recalibrate_batch_norm(model.keras_model, train_x)
        recalibrated.append(probabilities(model))
        row.update(recalibrated_flip=accuracy(recalibrated[-1]),
                   recalibrated_no_tta=accuracy(probabilities(model, False)))
        print(json.dumps(row), flush=True)
    if len(args.weights) > 1:
        print(json.dumps({"ensemble_of_recalibrated_flip": accuracy(np.mean(recalibrated, axis=0))}), flush=True)
        model = FacialExpressionModel(args.model, args.weights[0], runtime="keras")
        model.keras_model.set_weights([np.mean(w, axis=0) for w in zip(*models, strict=True)])
        row = {"weights_averaged_flip": accuracy(probabilities(model))}
        recalibrate_batch_norm(model.keras_model, train_x)
        row["weights_averaged_recalibrated_flip"] = accuracy(probabilities(model))
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
