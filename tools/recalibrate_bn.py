"""Recompute a trained model's BatchNormalization statistics on un-augmented training faces.

    python -m tools.recalibrate_bn --weights checkpoints/vgg40/export/model_weights.h5 \
        --out checkpoints/vgg40/recalibrated/model_weights.h5 [--model checkpoints/vgg40/export/model.json] \
        [--data data/fer2013/train] [--batch-size 256]

The notebook does this itself before export (``RECALIBRATE_BN``); this script applies the same step,
``model.recalibrate_batch_norm``, to weights exported without it (runs before the step existed, or
models trained elsewhere). It writes the weights as the notebook does: the whole float32 model as HDF5
without optimizer state, which ``FacialExpressionModel`` reads with the unchanged ``model.json``.
``--model`` defaults to the ``model.json`` beside ``--weights`` (the app's own files hold an ensemble of
two networks, whose statistics were recomputed member by member before they were joined).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np

from model import FER_DIR, FacialExpressionModel, load_fer2013_split, recalibrate_batch_norm

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="architecture (default: the model.json beside --weights)")
    parser.add_argument("--weights", type=Path, required=True, help="weights to recalibrate (not changed)")
    parser.add_argument("--out", type=Path, required=True, help="where to write the recalibrated weights")
    parser.add_argument("--data", type=Path, default=FER_DIR / "train",
                        help="the training split, FER2013 image layout (<class>/*.jpg; default: "
                             "data/fer2013/train, else ../shared/fer2013/train)")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0, help="seed of the order of the faces")
    args = parser.parse_args(argv)
    if args.out.resolve() == args.weights.resolve():
        parser.error("--out must differ from --weights, so that the original weights are kept")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    model = FacialExpressionModel(args.model or args.weights.with_name("model.json"), args.weights,
                                  runtime="keras").keras_model
    faces, _ = load_fer2013_split(args.data)
    faces = faces[np.random.default_rng(args.seed).permutation(len(faces))]  # mixed classes in every batch
    layers = recalibrate_batch_norm(model, faces, batch_size=args.batch_size)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    model.save(args.out, include_optimizer=False)
    logging.info("wrote %s: %d BatchNormalization layers recalibrated on %d faces of %s",
                 args.out, layers, len(faces), args.data)


if __name__ == "__main__":
    main()
