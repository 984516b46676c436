"""Accuracy of model files on a FER2013 split against the FER+ crowd, and the classifier's cost per face on this CPU.

    python -m benchmarks.evaluate [--data data/fer2013/test] [--votes data/fer2013/ferplus.csv]
                                  [--labels ferplus|fer2013] [--model model.json --weights model_weights.h5]
                                  [--no-tta] [--shift-tta 4] [--runtime litert|keras] [--figure cm.png]

With ``--labels ferplus`` (the default) the headline is the FER+ majority accuracy (``ferplus_accuracy``:
the share of faces whose top class is the one most of FER+'s ten taggers chose; faces whose ``unknown`` or
not-a-face votes win are left out, as in FER+'s protocol), with per-class recall against the crowd, the
confusion matrix (counts; rows: the crowd's class, columns: the predicted one, both in ``EMOTIONS_LIST``
order), the share of crowd-neutral faces called sad, and the accuracy against FER2013's original labels
on the same faces (``fer2013_accuracy``; it falls as a model learns the crowd's labels, because the
original label agrees with the crowd's majority on only 62% of FER2013's images). ``--labels fer2013``
gives the figures of earlier sessions (original labels, every image). Then the parameter count and
milliseconds per face for batches of 1 and 8 faces (median of repeated calls of
``FacialExpressionModel.predict_proba`` after a warm-up) on the default LiteRT threads and on one thread, the
CPU they were measured on, and the GFLOP per face (``networks.count_flops`` of a forward pass times the views
averaged: 2 with flip TTA); beside them, timed in the same run as the reference, the ``fer`` package's
classifier on one thread and on the default threads (``fer_ms_per_face*``; null without the package).
``--figure`` also draws the confusion matrix, rows normalised.
"""

from __future__ import annotations

import argparse
import json
import re
import time
from pathlib import Path

import numpy as np

from datasets import FER_DIR, ferplus_scores, load_fer2013_split, load_ferplus_split
from model import EMOTIONS_LIST, LITERT_THREADS, MODEL_JSON, MODEL_WEIGHTS, RUNTIMES, FacialExpressionModel
from networks import count_flops

ROOT = Path(__file__).resolve().parents[1]


def cpu_description() -> dict:
    """The CPU's model name and the instruction sets that matter for the classifier's speed (Linux)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return {"model": "unknown", "instruction_sets": []}
    name = next((line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("model name")),
                "unknown")
    flags = set(next((line.split(":", 1)[1].split() for line in text.splitlines()
                      if line.startswith(("flags", "Features"))), []))
    sets = {"avx2": "AVX2", "avx512f": "AVX-512", "avx512_bf16": "AVX512-BF16", "amx_tile": "AMX", "asimd": "NEON"}
    return {"model": name, "instruction_sets": [label for flag, label in sets.items() if flag in flags]}


def compact_json(value: dict) -> str:
    """``value`` as indented JSON with each list of numbers (a confusion matrix's row) on one line."""
    text = json.dumps(value, indent=2)
    return re.sub(r"\[\s*([-0-9.,\s]+?)\s*\]", lambda m: "[" + ", ".join(m.group(1).split()).replace(",,", ",") + "]",
                  text)


def fer_ms_per_face(threads: int, repeats: int = 200) -> float | None:
    """Milliseconds per face of the ``fer`` package's classifier (its int8 mini-Xception,
    ``fer/data/emotion_model_quantized.tflite``, 64x64 input, one face a call as ``fer.FER`` runs it) on LiteRT
    with ``threads`` threads: the median of ``repeats`` calls after a warm-up; ``None`` without the package
    (``pip install --no-deps fer==25.10.3``)."""
    try:
        import fer
    except ImportError:
        return None
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(Path(fer.__file__).parent / "data" / "emotion_model_quantized.tflite"),
                              num_threads=threads)
    interpreter.allocate_tensors()
    index = interpreter.get_input_details()[0]["index"]
    face = np.random.default_rng(0).integers(0, 256, (1, 64, 64, 1)).astype(np.float32)
    times = []
    for i in range(repeats + 10):
        start = time.perf_counter()
        interpreter.set_tensor(index, face)
        interpreter.invoke()
        if i >= 10:
            times.append(time.perf_counter() - start)
    return round(float(np.median(times)) * 1000, 3)


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
    parser.add_argument("--votes", type=Path,
                        help="the FER+ votes (default: ferplus.csv in the folder above --data)")
    parser.add_argument("--labels", choices=("ferplus", "fer2013"), default="ferplus",
                        help="score against the FER+ crowd's majority (default) or FER2013's original labels")
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
        if args.labels == "ferplus":
            images, labels, crowd = load_ferplus_split(args.data, args.votes)
        else:
            (images, labels), crowd = load_fer2013_split(args.data), None
    except (FileNotFoundError, ValueError) as exc:  # a message, not a traceback
        raise SystemExit(str(exc)) from exc
    probabilities = model.predict_proba(images)
    if crowd is not None:
        scores = ferplus_scores(probabilities[crowd.included], crowd.majority[crowd.included],
                                labels[crowd.included])
        scores = {"labels": "FER+ crowd majority", "excluded_images": int((~crowd.included).sum()), **scores}
        headline = scores["ferplus_accuracy"]
    else:
        scores = ferplus_scores(probabilities, labels)  # the same figures against the original labels
        scores = {"labels": "FER2013 original", "images": scores["images"],
                  "accuracy": scores["ferplus_accuracy"],
                  **{k: v for k, v in scores.items() if k not in ("images", "ferplus_accuracy")}}
        headline = scores["accuracy"]
    if args.figure:
        split = "PublicTest" if args.data.name == "test" else args.data.name
        tta = "no TTA" if args.no_tta else "ten-crop" if args.shift_tta else "flip TTA"
        against = "FER+ majority" if crowd is not None else "FER2013 labels"
        save_confusion_figure(np.array(scores["confusion_matrix"]), args.figure,
                              f"{split} vs {against}, {args.runtime}, {tta} (accuracy {headline:.1%})")
    one_thread = (FacialExpressionModel(args.model, args.weights, flip_tta=not args.no_tta, runtime="litert",
                                        shift_tta=args.shift_tta, threads=1) if args.runtime == "litert" else None)
    print(compact_json({
        "data": str(args.data), "flip_tta": model.flip_tta, "shift_tta": model.shift_tta, "runtime": args.runtime,
        **scores,
        "parameters": int(model.keras_model.count_params()),
        "gflop_per_face": round(count_flops(model.keras_model) * model.views / 1e9, 3),
        "cpu": cpu_description(),
        "ms_per_face_batch_1": round(ms_per_face(model, 1), 2),
        "ms_per_face_batch_8": round(ms_per_face(model, 8), 2),
        "threads": LITERT_THREADS if args.runtime == "litert" else None,
        "ms_per_face_batch_1_one_thread": (round(ms_per_face(one_thread, 1), 2) if one_thread else None),
        "fer_ms_per_face_one_thread": fer_ms_per_face(1),
        "fer_ms_per_face": fer_ms_per_face(LITERT_THREADS),
    }))


if __name__ == "__main__":
    main()
