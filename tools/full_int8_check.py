"""Full int8 LiteRT conversion of a network (weights and activations; 500 training faces as the representative
data set; float input and output) against the served dynamic-range one: FER+ PublicTest majority accuracy with
flip TTA, and ms per face on one LiteRT thread, batch 1. Issue 37's next step; a check, not part of the app.

    python -m tools.full_int8_check MODEL_JSON WEIGHTS_H5     (needs ../shared/fer2013)
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

from datasets import load_ferplus_split
from model import FacialExpressionModel
from runtimes import convert_to_full_int8, convert_to_litert
from tools.export_full_int8 import representative_faces

DATA = "../shared/fer2013"


def one_face_runner(content: bytes):
    """A function of one uint8 face ``(48, 48)`` to its float32 probabilities ``(7,)``, on one LiteRT thread."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=content, num_threads=1)
    index = interpreter.get_input_details()[0]["index"]
    interpreter.resize_tensor_input(index, [1, 48, 48, 1])
    interpreter.allocate_tensors()
    output = interpreter.get_output_details()[0]["index"]

    def run(face: np.ndarray) -> np.ndarray:
        interpreter.set_tensor(index, face.reshape(1, 48, 48, 1).astype(np.float32))
        interpreter.invoke()
        return interpreter.get_tensor(output)[0]

    return run


def main() -> None:
    json_file, weights_file = sys.argv[1:3]
    keras_model = FacialExpressionModel(json_file, weights_file, runtime="keras").keras_model
    faces, _, ferplus = load_ferplus_split(f"{DATA}/test")
    calibration = representative_faces(Path(DATA))  # as tools.export_full_int8 draws them
    for name, content in (("dynamic-range int8 (served)", convert_to_litert(keras_model)),
                          ("full int8", convert_to_full_int8(keras_model, calibration))):
        run = one_face_runner(content)
        probabilities = np.array([(run(face) + run(face[:, ::-1])) / 2 for face in faces])
        kept = ferplus.included
        accuracy = float((probabilities.argmax(1)[kept] == ferplus.majority[kept]).mean())
        for face in faces[:200]:  # warm-up
            run(face)
        start = time.perf_counter()
        for face in faces[:2000]:
            run(face)
        ms = 2 * 1000 * (time.perf_counter() - start) / 2000  # two views a face
        print(f"{name}: {len(content):,} bytes, FER+ majority {accuracy:.4f}, {ms:.3f} ms per face "
              "(face and mirror, one thread, batch 1)", flush=True)


if __name__ == "__main__":
    main()
