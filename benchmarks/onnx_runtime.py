"""ONNX Runtime vs LiteRT int8 vs Keras for the shipped classifier: PublicTest accuracy (flip TTA) and ms/face.

The app's files: they held the course CNN when ``docs/benchmarks/onnx-runtime.txt`` was measured, and the
two-network ensemble today.

Needs packages the app does not, so it runs in a virtual environment of its own:

    python3 -m venv /tmp/ortvenv
    /tmp/ortvenv/bin/pip install -r requirements.txt onnxruntime onnx tf2onnx sympy
    /tmp/ortvenv/bin/python -m benchmarks.onnx_runtime [--repeats 300] [--out /tmp/ortwork]

Builds in --out: model_f32.onnx (keras model.export(format="onnx")), model_dyn_qint8.onnx and
model_dyn_quint8.onnx (onnxruntime.quantization.quantize_dynamic), model_static_qdq.onnx (quantize_static,
QDQ, per-channel S8S8, MinMax calibration on 512 random *train* faces). Every runtime is driven through the
project's own FacialExpressionModel.predict_proba (flip TTA: N faces + N mirrors in one call), by swapping
the callable it uses, so the pre/post-processing is identical. Timing interleaves the runtimes call by call
(shuffled order each round) on the same random uint8 faces as benchmarks/evaluate.py. Nothing in the
project folder is written (no bytecode either).
"""
import argparse
import copy
import json
import os
import sys
import time
from pathlib import Path

sys.dont_write_bytecode = True
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402 (after the settings above)
import onnxruntime as ort  # noqa: E402 (after the settings above)
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_dynamic, quantize_static  # noqa: E402 (after the settings above)
from onnxruntime.quantization.shape_inference import quant_pre_process  # noqa: E402 (after the settings above)

from model import FER_DIR, MODEL_JSON, MODEL_WEIGHTS, FacialExpressionModel, load_fer2013_split  # noqa: E402 (after the settings above)

MODEL, WEIGHTS = str(MODEL_JSON), str(MODEL_WEIGHTS)
TEST, TRAIN = FER_DIR / "test", FER_DIR / "train"


class Reader(CalibrationDataReader):
    def __init__(self, x, name, batch=32):
        self.it = iter([{name: x[i:i + batch]} for i in range(0, len(x), batch)])

    def get_next(self):
        return next(self.it, None)


def build_onnx(keras_model, out: Path) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    f32 = out / "model_f32.onnx"
    keras_model(np.zeros((1, 48, 48, 1), np.float32))  # export(format="onnx") refuses a never-called model
    keras_model.export(str(f32), format="onnx", verbose=False)
    paths = {"f32": f32}
    for wt in ("QInt8", "QUInt8"):
        p = out / f"model_dyn_{wt.lower()}.onnx"
        quantize_dynamic(str(f32), str(p), weight_type=getattr(QuantType, wt))
        paths[f"dyn_{wt}"] = p
    pre = out / "model_f32_pre.onnx"
    quant_pre_process(str(f32), str(pre))
    x, _ = load_fer2013_split(TRAIN)
    idx = np.random.default_rng(0).choice(len(x), 512, replace=False)
    calib = x[idx].astype(np.float32)[..., None]
    calib = np.concatenate([calib, calib[:, :, ::-1]])  # faces and mirrors, as served
    name = ort.InferenceSession(str(f32), providers=["CPUExecutionProvider"]).get_inputs()[0].name
    p = out / "model_static_qdq.onnx"
    quantize_static(str(pre), str(p), Reader(calib, name), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QInt8, weight_type=QuantType.QInt8)
    paths["static_qdq"] = p
    return paths


def ort_runner(path: Path, threads: int):
    so = ort.SessionOptions()
    if threads:
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    return lambda x: sess.run(None, {name: np.ascontiguousarray(x, dtype=np.float32)})[0]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=300)
    ap.add_argument("--out", type=Path, default=Path("/tmp/ortwork"))
    args = ap.parse_args()
    litert = FacialExpressionModel(MODEL, WEIGHTS, flip_tta=True, runtime="litert")
    keras_m = FacialExpressionModel(MODEL, WEIGHTS, flip_tta=True, runtime="keras")
    paths = build_onnx(keras_m.keras_model, args.out)

    def with_forward(fn):
        m = copy.copy(keras_m)
        m._interpreter = fn  # FacialExpressionModel._predict calls it on the 2N views
        return m

    models = {"LiteRT int8 (1 thr)": litert, "Keras (TF)": keras_m,
              "ORT f32 (1 thr)": with_forward(ort_runner(paths["f32"], 1)),
              "ORT f32 (default thr)": with_forward(ort_runner(paths["f32"], 0)),
              "ORT dyn QInt8 (1 thr)": with_forward(ort_runner(paths["dyn_QInt8"], 1)),
              "ORT dyn QUInt8 (1 thr)": with_forward(ort_runner(paths["dyn_QUInt8"], 1)),
              "ORT static QDQ S8S8 (1 thr)": with_forward(ort_runner(paths["static_qdq"], 1))}

    images, labels = load_fer2013_split(TEST)
    probs = {k: m.predict_proba(images) for k, m in models.items()}
    ref = probs["Keras (TF)"]
    res = {k: {"accuracy": float((p.argmax(1) == labels).mean()),
               "agree_keras": float((p.argmax(1) == ref.argmax(1)).mean()),
               "max_abs_diff_keras": float(np.abs(p - ref).max())} for k, p in probs.items()}

    rng = np.random.default_rng(1)
    names = list(models)
    for batch in (1, 8):
        faces = np.random.default_rng(0).integers(0, 256, (batch, 48, 48), dtype=np.uint8)
        for m in models.values():
            for _ in range(10):
                m.predict_proba(faces)
        t = {k: [] for k in names}
        for _ in range(args.repeats):
            for k in rng.permutation(names):
                s = time.perf_counter()
                models[k].predict_proba(faces)
                t[k].append((time.perf_counter() - s) * 1000 / batch)
        base = np.array(t["LiteRT int8 (1 thr)"])
        for k in names:
            a = np.array(t[k])
            res[k][f"ms_b{batch}"] = float(np.median(a))
            res[k][f"ratio_b{batch}"] = float(np.median(a / base))  # per-round ratio: robust to the load

    print(json.dumps({"versions": {"onnxruntime": ort.__version__}, "results": res}, indent=1))
    print(f"\n{'runtime':30s} {'acc':>7s} {'agree':>6s} {'ms b1':>7s} {'ms b8':>7s} {'x b1':>6s} {'x b8':>6s}")
    for k, r in res.items():
        print(f"{k:30s} {r['accuracy']:7.2%} {r['agree_keras']:6.2%} {r['ms_b1']:7.3f} {r['ms_b8']:7.3f} "
              f"{r['ratio_b1']:6.2f} {r['ratio_b8']:6.2f}")


if __name__ == "__main__":
    main()
