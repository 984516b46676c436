"""The ``pages`` blueprint: the page, the MJPEG stream of a source, and its faces as server-sent events."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, render_template, request, url_for

from detection import DETECTOR_NAMES
from drawing import EMOTION_COLORS
from faces import EMOTIONS_LIST
from streaming import BOUNDARY, mjpeg_stream, result_events

from .device import DEVICE, device_config
from .security import DEVICE_CONTENT_SECURITY_POLICY
from .sources import catalog

bp = Blueprint("pages", __name__)

#: The ``source`` value of the visitor's own camera, shown by the page itself (server/clients.py).
BROWSER = "browser"


@bp.get("/")
def index():
    """The page: the sources, the stream of ``?source=NAME`` (default: the default source) or the
    visitor's own camera (``?source=browser``: its frames analysed here; ``?source=device``: analysed in the
    browser, nothing sent) with the live faces, and the photo form."""
    sources = catalog()
    requested = request.args.get("source")
    if requested in (BROWSER, DEVICE):
        pass  # the page shows the visitor's camera itself
    elif requested:
        requested = sources.resolve(requested)[0]  # 404 for an unknown source
    else:  # the default now; none (no webcam, no video, or a given video deleted since): the page says so
        requested = sources.current_default()
    page = render_template(
        "index.html", sources=sources.names(), current=requested, default_source=sources.current_default(),
        missing_default=None if sources.auto else sources.default,
        labels={name: sources.label(name) for name in sources.names()},
        webcam_missing=sources.webcam_missing, browser=BROWSER, device=DEVICE,
        detector_name=DETECTOR_NAMES[current_app.extensions["analysis_settings"].detector],
        page_config={
            "emotions": list(EMOTIONS_LIST),
            "colors": {name: "#{:02x}{:02x}{:02x}".format(*bgr[::-1]) for name, bgr in EMOTION_COLORS.items()},
            "eventsUrl": url_for(".events", source=requested) if requested and requested not in (BROWSER, DEVICE)
            else None,
            "cameraUrl": url_for("api.frames") if requested == BROWSER else None,
            "predictUrl": url_for("api.predict"),
            "device": device_config() if requested == DEVICE else None,
        },
        stream_url=url_for(".video_feed", source=requested) if requested and requested not in (BROWSER, DEVICE)
        else None)
    if requested != DEVICE:
        return page
    # the models run as WebAssembly: this page alone may compile it ('wasm-unsafe-eval'; no eval of scripts)
    return Response(page, mimetype="text/html", headers={"Content-Security-Policy": DEVICE_CONTENT_SECURITY_POLICY})


@bp.get("/video_feed")
def video_feed():
    """The annotated stream of ``?source=NAME`` as ``multipart/x-mixed-replace`` JPEG parts (MJPEG)."""
    producer = catalog().producer(request.args.get("source"))
    return Response(mjpeg_stream(producer), mimetype=f"multipart/x-mixed-replace; boundary={BOUNDARY}",
                    headers={"Cache-Control": "no-store"})


@bp.get("/events")
def events():
    """Server-sent events: the faces of the stream's latest frame, as the page's live bars use them."""
    producer = catalog().producer(request.args.get("source"))
    return Response(result_events(producer, current_app.config["EVENTS_PER_SECOND"]),
                    mimetype="text/event-stream", headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})
