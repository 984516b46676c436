"""Accuracy of model files on a FER2013 split, and the classifier's cost per face on this CPU.

    python -m benchmarks.evaluate [--data data/fer2013/test] [--model model.json --weights model_weights.h5]
                                  [--no-tta] [--shift-tta 4] [--runtime litert|keras] [--figure cm.png]

Prints accuracy, per-class recall, the confusion matrix (counts; rows: the true class, columns: the
predicted one, both in ``EMOTIONS_LIST`` order), the parameter count, and milliseconds per face for batches
of 1 and 8 faces (median of repeated calls of ``FacialExpressionModel.predict_proba`` after a warm-up).
``--figure`` also draws the confusion matrix, rows normalised (the README's figure of the shipped model).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from model import EMOTIONS_LIST, FER_DIR, MODEL_JSON, MODEL_WEIGHTS, RUNTIMES, FacialExpressionModel, load_fer2013_split

ROOT = Path(__file__).resolve().parents[1]


def ms_per_face(model: FacialExpressionModel, batch: int, repeats: int = 50) -> float:
    faces = np.random.default_rng(0).integers(0, 256, (batch, 48, 48), dtype=np.uint8)
    for _ in range(5):
        model.predict_proba(faces)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        model.predict_proba(faces)
        times.append(time.perf_counter() - start)
    return float(np.median(times)) * 1000 / batch


def save_confusion_figure(counts: np.ndarray, path: Path, title: str) -> None:
    """Draw a ``(7, 7)`` confusion matrix of counts, each row divided by its sum, to an image file.

    Raises:
        ValueError: ``counts`` is not square with one row per class of ``EMOTIONS_LIST``.
        OSError: the file cannot be written.
    """
    if counts.shape != (len(EMOTIONS_LIST), len(EMOTIONS_LIST)):
        raise ValueError(f"expected a {len(EMOTIONS_LIST)}x{len(EMOTIONS_LIST)} matrix, not {counts.shape}")
    import matplotlib

    matplotlib.use("Agg")  # files only: no screen needed
    import matplotlib.pyplot as plt
    from sklearn.metrics import ConfusionMatrixDisplay

    rates = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(6.5, 5.5))  # as the notebook draws it
    ConfusionMatrixDisplay(rates, display_labels=EMOTIONS_LIST).plot(ax=ax, cmap="Blues", values_format=".2f",
                                                                    colorbar=False)
    ax.set_title(title)
    plt.setp(ax.get_xticklabels(), rotation=45, ha="right")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=FER_DIR / "test",
                        help="the PublicTest split (default: data/fer2013/test, else ../shared/fer2013/test)")
    parser.add_argument("--model", type=Path, default=MODEL_JSON)
    parser.add_argument("--weights", type=Path, default=MODEL_WEIGHTS)
    parser.add_argument("--no-tta", action="store_true", help="without the flip test-time augmentation")
    parser.add_argument("--shift-tta", type=int, default=0,
                        help="also average over the face shifted by this many pixels (see FacialExpressionModel)")
    parser.add_argument("--runtime", choices=RUNTIMES, default=RUNTIMES[0], help="see model.FacialExpressionModel")
    parser.add_argument("--figure", type=Path, help="also draw the confusion matrix, rows normalised, to this image")
    args = parser.parse_args()
    model = FacialExpressionModel(args.model, args.weights, flip_tta=not args.no_tta, runtime=args.runtime,
                                 shift_tta=args.shift_tta)
    try:
        images, labels = load_fer2013_split(args.data)
    except FileNotFoundError as exc:  # a message, not a traceback, as before the reader moved to model.py
        raise SystemExit(str(exc)) from exc
    from sklearn.metrics import confusion_matrix

    predictions = model.predict_proba(images).argmax(axis=1)
    counts = confusion_matrix(labels, predictions, labels=range(len(EMOTIONS_LIST)))  # accuracy and recall follow
    recall = {name: round(float(counts[i, i] / counts[i].sum()), 4) for i, name in enumerate(EMOTIONS_LIST)}
    accuracy = float(np.trace(counts) / counts.sum())
    if args.figure:
        split = "PublicTest" if args.data.name == "test" else args.data.name
        tta = "no TTA" if args.no_tta else "ten-crop" if args.shift_tta else "flip TTA"
        save_confusion_figure(counts, args.figure,
                              f"{split}, {args.runtime}, {tta}, rows normalised (accuracy {accuracy:.1%})")
    print(json.dumps({
        "data": str(args.data), "images": int(len(labels)), "flip_tta": model.flip_tta,
        "shift_tta": model.shift_tta, "runtime": args.runtime,
        "accuracy": round(accuracy, 4), "per_class_recall": recall, "confusion_matrix": counts.tolist(),
        "parameters": int(model.keras_model.count_params()),
        "ms_per_face_batch_1": round(ms_per_face(model, 1), 2),
        "ms_per_face_batch_8": round(ms_per_face(model, 8), 2),
    }, indent=2))


if __name__ == "__main__":
    main()
