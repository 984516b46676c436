"""Write a trained network's soft labels on the training split: a teacher for distillation.

    python -m tools.soft_labels --name vgg40-run3 --model checkpoints/run3/export/model.json \
        --weights checkpoints/run3/export/model_weights.h5 [--data data/fer2013] [--runtime litert|keras] [--limit N]

Writes ``docs/teachers/<name>.npz`` (the ten-crop softmax of every training image, float16, keyed by
``<class>/<file>``, and the same views of every PublicTest image; ``training.write_soft_labels``) and
``docs/teachers/<name>.json`` with the network's PublicTest figures: accuracy against the original labels as
the app serves it (flip TTA) and with ten crops, per-class recall, and, where ``ferplus.csv`` lies in
``--data``, the same against the FER+ crowd's majority.
``--model``/``--weights`` default to the app's files (one network since run 7; ensemble 4's soft labels were
the two networks' mean); teacher 1, ``vgg40-shipped``, is the first of those two alone
(``python -m tools.ensemble --split``).
The train notebook's ``TEACHERS`` parameter and ``tools/train_jax.py --teachers`` read them. Ten crops:
the four corner crops of the network's crop size and the center one, each also mirrored
(``FacialExpressionModel``'s ``shift_tta`` with ``flip_tta``; ``networks.ten_crop_shift``: 4 pixels for 40x40
crops, as in Khaireddin & Chen 2021, arXiv:2105.03588; 2 for 44x44). Teachers written before session 15
(``vgg44-ferplus-run10``, run 12's) used a shift of 4 for every network.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import sys
import time
from pathlib import Path

import numpy as np

from datasets import FerPlusLabels, ferplus_labels, ferplus_scores
from model import (
    EMOTIONS_LIST,
    FER_DIR,
    MODEL_JSON,
    MODEL_WEIGHTS,
    RUNTIMES,
    FacialExpressionModel,
    fer2013_files,
    load_fer2013_split,
)
from networks import ten_crop_shift
from training import TEACHERS_DIR, npz_path, soft_label_keys, write_soft_labels

ROOT = Path(__file__).resolve().parents[1]
log = logging.getLogger("soft_labels")


def _shown(path: Path) -> str:
    """The path relative to the project when it lies inside it (no machine's folders in committed files)."""
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def accuracy_figures(probabilities: np.ndarray, labels: np.ndarray) -> dict:
    """Accuracy and per-class recall of ``probabilities`` (float ``(N, 7)``) against ``labels`` (int ``(N,)``)."""
    predictions = probabilities.argmax(axis=1)
    return {"accuracy": round(float((predictions == labels).mean()), 4),
            "per_class_recall": {name: round(float((predictions[labels == i] == i).mean()), 4)
                                 for i, name in enumerate(EMOTIONS_LIST)}}


def publictest_figures(served: FacialExpressionModel, ten_crop: FacialExpressionModel, faces: np.ndarray,
                       labels: np.ndarray, crowd: FerPlusLabels | None = None) -> tuple[dict, np.ndarray]:
    """A teacher's PublicTest figures as its ``.json`` holds them, and its ten-crop probabilities.

    Args:
        served: the network as the app serves it (flip TTA).
        ten_crop: the same network with the soft labels' ten views.
        faces: uint8 ``(N, 48, 48)``, every PublicTest face; labels: their original labels, int ``(N,)``.
        crowd: their FER+ labels, or None where the votes are not at hand.

    Returns:
        ``publictest_served`` and ``publictest_ten_crop`` (against the original labels) and, with ``crowd``,
        ``publictest_served_ferplus`` and ``publictest_ten_crop_ferplus`` (against the crowd's majority, on the
        faces FER+ keeps); and the ten-crop probabilities of every face, float32 ``(N, 7)``.
    """
    figures, probabilities = {}, {name: model.predict_proba(faces) for name, model in
                                  (("served", served), ("ten_crop", ten_crop))}
    for name, predicted in probabilities.items():
        figures[f"publictest_{name}"] = accuracy_figures(predicted, labels)
        if crowd is not None:  # the headline figure since issue 31: against the FER+ crowd's majority
            scores = ferplus_scores(predicted[crowd.included], crowd.majority[crowd.included])
            figures[f"publictest_{name}_ferplus"] = {k: scores[k] for k in
                                                     ("ferplus_accuracy", "neutral_called_sad", "per_class_recall")}
    return figures, probabilities["ten_crop"]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", required=True, help="the teacher's file name under docs/teachers/, no suffix")
    parser.add_argument("--model", type=Path, default=MODEL_JSON,
                        help="default: the app's model.json (two networks today: the ensemble's soft labels)")
    parser.add_argument("--weights", type=Path, default=MODEL_WEIGHTS, help="default: the app's model_weights.h5")
    parser.add_argument("--data", type=Path, default=FER_DIR,
                        help="FER2013 in the image layout, with train/ and test/ (default: data/fer2013, else "
                             "../shared/fer2013)")
    parser.add_argument("--out", type=Path, default=TEACHERS_DIR)
    parser.add_argument("--runtime", choices=RUNTIMES, default="litert",
                        help="of the ten-crop soft labels (the served figure always uses LiteRT, as the app)")
    parser.add_argument("--limit", type=int, default=0, help="only the first N training images (trials)")
    parser.add_argument("--overwrite", action="store_true", help="replace a teacher of the same name")
    args = parser.parse_args(argv)
    if args.limit < 0:
        parser.error(f"--limit must be >= 0 (0: all images), not {args.limit}")
    existing = npz_path(args.out / args.name)
    if existing.exists() and not args.overwrite:
        parser.error(f"{existing} exists (a committed teacher?): choose another --name or pass --overwrite")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    served = FacialExpressionModel(args.model, args.weights, runtime="litert")
    shift = ten_crop_shift(served.keras_model)
    ten_crop = FacialExpressionModel(args.model, args.weights, runtime=args.runtime, shift_tta=shift)
    test_files = fer2013_files(args.data / "test")
    test_faces, test_labels = load_fer2013_split(args.data / "test", test_files)
    votes = args.data / "ferplus.csv"
    crowd = ferplus_labels([path for path, _ in test_files], votes, test_labels) if votes.is_file() else None
    test_figures, test_probabilities = publictest_figures(served, ten_crop, test_faces, test_labels, crowd)
    figures = {
        "weights": _shown(args.weights), "weights_sha256": hashlib.sha256(args.weights.read_bytes()).hexdigest()[:16],
        "parameters": int(ten_crop.keras_model.count_params()),
        "soft_labels": f"mean of the softmax of ten views (the face shifted by {shift} px four ways and centred, "
                       f"each mirrored), {args.runtime} runtime",
        **test_figures,
    }
    log.info("PublicTest (original labels): served %.4f, ten-crop %.4f", figures["publictest_served"]["accuracy"],
             figures["publictest_ten_crop"]["accuracy"])
    files = fer2013_files(args.data / "train")
    if args.limit:
        files = files[:args.limit]
    faces, labels = load_fer2013_split(args.data / "train")
    faces, labels = faces[:len(files)], labels[:len(files)]
    start, parts = time.perf_counter(), []
    for i in range(0, len(faces), 1024):
        parts.append(ten_crop.predict_proba(faces[i:i + 1024]))
        log.info("%d / %d training images, %.1f s", i + len(parts[-1]), len(faces), time.perf_counter() - start)
    probabilities = np.concatenate(parts)
    figures["train_agreement"] = round(float((probabilities.argmax(axis=1) == labels).mean()), 4)
    figures["images"] = len(files)
    figures["command"] = "python -m tools.soft_labels " + " ".join(argv if argv is not None else sys.argv[1:])
    figures["seconds"] = round(time.perf_counter() - start, 1)
    path = write_soft_labels(args.out / args.name, soft_label_keys([p for p, _ in files]), probabilities,
                             publictest=(soft_label_keys([p for p, _ in test_files]), test_probabilities), **figures)
    log.info("wrote %s (%.2f MB); training accuracy of the soft labels' argmax %.4f",
             path, path.stat().st_size / 1e6, figures["train_agreement"])


if __name__ == "__main__":
    main()
