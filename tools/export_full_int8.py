"""Write a model's full-int8 LiteRT conversion beside its weights, where ``FacialExpressionModel`` (runtime
``litert``) and the on-device page serve it in place of the dynamic-range one: ``<weights stem>.<key>.int8.tflite``
(``runtimes.full_int8_name``; the key changes with the model's files, so it is never used for other weights).

    python -m tools.export_full_int8 MODEL_JSON WEIGHTS_H5 [--data ../shared/fer2013] [--faces 500]

The activations' ranges come from ``--faces`` training faces drawn at random (seed 0) from ``--data``/train,
which must be there: FER2013's images cannot ship, the conversion can. Check its accuracy and speed against the
dynamic-range conversion first: ``python -m tools.full_int8_check MODEL_JSON WEIGHTS_H5``.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np

from datasets import FER_DIR, load_fer2013_split
from model import FacialExpressionModel
from runtimes import convert_to_full_int8, full_int8_name, model_key

log = logging.getLogger("export_full_int8")


def representative_faces(data: Path, count: int = 500) -> np.ndarray:
    """``count`` uint8 faces ``(count, 48, 48)`` drawn at random (seed 0) from FER2013's ``data``/train: the
    representative data set of a full-int8 conversion."""
    faces, _ = load_fer2013_split(data / "train")
    return faces[np.random.default_rng(0).choice(len(faces), min(count, len(faces)), replace=False)]


def export_full_int8(model_json: Path, weights: Path, faces: np.ndarray) -> Path:
    """Write the full-int8 LiteRT conversion of the model in ``model_json`` + ``weights`` beside the weights
    (``runtimes.full_int8_name``) and return its path; ``faces``: uint8 ``(N, 48, 48)`` representative faces
    (``representative_faces``). Used by this tool and by the notebook's export (``FULL_INT8``).

    Raises:
        ModelLoadError: the files cannot be loaded or the conversion failed.
        OSError: the weights' folder cannot be written.
    """
    keras_model = FacialExpressionModel(model_json, weights, runtime="keras").keras_model
    out = Path(weights).parent / full_int8_name(weights, model_key(model_json, weights))
    out.write_bytes(convert_to_full_int8(keras_model, faces))
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_json", type=Path)
    parser.add_argument("weights", type=Path)
    parser.add_argument("--data", type=Path, default=FER_DIR, help="FER2013 in its image layout (its train/ is used)")
    parser.add_argument("--faces", type=int, default=500, help="representative training faces (default 500)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    if not (args.data / "train").is_dir():
        parser.error(f"no training faces in {args.data / 'train'}: give --data, FER2013's image layout")
    faces = representative_faces(args.data, args.faces)
    out = export_full_int8(args.model_json, args.weights, faces)
    log.info("wrote %s (%d bytes, %d representative faces)", out, out.stat().st_size, len(faces))


if __name__ == "__main__":
    main()
