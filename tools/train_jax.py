"""Train one network of the app's architecture with Keras on JAX from one packed file: the long recipe's GPU path.

    python -m tools.train_jax pack --data data/fer2013 --out data/fer2013.npz [--teachers vgg40-shipped ...]
    python -m tools.train_jax train --pack data/fer2013.npz --out checkpoints/jax-run [--epochs 300] [...]

``pack`` (here, where the data set and the teachers are) writes FER2013's training and PublicTest images
as their original JPEG bytes (about 51 MB), their labels and keys, and the teacher ensemble's soft labels
(``training.read_teachers``) into one ``.npz``. ``train`` (on any machine with Keras and JAX; no
TensorFlow) trains ``model.make_model`` with the notebook's recipe: augmentation as Keras preprocessing
layers inside the training model, mixup on the NumPy batches, ``training.DistillationLoss`` when the
pack holds teachers, SGD with Nesterov momentum on one cosine schedule after a linear warm-up, every
epoch backed up (``BackupAndRestore``: running the same command again resumes), the best PublicTest
weights kept. At the end it recomputes the BatchNormalization statistics on the training faces
(``model.recalibrate_batch_norm``) and writes ``model.json`` + ``model_weights.h5``, which
``model.FacialExpressionModel`` loads like the notebook's, plus ``metrics.json`` and ``history.csv``.
Its PublicTest figure is Keras's with flip TTA; the figure as the app serves it (LiteRT) comes from
``python -m benchmarks.evaluate --model OUT/model.json --weights OUT/model_weights.h5`` on a machine
with TensorFlow.

On the device machine (JAX, h5py and OpenCV, no Keras): carry the wheels of keras, namex and optree
(the device README says how), the pack (``data/`` is ignored by git: name it in ``carry``), and keep
the call under its 64-MiB limit, for example by moving ``model_weights.h5`` (46 MB, two networks) out of the
checkout for that call.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
log = logging.getLogger("train_jax")


def pack(data: Path, out: Path, teachers: list[str]) -> Path:
    """Write the packed data set (see the module's docstring) to ``out`` (``.npz`` added when missing, as
    ``np.savez`` does); returns the path written.

    Raises:
        FileNotFoundError: ``data`` has no ``train/`` or ``test/`` class folders (``model.fer2013_files``).
        ValueError, FileNotFoundError: a teacher file that does not cover the training images
            (``training.read_teachers``).
    """
    from model import fer2013_files
    from training import npz_path, read_teachers, soft_label_keys

    arrays = {}
    for split in ("train", "test"):
        files = fer2013_files(data / split)
        blobs = [path.read_bytes() for path, _ in files]
        arrays[f"{split}_jpeg"] = np.frombuffer(b"".join(blobs), dtype=np.uint8)
        arrays[f"{split}_offsets"] = np.cumsum([0] + [len(b) for b in blobs], dtype=np.int64)
        arrays[f"{split}_labels"] = np.array([label for _, label in files], dtype=np.int8)
        arrays[f"{split}_keys"] = np.array(soft_label_keys([path for path, _ in files]), dtype=str)
    if teachers:
        arrays["teacher"] = read_teachers(teachers, arrays["train_keys"].tolist()).astype(np.float16)
        arrays["teachers"] = np.array(teachers, dtype=str)
    out = npz_path(out)  # as np.savez names it
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(out, **arrays)
    log.info("wrote %s (%.1f MB): %d training, %d PublicTest images, teachers %s", out, out.stat().st_size / 1e6,
             len(arrays["train_labels"]), len(arrays["test_labels"]), teachers or "none")
    return out


def unpack(path: Path) -> dict[str, np.ndarray]:
    """The packed file's faces decoded (uint8 ``(N, 48, 48)``, OpenCV as the app decodes), labels
    (int64 ``(N,)``) and, if packed, the teachers' soft labels (float32 ``(N, 7)``).

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: not a file that ``pack`` wrote, or an image that does not decode to 48x48.
    """
    import cv2

    try:
        with np.load(path) as data:
            packed = {key: data[key] for key in data.files}
    except (OSError, ValueError) as error:
        if not Path(path).is_file():
            raise FileNotFoundError(f"no pack at {path}: write one with `python -m tools.train_jax pack`") from error
        raise ValueError(f"{path} is not a .npz file ({error})") from error
    missing = [f"{split}_{part}" for split in ("train", "test") for part in ("jpeg", "offsets", "labels", "keys")
               if f"{split}_{part}" not in packed]
    if missing:
        raise ValueError(f"{path} is not a pack written by `tools.train_jax pack` (no {', '.join(missing)})")
    result = {}
    for split in ("train", "test"):
        jpeg, offsets = packed[f"{split}_jpeg"], packed[f"{split}_offsets"]
        faces = [cv2.imdecode(jpeg[a:b], cv2.IMREAD_GRAYSCALE)
                 for a, b in zip(offsets[:-1], offsets[1:], strict=True)]
        bad = [key for key, face in zip(packed[f"{split}_keys"], faces, strict=True)
               if face is None or face.shape != (48, 48)]
        if bad:
            raise ValueError(f"{path}: {len(bad)} {split} images do not decode to 48x48 (first: {bad[0]})")
        result[f"{split}_faces"] = np.stack(faces)
        result[f"{split}_labels"] = packed[f"{split}_labels"].astype(np.int64)
    if "teacher" in packed:
        result["teacher"] = packed["teacher"].astype(np.float32)
        result["teachers"] = packed["teachers"].tolist()
    return result


def main(argv: list[str] | None = None) -> int:
    """The command line (see the module's docstring); returns the exit status.

    Raises:
        SystemExit: status 2 for a bad option (``parse_args``), 1 for a ``--out`` this run may not use
            (``check_run_folder``), with the message on stderr.
    """
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    if args.command == "pack":
        pack(args.data, args.out, args.teachers)
        return 0
    from training import RunFolderError

    try:
        args.run_mode = check_run_folder(args)
    except RunFolderError as error:
        raise SystemExit(f"train_jax: error: {error}") from error  # the message on stderr, status 1
    train(args)
    return 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The parsed command line; every bad ``train`` option refused (SystemExit 2, naming it and its value)."""
    from model import ARCHITECTURES, FER_DIR  # NumPy and OpenCV only: no Keras yet

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("pack", help="pack FER2013 (and teachers' soft labels) into one file",
                            allow_abbrev=False)
    p.add_argument("--data", type=Path, default=FER_DIR)
    p.add_argument("--out", type=Path, default=ROOT / "data" / "fer2013.npz")
    p.add_argument("--teachers", nargs="*", default=[], help="docs/teachers/<name>.npz names or paths")
    t = commands.add_parser("train", help="train on a packed file with Keras on JAX", allow_abbrev=False)
    t.add_argument("--pack", type=Path, default=ROOT / "data" / "fer2013.npz")
    t.add_argument("--out", type=Path, required=True, help="folder for the model files, backups and figures")
    t.add_argument("--architecture", choices=ARCHITECTURES, default="vgg")
    t.add_argument("--crop", type=int, default=40, help="0: the whole 48x48 face")
    t.add_argument("--width", type=float, default=1.0, help="width multiplier of make_model (0 < width <= 4)")
    t.add_argument("--epochs", type=int, default=300)
    t.add_argument("--batch-size", type=int, default=128)
    t.add_argument("--learning-rate", type=float, default=0.02,
                   help="peak; the notebook's 0.01 at batch 64, scaled linearly with the batch (Goyal et al. 2017)")
    t.add_argument("--warmup-epochs", type=int, default=5)
    t.add_argument("--weight-decay", type=float, default=1e-4)
    t.add_argument("--label-smoothing", type=float, default=0.1)
    t.add_argument("--augment", choices=("none", "standard", "strong"), default="strong")
    t.add_argument("--mixup", type=float, default=0.2, help="Beta(a, a) mixup weights; 0: off")
    t.add_argument("--alpha", type=float, default=0.5, help="weight of the distillation term (with teachers)")
    t.add_argument("--temperature", type=float, default=4.0)
    t.add_argument("--no-teachers", action="store_true", help="ignore the pack's teachers (plain cross-entropy)")
    t.add_argument("--precision", choices=("auto", "mixed_bfloat16", "float32"), default="auto",
                   help="auto: mixed_bfloat16 on a GPU, float32 on the CPU")
    t.add_argument("--seed", type=int, default=1)
    t.add_argument("--overwrite", action="store_true",
                   help="start again in an OUT that holds another run's files (they are deleted)")
    args = parser.parse_args(argv)
    if args.command == "train":
        for problem in _option_problems(args):
            parser.error(problem)
    return args


_RULES = {  # option: (test, what it must be)
    "epochs": (lambda v: v >= 1, ">= 1"),
    "batch_size": (lambda v: v >= 2, ">= 2"),
    "warmup_epochs": (lambda v: v >= 0, ">= 0"),
    "width": (lambda v: 0 < v <= 4, "above 0 and at most 4"),
    "crop": (lambda v: v == 0 or 16 <= v <= 48, "0 (no crop) or between 16 and 48"),
    "learning_rate": (lambda v: v > 0, "above 0"),
    "weight_decay": (lambda v: v >= 0, ">= 0"),
    "label_smoothing": (lambda v: 0 <= v < 1, "in [0, 1)"),
    "mixup": (lambda v: v >= 0, ">= 0 (0: off)"),
    "alpha": (lambda v: 0 <= v <= 1, "in [0, 1]"),
    "temperature": (lambda v: v > 0, "above 0"),
}
#: the options a resumed run must share with the run it continues (the others do not change what is trained)
_RUN_OPTIONS = ("architecture", "crop", "width", "epochs", "batch_size", "learning_rate", "warmup_epochs",
                "weight_decay", "label_smoothing", "augment", "mixup", "alpha", "temperature", "no_teachers",
                "precision", "seed")


def _option_problems(args: argparse.Namespace) -> list[str]:
    """One message per bad ``train`` option, naming it and its value (empty when all are good)."""
    return [f"--{name.replace('_', '-')} must be {rule}, not {getattr(args, name)!r}"
            for name, (test, rule) in _RULES.items() if not test(getattr(args, name))]


def check_run_folder(args: argparse.Namespace) -> str:
    """``training.check_run_folder`` for ``args.out`` and the options of ``_RUN_OPTIONS``: ``"fresh"``,
    ``"resume"`` or ``"export"`` (a finished run: its model files written again, nothing trained).

    Raises:
        training.RunFolderError: without ``--overwrite``: a run with other options (names them), another
            run's files, an unreadable ``options.json``, an unfinished run without its backup.
    """
    from training import check_run_folder as check  # imports Keras: after KERAS_BACKEND is set

    return check(args.out, {name: getattr(args, name) for name in _RUN_OPTIONS}, args.epochs, args.overwrite,
                 spell=lambda name: f"--{name.replace('_', '-')}", restart_hint="pass --overwrite")


def train(args: argparse.Namespace) -> dict:
    """Train (or resume, or only export: ``args.run_mode`` from ``check_run_folder``) with ``main``'s
    options and write ``OUT/model.json``, ``model_weights.h5``, ``metrics.json`` and ``history.csv``;
    returns the metrics.

    Raises:
        SystemExit: Keras does not run on JAX.
        ValueError, KeyError: a pack that does not decode (``unpack``).
    """
    import keras

    if keras.backend.backend() != "jax":
        raise SystemExit(f"Keras runs on {keras.backend.backend()}, not JAX: "
                         "set KERAS_BACKEND=jax before Python starts")
    import jax

    from model import EMOTIONS_LIST, FacialExpressionModel, make_model, recalibrate_batch_norm
    from training import DistillationLoss, LabelAccuracy, make_augmentation, mix_up, read_history

    data = unpack(args.pack)
    teacher = None if args.no_teachers else data.get("teacher")
    n_classes = len(EMOTIONS_LIST)
    train_faces, test_faces = data["train_faces"], data["test_faces"]
    targets = np.eye(n_classes, dtype=np.float32)[data["train_labels"]]
    if teacher is not None:
        targets = np.concatenate([targets, teacher], axis=1)
    test_targets = np.eye(n_classes, dtype=np.float32)[data["test_labels"]]
    on_gpu = jax.default_backend() == "gpu"
    precision = ("mixed_bfloat16" if on_gpu else "float32") if args.precision == "auto" else args.precision
    keras.mixed_precision.set_global_policy(precision)
    keras.utils.set_random_seed(args.seed)
    log.info("JAX %s on %s, Keras %s, %s; %d training faces, teachers %s", jax.__version__, jax.default_backend(),
             keras.__version__, precision, len(train_faces), data.get("teachers") if teacher is not None else "none")

    class Batches(keras.utils.PyDataset):
        """Shuffled float32 batches ``(B, 48, 48, 1)`` in [0, 255] and their targets, mixed up when asked."""

        def __init__(self):
            super().__init__()
            self.rng = np.random.default_rng(args.seed)
            self.order = self.rng.permutation(len(train_faces))

        def __len__(self):
            return math.ceil(len(train_faces) / args.batch_size)

        def __getitem__(self, i):
            index = self.order[i * args.batch_size:(i + 1) * args.batch_size]
            x, y = train_faces[index].astype(np.float32)[..., None], targets[index]
            return mix_up(x, y, args.mixup, self.rng) if args.mixup else (x, y)

        def on_epoch_end(self):
            self.order = self.rng.permutation(len(train_faces))

    crop = args.crop or None
    network = make_model(architecture=args.architecture, crop=crop, width=args.width)
    inputs = keras.Input((48, 48, 1), name="face")
    augment = make_augmentation(args.augment)
    model = keras.Model(inputs, network(augment(inputs) if augment else inputs), name="training")
    batches = Batches()
    steps_per_epoch = len(batches)
    warmup_steps = min(args.warmup_epochs, args.epochs - 1) * steps_per_epoch
    schedule = keras.optimizers.schedules.CosineDecay(
        0.0 if warmup_steps else args.learning_rate, decay_steps=args.epochs * steps_per_epoch - warmup_steps,
        warmup_target=args.learning_rate if warmup_steps else None, warmup_steps=warmup_steps)
    optimizer = keras.optimizers.SGD(schedule, momentum=0.9, nesterov=True, weight_decay=args.weight_decay or None)
    loss = (DistillationLoss(args.alpha, args.temperature, args.label_smoothing) if teacher is not None
            else keras.losses.CategoricalCrossentropy(label_smoothing=args.label_smoothing))
    # Keras compiles a model only when all its layers say they support XLA, and RandomTranslation,
    # RandomRotation and RandomZoom say they do not (TensorFlow's XLA lacks their image transform). On JAX
    # that would run every training step op by op, without jax.jit, tens of times slower; there these
    # layers' transform (keras.ops.image.affine_transform: jax.scipy.ndimage.map_coordinates) compiles. All
    # the augmentation layers are marked (the others already say so). Their random state is a model variable
    # that the jitted step carries forward, so each step still draws new transformations.
    for layer in augment.layers if augment else []:
        layer.supports_jit = True
    model.compile(optimizer=optimizer, loss=loss, metrics=[LabelAccuracy()], jit_compile=True)

    out = args.out
    history_csv, best_weights, backup = out / "history.csv", out / "best.weights.h5", out / "backup"
    previous = read_history(history_csv)
    done = len(previous.get("epoch", []))
    mode = getattr(args, "run_mode", "fresh")
    if mode == "export":
        log.info("%s holds a finished run (%d epochs): writing its model files again", out, done)
    else:
        log.info("resuming after epoch %d", done) if done else log.info("starting from epoch 1")
    best_before = float(np.nanmax(previous["val_accuracy"])) if done else None

    class EpochSeconds(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            logs["epoch_seconds"] = time.perf_counter() - self.start
            log.info("epoch %d/%d: %s", epoch + 1, args.epochs, ", ".join(f"{k} {v:.4g}" for k, v in logs.items()))

    # BackupAndRestore last: an epoch is backed up only after its best weights and history row are
    # written, so a run killed in between repeats that epoch (``read_history`` keeps its last row)
    if mode != "export":
        model.fit(batches, validation_data=(test_faces.astype(np.float32)[..., None], test_targets),
                  validation_batch_size=512, epochs=args.epochs, verbose=0, callbacks=[
                      keras.callbacks.ModelCheckpoint(best_weights, monitor="val_accuracy", mode="max",
                                                      save_best_only=True, save_weights_only=True,
                                                      initial_value_threshold=best_before),
                      EpochSeconds(),
                      keras.callbacks.CSVLogger(history_csv, append=True),
                      keras.callbacks.BackupAndRestore(backup, double_checkpoint=True)])

    model.load_weights(best_weights)
    keras.mixed_precision.set_global_policy("float32")
    export = make_model(architecture=args.architecture, crop=crop, width=args.width)
    export.set_weights(network.get_weights())
    shuffled = train_faces[np.random.default_rng(args.seed).permutation(len(train_faces))]
    recalibrate_batch_norm(export, shuffled)
    (out / "model.json").write_text(export.to_json(indent=1))
    export.save(out / "model_weights.h5", include_optimizer=False)
    # the exported files through the app's loader, with its flip TTA (Keras runtime: LiteRT needs TensorFlow)
    served = FacialExpressionModel(out / "model.json", out / "model_weights.h5", runtime="keras")
    predictions = served.predict_proba(test_faces).argmax(axis=1)
    labels = data["test_labels"]
    history = read_history(history_csv)
    metrics = {
        "trainer": "tools/train_jax.py", "backend": f"jax {jax.__version__} on {jax.default_backend()}",
        "device": str(jax.devices()[0]), "architecture": args.architecture, "crop": crop,
        "width": args.width,
        "parameters": int(export.count_params()), "jit_compile": bool(model.jit_compile),
        "publictest_accuracy_keras_flip": round(float((predictions == labels).mean()), 4),
        "per_class_recall": {name: round(float((predictions[labels == i] == i).mean()), 4)
                             for i, name in enumerate(EMOTIONS_LIST)},
        "epochs": len(history["epoch"]),
        "best_epoch": 1 + int(history["epoch"][np.nanargmax(history["val_accuracy"])]),
        "training_minutes": round(float(history["epoch_seconds"].sum()) / 60, 1),
        "policy": precision, "batch_size": args.batch_size, "optimizer": "sgd", "learning_rate": args.learning_rate,
        "warmup_epochs": args.warmup_epochs, "weight_decay": args.weight_decay,
        "label_smoothing": args.label_smoothing, "augment": args.augment, "mixup": args.mixup,
        "teachers": data.get("teachers", []) if teacher is not None else [],
        "alpha": args.alpha if teacher is not None else None,
        "temperature": args.temperature if teacher is not None else None, "seed": args.seed,
        "batch_norm_recalibrated_on": len(shuffled),
    }
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    log.info("wrote %s/model.json, model_weights.h5, metrics.json: PublicTest %.4f (Keras, flip TTA)", out,
             metrics["publictest_accuracy_keras_flip"])
    return metrics


if __name__ == "__main__":
    os.environ.setdefault("KERAS_BACKEND", "jax")  # before anything imports Keras
    sys.exit(main())
