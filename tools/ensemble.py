"""Several trained networks as one Keras functional model that averages their probabilities.

    python -m tools.ensemble --member model.json model_weights.h5 \
        --member checkpoints/student1/export/model.json checkpoints/student1/export/model_weights.h5 \
        --out checkpoints/ensemble

Writes ``OUT/model.json`` + ``OUT/model_weights.h5``, which ``FacialExpressionModel`` (and so
``python -m benchmarks.evaluate --model OUT/model.json --weights OUT/model_weights.h5``) loads like any
single network: one input ``(N, 48, 48, 1)``, the members side by side, a ``keras.layers.Average`` of their
softmax outputs (issue 14's way to ship an ensemble without changing the app). Its cost per face is the sum
of the members'.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from model import INPUT_SIZE, FacialExpressionModel

log = logging.getLogger("ensemble")


def make_ensemble(members: list[tuple[Path, Path]]):
    """The ``keras.Model`` averaging the members' probabilities; ``members``: ``(model.json, weights)`` pairs.

    Raises:
        ValueError: fewer than two members.
        FileNotFoundError, model.ModelLoadError: as ``FacialExpressionModel``.
    """
    if len(members) < 2:
        raise ValueError(f"an ensemble needs at least two members, not {len(members)}")
    import keras  # after FacialExpressionModel's first Keras load has quieted TensorFlow's start-up

    networks = []
    for i, (json_file, weights_file) in enumerate(members):
        network = FacialExpressionModel(json_file, weights_file, runtime="keras").keras_model
        network.name = f"member_{i}"  # unique names inside the ensemble
        networks.append(network)
    face = keras.Input((INPUT_SIZE, INPUT_SIZE, 1), name="face")
    probabilities = keras.layers.Average(name="mean_probabilities")([network(face) for network in networks])
    return keras.Model(face, probabilities, name="ensemble")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--member", type=Path, nargs=2, action="append", required=True,
                        metavar=("MODEL_JSON", "WEIGHTS_H5"), help="one network's two files (twice or more)")
    parser.add_argument("--out", type=Path, required=True, help="folder for model.json and model_weights.h5")
    parser.add_argument("--overwrite", action="store_true", help="replace model files already in OUT")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    if len(args.member) < 2:
        parser.error("an ensemble needs at least two --member")
    existing = [name for name in ("model.json", "model_weights.h5") if (args.out / name).exists()]
    if existing and not args.overwrite:
        parser.error(f"{args.out} already holds {' and '.join(existing)}: choose another --out or pass --overwrite")
    ensemble = make_ensemble(args.member)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "model.json").write_text(ensemble.to_json(), encoding="utf-8")
    ensemble.save(args.out / "model_weights.h5", include_optimizer=False)  # as the notebook exports
    log.info("wrote %s/model.json and model_weights.h5 (%s parameters)", args.out, f"{ensemble.count_params():,}")


if __name__ == "__main__":
    main()
