"""Running the server for ``python main.py serve``: waitress with its connection limits and timeouts, the
watcher of slow and stalled clients, the open-files limit, and ``serve``'s source (``--source``,
``--source-file`` or ``$FER_SOURCE``). The app itself is ``server.create_app``; the command line is
``main.py``.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time

log = logging.getLogger(__name__)


#: ``--host`` values that bind every interface.
ALL_INTERFACES = ("0.0.0.0", "::", "")

#: Default ``--max-connections``: open connections at most (waitress's ``connection_limit``, 100 by default,
#: which 100 slow clients filled). Each viewer of the page holds two (the stream and its events).
MAX_CONNECTIONS = 200

#: Default ``--request-timeout``: seconds a client has to send a whole request, headers and body (a 16 MiB
#: upload at 4.5 Mbit/s); and the seconds it has for the headers alone (a browser sends them at once).
REQUEST_TIMEOUT = 30
HEADER_TIMEOUT = 10.0

#: Seconds between the server's sweeps of idle connections (waitress's ``cleanup_interval``, 30 by default).
CLEANUP_INTERVAL = 5

#: Bytes of response a connection may hold unsent before the thread writing it waits (waitress's
#: ``outbuf_high_watermark``, 16 MiB by default). It also bounds each connection's send buffer: waitress appends a
#: stream's parts to one buffer, which keeps every byte written to it, sent or not, until this many bytes have gone
#: in; then it starts another (waitress 3.0, ``HTTPChannel.write_soon``). At 16 MiB, 30 MJPEG viewers held
#: 250-850 MiB between them; at 512 KiB (about ten 640x360 parts, one or two of 1080p) a viewer holds at most about
#: 1 MiB, and one that falls that far behind waits, then gets the newest frame.
OUTBUF_HIGH_WATERMARK = 512 * 1024

#: The environment variable that may hold ``serve``'s source (e.g. a camera URL with its password).
SOURCE_VARIABLE = "FER_SOURCE"

#: Room for a multipart upload's boundaries and part headers over the app's ``MAX_CONTENT_LENGTH``, in bytes.
MULTIPART_OVERHEAD = 64 * 1024


def resolve_source(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    """Settle ``args.source`` from ``--source``, ``--source-file`` or ``$FER_SOURCE`` (in that order of
    precedence; at most one of the first two), else ``"auto"``; ``args.source_origin`` says which
    (``"option"``, ``"file"``, ``"environment"``, ``"default"``).

    Raises:
        SystemExit: (``parser.error``, status 2) both options given, or a source file that cannot be read or
            is empty. Messages name the file, never what it holds.
    """
    if args.source is not None and args.source_file is not None:
        parser.error("give the source with --source or --source-file, not both")
    if args.source is not None:
        args.source_origin = "option"
    elif args.source_file is not None:
        try:
            lines = args.source_file.read_text(encoding="utf-8").strip().splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            parser.error(f"cannot read --source-file {args.source_file}: {getattr(exc, 'strerror', None) or exc}")
        if not lines or not lines[0].strip():
            parser.error(f"--source-file {args.source_file} is empty: write the source (e.g. the camera's URL) "
                         "on its first line")
        args.source, args.source_origin = lines[0].strip(), "file"
    elif os.environ.get(SOURCE_VARIABLE, "").strip():
        args.source, args.source_origin = os.environ[SOURCE_VARIABLE].strip(), "environment"
    else:
        args.source, args.source_origin = "auto", "default"


def warn_about_exposed_secrets(args: argparse.Namespace) -> None:
    """Log a warning when a secret is where other local users can read it: a camera URL with a password
    (or a query, where cameras also take them) on the command line, or a ``--source-file`` that others may
    read."""
    from urllib.parse import urlsplit

    from camera import is_network_source

    if args.source_origin == "option" and is_network_source(args.source):
        parts = urlsplit(args.source)
        if parts.password or parts.query:
            log.warning("the camera's password is on the command line, where every user of this machine can "
                        "read it (ps): put the URL in a file readable by you alone and pass --source-file PATH, "
                        "or set %s", SOURCE_VARIABLE)
    if args.source_origin == "file":
        try:
            if args.source_file.stat().st_mode & 0o077:
                log.warning("--source-file %s can be read by other users: chmod 600 %s", args.source_file,
                            args.source_file)
        except OSError:
            pass


def allow_open_files(connections: int) -> None:
    """Raise the soft limit of open files (``RLIMIT_NOFILE``) to leave room for ``connections`` sockets and
    the files and libraries the server opens (256 more), up to the hard limit; a warning if that is not
    enough. Unix only; elsewhere nothing."""
    try:
        import resource
    except ImportError:
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = connections + 256
    if soft != resource.RLIM_INFINITY and soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
        if soft < needed:
            log.warning("--max-connections %d needs about %d open files and this process may open %d: "
                        "raise the limit (ulimit -n) or lower --max-connections", connections, needed, soft)


def watch_connections(server, stop: threading.Event, stall_timeout: float, request_timeout: float,
                      header_timeout: float = HEADER_TIMEOUT) -> None:
    """Close the connections that would hold the server's threads or its connection slots, every second
    until ``stop`` is set; run in a thread of its own:

    - a response whose bytes have waited ``stall_timeout`` s while none could be sent (its client reads
      nothing): ``drop_stalled_clients``;
    - a request still arriving ``request_timeout`` s after its first byte, or whose headers are not complete
      ``min(header_timeout, request_timeout)`` s after it (a slow-loris client sending a byte now and then, which
      waitress's idle timeout never catches). Each sweep that closes some logs one line.
    """
    header_timeout = min(header_timeout, request_timeout)
    started: dict = {}  # channel -> (the request it is receiving, time.monotonic() when first seen)
    while not stop.wait(1.0):
        channels = _channels(server)
        now = time.monotonic()
        slow = 0
        for channel in channels:
            request = getattr(channel, "request", None)
            if request is None or channel.requests:
                started.pop(channel, None)
                continue
            if started.get(channel, (None,))[0] is not request:
                started[channel] = (request, now)
                continue
            age = now - started[channel][1]
            if age > request_timeout or (age > header_timeout and not request.headers_finished):
                slow += 1
                started.pop(channel)
                channel.server.trigger.pull_trigger(channel.handle_close)  # in its listening socket's loop
        for channel in [c for c in started if c not in channels]:  # closed since
            started.pop(channel)
        if slow:
            log.info("closed %d connection(s) that had not sent a whole request within %g s (headers: %g s)",
                     slow, request_timeout, header_timeout)
        _drop_stalled(channels, stall_timeout)


def _channels(server) -> list:
    """The HTTP connections open now: one socket, the server's own map; several (a host name with IPv4 and
    IPv6 addresses), the shared one."""
    from waitress.channel import HTTPChannel
    from waitress.server import MultiSocketServer

    channels = server.map if isinstance(server, MultiSocketServer) else server._map
    return [channel for channel in list(channels.values()) if isinstance(channel, HTTPChannel)]


def _drop_stalled(channels: list, timeout: float) -> None:
    cutoff = time.time() - timeout
    for channel in channels:
        if channel.requests and channel.total_outbufs_len and channel.last_activity < cutoff:
            log.info("closing a connection that has read nothing for %g s", timeout)
            channel.last_activity = time.time()  # once
            channel.server.trigger.pull_trigger(channel.handle_close)  # its listening socket's loop


def drop_stalled_clients(server, timeout: float, stop: threading.Event) -> None:
    """Close every connection whose response has had bytes waiting for ``timeout`` s while none of them
    could be sent (its client reads nothing), until ``stop`` is set; run in a thread of its own.

    waitress's ``channel_timeout`` closes only idle connections, and the thread that serves a stream blocks
    once the stream's output buffer is full: a viewer that stops reading would hold a server thread for
    good. This watches waitress's channels (``last_activity`` is when one last sent bytes) and has the
    server's own loop close them; the blocked thread then gets ``ClientDisconnected`` and is freed.
    """
    while not stop.wait(1.0):
        _drop_stalled(_channels(server), timeout)


def serve_config(args: argparse.Namespace) -> dict:
    """The app's configuration (keys of ``server.DEFAULT_CONFIG``) for the ``serve`` options ``args``; the
    analysis options are ``args.settings``, given to ``create_app`` beside it."""
    config: dict = {"ALLOWED_HOSTS": [args.host, *args.allowed_host], "CORS_ORIGINS": args.cors_origin,
                    "MAX_IMAGE_PIXELS": args.max_upload_pixels, "MAX_UPLOADS": args.max_uploads,
                    "MAX_BROWSER_CLIENTS": args.max_browser_clients}
    if args.no_webcam:
        config["WEBCAM_INDEX"] = None
    if args.model:
        config["MODEL_JSON"], config["MODEL_WEIGHTS"] = args.model
    if args.source.isdigit():
        config.update(WEBCAM_INDEX=int(args.source), SOURCE="webcam")
    elif args.source != "auto":
        config["SOURCE"] = args.source
    return config


def serve_main(args: argparse.Namespace) -> int:
    """Serve until SIGTERM or Ctrl-C; 1 when the app cannot start or the port cannot be bound."""
    import cv2
    from waitress import create_server

    from native import limit_malloc_arenas
    from server import DEFAULT_CONFIG, create_app

    limit_malloc_arenas()  # before the server's threads exist: see native.limit_malloc_arenas
    warn_about_exposed_secrets(args)
    allow_open_files(args.max_connections)
    # OpenCV's own warnings (probing a webcam that is not there) would repeat what the app logs
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
    config = serve_config(args)
    app = None
    try:  # the port first: a busy one fails at once, before the model loads
        server = create_server(lambda environ, start_response: app(environ, start_response),
                               host=args.host, port=args.port, threads=args.threads, ident=None,
                               # idle connections closed after --client-timeout, looked for every 5 s; at
                               # most --max-connections open (more wait in the listen queue)
                               channel_timeout=args.client_timeout,
                               cleanup_interval=min(CLEANUP_INTERVAL, args.client_timeout),
                               connection_limit=args.max_connections,
                               outbuf_high_watermark=OUTBUF_HIGH_WATERMARK,
                               # waitress reads a whole body before the app sees it (up to 1 GiB by
                               # default): a body over the app's limit (and the multipart headers) gets
                               # its 413 as soon as its Content-Length is read
                               max_request_body_size=DEFAULT_CONFIG["MAX_CONTENT_LENGTH"] + MULTIPART_OVERHEAD)
    except OSError as exc:
        log.error("cannot serve on %s port %d: %s", args.host, args.port, exc.strerror or exc)
        return 1
    try:
        app = create_app(config, args.settings)
    except (OSError, RuntimeError, ValueError) as exc:  # SourceError is an OSError
        log.error("cannot start: %s", exc)
        server.close()
        return 1
    log.info("serving on http://%s:%d/ (%d threads, at most %d connections)", args.host, args.port, args.threads,
             args.max_connections)
    if args.host in ALL_INTERFACES and not args.allowed_host:
        log.warning("listening on every interface, but only localhost and 127.0.0.1 are answered: give the "
                    "name or address that visitors type with --allowed-host (other names get 400)")
    # SIGTERM ends the process like Ctrl-C does: out of run(), then the sources are released
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    stop = threading.Event()
    threading.Thread(target=watch_connections, args=(server, stop, args.client_timeout, args.request_timeout),
                     name="watch-connections", daemon=True).start()
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        log.info("shutting down: releasing the video sources")
        app.extensions["sources"].producers.stop_all()
        server.close()
    return 0
