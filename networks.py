"""The classifier networks: their architectures (``make_model``) and the one step that edits a trained
network's statistics (``recalibrate_batch_norm``), plus ``count_flops``, the cost of a forward pass counted
from a model's layers. Building a network imports Keras (and with it TensorFlow or JAX).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from checks import check_number
from datasets import INPUT_SIZE
from faces import EMOTIONS_LIST

if TYPE_CHECKING:
    import keras

log = logging.getLogger(__name__)

ARCHITECTURES = ("course", "vgg", "mobile")


def make_model(
    input_shape: tuple[int, int, int] = (INPUT_SIZE, INPUT_SIZE, 1),
    num_classes: int = len(EMOTIONS_LIST),
    architecture: str = "course",
    crop: int | None = None,
    width: float = 1.0,
) -> keras.Model:
    """Build an untrained classifier.

    Args:
        input_shape: ``(height, width, channels)`` of one face; the network expects raw
            grayscale intensities in [0, 255] (float32) and rescales them itself.
        num_classes: number of output probabilities.
        architecture: ``"course"``: the CNN of the facial-expression-recognition course this
            project descends from: four convolution blocks (64 3x3, 128 5x5, 512 3x3, 512 3x3;
            each BatchNormalization, ReLU, 2x2 max-pooling, dropout 0.25), then Dense 256 and
            Dense 512 (each BatchNormalization, ReLU, dropout 0.25) and a softmax;
            4,478,727 parameters on 48x48x1 input.
            ``"vgg"``: the VGG variant of Khaireddin & Chen 2021 (arXiv:2105.03588): four stages of two
            3x3 convolutions (64, 128, 256, 512 filters; each BatchNormalization, ReLU) and 2x2
            max-pooling, then, smaller than the paper's two 4096-unit layers (usef-kh/fer
            ``models/vgg.py``), one Dense 512 (BatchNormalization, ReLU) between dropouts of 0.3 (the
            paper's 0.2, a little more for the smaller head) and a softmax; 7,055,431 parameters.
            ``"mobile"``: a small network of depthwise-separable convolutions (MobileNets, Howard et al.
            2017, arXiv:1704.04861) for CPUs without AVX-512 and for browsers: a 3x3 convolution of 32
            filters, then depthwise-separable blocks (a 3x3 depthwise convolution and a 1x1 convolution,
            each BatchNormalization, ReLU) of 64; 128, 128; 256, 256; 512, 512 filters, the first of each
            stage after the first at stride 2, a block that keeps its width adding its input (a residual,
            He et al. 2016), then global average pooling, dropout 0.3 and a softmax: 547,463 parameters.
            On 40x40 crops it costs about 70 MFLOP a view (``count_flops``), so a face and its mirror fit
            the 154 MFLOP of EfficientFace (Zhao et al., AAAI 2021).
        crop: if set, the network's first step after rescaling is a ``crop`` x ``crop`` center crop
            (``keras.layers.CenterCrop``), so it still takes 48x48 faces but computes on the crop:
            40 gives the VGG variant 5,744,711 parameters and (40/48)^2 of its convolutions' multiply-adds.
            With the notebook's random shifts in front, training sees random crops and serving the
            center one, as in the 40x40 crops of Khaireddin & Chen 2021 / usef-kh/fer.
        width: the width multiplier (MobileNets, Howard et al. 2017, arXiv:1704.04861): every
            convolution's filters and every hidden Dense layer's units are multiplied by it (rounded,
            at least 1). 0.5 gives the 40x40 VGG variant 1,439,783 parameters and about a quarter of
            the multiply-adds. The exported ``model.json`` holds the resulting sizes, so loading needs
            no width.

    Returns:
        An uncompiled ``keras.Model`` mapping ``(N, *input_shape)`` float32 to ``(N, num_classes)``
        float32 probabilities. The last layer is float32 even under a mixed-precision policy.

    Raises:
        ValueError: for an unknown architecture, a crop not between 16 and the input's side, or a width
            not above 0 and at most 4.
    """
    keras = import_keras()
    layers = keras.layers
    if architecture not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {architecture!r}; expected one of {ARCHITECTURES}")
    if crop is not None and not 16 <= crop <= min(input_shape[:2]):
        raise ValueError(f"crop must be between 16 and {min(input_shape[:2])} pixels, not {crop}")
    check_number(width, "width", above=0, maximum=4)

    def sized(n: int) -> int:
        return max(1, round(n * width))

    inputs = keras.Input(shape=input_shape, name="face")
    x = layers.Rescaling(1.0 / 255, name="rescale")(inputs)
    if crop is not None:
        x = layers.CenterCrop(crop, crop, name="center_crop")(x)
    if architecture == "course":
        for filters, kernel in ((64, 3), (128, 5), (512, 3), (512, 3)):
            x = _conv_bn_relu(x, sized(filters), kernel)
            x = layers.MaxPooling2D(2)(x)
            x = layers.Dropout(0.25)(x)
        x = layers.Flatten()(x)
        for units in (256, 512):
            x = _dense_bn_relu(x, sized(units))
            x = layers.Dropout(0.25)(x)
    elif architecture == "mobile":
        x = _conv_bn_relu(x, sized(32), 3, use_bias=False)
        for stage, filters in enumerate((64, 128, 256, 512)):
            for block in range(1 if stage == 0 else 2):
                x = _separable_block(x, sized(filters), 2 if stage and block == 0 else 1)
        x = layers.GlobalAveragePooling2D()(x)
        x = layers.Dropout(0.3)(x)
    else:  # vgg
        for filters in (64, 128, 256, 512):
            x = _conv_bn_relu(x, sized(filters), 3, use_bias=False)
            x = _conv_bn_relu(x, sized(filters), 3, use_bias=False)
            x = layers.MaxPooling2D(2)(x)
        x = layers.Flatten()(x)
        x = layers.Dropout(0.3)(x)
        x = _dense_bn_relu(x, sized(512))
        x = layers.Dropout(0.3)(x)
    outputs = layers.Dense(num_classes, activation="softmax", dtype="float32", name="probabilities")(x)
    return keras.Model(inputs, outputs, name=f"fer_{architecture}")


def import_keras():
    """Keras (TensorFlow's C++ start-up chatter kept out of the logs)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    return keras


def _conv_bn_relu(x, filters: int, kernel: int, use_bias: bool = True):
    layers = import_keras().layers
    x = layers.Conv2D(filters, kernel, padding="same", use_bias=use_bias)(x)
    return layers.Activation("relu")(layers.BatchNormalization()(x))


def _separable_block(x, filters: int, strides: int):
    """A depthwise-separable block (3x3 depthwise, then 1x1; each BatchNormalization, ReLU), adding its input
    where it keeps the shape."""
    layers = import_keras().layers
    shortcut = x
    x = layers.DepthwiseConv2D(3, strides=strides, padding="same", use_bias=False)(x)
    x = layers.Activation("relu")(layers.BatchNormalization()(x))
    x = layers.Conv2D(filters, 1, use_bias=False)(x)
    x = layers.BatchNormalization()(x)
    if strides == 1 and shortcut.shape[-1] == filters:
        x = layers.Add()([x, shortcut])
    return layers.Activation("relu")(x)


def count_flops(model: keras.Model) -> int:
    """Floating-point operations of one forward pass of one face: two per multiply-add of every convolution
    (depthwise included) and dense layer, nested networks included (an ensemble's members add up);
    normalisation, activations, pooling and the additions of residuals are left out (a few percent).

    Args:
        model: a built ``keras.Model`` (e.g. loaded from ``model.json``).

    Returns:
        The count, an int (the VGG variant on 40x40 crops: about 0.65 GFLOP).
    """
    keras = import_keras()
    total = 0
    for layer in all_layers(model):
        if isinstance(layer, keras.layers.DepthwiseConv2D):
            h, w = layer.output.shape[1:3]
            k = int(np.prod(layer.kernel_size))
            total += 2 * h * w * k * layer.output.shape[-1]
        elif isinstance(layer, keras.layers.Conv2D):
            h, w = layer.output.shape[1:3]
            k = int(np.prod(layer.kernel_size))
            total += 2 * h * w * k * layer.input.shape[-1] * layer.filters // layer.groups
        elif isinstance(layer, keras.layers.Dense):
            total += 2 * layer.input.shape[-1] * layer.units
    return int(total)


def ten_crop_shift(model: keras.Model) -> int:
    """The shift in pixels (``FacialExpressionModel(shift_tta=...)``) whose four shifted views plus the centre one
    are the network's corner and centre crops of the 48x48 face: ``(48 - crop) // 2`` for a network that computes
    on its ``crop`` x ``crop`` centre (4 for 40x40, as in Khaireddin & Chen 2021; 2 for 44x44, where a shift of 4
    would move the crop past the face's edge), 4 for one without a crop layer.

    Raises:
        ValueError: an ensemble whose members have different crops.
    """
    keras = import_keras()
    crops = {int(layer.height) for layer in all_layers(model) if isinstance(layer, keras.layers.CenterCrop)}
    if len(crops) > 1:
        raise ValueError(f"the networks of {model.name} have different crops: {sorted(crops)}")
    return (INPUT_SIZE - crops.pop()) // 2 if crops else 4


def _dense_bn_relu(x, units: int):
    layers = import_keras().layers
    return layers.Activation("relu")(layers.BatchNormalization()(layers.Dense(units)(x)))


def recalibrate_batch_norm(model: keras.Model, faces: np.ndarray, batch_size: int = 256) -> int:
    """Recompute every BatchNormalization layer's statistics on un-augmented faces ("precise BN").

    During training, a BatchNormalization layer keeps an exponential moving average of the mean and
    variance of the batches it sees, and those batches are augmented (shifted, zoomed, rotated, with
    "nearest" fill at the borders; with ``AUGMENT="strong"`` also contrast changes and erased patches),
    while serving sees plain faces. This replaces the moving averages with the average, over all
    batches of ``faces`` in training mode and weighted by batch size, of each batch's mean and
    variance: PreciseBN (Wu & Johnson 2021, "Rethinking 'Batch' in BatchNorm", arXiv:2105.07576,
    section 3; like fvcore's ``update_bn_stats``, the variance is the average of the batch variances,
    without the spread of the batch means), here on faces without augmentation. What it gave this
    project's networks: README, "What was tried" (docs/benchmarks/snapshots.txt,
    docs/benchmarks/course-recalibrated.txt). Only the moving statistics change; Dropout is active
    during the pass, as in training.

    Args:
        model: a built ``keras.Model``, modified in place, including BatchNormalization layers inside
            nested models and layers set to ``trainable=False``.
        faces: uint8 grayscale faces ``(N, 48, 48)`` in [0, 255] (the training split, without
            augmentation, shuffled so that each batch mixes classes), ``N >= 2``; all are used.
        batch_size: faces per training-mode forward pass (each BatchNormalization normalises with the
            batch's own statistics, so this should be near the training batch size, 64 to 256).

    Returns:
        The number of BatchNormalization layers recalibrated (0 leaves the model unchanged).

    Raises:
        TypeError / ValueError: ``faces`` is not uint8 or not ``(N, 48, 48)``, or holds fewer than
            two faces, or ``batch_size`` is not an int of at least 2 (a variance needs two samples).
    """
    faces = as_face_batch(faces)
    if len(faces) < 2:
        raise ValueError(f"faces must hold at least two faces to recalibrate on, got {len(faces)}")
    check_number(batch_size, "batch_size", integer=True, minimum=2)
    keras = import_keras()
    norms = [layer for layer in all_layers(model) if isinstance(layer, keras.layers.BatchNormalization)]
    if not norms:
        return 0
    saved = [(layer.momentum, layer.trainable) for layer in norms]
    try:
        for layer in norms:
            layer.trainable = True  # a frozen BatchNormalization does not update its statistics
        # new = old * momentum + batch * (1 - momentum); momentum seen / (seen + n) for a batch of n
        # faces makes the stored value the mean over the faces seen so far, batch by batch
        for start in range(0, len(faces), batch_size):
            batch = faces[start:start + batch_size]
            for layer in norms:
                layer.momentum = start / (start + len(batch))
            model(batch.astype(np.float32)[..., np.newaxis], training=True)
    finally:
        for layer, (momentum, trainable) in zip(norms, saved, strict=True):
            layer.momentum, layer.trainable = momentum, trainable
    log.info("recalibrated %d BatchNormalization layers on %d faces", len(norms), len(faces))
    return len(norms)


def all_layers(model: keras.Model) -> list[keras.layers.Layer]:
    found = []
    for layer in model.layers:
        found.append(layer)
        if hasattr(layer, "layers"):  # a nested keras.Model
            found.extend(all_layers(layer))
    return found


def as_face_batch(faces: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
    if not isinstance(faces, np.ndarray):
        try:
            faces = np.stack([np.asarray(f) for f in faces]) if len(faces) else np.zeros(
                (0, INPUT_SIZE, INPUT_SIZE), np.uint8)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"faces must be a (N, {INPUT_SIZE}, {INPUT_SIZE}) array: {exc}") from exc
    if faces.dtype != np.uint8:
        raise TypeError(f"faces must be uint8 grayscale in [0, 255], got dtype {faces.dtype}")
    if faces.ndim != 3 or faces.shape[1:] != (INPUT_SIZE, INPUT_SIZE):
        raise ValueError(f"faces must have shape (N, {INPUT_SIZE}, {INPUT_SIZE}), got {faces.shape}")
    return faces
