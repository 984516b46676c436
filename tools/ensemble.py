"""Several trained networks as one Keras functional model that averages their probabilities.

    python -m tools.ensemble --member model.json model_weights.h5 \
        --member checkpoints/run4/export/model.json checkpoints/run4/export/model_weights.h5 \
        --out checkpoints/ensemble5
    python -m tools.ensemble --split model.json model_weights.h5 --out checkpoints/members

Writes ``OUT/model.json`` + ``OUT/model_weights.h5``, which ``FacialExpressionModel`` (and so
``python -m benchmarks.evaluate --model OUT/model.json --weights OUT/model_weights.h5``) loads like any
single network: one input ``(N, 48, 48, 1)``, the members side by side, a ``keras.layers.Average`` of their
softmax outputs (issue 14's way to ship an ensemble without changing the app). Its cost per face is the sum
of the members'. A ``--member`` that is itself such an ensemble (the app's files, today) joins as its
networks, so every network gets the same weight: the first command above makes a three-network ensemble of
the app's two and run 4's one.

``--split`` does the reverse: each member of an ensemble's files as a network of its own,
``OUT/member_<i>/model.json`` + ``model_weights.h5`` (to fine-tune one, as the notebook's ``INITIAL_WEIGHTS``
takes one network's weights, or to write its soft labels).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from model import INPUT_SIZE, FacialExpressionModel, ModelLoadError

log = logging.getLogger("ensemble")


def _networks_of(model) -> list:
    """The member networks of an ensemble that ``make_ensemble`` built, in their order; ``[model]`` for anything else.

    An ensemble is recognised by what ``make_ensemble`` writes: a model named ``ensemble`` whose layers are
    its input, two or more networks (``keras.Model``) and the ``keras.layers.Average`` of their outputs.
    """
    import keras

    members = [layer for layer in model.layers if isinstance(layer, keras.Model)]
    others = [layer for layer in model.layers if not isinstance(layer, (keras.Model, keras.layers.InputLayer))]
    built_here = (model.name == "ensemble" and len(members) >= 2 and len(others) == 1
                  and isinstance(others[0], keras.layers.Average))
    return members if built_here else [model]


def make_ensemble(members: list[tuple[Path, Path]]):
    """The ``keras.Model`` averaging the networks' probabilities with equal weights.

    ``members``: ``(model.json, weights)`` pairs, each one network or an ensemble of them (which joins as
    its networks, so that every network weighs the same).

    Raises:
        ValueError: fewer than two members (pairs of files).
        FileNotFoundError, model.ModelLoadError: as ``FacialExpressionModel``.
    """
    if len(members) < 2:
        raise ValueError(f"an ensemble needs at least two members, not {len(members)}")
    import keras  # after FacialExpressionModel's first Keras load has quieted TensorFlow's start-up

    loaded = [FacialExpressionModel(json_file, weights_file, runtime="keras").keras_model
              for json_file, weights_file in members]
    networks = [network for model in loaded for network in _networks_of(model)]
    for i, network in enumerate(networks):
        network.name = f"member_{i}"  # unique names inside the ensemble
    face = keras.Input((INPUT_SIZE, INPUT_SIZE, 1), name="face")
    probabilities = keras.layers.Average(name="mean_probabilities")([network(face) for network in networks])
    return keras.Model(face, probabilities, name="ensemble")


def split_ensemble(json_file: Path, weights_file: Path) -> list:
    """The member networks (``keras.Model`` each) of an ensemble that ``make_ensemble`` built, in their order.

    Raises:
        ValueError: the files hold one network, not an ensemble of them.
        FileNotFoundError, model.ModelLoadError: as ``FacialExpressionModel``.
    """
    members = _networks_of(FacialExpressionModel(json_file, weights_file, runtime="keras").keras_model)
    if len(members) < 2:
        raise ValueError(f"{json_file} holds one network, not an ensemble: use its files as they are")
    return members


def _existing(folder: Path) -> list[str]:
    return [name for name in ("model.json", "model_weights.h5") if (folder / name).exists()]


def _refuse_taken(parser: argparse.ArgumentParser, folders: list[Path], overwrite: bool) -> None:
    taken = [f"{folder} already holds {' and '.join(names)}" for folder in folders if (names := _existing(folder))]
    if taken and not overwrite:
        parser.error(f"{'; '.join(taken)}: choose another --out or pass --overwrite")


def _write(network, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.json").write_text(network.to_json(), encoding="utf-8")
    network.save(folder / "model_weights.h5", include_optimizer=False)  # as the notebook exports
    log.info("wrote %s/model.json and model_weights.h5 (%s parameters)", folder, f"{network.count_params():,}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--member", type=Path, nargs=2, action="append",
                      metavar=("MODEL_JSON", "WEIGHTS_H5"),
                      help="one network's two files, or an ensemble's (which joins as its networks); twice or more")
    what.add_argument("--split", type=Path, nargs=2, metavar=("MODEL_JSON", "WEIGHTS_H5"),
                      help="an ensemble's two files: write each member to OUT/member_<i>/")
    parser.add_argument("--out", type=Path, required=True, help="folder for model.json and model_weights.h5")
    parser.add_argument("--overwrite", action="store_true", help="replace model files already in OUT")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    if args.member and len(args.member) < 2:
        parser.error("an ensemble needs at least two --member")
    if args.member:  # before the networks load
        _refuse_taken(parser, [args.out], args.overwrite)
    try:
        networks = split_ensemble(*args.split) if args.split else [make_ensemble(args.member)]
    except (ValueError, OSError, ModelLoadError) as exc:  # no ensemble, missing or unreadable files
        parser.error(str(exc))
    folders = [args.out]
    if args.split:  # all member folders, before anything is written
        folders = [args.out / f"member_{i}" for i in range(len(networks))]
        _refuse_taken(parser, folders, args.overwrite)
    for network, folder in zip(networks, folders, strict=True):
        _write(network, folder)


if __name__ == "__main__":
    main()
