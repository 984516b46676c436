"""Train one network of the app's architecture with Keras on JAX from one packed file: the long recipe's GPU path.

    python -m tools.train_jax pack --data data/fer2013 --out data/fer2013.npz [--teachers vgg40-shipped ...]
    python -m tools.train_jax train --pack data/fer2013.npz --out checkpoints/jax-run [--epochs 300] [...]

``pack`` (here, where the data set and the teachers are) writes FER2013's training and PublicTest images as
their original JPEG bytes (about 41 MB compressed with the rest), their labels and keys, the FER+ labels of
each image (``datasets.ferplus_labels`` on ``<data>/ferplus.csv``: vote distribution, crowd majority, kept or
left out) and the teacher ensemble's soft labels (``training.read_teachers``) into one ``.npz``. ``train`` (on
any machine with Keras and JAX; no TensorFlow) trains ``model.make_model`` with the notebook's recipe: on the
FER+ vote distributions, the images that FER+ leaves out dropped, the epoch chosen on the crowd's majority
(``--labels ferplus``, the default, as the notebook's ``LABELS``; ``--labels fer2013``: the original one-hot
labels), augmentation as Keras preprocessing layers inside the training model, mixup on the NumPy batches,
``training.DistillationLoss`` when the pack (or ``--teachers``) gives teachers, SGD with Nesterov momentum on
one cosine schedule after a linear warm-up, every epoch backed up (``BackupAndRestore``: running the same
command again resumes), the best PublicTest weights kept. At the end it recomputes the BatchNormalization
statistics on the training faces (``model.recalibrate_batch_norm``) and writes ``model.json`` +
``model_weights.h5``, which ``model.FacialExpressionModel`` loads like the notebook's, plus ``metrics.json``
and ``history.csv``; with ``--soft-labels`` also ``soft_labels.npz`` + ``.json``, the network's ten-crop soft
labels on every training face and PublicTest face (``tools.soft_labels``'s views and format), so that it can
teach a later run here or on the CPU (``--teachers``, the notebook's ``TEACHERS``) after its weights are gone.
Its PublicTest figures are Keras's with flip TTA; the figure as the app serves it (LiteRT) comes from ``python
-m benchmarks.evaluate --model OUT/model.json --weights OUT/model_weights.h5`` on a machine with TensorFlow.

On the device machine (JAX, h5py and OpenCV, no Keras): carry the wheels of keras, namex and optree
(the device README says how), the pack (``data/`` is ignored by git: name it in ``carry``), and keep
the call under its 64-MiB limit: ``tools/device_prepare.sh`` does all three.
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


def pack(data: Path, out: Path, teachers: list[str], votes: Path | None = None) -> Path:
    """Write the packed data set (see the module's docstring) to ``out`` (``.npz`` added when missing, as
    ``np.savez`` does); returns the path written.

    Args:
        data: FER2013 in the Kaggle image layout (``train/<class>/*.jpg``, ``test/<class>/*.jpg``).
        out: the file to write.
        teachers: soft-label files (``training.read_teachers``); [] for none.
        votes: the FER+ votes; default ``data/ferplus.csv``, left out of the pack (with a warning) when that
            file does not exist: such a pack trains only with ``--labels fer2013``.

    Raises:
        FileNotFoundError: ``data`` has no ``train/`` or ``test/`` class folders (``model.fer2013_files``);
            ``votes`` given and missing.
        ValueError: ``votes`` that do not cover every image (``datasets.ferplus_labels``).
        ValueError, FileNotFoundError: a teacher file that does not cover the training images
            (``training.read_teachers``).
    """
    from datasets import ferplus_labels
    from model import fer2013_files
    from training import npz_path, read_teachers, soft_label_keys

    if votes is None and not (data / "ferplus.csv").is_file():
        log.warning("no %s: the pack has no FER+ votes and trains only with --labels fer2013", data / "ferplus.csv")
    elif votes is None:
        votes = data / "ferplus.csv"
    arrays = {}
    for split in ("train", "test"):
        files = fer2013_files(data / split)
        blobs = [path.read_bytes() for path, _ in files]
        arrays[f"{split}_jpeg"] = np.frombuffer(b"".join(blobs), dtype=np.uint8)
        arrays[f"{split}_offsets"] = np.cumsum([0] + [len(b) for b in blobs], dtype=np.int64)
        arrays[f"{split}_labels"] = np.array([label for _, label in files], dtype=np.int8)
        arrays[f"{split}_keys"] = np.array(soft_label_keys([path for path, _ in files]), dtype=str)
        if votes is not None:
            crowd = ferplus_labels([path for path, _ in files], votes, arrays[f"{split}_labels"])
            arrays[f"{split}_votes"] = crowd.distributions
            arrays[f"{split}_majority"] = crowd.majority.astype(np.int8)
            arrays[f"{split}_included"] = crowd.included
    if teachers:
        arrays["teacher"] = read_teachers(teachers, arrays["train_keys"].tolist()).astype(np.float16)
        arrays["teachers"] = np.array(teachers, dtype=str)
    out = npz_path(out)  # as np.savez names it
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, **arrays)  # the keys (str) and votes compress; the JPEG bytes barely
    log.info("wrote %s (%.1f MB): %d training, %d PublicTest images, FER+ votes %s, teachers %s", out,
             out.stat().st_size / 1e6, len(arrays["train_labels"]), len(arrays["test_labels"]),
             "yes" if votes is not None else "no", teachers or "none")
    return out


def unpack(path: Path) -> dict[str, np.ndarray]:
    """The packed file's faces decoded (``{split}_faces``: uint8 ``(N, 48, 48)``, OpenCV as the app decodes),
    original labels (``{split}_labels``: int64 ``(N,)``) and keys (``{split}_keys``: ``<class>/<file>``),
    for ``split`` in train and test; if packed, the FER+ labels (``{split}_votes``: float32 ``(N, 7)``,
    ``{split}_majority``: int64 ``(N,)``, ``{split}_included``: bool ``(N,)``, as ``datasets.FerPlusLabels``)
    and the teachers' soft labels (``teacher``: float32 ``(N, 7)``, ``teachers``: their names).

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
        result[f"{split}_keys"] = packed[f"{split}_keys"].tolist()
        if f"{split}_votes" in packed:
            result[f"{split}_votes"] = packed[f"{split}_votes"].astype(np.float32)
            result[f"{split}_majority"] = packed[f"{split}_majority"].astype(np.int64)
            result[f"{split}_included"] = packed[f"{split}_included"].astype(bool)
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
        pack(args.data, args.out, args.teachers, args.votes)
        return 0
    from training import RunFolderError

    try:
        args.run_mode = check_run_folder(args)
    except RunFolderError as error:
        raise SystemExit(f"train_jax: error: {error}") from error  # the message on stderr, status 1
    check_pack_labels(args.pack, args.labels)
    train(args)
    return 0


def check_pack_labels(path: Path, labels: str) -> None:
    """Refuse ``--labels ferplus`` with a pack that holds no FER+ votes, before anything is trained. A pack that
    cannot be opened is left to ``unpack``, whose errors name what is wrong with it.

    Raises:
        SystemExit: the pack has no votes (status 1, the message saying how to pack them or train without).
    """
    from datasets import FERPLUS_SOURCE

    try:
        with np.load(path) as data:
            has_votes = "train_votes" in data.files
    except (OSError, ValueError):
        return
    if labels == "ferplus" and not has_votes:
        raise SystemExit(f"train_jax: error: {path} has no FER+ votes: pack it again with ferplus.csv in --data (or "
                         f"--votes), or train with --labels fer2013; {FERPLUS_SOURCE}")


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
    p.add_argument("--votes", type=Path, default=None,
                   help="the FER+ votes (default: DATA/ferplus.csv, packed when it exists)")
    t = commands.add_parser("train", help="train on a packed file with Keras on JAX", allow_abbrev=False)
    t.add_argument("--pack", type=Path, default=ROOT / "data" / "fer2013.npz")
    t.add_argument("--out", type=Path, required=True, help="folder for the model files, backups and figures")
    t.add_argument("--labels", choices=("ferplus", "fer2013"), default="ferplus",
                   help="ferplus: the FER+ vote distributions, scored on the crowd's majority (the pack's votes); "
                        "fer2013: the original one-hot labels")
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
    t.add_argument("--teachers", nargs="+", default=None, metavar="FILE",
                   help="soft-label files (another run's soft_labels.npz, docs/teachers/<name>) to distil from in "
                        "place of the pack's")
    t.add_argument("--soft-labels", action="store_true",
                   help="also write OUT/soft_labels.npz + .json: the network's ten-crop soft labels on the training "
                        "faces, a teacher for later runs")
    t.add_argument("--precision", choices=("auto", "mixed_bfloat16", "float32"), default="auto",
                   help="auto: mixed_bfloat16 on a GPU, float32 on the CPU")
    t.add_argument("--seed", type=int, default=1)
    t.add_argument("--overwrite", action="store_true",
                   help="start again in an OUT that holds another run's files (they are deleted)")
    args = parser.parse_args(argv)
    if args.command == "train":
        for problem in _option_problems(args):
            parser.error(problem)
        if args.teachers and args.no_teachers:
            parser.error("--teachers and --no-teachers exclude each other")
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
_RUN_OPTIONS = ("labels", "architecture", "crop", "width", "epochs", "batch_size", "learning_rate", "warmup_epochs",
                "weight_decay", "label_smoothing", "augment", "mixup", "alpha", "temperature", "no_teachers",
                "teachers", "precision", "seed")


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
        KeyError: ``--labels ferplus`` with a pack that has no FER+ votes (``main`` refuses it first:
            ``check_pack_labels``).
        ValueError, KeyError: a pack that does not decode (``unpack``).
        ValueError, FileNotFoundError: ``--teachers`` files that do not cover the pack's training images.
    """
    import keras

    if keras.backend.backend() != "jax":
        raise SystemExit(f"Keras runs on {keras.backend.backend()}, not JAX: "
                         "set KERAS_BACKEND=jax before Python starts")
    import jax

    from datasets import ferplus_scores
    from model import EMOTIONS_LIST, FacialExpressionModel, make_model, recalibrate_batch_norm
    from training import DistillationLoss, LabelAccuracy, make_augmentation, mix_up, read_history, read_teachers

    data = unpack(args.pack)
    teacher_names = data.get("teachers", [])
    teacher = None if args.no_teachers else data.get("teacher")
    if args.teachers:
        teacher, teacher_names = read_teachers(args.teachers, data["train_keys"]), list(args.teachers)
    n_classes = len(EMOTIONS_LIST)
    if args.labels == "ferplus":  # as the notebook: vote distributions; the images FER+ leaves out dropped
        train_keep, test_keep = data["train_included"], data["test_included"]
        train_targets, test_labels = data["train_votes"], data["test_majority"]
    else:
        train_keep = np.ones(len(data["train_labels"]), bool)
        test_keep = np.ones(len(data["test_labels"]), bool)
        train_targets = np.eye(n_classes, dtype=np.float32)[data["train_labels"]]
        test_labels = data["test_labels"]
    all_train_faces = data["train_faces"]
    train_faces, test_faces = all_train_faces[train_keep], data["test_faces"][test_keep]
    targets, test_labels = train_targets[train_keep], test_labels[test_keep]
    if teacher is not None:
        targets = np.concatenate([targets, teacher[train_keep]], axis=1)
    test_targets = np.eye(n_classes, dtype=np.float32)[test_labels]
    on_gpu = jax.default_backend() == "gpu"
    precision = ("mixed_bfloat16" if on_gpu else "float32") if args.precision == "auto" else args.precision
    keras.mixed_precision.set_global_policy(precision)
    keras.utils.set_random_seed(args.seed)
    log.info("JAX %s on %s, Keras %s, %s; labels %s: %d training, %d PublicTest faces; teachers %s",
             jax.__version__, jax.default_backend(), keras.__version__, precision, args.labels, len(train_faces),
             len(test_faces), teacher_names if teacher is not None else "none")

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
    # every training face, as the notebook recalibrates (those FER+ leaves out are faces too)
    shuffled = all_train_faces[np.random.default_rng(args.seed).permutation(len(all_train_faces))]
    recalibrate_batch_norm(export, shuffled)
    (out / "model.json").write_text(export.to_json(indent=1))
    export.save(out / "model_weights.h5", include_optimizer=False)
    # the exported files through the app's loader, with its flip TTA (Keras runtime: LiteRT needs TensorFlow)
    served = FacialExpressionModel(out / "model.json", out / "model_weights.h5", runtime="keras")
    scores = ferplus_scores(served.predict_proba(test_faces), test_labels,
                            data["test_labels"][test_keep] if args.labels == "ferplus" else None)
    history = read_history(history_csv)
    metrics = {
        "trainer": "tools/train_jax.py", "backend": f"jax {jax.__version__} on {jax.default_backend()}",
        "device": str(jax.devices()[0]), "labels": args.labels, "architecture": args.architecture, "crop": crop,
        "width": args.width,
        "parameters": int(export.count_params()), "jit_compile": bool(model.jit_compile),
        # against the crowd's majority with --labels ferplus (FER+ majority accuracy), else the original labels
        "publictest_accuracy_keras_flip": scores["ferplus_accuracy"], "publictest_images": scores["images"],
        **({"publictest_fer2013_accuracy": scores["fer2013_accuracy"],
            "publictest_neutral_called_sad": scores["neutral_called_sad"]} if args.labels == "ferplus" else {}),
        "per_class_recall": scores["per_class_recall"],
        "epochs": len(history["epoch"]),
        "best_epoch": 1 + int(history["epoch"][np.nanargmax(history["val_accuracy"])]),
        "training_minutes": round(float(history["epoch_seconds"].sum()) / 60, 1),
        "policy": precision, "batch_size": args.batch_size, "optimizer": "sgd", "learning_rate": args.learning_rate,
        "warmup_epochs": args.warmup_epochs, "weight_decay": args.weight_decay,
        "label_smoothing": args.label_smoothing, "augment": args.augment, "mixup": args.mixup,
        "teachers": teacher_names if teacher is not None else [],
        "alpha": args.alpha if teacher is not None else None,
        "temperature": args.temperature if teacher is not None else None, "seed": args.seed,
        "batch_norm_recalibrated_on": len(shuffled),
    }
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    log.info("wrote %s/model.json, model_weights.h5, metrics.json: PublicTest %.4f (%s, Keras, flip TTA)", out,
             metrics["publictest_accuracy_keras_flip"], "FER+ majority" if args.labels == "ferplus" else "FER2013")
    if args.soft_labels:  # after the model files: a failure here loses the soft labels alone, not the run
        write_ten_crop_soft_labels(out, export, served, data, metrics)
    return metrics


def write_ten_crop_soft_labels(out: Path, network, served, data: dict, metrics: dict) -> Path:
    """Write ``out/soft_labels.npz`` + ``.json`` as ``tools.soft_labels`` writes a teacher (Keras runtime): the
    exported network's mean softmax over ten views (the four corner crops and the centre one of its crop,
    ``networks.ten_crop_shift``, each mirrored) of every training face of the pack (those FER+ leaves out too: a
    teacher file covers the whole split) and of every PublicTest face, with ``tools.soft_labels``' PublicTest
    figures and the run's ``metrics``. Returns the ``.npz`` path.

    Args:
        out: the run folder, holding the exported ``model.json`` + ``model_weights.h5``.
        network: that exported Keras network (for its crop).
        served: those files loaded as the app serves them (``FacialExpressionModel``, Keras runtime, flip TTA).
        data: the pack (``unpack``).
        metrics: JSON-serialisable figures of the run.
    """
    from datasets import FerPlusLabels
    from model import FacialExpressionModel
    from networks import ten_crop_shift
    from tools.soft_labels import publictest_figures
    from training import write_soft_labels

    shift = ten_crop_shift(network)
    ten_crop = FacialExpressionModel(out / "model.json", out / "model_weights.h5", runtime="keras", shift_tta=shift)
    crowd = (FerPlusLabels(data["test_votes"], data["test_majority"], data["test_included"])
             if "test_votes" in data else None)
    figures, test_probabilities = publictest_figures(served, ten_crop, data["test_faces"], data["test_labels"], crowd)
    faces = data["train_faces"]
    probabilities = np.concatenate([ten_crop.predict_proba(faces[i:i + 2048]) for i in range(0, len(faces), 2048)])
    path = write_soft_labels(out / "soft_labels.npz", data["train_keys"], probabilities,
                             publictest=(data["test_keys"], test_probabilities), **metrics, **figures,
                             images=len(data["train_keys"]),
                             soft_labels=f"mean of the softmax of ten views (the face shifted by {shift} px four "
                                         "ways and centred, each mirrored), keras runtime (tools/train_jax.py)")
    log.info("wrote %s: ten-crop soft labels of %d training faces", path, len(data["train_keys"]))
    return path


if __name__ == "__main__":
    os.environ.setdefault("KERAS_BACKEND", "jax")  # before anything imports Keras
    sys.exit(main())
