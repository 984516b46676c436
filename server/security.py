"""Response headers that cost nothing, and errors as short text (JSON under ``/api/``), never an HTML trace."""

from __future__ import annotations

from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException

#: The page's scripts and styles come only from this server (no inline script; the page's one inline
#: style block is allowed).
CONTENT_SECURITY_POLICY = ("default-src 'self'; img-src 'self' blob: data:; style-src 'self' 'unsafe-inline'; "
                           "script-src 'self'; object-src 'none'; frame-ancestors 'none'; base-uri 'none'")


def init_app(app: Flask) -> None:
    app.after_request(security_headers)
    app.register_error_handler(HTTPException, http_error)


def security_headers(response: Response) -> Response:
    """No MIME sniffing, no framing, no referrer, scripts only from here."""
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    return response


def http_error(error: HTTPException):
    """Errors as text with the reason; under ``/api/`` as ``{"error": reason}`` (also for the routing
    errors that happen before a blueprint is known: 404, 405)."""
    if request.path.startswith("/api/"):
        return jsonify(error=error.description), error.code or 500
    return Response(f"{error.description}\n", status=error.code, mimetype="text/plain")
