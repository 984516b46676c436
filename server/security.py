"""What keeps hostile web pages out, and what every answer carries.

- Host names: only ``localhost``, ``127.0.0.1``, the address the server binds to and ``ALLOWED_HOSTS``
  are served (Flask's ``TRUSTED_HOSTS``; any other ``Host`` gets 400), so a page that
  rebinds its own domain name to 127.0.0.1 (DNS rebinding) cannot read the streams.
- Origins: a request that changes state or costs work (any method but GET/HEAD/OPTIONS, and the
  streams ``/video_feed`` and ``/events``) from another site's page gets 403: its ``Origin`` header
  names another host, or, without one, its ``Sec-Fetch-Site`` is ``cross-site`` or ``same-site``. The
  origins in ``CORS_ORIGINS`` are let through and get the CORS headers they need.
- Headers that cost nothing: no MIME sniffing, no framing, no referrer, scripts only from here; errors
  as short text (JSON under ``/api/``), never an HTML trace.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Flask, Response, abort, current_app, jsonify, request
from werkzeug.exceptions import HTTPException, SecurityError

#: The page's scripts and styles come only from this server (no inline script; the page's one inline
#: style block is allowed).
CONTENT_SECURITY_POLICY = ("default-src 'self'; img-src 'self' blob: data:; style-src 'self' 'unsafe-inline'; "
                           "script-src 'self'; object-src 'none'; frame-ancestors 'none'; base-uri 'none'")

#: The policy of the page that runs the models in the visitor's browser (``/?source=device``): the same, but
#: its scripts may compile WebAssembly ('wasm-unsafe-eval': WebAssembly only, never ``eval`` of a script).
DEVICE_CONTENT_SECURITY_POLICY = CONTENT_SECURITY_POLICY.replace("script-src 'self'",
                                                                 "script-src 'self' 'wasm-unsafe-eval'")

#: Host names always served (the loopback ones; Werkzeug's host check does not match IPv6 literals).
LOOPBACK_HOSTS = ("localhost", "127.0.0.1")

#: GET endpoints that cost work (a producer, a stream): refused to other sites like a POST.
COSTLY_ENDPOINTS = ("pages.video_feed", "pages.events")


def init_app(app: Flask) -> None:
    """Set ``TRUSTED_HOSTS`` from ``ALLOWED_HOSTS`` (and the loopback names) unless it is set, and install
    the origin check, the headers and the error answers."""
    if not app.config.get("TRUSTED_HOSTS"):
        app.config["TRUSTED_HOSTS"] = [*LOOPBACK_HOSTS, *app.config["ALLOWED_HOSTS"]]
    app.config["CORS_ORIGINS"] = [origin.rstrip("/") for origin in app.config["CORS_ORIGINS"]]
    app.before_request(check_host_and_origin)
    app.after_request(security_headers)
    app.register_error_handler(HTTPException, http_error)


def check_host_and_origin() -> None:
    """403 for a costly request from another site's page (see the module docstring); 400 for an untrusted
    ``Host`` (reading ``request.host`` checks it)."""
    try:
        host = request.host  # checked against TRUSTED_HOSTS
    except SecurityError:
        abort(400, description=f"Host {_short(request.headers.get('Host', ''))!r} is not served; the server's "
                               "--allowed-host option lets a name in")
    if request.method in ("GET", "HEAD", "OPTIONS") and request.endpoint not in COSTLY_ENDPOINTS:
        return
    origin = request.headers.get("Origin")
    if origin is not None:
        if origin.rstrip("/") in current_app.config["CORS_ORIGINS"] or urlsplit(origin).netloc == host:
            return
        abort(403, description=f"requests from other sites' pages are refused ({_short(origin)}); "
                               "the server's --cors-origin option lets an origin in")
    if request.headers.get("Sec-Fetch-Site") in ("cross-site", "same-site"):
        abort(403, description="requests from other sites' pages are refused; the server's --cors-origin "
                               "option lets an origin in")


def security_headers(response: Response) -> Response:
    """No MIME sniffing, no framing, no referrer, scripts only from here; CORS headers for an allowed origin."""
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    origin = request.headers.get("Origin", "").rstrip("/")
    if origin and origin in current_app.config["CORS_ORIGINS"]:
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Allow-Methods"] = "GET, POST"
        response.headers["Access-Control-Allow-Headers"] = "Content-Type"
        response.headers["Access-Control-Max-Age"] = "600"
        response.vary.add("Origin")
    return response


def http_error(error: HTTPException):
    """Errors as text with the reason; under ``/api/`` as ``{"error": reason}`` (also for the routing
    errors that happen before a blueprint is known: 404, 405)."""
    if request.path.startswith("/api/"):
        response = jsonify(error=error.description)
        response.status_code = error.code or 500
    else:
        response = Response(f"{error.description}\n", status=error.code, mimetype="text/plain")
    if getattr(error, "retry_after", None) is not None:
        response.headers["Retry-After"] = str(error.retry_after)
    return response


def _short(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[:limit] + "…"
