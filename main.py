"""The Flask app: a page with the annotated stream, and the MJPEG stream itself.

Run ``python main.py [--source INDEX_OR_PATH] [--host 127.0.0.1] [--port 5000]`` and open
http://127.0.0.1:5000. Tests and embedders build the app with ``create_app(config)``.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from pathlib import Path

import cv2
from apispec import APISpec
from apispec_webframeworks.flask import FlaskPlugin
from flask import Flask, Response, abort, jsonify, render_template, request, url_for
from waitress import serve
from werkzeug.exceptions import HTTPException

from camera import (
    DETECT_EVERY,
    DETECTORS,
    EMOTION_COLORS,
    SMOOTHING_HALF_LIFE,
    SourceError,
    VideoCamera,
    analyze_frame,
    make_face_detector,
    message_frame,
    thread_face_detector,
)
from images import MAX_PIXELS, ImageError, decode_image
from model import EMOTIONS_LIST, FacialExpressionModel
from streaming import BOUNDARY, FrameProducer, ProducerRegistry, limit_malloc_arenas, mjpeg_stream, result_events

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent

#: File name endings listed as videos in ``VIDEOS_DIR``.
VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv")

#: The ``source`` value that names the webcam.
WEBCAM = "webcam"

DEFAULT_CONFIG = {
    "MODEL_JSON": ROOT / "model.json",
    "MODEL_WEIGHTS": ROOT / "model_weights.h5",
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
    # Videos are searched whole for faces on every this-many-th frame (and on cuts); see camera.FrameAnnotator.
    "DETECT_EVERY": DETECT_EVERY,
    # Live probabilities (/events): most updates per second sent to a page.
    "EVENTS_PER_SECOND": 5.0,
    # Uploads: largest request body in bytes (larger: 413), largest image in pixels (larger: 413).
    "MAX_CONTENT_LENGTH": 16 * 1024 * 1024,
    "MAX_IMAGE_PIXELS": MAX_PIXELS,
    # Photos are searched for faces at up to this many pixels (frames of streams at camera.DETECT_MAX_PIXELS).
    "PHOTO_DETECT_MAX_PIXELS": 1920 * 1080,
    # Face detector of streams and photos: "haar" (OpenCV's cascade) or "hog" (dlib; see camera.DETECTORS).
    "DETECTOR": "haar",
}


def webcam_opens(index: int) -> bool:
    """Whether OpenCV can open webcam ``index`` and read a frame from it (releases it again)."""
    capture = cv2.VideoCapture(index)
    try:
        return capture.isOpened() and capture.read()[0]
    finally:
        capture.release()


def list_videos(videos_dir: Path) -> list[str]:
    """Names of the video files directly inside ``videos_dir`` (sorted; symbolic links left out)."""
    if not videos_dir.is_dir():
        return []
    return sorted(p.name for p in videos_dir.iterdir()
                  if p.suffix.lower() in VIDEO_SUFFIXES and p.is_file() and not p.is_symlink())


def create_app(config: dict | None = None) -> Flask:
    """Build the app; ``config`` overrides ``DEFAULT_CONFIG`` (and any Flask setting).

    The webcam ``WEBCAM_INDEX`` is offered only if it opens now.

    The model is loaded once, here, unless ``config["MODEL"]`` passes a loaded ``FacialExpressionModel``.

    Raises:
        FileNotFoundError, model.ModelLoadError: the model files are missing or corrupt.
        ValueError, RuntimeError: ``DETECTOR`` is unknown, or "hog" without dlib installed;
            ``DETECT_EVERY`` is not a positive integer.
        camera.SourceError: ``SOURCE`` is ``"webcam"`` and the webcam does not open, or a path that is
            not a file.
    """
    app = Flask(__name__)
    app.config.from_mapping(DEFAULT_CONFIG)
    app.config.from_mapping(config or {})
    app.config["VIDEOS_DIR"] = Path(app.config["VIDEOS_DIR"])
    model = app.config.get("MODEL") or FacialExpressionModel(app.config["MODEL_JSON"], app.config["MODEL_WEIGHTS"])
    detector_kind = app.config["DETECTOR"]
    make_face_detector(detector_kind)  # an unknown or unavailable detector fails here, at start
    if not isinstance(app.config["DETECT_EVERY"], int) or app.config["DETECT_EVERY"] < 1:
        raise ValueError(f"DETECT_EVERY must be an integer of at least 1, not {app.config['DETECT_EVERY']!r}")
    producers = app.extensions["producers"] = ProducerRegistry(app.config["IDLE_TIMEOUT"])
    # probed once at start: a webcam that does not open is not offered
    webcam_index = app.config["WEBCAM_INDEX"]
    if webcam_index is not None and not webcam_opens(int(webcam_index)):
        log.info("webcam %s does not open: not offered", webcam_index)
        webcam_index = None
    if app.config["SOURCE"] == WEBCAM and webcam_index is None:
        raise SourceError(f"webcam {app.config['WEBCAM_INDEX']} cannot be opened")
    default_source, extra_sources = _choose_default_source(app.config["SOURCE"], webcam_index, app.config["VIDEOS_DIR"])
    log.info("default source: %s", default_source or "none")

    def available_sources() -> list[str]:
        return [*extra_sources, *([WEBCAM] if webcam_index is not None else []), *list_videos(app.config["VIDEOS_DIR"])]

    def resolve(source: str | None) -> tuple[str, int | Path]:
        """(key, webcam index or file path) of a ``source`` request value; 404 if it names nothing."""
        if not source:
            if default_source is None:
                abort(404, description="no video source: no webcam opens and videos/ holds no video")
            source = default_source
        if source == WEBCAM and webcam_index is not None:
            return WEBCAM, int(webcam_index)
        if source in list_videos(app.config["VIDEOS_DIR"]):  # only names listed there: no paths, no links
            return source, app.config["VIDEOS_DIR"] / source
        if source in extra_sources:  # a file given on the command line, by its name (its path is not shown)
            return source, extra_sources[source]
        abort(404, description=f"unknown source {source!r}; available: {', '.join(available_sources()) or 'none'}")

    @app.get("/")
    def index():
        requested = request.args.get("source")
        if requested:
            resolve(requested)  # 404 for an unknown source
        else:  # the default, unless it has gone since the start (a deleted video): then the page says so
            requested = default_source if default_source in available_sources() else None
        return render_template(
            "index.html", sources=available_sources(), current=requested,
            default_source=default_source, webcam_index=webcam_index,
            webcam_missing=app.config["WEBCAM_INDEX"] is not None and webcam_index is None,
            page_config={
                "emotions": list(EMOTIONS_LIST),
                "colors": {name: "#{:02x}{:02x}{:02x}".format(*bgr[::-1]) for name, bgr in EMOTION_COLORS.items()},
                "eventsUrl": url_for("events", source=requested) if requested else None,
                "predictUrl": url_for("api_predict"),
            },
            stream_url=url_for("video_feed", source=requested) if requested else None)

    def producer_of(source: str | None) -> FrameProducer:
        key, target = resolve(source)
        half_life = app.config["SMOOTHING_HALF_LIFE"]
        return producers.get(key, lambda: VideoCamera(target, model, make_face_detector(detector_kind), half_life,
                                                      app.config["DETECT_EVERY"]))

    @app.get("/video_feed")
    def video_feed():
        producer = producer_of(request.args.get("source"))
        return Response(mjpeg_stream(producer, message_frame=message_frame),
                        mimetype=f"multipart/x-mixed-replace; boundary={BOUNDARY}",
                        headers={"Cache-Control": "no-store"})

    @app.get("/events")
    def events():
        """Server-sent events: the faces of the stream's latest frame, as the page's live bars use them."""
        producer = producer_of(request.args.get("source"))
        return Response(result_events(producer, app.config["EVENTS_PER_SECOND"]), mimetype="text/event-stream",
                        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

    @app.post("/api/predict")
    def api_predict():
        """Faces and expressions of one image: multipart field ``image``, or the raw body with an
        ``image/*`` content type. Answers ``{"width", "height", "faces": [FaceResult, ...]}``.

        The OpenAPI operation below is served in ``/api/openapi.json`` (apispec's Flask plugin).
        ---
        post:
          summary: Find every face in a photo and classify its expression
          requestBody:
            required: true
            content:
              multipart/form-data:
                schema:
                  type: object
                  required: [image]
                  properties:
                    image: {type: string, format: binary, description: "JPEG, PNG, WebP, BMP or TIFF"}
              image/*:
                schema: {type: string, format: binary}
          responses:
            "200":
              description: the faces found, largest first (none is an empty list)
              content:
                application/json:
                  schema: {$ref: "#/components/schemas/Prediction"}
            "400":
              description: no image, an empty body, or not a readable image
              content:
                application/json:
                  schema: {$ref: "#/components/schemas/Error"}
            "413":
              description: a request over 16 MiB, or an image over 25 megapixels
              content:
                application/json:
                  schema: {$ref: "#/components/schemas/Error"}
            "415":
              description: a body that is neither multipart nor an image
              content:
                application/json:
                  schema: {$ref: "#/components/schemas/Error"}
        """
        if request.mimetype == "multipart/form-data":
            upload = request.files.get("image")
            if upload is None:
                return json_error(400, "no image: send the file in the multipart field 'image'")
            data = upload.read()
        elif request.mimetype.startswith("image/"):
            data = request.get_data()
        else:
            return json_error(415, "send an image as multipart field 'image' or as a body with an image/* "
                                   f"content type, not {request.mimetype or 'no content type'}")
        try:
            frame = decode_image(data, app.config["MAX_IMAGE_PIXELS"])
        except ImageError as exc:
            return json_error(exc.status, str(exc))
        faces = analyze_frame(frame, model, thread_face_detector(detector_kind), app.config["PHOTO_DETECT_MAX_PIXELS"])
        return jsonify(width=frame.shape[1], height=frame.shape[0], faces=faces)

    def json_error(status: int, message: str):
        return jsonify(error=message), status

    spec = openapi_spec(app, api_predict)

    @app.get("/api/openapi.json")
    def openapi():
        """The OpenAPI 3 description of the JSON API."""
        return jsonify(spec)

    @app.after_request
    def security_headers(response: Response) -> Response:
        """Headers that cost nothing: no MIME sniffing, no framing, no referrer, scripts only from here."""
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        response.headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; img-src 'self' blob: data:; style-src 'self' 'unsafe-inline'; "
            "script-src 'self'; object-src 'none'; frame-ancestors 'none'; base-uri 'none'")
        return response

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        """Errors as text (JSON under /api/), with the reason, never an HTML trace."""
        if request.path.startswith("/api/"):
            return json_error(error.code or 500, error.description)
        return Response(f"{error.description}\n", status=error.code, mimetype="text/plain")

    return app


def _choose_default_source(source: str, webcam_index: int | None,
                           videos_dir: Path) -> tuple[str | None, dict[str, Path]]:
    """The default source's key, and {key: path} of a ``source`` file that is not a listed video."""
    videos = list_videos(videos_dir)
    if source == "auto":
        return (WEBCAM if webcam_index is not None else videos[0] if videos else None), {}
    if source == WEBCAM or source in videos:
        return source, {}
    path = Path(source).resolve()
    if path.parent == videos_dir.resolve() and path.name in videos:
        return path.name, {}
    if not path.is_file():
        raise SourceError(f"video file not found: {source}")
    key = path.name if path.name not in (WEBCAM, *videos) else f"file-{path.name}"
    return key, {key: path}


def openapi_spec(app: Flask, *views) -> dict:
    """The OpenAPI 3.0 document of ``views``, from the YAML after ``---`` in their docstrings (apispec)."""
    spec = APISpec(title="Facial expression recognition API", version="1.0.0", openapi_version="3.0.3",
                   plugins=[FlaskPlugin()])
    probabilities = {"type": "object", "description": "the seven probabilities, summing to 1",
                     "properties": {name: {"type": "number", "minimum": 0, "maximum": 1} for name in EMOTIONS_LIST},
                     "required": list(EMOTIONS_LIST), "additionalProperties": False}
    spec.components.schema("Face", {
        "type": "object", "required": ["box", "emotion", "probabilities"],
        "properties": {
            "box": {"type": "array", "items": {"type": "integer"}, "minItems": 4, "maxItems": 4,
                    "description": "[x, y, w, h] in pixels of the upright image"},
            "emotion": {"type": "string", "enum": list(EMOTIONS_LIST), "description": "the most probable"},
            "probabilities": probabilities}})
    spec.components.schema("Prediction", {
        "type": "object", "required": ["width", "height", "faces"],
        "properties": {"width": {"type": "integer"}, "height": {"type": "integer"},
                       "faces": {"type": "array", "items": {"$ref": "#/components/schemas/Face"}}}})
    spec.components.schema("Error", {"type": "object", "required": ["error"],
                                     "properties": {"error": {"type": "string"}}})
    with app.test_request_context():
        for view in views:
            spec.path(view=view)
    return spec.to_dict()


def positive_int(text: str) -> int:
    """argparse type: an integer of at least 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def add_detection_options(parser: argparse.ArgumentParser) -> None:
    """``--detect-every`` and ``--detector``, shared by the server and ``main.py annotate``."""
    parser.add_argument("--detect-every", type=positive_int, default=DETECT_EVERY, metavar="N",
                        help="search the whole frame for faces on every N-th frame and follow the faces found "
                             "between; 1: every frame (finds new faces sooner, costs more CPU; "
                             f"default {DETECT_EVERY})")
    parser.add_argument("--detector", choices=DETECTORS, default="haar",
                        help="face detector: OpenCV's Haar cascade (default) or dlib's HOG detector (needs "
                             "`pip install dlib-bin`; faster; finds faces of about 80 px and more in 480p video, "
                             "180 px in 1080p)")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Serve the facial-expression stream at http://HOST:PORT/.")
    parser.add_argument("--source", default="auto",
                        help="webcam index (e.g. 0) or a video file path; default: the webcam if one opens, "
                             "else the first video in videos/")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to bind (default 127.0.0.1: this machine only; 0.0.0.0 exposes the "
                             "stream to the whole network)")
    parser.add_argument("--port", type=int, default=5000)
    parser.add_argument("--smoothing", type=float, default=SMOOTHING_HALF_LIFE, metavar="SECONDS",
                        help="half-life of the smoothing of each face's probabilities over time; 0 turns it off "
                             f"(default {SMOOTHING_HALF_LIFE})")
    add_detection_options(parser)
    parser.add_argument("--threads", type=int, default=64,
                        help="worker threads of the server; every open page holds two for as long as it is "
                             "open (the stream and its live probabilities), so N threads serve about N/2 "
                             "viewers (default 64)")
    return parser.parse_args(argv)


def annotate_main(argv: list[str]) -> int:
    """``python main.py annotate VIDEO [--output DIR] [--smoothing SECONDS] [--detector haar|hog]
    [--detect-every N]``: see ``report.annotate_video``."""
    from report import annotate_video

    parser = argparse.ArgumentParser(prog="main.py annotate",
                                     description="Write an annotated copy of a video, a CSV of every face in "
                                                 "every frame, and a plot of the emotions over time.")
    parser.add_argument("video", type=Path)
    parser.add_argument("--output", type=Path, default=Path("reports"),
                        help="folder for the three files (default reports/)")
    parser.add_argument("--smoothing", type=float, default=SMOOTHING_HALF_LIFE, metavar="SECONDS",
                        help=f"half-life of the probability smoothing; 0: none (default {SMOOTHING_HALF_LIFE})")
    add_detection_options(parser)
    args = parser.parse_args(argv)
    try:
        model = FacialExpressionModel(DEFAULT_CONFIG["MODEL_JSON"], DEFAULT_CONFIG["MODEL_WEIGHTS"])
        paths = annotate_video(args.video, args.output, model, max(args.smoothing, 0.0), detector=args.detector,
                               detect_every=args.detect_every)
    except (OSError, RuntimeError, ValueError) as exc:
        log.error("cannot annotate %s: %s", args.video, exc)
        return 1
    for kind, path in paths.items():
        log.info("%s: %s", kind, path)
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    limit_malloc_arenas()  # before the server's threads exist: see streaming.limit_malloc_arenas
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if argv[:1] == ["annotate"]:
        return annotate_main(argv[1:])
    args = parse_args(argv)
    config: dict = {"SMOOTHING_HALF_LIFE": max(args.smoothing, 0.0), "DETECTOR": args.detector,
                    "DETECT_EVERY": args.detect_every}
    if args.source.isdigit():
        config.update(WEBCAM_INDEX=int(args.source), SOURCE=WEBCAM)
    elif args.source != "auto":
        if not os.path.isfile(args.source):
            log.error("video file not found: %s", args.source)
            return 2
        config["SOURCE"] = args.source
    try:
        app = create_app(config)
    except (OSError, RuntimeError, ValueError) as exc:
        log.error("cannot start: %s", exc)
        return 1
    log.info("serving on http://%s:%d/ (%d threads)", args.host, args.port, args.threads)
    # SIGTERM ends the process like Ctrl-C does: out of serve(), then the cameras are released
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    try:
        # waitress, a production WSGI server that streams responses as they are produced
        serve(app, host=args.host, port=args.port, threads=args.threads, ident=None)
    except KeyboardInterrupt:
        pass
    finally:
        log.info("shutting down: releasing the video sources")
        app.extensions["producers"].stop_all()
    return 0


if __name__ == "__main__":
    sys.exit(main())
