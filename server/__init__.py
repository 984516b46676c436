"""The Flask app, the flaskr way: ``create_app`` only wires things up.

Blueprints: ``pages`` (the page, the MJPEG stream, the live faces as server-sent events), ``api``
(``POST /api/predict``, ``POST /api/frames``, the OpenAPI description) and ``device`` (the two ``.tflite``
models the page runs in the visitor's browser, ``/?source=device``). Extensions: ``sources.SourceCatalog``
(the sources offered and one producer per source), ``uploads.UploadLimiter`` (photos analysed at once, at a
lower CPU priority), ``clients.BrowserClients`` (the visitors' own cameras) and ``security`` (host and origin
checks, response headers, error pages). The analysis settings (``settings.AnalysisSettings``: detector, least
score, detect-every, smoothing, runtime) are one value, ``app.extensions["analysis_settings"]``, read by the
streams, the photo API, the page and the browser cameras alike.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from flask import Flask

from detection import make_face_detector
from images import MAX_PIXELS, WORKING_PIXELS
from model import MODEL_JSON, MODEL_WEIGHTS, FacialExpressionModel
from settings import CONFIG_KEYS, AnalysisSettings

from . import api, device, pages, security
from .clients import BrowserClients
from .sources import SourceCatalog
from .uploads import UploadLimiter

ROOT = Path(__file__).resolve().parents[1]

DEFAULT_CONFIG = {
    "MODEL_JSON": MODEL_JSON,
    "MODEL_WEIGHTS": MODEL_WEIGHTS,
    "VIDEOS_DIR": ROOT / "videos",
    # Webcam index offered as the "webcam" source; None: offer no webcam.
    "WEBCAM_INDEX": 0,
    # The source shown when the page names none: "auto" (the webcam if it opens, else the first video),
    # "webcam", a file name in VIDEOS_DIR, or a path to any video file (offered under its file name).
    "SOURCE": "auto",
    # Seconds without viewers after which a source's producer releases it.
    "IDLE_TIMEOUT": 5.0,
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
}


def create_app(config: Mapping | None = None, settings: AnalysisSettings | None = None) -> Flask:
    """Build the app; ``config`` overrides ``DEFAULT_CONFIG`` (and any Flask setting), and ``settings`` (default:
    ``AnalysisSettings()``) says how faces are analysed. The model is loaded here on ``settings.runtime``, unless
    ``config["MODEL"]`` passes a loaded ``FacialExpressionModel``.

    ``config`` may also give analysis settings by their older keys (``settings.CONFIG_KEYS``: ``DETECTOR``,
    ``MIN_SCORE``, ``DETECT_EVERY``, ``SMOOTHING_HALF_LIFE``, ``RUNTIME``); they override ``settings`` and are
    folded into the one ``AnalysisSettings`` value, never kept in ``app.config``.

    Raises:
        FileNotFoundError, model.ModelLoadError: the model files are missing or corrupt.
        ValueError, RuntimeError: an analysis setting is invalid (``AnalysisSettings``'s errors: an unknown
            detector, a least score outside [0, 1], ...), or the detector is "hog" without dlib installed.
        camera.SourceError: ``SOURCE`` is ``"webcam"`` and the webcam does not open, or a path that is not a
            file.
    """
    config = dict(config or {})
    settings = AnalysisSettings.from_config(config, settings)
    make_face_detector(settings.detector, settings.min_score)  # an unavailable detector (hog without dlib) fails here
    app = Flask(__name__, template_folder=ROOT / "templates", static_folder=ROOT / "static")
    app.config.from_mapping(DEFAULT_CONFIG)
    app.config.from_mapping({key: value for key, value in config.items() if key not in CONFIG_KEYS})
    app.extensions["analysis_settings"] = settings
    app.extensions["model"] = app.config.get("MODEL") or FacialExpressionModel(
        app.config["MODEL_JSON"], app.config["MODEL_WEIGHTS"], runtime=settings.runtime)
    SourceCatalog().init_app(app)
    UploadLimiter().init_app(app)
    BrowserClients().init_app(app)
    security.init_app(app)
    app.register_blueprint(pages.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(device.bp)
    return app
