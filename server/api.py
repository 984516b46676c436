"""The ``api`` blueprint: ``POST /api/predict`` (the faces of one photo), ``POST /api/frames`` (one frame of a
visitor's own camera, see server/clients.py) and the OpenAPI description of both.

The description is a static document, ``openapi.yaml`` beside this file, served as JSON at
``/api/openapi.json``; the tests check real answers against it.
"""

from __future__ import annotations

import functools
from pathlib import Path

import yaml
from flask import Blueprint, current_app, jsonify, request

from analysis import analyze_frame
from detection import thread_face_detector
from faces import face_to_dict
from images import ImageError, decode_image

from .clients import browser_clients
from .uploads import uploads

bp = Blueprint("api", __name__, url_prefix="/api")

OPENAPI_FILE = Path(__file__).with_name("openapi.yaml")


def json_error(status: int, message: str):
    """An API error: ``{"error": message}`` with the status."""
    return jsonify(error=message), status


@bp.errorhandler(ImageError)
def image_error(error: ImageError):
    return json_error(error.status, str(error))


@bp.post("/predict")
def predict():
    """Faces and expressions of one image: multipart field ``image``, or the raw body with an
    ``image/*`` content type. Answers ``{"width", "height", "faces": [face, ...]}`` (openapi.yaml)."""
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
    config, model = current_app.config, current_app.extensions["model"]
    settings = current_app.extensions["analysis_settings"]  # settings.AnalysisSettings

    def analyze():  # on an upload worker thread (server/uploads.py)
        image = decode_image(data, config["MAX_IMAGE_PIXELS"], config["WORKING_PIXELS"])
        detector = thread_face_detector(settings.detector, settings.min_score)
        faces = analyze_frame(image.frame, model, detector, config["PHOTO_DETECT_MAX_PIXELS"])
        scale = image.width / image.frame.shape[1]  # boxes in pixels of the image as uploaded
        return image, [face.replace(box=tuple(round(v * scale) for v in face.box)) for face in faces]

    image, faces = uploads().run(analyze)
    return jsonify(width=image.width, height=image.height, faces=[face_to_dict(face) for face in faces])


@bp.post("/frames")
def frames():
    """One frame of the visitor's own camera: a JPEG body (``image/jpeg``) and ``?client=ID``. Answers
    ``{"width", "height", "faces": [face with its track "id", ...]}``; see server/clients.py."""
    if not request.mimetype.startswith("image/"):
        return json_error(415, f"send the frame as a body with an image/* content type, not "
                               f"{request.mimetype or 'no content type'}")
    clients, client_id = browser_clients(), request.args.get("client")
    clients.check(client_id)  # before the decoding: a refused client costs none
    image = decode_image(request.get_data(), current_app.config["MAX_CAMERA_PIXELS"])
    faces = clients.analyze(client_id, image.frame, current_app.extensions["model"])
    return jsonify(width=image.width, height=image.height, faces=[face_to_dict(face) for face in faces])


@functools.cache
def openapi_document() -> dict:
    """The OpenAPI 3 document of the API, read once from ``openapi.yaml``."""
    return yaml.safe_load(OPENAPI_FILE.read_text(encoding="utf-8"))


@bp.get("/openapi.json")
def openapi():
    """The OpenAPI 3 description of the JSON API."""
    return jsonify(openapi_document())
