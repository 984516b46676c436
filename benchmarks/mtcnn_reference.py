"""Reference face boxes from MTCNN, for the face-detection benchmark.

Runs the MTCNN detector of the ``mtcnn`` wheel (1.x, which ships its PNet/RNet/ONet weights and runs on
TensorFlow) over the shared test media and writes one JSON file per source to
``docs/benchmarks/reference/``:

- ``photos.json``: every photo in ``../shared/media/faces/`` and ``../shared/media/noface/``, at full
  resolution (read with ``cv2.imread``);
- ``fer_woman2.json`` and ``fr_short_hamilton_clip.json``: every frame of the two videos, decoded with
  ``cv2.VideoCapture``, at their own resolution;
- ``fr_short_hamilton_clip@1080p.json``: the Hamilton clip with each decoded frame upscaled in memory to
  1080 rows, ``cv2.resize(frame, (width, 1080), interpolation=cv2.INTER_CUBIC)`` with
  ``width = round(w * 1080 / h / 2) * 2`` (1920 for 640x360). ``--step-1080p K`` does only every K-th frame
  (default 1: every frame); ``frame_indices`` says which were done.

Images are converted BGR -> RGB for MTCNN (1.x expects RGB, as its own file loader decodes). Each image is
searched on its own (no batching: batches of frames gave slightly different boxes). MTCNN's last-stage
(ONet) threshold is lowered from its default 0.8 to 0.5 so that every detection with confidence >= 0.5 is
kept; the other parameters are the package defaults. Boxes are ``[x, y, w, h, confidence]``, x/y/w/h ints
in pixels of the image searched, confidence rounded to 4 decimals. Frame indices are 0-based, in decoding
order.

Run from the repository root with the MTCNN virtual environment, not the app's ``.venv``::

    ../mtcnn-venv/bin/python -m benchmarks.mtcnn_reference [--only NAME] [--step-1080p K]

NAME is one of ``photos``, ``fer_woman2``, ``fr_short_hamilton_clip``, ``fr_short_hamilton_clip@1080p``.

MTCNN needs TensorFlow, which the app does not use, so it must run in a separate venv::

    python3 -m venv ../mtcnn-venv
    ../mtcnn-venv/bin/pip install mtcnn tensorflow numpy opencv-python-headless==<same as the app>

where ``<same as the app>`` is the opencv-python-headless version installed in the app's venv (4.14.0.94 at
the time of writing; ``cv2.__version__`` prints 4.14.0), so that video frames decode identically.

This script imports only the standard library, numpy, cv2 and mtcnn: nothing from the project.
"""

import argparse
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import cv2  # noqa: E402
import numpy as np  # noqa: E402

MEDIA = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "shared", "media")
OUT_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs", "benchmarks",
                       "reference")
VIDEOS = {
    "fer_woman2": os.path.join(MEDIA, "videos", "fer_woman2.mp4"),
    "fr_short_hamilton_clip": os.path.join(MEDIA, "videos", "fr_short_hamilton_clip.mp4"),
}
UPSCALED = {"fr_short_hamilton_clip@1080p": ("fr_short_hamilton_clip", 1080)}
SOURCES = ["photos"] + list(VIDEOS) + list(UPSCALED)
PHOTO_DIRS = ["faces", "noface"]
PHOTO_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
MIN_CONFIDENCE = 0.5
MTCNN_PARAMS = {"threshold_onet": MIN_CONFIDENCE}  # package defaults otherwise


class Detector:
    def __init__(self):
        from importlib.metadata import version

        import mtcnn

        self.version = version("mtcnn")
        self.name = f"mtcnn {self.version}"
        self._mtcnn = mtcnn.MTCNN()

    def __call__(self, image_bgr):
        """Return ``[[x, y, w, h, confidence], ...]`` for one BGR image, confidence >= 0.5, best first."""
        rgb = cv2.cvtColor(image_bgr, cv2.COLOR_BGR2RGB)
        found = self._mtcnn.detect_faces(rgb, **MTCNN_PARAMS)
        boxes = []
        for d in found:
            conf = float(d["confidence"])
            if conf < MIN_CONFIDENCE:
                continue
            x, y, w, h = (int(round(float(v))) for v in d["box"])
            boxes.append([x, y, w, h, round(conf, 4)])
        boxes.sort(key=lambda b: -b[4])
        return boxes


def upscaled_size(w, h, rows):
    return int(round(w * rows / h / 2) * 2), rows


def write_json(path, header, key, entries):
    """Header fields one per line, then one line per image/frame; box lists are not indented."""
    lines = ["{"]
    for k, v in header.items():
        lines.append(f"  {json.dumps(k)}: {json.dumps(v)},")
    lines.append(f"  {json.dumps(key)}: {{")
    items = list(entries.items())
    for i, (name, boxes) in enumerate(items):
        sep = "," if i < len(items) - 1 else ""
        lines.append("    {}: {}{}".format(json.dumps(str(name)), json.dumps(boxes, separators=(",", ":")), sep))
    lines.append("  }")
    lines.append("}")
    text = "\n".join(lines) + "\n"
    json.loads(text)  # sanity check
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def run_photos(det):
    images, sizes = {}, {}
    for sub in PHOTO_DIRS:
        folder = os.path.join(MEDIA, sub)
        for name in sorted(os.listdir(folder)):
            if not name.lower().endswith(PHOTO_EXTS):
                continue
            img = cv2.imread(os.path.join(folder, name))
            if img is None:
                print(f"  cannot read {sub}/{name}, skipped", flush=True)
                continue
            key = f"{sub}/{name}"
            t = time.perf_counter()
            images[key] = det(img)
            sizes[key] = [int(img.shape[1]), int(img.shape[0])]
            print(f"  {key:<40} {img.shape[1]:4d}x{img.shape[0]:<4d} {len(images[key])} boxes  "
                  f"{time.perf_counter() - t:.2f} s", flush=True)
    header = {
        "source": "photos",
        "width": None,
        "height": None,
        "image_sizes": sizes,
        "detector": det.name,
        "detector_params": MTCNN_PARAMS,
        "min_confidence_kept": MIN_CONFIDENCE,
        "box_format": "[x, y, w, h, confidence]",
    }
    return header, "images", images


def run_video(det, name, path, rows=None, step=1):
    cap = cv2.VideoCapture(path)
    if not cap.isOpened():
        raise SystemExit(f"cannot open {path}")
    total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    frames, indices = {}, []
    width = height = None
    index = -1
    t0 = time.perf_counter()
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        index += 1
        if rows is not None:
            h, w = frame.shape[:2]
            size = upscaled_size(w, h, rows)
        else:
            size = None
        if index % step:
            continue
        if size is not None:
            frame = cv2.resize(frame, size, interpolation=cv2.INTER_CUBIC)
        height, width = frame.shape[:2]
        frames[index] = det(frame)
        indices.append(index)
        if len(indices) % 25 == 0:
            el = time.perf_counter() - t0
            print(f"  {name}: frame {index + 1}/{total}, {el / len(indices):.2f} s/frame", flush=True)
    cap.release()
    header = {
        "source": name,
        "video": os.path.basename(path),
        "width": int(width),
        "height": int(height),
        "detector": det.name,
        "detector_params": MTCNN_PARAMS,
        "min_confidence_kept": MIN_CONFIDENCE,
        "box_format": "[x, y, w, h, confidence]",
        "frames_decoded": index + 1,
        "frame_step": step,
        "frame_indices": indices,
    }
    if rows is not None:
        header["upscale"] = f"cv2.resize(frame, ({width}, {height}), interpolation=cv2.INTER_CUBIC)"
    return header, "frames", frames


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", choices=SOURCES, help="redo only this source")
    ap.add_argument("--step-1080p", type=int, default=1,
                    help="search every K-th frame of the 1080p upscale (default 1: every frame)")
    ap.add_argument("--out", default=OUT_DIR, help="output folder (default docs/benchmarks/reference)")
    args = ap.parse_args(argv)

    t = time.perf_counter()
    det = Detector()
    det(np.zeros((120, 160, 3), np.uint8))  # warm-up (builds the TF graphs)
    print(f"{det.name}, cv2 {cv2.__version__}, numpy {np.__version__}; loaded in {time.perf_counter() - t:.1f} s",
          flush=True)

    timings = {}
    for source in ([args.only] if args.only else SOURCES):
        print(f"{source} ...", flush=True)
        t = time.perf_counter()
        if source == "photos":
            header, key, entries = run_photos(det)
        elif source in VIDEOS:
            header, key, entries = run_video(det, source, VIDEOS[source])
        else:
            base, rows = UPSCALED[source]
            header, key, entries = run_video(det, source, VIDEOS[base], rows=rows, step=max(1, args.step_1080p))
        elapsed = time.perf_counter() - t
        header["seconds"] = round(elapsed, 1)
        path = os.path.join(args.out, source + ".json")
        write_json(path, header, key, entries)
        timings[source] = elapsed
        n = len(entries)
        boxes = sum(len(b) for b in entries.values())
        print(f"{source}: {n} {key}, {boxes} boxes, {elapsed:.1f} s ({elapsed / max(n, 1):.3f} s each) -> "
              f"{os.path.relpath(path)}", flush=True)
    print(f"total {sum(timings.values()):.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
