"""The Flask app, the flaskr way: ``create_app`` only wires things up.

Blueprints: ``pages`` (the page, the MJPEG stream, the live faces as server-sent events) and ``api``
(``POST /api/predict``, ``POST /api/frames``, the OpenAPI description). Extensions: ``sources.SourceCatalog``
(the sources offered and one producer per source), ``uploads.UploadLimiter`` (photos analysed at once, at a
lower CPU priority), ``clients.BrowserClients`` (the visitors' own cameras) and ``security`` (host and origin
checks, response headers, error pages).
"""

from __future__ import annotations

import os
from pathlib import Path

from flask import Flask

from analysis import SMOOTHING_HALF_LIFE
from detection import DEFAULT_DETECTOR, DETECT_EVERY, DETECTORS, MIN_SCORE, make_face_detector
from images import MAX_PIXELS, WORKING_PIXELS
from model import MODEL_JSON, MODEL_WEIGHTS, FacialExpressionModel

from . import api, pages, security
from .clients import BrowserClients
from .sources import SourceCatalog
from .uploads import UploadLimiter

ROOT = Path(__file__).resolve().parents[1]

DEFAULT_CONFIG = {
    "MODEL_JSON": MODEL_JSON,
    "MODEL_WEIGHTS": MODEL_WEIGHTS,
    # "litert" (default: the cached int8 conversion, no TensorFlow) or "keras"; see model.FacialExpressionModel
    "RUNTIME": "litert",
    "VIDEOS_DIR": ROOT / "videos",
    # Webcam index offered as the "webcam" source; None: offer no webcam.
    "WEBCAM_INDEX": 0,
    # The source shown when the page names none: "auto" (the webcam if it opens, else the first video),
    # "webcam", a file name in VIDEOS_DIR, or a path to any video file (offered under its file name).
    "SOURCE": "auto",
    # Seconds without viewers after which a source's producer releases it.
    "IDLE_TIMEOUT": 5.0,
    # Half-life in seconds of the smoothing of each tracked face's probabilities; 0: none.
    "SMOOTHING_HALF_LIFE": SMOOTHING_HALF_LIFE,
    # Videos are searched whole for faces on every this-many-th frame (and on cuts); see detection.FaceFinder.
    "DETECT_EVERY": DETECT_EVERY,
    # Live probabilities (/events): most updates per second sent to a page.
    "EVENTS_PER_SECOND": 5.0,
    # Uploads: largest request body in bytes (larger: 413), largest image in pixels (larger: 413), pixels
    # an image is decoded or scaled to for the search, photos analysed at once (more wait UPLOAD_WAIT
    # seconds for a slot, then get 503).
    "MAX_CONTENT_LENGTH": 16 * 1024 * 1024,
    "MAX_IMAGE_PIXELS": MAX_PIXELS,
    "WORKING_PIXELS": WORKING_PIXELS,
    "MAX_UPLOADS": os.cpu_count() or 1,
    "UPLOAD_WAIT": 2.0,
    # Host names the server answers to (others: 400, against DNS rebinding), besides "localhost" and
    # "127.0.0.1"; and the origins of other sites allowed to call the API and read the streams.
    "ALLOWED_HOSTS": [],
    "CORS_ORIGINS": [],
    # The visitor's own camera (/?source=browser): pages analysed at once (one more gets 503), seconds
    # without a frame after which a page's face tracker is forgotten, largest frame in pixels (larger: 413).
    "MAX_BROWSER_CLIENTS": 16,
    "CLIENT_IDLE": 30.0,
    "MAX_CAMERA_PIXELS": 1280 * 720,
    # Photos are searched for faces at up to this many pixels (Haar and HOG; None: at full resolution).
    "PHOTO_DETECT_MAX_PIXELS": None,
    # Face detector of streams and photos: one of detection.DETECTORS.
    "DETECTOR": DEFAULT_DETECTOR,
    # Least detector confidence of a face, in [0, 1] (detectors that give one: BlazeFace).
    "MIN_SCORE": MIN_SCORE,
}


def create_app(config: dict | None = None) -> Flask:
    """Build the app; ``config`` overrides ``DEFAULT_CONFIG`` (and any Flask setting). The model is
    loaded here, unless ``config["MODEL"]`` passes a loaded ``FacialExpressionModel``.

    Raises:
        FileNotFoundError, model.ModelLoadError: the model files are missing or corrupt.
        ValueError, RuntimeError: ``DETECTOR`` is unknown, or "hog" without dlib installed;
            ``DETECT_EVERY`` is not a positive integer; ``MIN_SCORE`` is not in [0, 1].
        camera.SourceError: ``SOURCE`` is ``"webcam"`` and the webcam does not open, or a path that is
            not a file.
    """
    app = Flask(__name__, template_folder=ROOT / "templates", static_folder=ROOT / "static")
    app.config.from_mapping(DEFAULT_CONFIG)
    app.config.from_mapping(config or {})
    check_config(app.config)
    app.extensions["model"] = app.config.get("MODEL") or FacialExpressionModel(
        app.config["MODEL_JSON"], app.config["MODEL_WEIGHTS"], runtime=app.config["RUNTIME"])
    SourceCatalog().init_app(app)
    UploadLimiter().init_app(app)
    BrowserClients().init_app(app)
    security.init_app(app)
    app.register_blueprint(pages.bp)
    app.register_blueprint(api.bp)
    return app


def check_config(config) -> None:
    """Refuse settings that would fail later, at the first frame (see ``create_app``'s errors)."""
    if config["DETECTOR"] not in DETECTORS:
        raise ValueError(f"unknown face detector {config['DETECTOR']!r}; expected one of {DETECTORS}")
    score = config["MIN_SCORE"]
    if isinstance(score, bool) or not isinstance(score, int | float) or not 0 <= score <= 1:
        raise ValueError(f"MIN_SCORE must be a number from 0 to 1, not {score!r}")
    make_face_detector(config["DETECTOR"], score)  # an unavailable detector (hog without dlib) fails here
    every = config["DETECT_EVERY"]
    if isinstance(every, bool) or not isinstance(every, int) or every < 1:
        raise ValueError(f"DETECT_EVERY must be an integer of at least 1, not {every!r}")
