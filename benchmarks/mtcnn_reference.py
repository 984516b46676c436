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
- ``mosaic.json``: the crowd mosaic (issue 32), 1920x1080 frames each a 3x3 grid of 640x360 tiles, every
  tile a frame of one of the clips at its native scale (``mosaic_frame`` below; ``MOSAIC_TILES`` says which
  clip and first frame each tile shows). No MTCNN pass of its own: every tile is a plain frame of a clip,
  so its boxes are that clip's reference boxes (``fer_woman2.json``, ``fr_short_hamilton_clip.json``, which
  must be there) shifted by the tile's position; run ``--only mosaic`` again after redoing a clip.

Images are converted BGR -> RGB for MTCNN (1.x expects RGB, as its own file loader decodes). Each image is
searched on its own (no batching: batches of frames gave slightly different boxes). MTCNN's last-stage
(ONet) threshold is lowered from its default 0.8 to 0.5 so that every detection with confidence >= 0.5 is
kept; the other parameters are the package defaults. Boxes are ``[x, y, w, h, confidence]``, x/y/w/h ints
in pixels of the image searched, confidence rounded to 4 decimals. Frame indices are 0-based, in decoding
order.

Run from the repository root with the MTCNN virtual environment, not the app's ``.venv``::

    ../mtcnn-venv/bin/python -m benchmarks.mtcnn_reference [--only NAME] [--step-1080p K]

NAME is one of ``photos``, ``fer_woman2``, ``fr_short_hamilton_clip``, ``fr_short_hamilton_clip@1080p``,
``mosaic`` (the last needs neither MTCNN nor TensorFlow: any Python with numpy and cv2 runs it).

The mosaic: frame ``t`` (0-based, ``t < MOSAIC_FRAMES`` = 275, 9.2 s at the clips' 29.97 fps) is a black
1920x1080 image whose tile ``k`` (row-major: row ``k // 3``, column ``k % 3``, top-left corner at
``(640 * (k % 3), 360 * (k // 3))``) shows frame ``(start + t) % n`` of the tile's clip (``n``: its number
of decoded frames, 275 for the Hamilton clip, 464 for fer_woman2), pasted at its native size, centred in the
640x360 tile (fer_woman2's 596x336 frames at offset (22, 12), black around them; the Hamilton clip's
640x360 frames fill their tile). ``MOSAIC_TILES``: the Hamilton clip (``fr_short_hamilton_clip.mp4``,
byte-identical to the project's sample clip ``videos/white_house_hamilton_clip.mp4``) in six tiles starting
at frames 0, 46, 92, 138, 184, 230 (``round(i * 275 / 6)``), fer_woman2 in the three tiles of the diagonal
starting at frames 0, 155, 309 (``round(i * 464 / 3)``), so no two tiles show the same frame. A tile whose
clip runs out starts it again from frame 0 (a cut inside that tile). Nothing is resized.

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
SOURCES = ["photos"] + list(VIDEOS) + list(UPSCALED) + ["mosaic"]

#: The crowd mosaic: tile size, grid (columns, rows), number of frames, and each tile's (clip, first frame),
#: row-major (see the module docstring).
TILE_W, TILE_H = 640, 360
MOSAIC_GRID = (3, 3)
MOSAIC_FRAMES = 275
MOSAIC_FPS = 30000 / 1001  # both clips' rate
MOSAIC_TILES = [
    ("fer_woman2", 0), ("fr_short_hamilton_clip", 0), ("fr_short_hamilton_clip", 46),
    ("fr_short_hamilton_clip", 92), ("fer_woman2", 155), ("fr_short_hamilton_clip", 138),
    ("fr_short_hamilton_clip", 184), ("fr_short_hamilton_clip", 230), ("fer_woman2", 309),
]
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


def tile_origin(k, clip_size):
    """Top-left corner ``(x, y)`` in the mosaic of a clip frame of ``clip_size`` (w, h) shown in tile ``k``."""
    w, h = clip_size
    if w > TILE_W or h > TILE_H:
        raise ValueError(f"a {w}x{h} frame does not fit a {TILE_W}x{TILE_H} tile")
    columns = MOSAIC_GRID[0]
    return TILE_W * (k % columns) + (TILE_W - w) // 2, TILE_H * (k // columns) + (TILE_H - h) // 2


def tile_frame_index(k, t, clip_frames, tiles=None):
    """The frame of its clip that tile ``k`` shows in mosaic frame ``t``; ``clip_frames``: that clip's count."""
    start = (tiles or MOSAIC_TILES)[k][1]
    return (start + t) % clip_frames


def mosaic_frame(clips, t, tiles=None, grid=MOSAIC_GRID):
    """Mosaic frame ``t``: ``clips`` maps each clip name of ``tiles`` (default ``MOSAIC_TILES``) to its
    decoded frames (a list of BGR arrays, each at most 640x360); black where no clip frame is pasted."""
    tiles = tiles or MOSAIC_TILES
    out = np.zeros((TILE_H * grid[1], TILE_W * grid[0], 3), np.uint8)
    for k, (name, _) in enumerate(tiles):
        frames = clips[name]
        frame = frames[tile_frame_index(k, t, len(frames), tiles)]
        h, w = frame.shape[:2]
        x, y = tile_origin(k, (w, h))
        out[y:y + h, x:x + w] = frame
    return out


def read_clip(path):
    """Every frame of a video, decoded with ``cv2.VideoCapture``."""
    cap = cv2.VideoCapture(path)
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    return frames


def mosaic_boxes(references, t, tiles=None):
    """The reference boxes of mosaic frame ``t``: ``references`` maps each clip name to its reference JSON
    (as loaded); each tile's boxes shifted into the mosaic. Returns ``[[x, y, w, h, confidence], ...]``."""
    tiles = tiles or MOSAIC_TILES
    boxes = []
    for k, (name, _) in enumerate(tiles):
        ref = references[name]
        index = tile_frame_index(k, t, int(ref["frames_decoded"]), tiles)
        x0, y0 = tile_origin(k, (int(ref["width"]), int(ref["height"])))
        boxes.extend([x + x0, y + y0, w, h, c] for x, y, w, h, c in ref["frames"].get(str(index), []))
    boxes.sort(key=lambda b: -b[4])
    return boxes


def run_mosaic(out_dir):
    """``mosaic.json`` from the clips' reference files (no MTCNN pass: every tile is a plain clip frame)."""
    references = {}
    for name in sorted({name for name, _ in MOSAIC_TILES}):
        path = os.path.join(out_dir, name + ".json")
        if not os.path.isfile(path):
            raise SystemExit(f"{path} is missing: run --only {name} first")
        with open(path) as f:
            ref = json.load(f)
        if int(ref.get("frame_step", 1)) != 1:
            raise SystemExit(f"{path} does not cover every frame (frame_step {ref['frame_step']})")
        references[name] = ref
    frames = {t: mosaic_boxes(references, t) for t in range(MOSAIC_FRAMES)}
    header = {
        "source": "mosaic",
        "width": TILE_W * MOSAIC_GRID[0],
        "height": TILE_H * MOSAIC_GRID[1],
        "fps": round(MOSAIC_FPS, 5),
        "tiles": [[name, start] for name, start in MOSAIC_TILES],
        "tile_size": [TILE_W, TILE_H],
        "built_from": {name: os.path.basename(VIDEOS[name]) for name in references},
        "detector": " / ".join(sorted({references[name]["detector"] for name in references})),
        "detector_params": MTCNN_PARAMS,
        "min_confidence_kept": MIN_CONFIDENCE,
        "box_format": "[x, y, w, h, confidence]",
        "how": "each tile's boxes are its clip's reference boxes of the frame it shows, shifted by the tile's "
               "position (benchmarks/mtcnn_reference.py, mosaic_boxes); no MTCNN pass of its own",
        "frames_decoded": MOSAIC_FRAMES,
        "frame_step": 1,
        "frame_indices": list(range(MOSAIC_FRAMES)),
    }
    return header, "frames", frames


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
    det = None
    if args.only != "mosaic":
        det = Detector()
        det(np.zeros((120, 160, 3), np.uint8))  # warm-up (builds the TF graphs)
        print(f"{det.name}, cv2 {cv2.__version__}, numpy {np.__version__}; loaded in {time.perf_counter() - t:.1f} s",
              flush=True)

    timings = {}
    for source in ([args.only] if args.only else SOURCES):
        print(f"{source} ...", flush=True)
        t = time.perf_counter()
        if source == "mosaic":
            header, key, entries = run_mosaic(args.out)
        elif source == "photos":
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
