"""A ``main.py`` server process for the benchmarks: a free loopback port, started, waited for, stopped; and
the system's headless Chromium with a fake camera, to open its pages."""

from __future__ import annotations

import argparse
import contextlib
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


#: The clip the browser benchmarks play as the fake camera by default: one real face, always in view.
TALKING_HEAD = ROOT.parent / "shared" / "media" / "videos" / "fer_woman2.mp4"


def add_model_argument(parser: argparse.ArgumentParser) -> None:
    """``--model MODEL_JSON WEIGHTS_H5``: the export the benchmark's server or command classifies with (as
    ``main.py --model``); ``model_options`` turns it into ``main.py``'s arguments."""
    parser.add_argument("--model", type=Path, nargs=2, default=None, metavar=("MODEL_JSON", "WEIGHTS_H5"),
                        help="classify with this export (default: the app's model.json and model_weights.h5)")


def model_options(args: argparse.Namespace) -> list[str]:
    """``main.py``'s ``--model`` arguments for ``add_model_argument``'s value (absolute paths: the server runs
    in the project folder); [] for the app's default model."""
    return ["--model", *(str(path.resolve()) for path in args.model)] if args.model else []


def camera_arguments(doc: str, seconds: float) -> argparse.Namespace:
    """The command line of a benchmark that plays a clip as a browser's camera: ``--video`` (default
    ``TALKING_HEAD``), ``--seconds`` (default ``seconds``) and ``--model`` (``add_model_argument``); ``doc``:
    the benchmark's docstring."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--video", type=Path, default=TALKING_HEAD)
    parser.add_argument("--seconds", type=float, default=seconds)
    add_model_argument(parser)
    return parser.parse_args()


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def served(args: list[str], timeout: float = 120) -> Iterator[tuple[subprocess.Popen, str]]:
    """``python main.py ARGS --port P`` (output discarded) until ``/`` answers; yields the process and its
    base URL, and stops it (SIGTERM) afterwards.

    Raises:
        SystemExit: it did not answer within ``timeout`` seconds.
    """
    port = free_port()
    process = subprocess.Popen([sys.executable, "main.py", *args, "--port", str(port)], cwd=ROOT,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                urllib.request.urlopen(base + "/", timeout=2).read()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("the server did not start") from None
                time.sleep(0.2)
        yield process, base
    finally:
        process.terminate()
        process.wait(timeout=20)


def launch_with_fake_camera(playwright, camera, executable: str | None = None):
    """Headless Chromium (``executable``, default the system's ``chromium``) whose camera plays the Y4M file
    ``camera``; ``playwright``: a started ``playwright.sync_api`` instance."""
    return playwright.chromium.launch(executable_path=executable or shutil.which("chromium"), args=[
        "--no-sandbox", "--disable-gpu", "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-video-capture={camera}"])


def camera_page(playwright, camera, base: str):
    """``launch_with_fake_camera``, and a new page of a context that may use the camera on ``base``:
    ``(browser, page)``, the page not yet opened (its caller closes the browser)."""
    browser = launch_with_fake_camera(playwright, camera)
    context = browser.new_context()
    context.grant_permissions(["camera"], origin=base)
    return browser, context.new_page()
