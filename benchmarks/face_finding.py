"""Finding faces, measured against a reference that is not the detector under test: MTCNN.

    python -m benchmarks.face_finding [--sources photos,woman2,hamilton,hamilton-1080p,mosaic,noface]
                                      [--detectors blazeface,blazeface-whole,haar,hog,fer] [--frames N]
                                      [--min-score-sweep]

The reference boxes are MTCNN's (the ``mtcnn`` wheel 1.0, at full resolution, in a virtual environment of
its own: ``benchmarks/mtcnn_reference.py``), kept in ``docs/benchmarks/reference/``. A reference face is
one MTCNN gives a confidence of at least 0.95 and a side of at least 24 px; a box found matches a
reference face when their IoU is at least 0.3, one to one (greedy, best overlap first). A box that matches
no reference face but overlaps (IoU >= 0.3) a weaker or smaller MTCNN detection is left out of both
counts (MTCNN itself is unsure there), and so is a box that contains the centre of a face that MTCNN
missed and that was marked by eye (``docs/benchmarks/reference/by-eye.json``: the faces of the group
selfie; ``fr_short_hamilton_clip-by-eye.json``: every box the detectors compared here put where MTCNN has
nothing on that clip, judged face or not; its ``about`` says how); every other unmatched box is a false
one. Recall: reference faces matched / reference faces; precision: matched boxes / (matched + false)
boxes. The tables also give the precision against MTCNN alone (every unmatched box false but those on
weaker MTCNN detections).

Photos (``../shared/media/faces`` and ``noface``) are searched whole at full resolution, as
``/api/predict`` does. Clips are run through the stream's finder (``detection.FaceFinder``: a full search
every ``DETECT_EVERY`` frames and on cuts, faces followed between; searches in line) on every frame; the
``every frame`` rows search every frame whole. ``fps`` is frames per wall-clock second of the whole
stream chain (find, classify, track, draw, JPEG-encode; frames decoded beforehand), ``CPU ms`` the
process's CPU time per frame for it (both cores counted). The ``fer`` row is ``fer.FER().detect_emotions``
of the ``fer`` package (install it with ``pip install --no-deps fer==25.10.3``), drawing and encoding as
``benchmarks.pipeline`` does. The Hamilton clip upscaled is every frame resized to 1920x1080 in memory
(``cv2.INTER_CUBIC``), as the reference was made.

The crowd mosaic (``mosaic``, issue 32): 275 frames of 1920x1080, each a 3x3 grid of 640x360 tiles, every
tile a frame of one of the clips at its native scale (the Hamilton clip in six tiles, fer_woman2 in the three
of the diagonal, each tile from its own start frame; exactly how: ``benchmarks/mtcnn_reference.py``,
``MOSAIC_TILES`` and ``mosaic_frame``), built in memory from the decoded clips; its reference is each
tile's clip reference shifted into the mosaic (``mosaic.json``), and the Hamilton by-eye faces likewise.
For every clip the report also gives the source's frame rate, the stream's rate as a share of it, and the
CPU seconds per second of video (the process's CPU time over the clip's duration at its own rate: the
cores the stream would keep busy in real time); the mosaic's rate is the clips' (29.97 fps). Only the
stream chain is timed (per frame; decoding and building the mosaic are not).

Size bands: a reference face is in the band of its side, ``min(w, h)`` of its MTCNN box (< 40, 40-60,
60-90, 90-150, > 150 px; a band holds its lower bound); recall by band: its faces matched / its faces;
precision by band: its matched boxes / (those + the false boxes of the band, a false box banded by its own
``min(w, h)``). Reference faces are at least 24 px, so the < 40 band is 24-39 px.

The no-face set (``noface``): pictures without any human face, each searched whole by the app's default
detector (``detectors.make_face_detector()``) as ``/api/predict`` does (the file's bytes decoded by
``images.decode_image`` with the app's limits, then ``detection.detect_faces(frame, detector,
max_pixels=None)``, the server's ``PHOTO_DETECT_MAX_PIXELS``); the report gives the faces found on each (the
target: none on any). ``NOFACE`` lists them with their source and licence: 20 distinct photographs (18
scikit-image samples, both scikit-learn samples), 10 crops of the larger ones at native scale (encoded as
PNG, then decoded as an upload), and 6 drawings or synthetic pictures.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import cv2
import numpy as np

from analysis import FaceAnalyzer
from benchmarks import mtcnn_reference as mosaic
from benchmarks.pipeline import fer_pipeline, machine
from detection import DETECT_EVERY, detect_faces, make_face_detector
from detectors.blazeface import BlazeFaceDetector
from drawing import draw_faces, encode_jpeg
from faces import box_iou
from images import MAX_PIXELS, WORKING_PIXELS, decode_image
from model import default_model

ROOT = Path(__file__).resolve().parents[1]
MEDIA = ROOT.parent / "shared" / "media"
REFERENCE = ROOT / "docs" / "benchmarks" / "reference"
MIN_CONFIDENCE, MIN_SIDE, MIN_IOU = 0.95, 24, 0.3

#: The detectors compared: name -> a function making one.
DETECTORS = {
    "blazeface": lambda: make_face_detector("blazeface"),  # the app's default, as configured
    "blazeface-whole": lambda: BlazeFaceDetector(tile=None),  # the whole frame only
    "blazeface-480": lambda: BlazeFaceDetector(tile=480),  # also 480-px tiles
    "blazeface-no-border": lambda: BlazeFaceDetector(pad=0),
    "blazeface-back": lambda: BlazeFaceDetector(model="back"),
    "haar": lambda: make_face_detector("haar"),
    "hog": lambda: make_face_detector("hog"),
}

SOURCES = {  # name -> (reference file, video or None for photos, upscale to this many rows or None)
    "photos": ("photos.json", None, None),
    "woman2": ("fer_woman2.json", "fer_woman2.mp4", None),
    "hamilton": ("fr_short_hamilton_clip.json", "fr_short_hamilton_clip.mp4", None),
    "hamilton-1080p": ("fr_short_hamilton_clip@1080p.json", "fr_short_hamilton_clip.mp4", 1080),
    "mosaic": ("mosaic.json", None, None),  # built from the clips (benchmarks.mtcnn_reference.mosaic_frame)
    "noface": (None, None, None),  # no reference: no face at all
}
CLIP_FILES = {"fer_woman2": "fer_woman2.mp4", "fr_short_hamilton_clip": "fr_short_hamilton_clip.mp4"}

#: Face-size bands: (label, least side, greatest side + 1), by ``min(w, h)`` of the reference box.
BANDS = (("< 40", 0, 40), ("40-60", 40, 60), ("60-90", 60, 90), ("90-150", 90, 150), ("> 150", 150, 10 ** 9))

#: Where the pictures of ``NOFACE`` are, by the prefix of their ``where``: the folder their descriptions name.
_FOLDERS = {"skimage": "scikit-image 0.26 wheel, skimage/data/",
            "sklearn": "scikit-learn 1.9 wheel, sklearn/datasets/images/",
            "matplotlib": "matplotlib 3.11 wheel, mpl-data/sample_data/",
            "media": "../shared/media/"}


def _whole(where: str, description: str) -> tuple[str, None, str]:
    """The ``NOFACE`` entry of a whole picture, ``where`` (``PREFIX:FILE``), described as "FOLDER/FILE: ..."."""
    prefix, file = where.split(":", 1)
    return where, None, f"{_FOLDERS[prefix]}{file}: {description}"


#: The no-face set: name -> (where: ``skimage:FILE``, ``sklearn:FILE``, ``matplotlib:FILE`` (a file those
#: packages ship) or ``media:PATH`` (under ../shared/media), crop ``(x, y, w, h)`` or None, source and licence).
NOFACE = {
    # photographs, whole
    "brick": _whole("skimage:brick.png", "a brick wall, CC0 (CC0Textures)"),
    "cell": _whole("skimage:cell.png", "a cell in saline (phase image), CC0"),
    "chelsea": _whole("skimage:chelsea.png", "a cat, CC0 (Stefan van der Walt)"),
    "clock": _whole("skimage:clock_motion.png", "a wall clock, motion-blurred, public domain"),
    "coffee": ("media:noface/skimage_coffee.png", None, "../shared/media/noface (= skimage.data.coffee()): a coffee "
               "cup, CC0 (Rachel Michetti)"),
    "coins": _whole("skimage:coins.png", "Greek coins (Brooklyn Museum; some bear figures or heads in relief), "
                                         "no known copyright"),
    "grass": _whole("skimage:grass.png", "grass, CC0"),
    "gravel": _whole("skimage:gravel.png", "gravel, CC0 (CC0Textures)"),
    "hubble": _whole("skimage:hubble_deep_field.jpg", "galaxies, NASA, public domain"),
    "ihc": _whole("skimage:ihc.png", "stained tissue (microscope), no known copyright"),
    "microaneurysms": _whole("skimage:microaneurysms.png", "retina detail, CC0"),
    "moon": _whole("skimage:moon.png", "the moon's surface, no known copyright"),
    "motorcycle-left": _whole("skimage:motorcycle_left.png", "a motorcycle in a garage, boxes on shelves "
                                                            "(Middlebury 2014 stereo set, shipped by scikit-image)"),
    "motorcycle-right": _whole("skimage:motorcycle_right.png", "the same scene from the stereo pair's other camera"),
    "page": _whole("skimage:page.png", "a scanned page of text, no known copyright"),
    "retina": _whole("skimage:retina.jpg", "a fundus photograph, CC0 (M. Haggstrom)"),
    "rocket": _whole("skimage:rocket.jpg", "a Falcon 9 launch pad, SpaceX, public domain"),
    "text": _whole("skimage:text.png", "handwritten text photographed, public domain"),
    "china": _whole("sklearn:china.jpg", "a pagoda and trees, CC BY 2.0 (danielbuechele, Flickr)"),
    "flower": _whole("sklearn:flower.jpg", "a dahlia, CC BY 2.0 (vultilion, Flickr)"),
    # crops of those photographs at native scale: other content at the detector's scale
    "chelsea-head": ("skimage:chelsea.png", (120, 0, 260, 260), "crop of chelsea: the cat's head"),
    "china-pagoda": ("sklearn:china.jpg", (150, 0, 260, 300), "crop of china: the pagoda"),
    "china-trees": ("sklearn:china.jpg", (400, 180, 240, 247), "crop of china: trees and water"),
    "flower-centre": ("sklearn:flower.jpg", (180, 80, 260, 260), "crop of flower: its centre"),
    "rocket-pad": ("skimage:rocket.jpg", (180, 120, 300, 307), "crop of rocket: the rocket and its towers"),
    "motorcycle-shelves": ("skimage:motorcycle_left.png", (420, 0, 321, 240), "crop of motorcycle_left: boxes on "
                           "shelves"),
    "motorcycle-wheel": ("skimage:motorcycle_left.png", (60, 200, 300, 300), "crop of motorcycle_left: the front "
                         "wheel and engine"),
    "coffee-cup": ("media:noface/skimage_coffee.png", (150, 20, 320, 300), "crop of coffee: the cup"),
    "hubble-quarter": ("skimage:hubble_deep_field.jpg", (0, 0, 500, 436), "crop of hubble_deep_field: top left"),
    "retina-disc": ("skimage:retina.jpg", (100, 450, 500, 500), "crop of retina: the optic disc and vessels"),
    # drawings and synthetic pictures
    "horse": _whole("skimage:horse.png", "a horse's silhouette, CC0 (openclipart)"),
    "phantom": _whole("skimage:phantom.png", "the Shepp-Logan head phantom (ellipses like eyes), synthetic"),
    "chessboard": _whole("skimage:chessboard_RGB.png", "a chessboard, synthetic"),
    "colour-wheel": _whole("skimage:color.png", "a colour wheel, synthetic"),
    "present": _whole("matplotlib:Minduka_Present_Blue_Pack.png", "a gift box (clip art, openclipart, public domain)"),
    "cartoon": _whole("media:noface/fer_no-faces.jpg", "cartoon creatures (justinshenk/fer)"),
}

#: video -> faces MTCNN misses, marked by eye: ``{"frame_size": [w, h], "frames": {frame: {"faces": [[x, y],
#: ...], ...}}}``, centres in pixels of frames of that size
BY_EYE = {"fr_short_hamilton_clip.mp4": "fr_short_hamilton_clip-by-eye.json"}


def by_eye_centres(video: str, frame_width: int) -> dict[int, list]:
    """The by-eye face centres of each frame of ``video``, scaled to frames ``frame_width`` px wide."""
    if video not in BY_EYE:
        return {}
    data = json.loads((REFERENCE / BY_EYE[video]).read_text())
    scale = frame_width / data["frame_size"][0]
    return {int(k): [(x * scale, y * scale) for x, y in v["faces"]] for k, v in data["frames"].items()}


def clip_rates(found: list, reference: dict, eye: dict, frames) -> tuple[float, float, float]:
    """``(recall, precision, precision against MTCNN alone)`` of the boxes ``found[i]`` on ``frames``."""
    recall, precision = rates([score(list(found[i]), reference.get(i, []), eye.get(i)) for i in frames])
    return recall, precision, rates([score(list(found[i]), reference.get(i, [])) for i in frames])[1]


class _NoTimer:
    def lap(self, stage: str) -> None:
        pass


NO_TIMER = _NoTimer()  # benchmarks.pipeline's processes report their stages to a timer: here, nobody


def score(found: list, reference: list, by_eye: list | None = None) -> tuple[int, int, int]:
    """``(matched reference faces, reference faces, false boxes)`` of one image (see the module docstring);
    ``by_eye``: centres ``(x, y)`` of real faces, a box on which is never false."""
    faces, matched, false = match(found, reference, by_eye)
    return len(matched), len(faces), len(false)


def band_of(side: float) -> int:
    """The index in ``BANDS`` of a box whose ``min(w, h)`` is ``side``."""
    return next(i for i, (_, low, high) in enumerate(BANDS) if low <= side < high)


def band_score(found: list, reference: list, by_eye: list | None = None) -> list[tuple[int, int, int]]:
    """``score`` by face-size band: one ``(matched, reference faces, false boxes)`` per band of ``BANDS``; a
    face counts in its reference box's band, a false box in its own."""
    faces, matched, false = match(found, reference, by_eye)
    counts = [[0, 0, 0] for _ in BANDS]
    for j, face in enumerate(faces):
        band = counts[band_of(min(face[2], face[3]))]
        band[1] += 1
        band[0] += j in matched
    for i in false:
        counts[band_of(min(found[i][2], found[i][3]))][2] += 1
    return [tuple(c) for c in counts]


def band_rates(counts: list[list[tuple[int, int, int]]]) -> list[tuple[float, float, int]]:
    """``(recall, precision, reference faces)`` of each band, over the images' ``band_score``s."""
    return [(*rates([c[b] for c in counts]), sum(c[b][1] for c in counts)) for b in range(len(BANDS))]


def band_cells(counts: list[list[tuple[int, int, int]]]) -> str:
    return " | ".join(f"{r:.3f} / {p:.3f}" if n else f"- / {p:.3f}" for r, p, n in band_rates(counts))


def band_header(first: str, counts: list[list[tuple[int, int, int]]]) -> str:
    """The header of a band table, each band with its number of reference faces."""
    totals = [n for _, _, n in band_rates(counts)]
    cells = " | ".join(f"{label} px ({n} faces)" for (label, _, _), n in zip(BANDS, totals, strict=True))
    return f"| {first} | {cells} |\n|---" + "|---" * (first.count("|") + len(BANDS)) + "|"


def match(found: list, reference: list, by_eye: list | None = None) -> tuple[list, dict, list]:
    """``(reference faces, {face index: matching box index}, indices of the false boxes)`` of one image."""
    faces = [r[:4] for r in reference if r[4] >= MIN_CONFIDENCE and min(r[2], r[3]) >= MIN_SIDE]
    unsure = [r[:4] for r in reference if not (r[4] >= MIN_CONFIDENCE and min(r[2], r[3]) >= MIN_SIDE)]
    pairs = sorted(((box_iou(f, g), i, j) for i, f in enumerate(found) for j, g in enumerate(faces)), reverse=True)
    matched = {}  # face index -> box index
    for overlap, i, j in pairs:
        if overlap < MIN_IOU:
            break
        if i not in matched.values() and j not in matched:
            matched[j] = i
    used_found = set(matched.values())
    false = [i for i, f in enumerate(found) if i not in used_found
             and not any(box_iou(f, u) >= MIN_IOU for u in unsure)
             and not any(f[0] <= x <= f[0] + f[2] and f[1] <= y <= f[1] + f[3] for x, y in by_eye or [])]
    return faces, matched, false


def rates(counts: list[tuple[int, int, int]]) -> tuple[float, float]:
    matched, total, false = (sum(c[k] for c in counts) for k in range(3))
    return (matched / total if total else float("nan"),
            matched / (matched + false) if matched + false else float("nan"))


def photos(names: list[str]) -> None:
    reference = json.loads((REFERENCE / "photos.json").read_text())["images"]
    by_eye = json.loads((REFERENCE / "by-eye.json").read_text())["face_centres"]
    images = {key: cv2.imread(str(MEDIA / key)) for key in sorted(reference)}
    print("### Photos, searched whole at full resolution\n")
    columns = [f"{Path(key).name} ({score([], reference[key])[1]})" for key in images]
    print("| detector | " + " | ".join(columns) + " | recall | precision | precision against MTCNN alone | "
          "ms per photo |")
    print("|---" * (len(images) + 5) + "|")
    bands = {}
    for name in names:
        if name == "fer":
            continue
        detector = DETECTORS[name]()
        counts, raw, cells, seconds = [], [], [], 0.0
        for key, image in images.items():
            start = time.perf_counter()
            boxes, _ = detect_faces(image, detector, max_pixels=None)
            seconds += time.perf_counter() - start
            count = score(boxes.tolist(), reference[key], by_eye.get(key))
            counts.append(count)
            bands.setdefault(name, []).append(band_score(boxes.tolist(), reference[key], by_eye.get(key)))
            raw.append(score(boxes.tolist(), reference[key]))
            cells.append(f"{len(boxes)}: {count[0]} ok, {count[2]} false")
        recall, precision = rates(counts)
        print(f"| {name} | " + " | ".join(cells) + f" | {recall:.3f} | {precision:.3f} | {rates(raw)[1]:.3f} | "
              f"{1000 * seconds / len(images):.1f} |")
    print_bands({(name, "whole photo"): counts for name, counts in bands.items()})


def print_bands(rows: dict[tuple[str, str], list]) -> None:
    """The band table: ``rows`` maps (detector, schedule) to the ``band_score`` of each image."""
    if not rows:
        return
    print("\nRecall / precision by face size (the reference face's side, min(w, h)):\n")
    print(band_header("detector | schedule", next(iter(rows.values()))))
    for (name, label), counts in rows.items():
        print(f"| {name} | {label} | {band_cells(counts)} |")
    print()


def read_frames(video: Path, height: int | None, limit: int | None) -> tuple[list[np.ndarray], float]:
    capture = cv2.VideoCapture(str(video))
    fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
    frames = []
    while limit is None or len(frames) < limit:
        ok, frame = capture.read()
        if not ok:
            break
        if height:
            width = round(frame.shape[1] * height / frame.shape[0] / 2) * 2
            frame = cv2.resize(frame, (width, height), interpolation=cv2.INTER_CUBIC)
        frames.append(frame)
    capture.release()
    return frames, fps


def mosaic_frames(limit: int | None) -> tuple[list[np.ndarray], float]:
    """The crowd mosaic's frames (``benchmarks.mtcnn_reference.mosaic_frame``) and its frame rate; built lazily:
    a list-like whose item ``t`` is built when asked for."""
    clips = {name: read_frames(MEDIA / "videos" / CLIP_FILES[name], None, None)[0] for name, _ in mosaic.MOSAIC_TILES}

    class Frames:
        def __len__(self) -> int:
            return mosaic.MOSAIC_FRAMES if limit is None else min(limit, mosaic.MOSAIC_FRAMES)

        def __getitem__(self, t: int) -> np.ndarray:
            if not 0 <= t < len(self):
                raise IndexError(t)
            return mosaic.mosaic_frame(clips, t)

    return Frames(), mosaic.MOSAIC_FPS


def mosaic_by_eye() -> dict[int, list]:
    """The by-eye face centres of each mosaic frame: each tile's clip's, shifted by the tile's position."""
    data = json.loads((REFERENCE / "mosaic.json").read_text())
    eye: dict[int, list] = {}
    for k, (name, _) in enumerate(mosaic.MOSAIC_TILES):
        clip_data = json.loads((REFERENCE / SOURCES_BY_CLIP[name]).read_text())
        size = (clip_data["width"], clip_data["height"])
        centres = by_eye_centres(CLIP_FILES[name], size[0])
        x0, y0 = mosaic.tile_origin(k, size)
        for t in range(data["frames_decoded"]):
            index = mosaic.tile_frame_index(k, t, clip_data["frames_decoded"])
            eye.setdefault(t, []).extend((x + x0, y + y0) for x, y in centres.get(index, []))
    return eye


SOURCES_BY_CLIP = {"fer_woman2": "fer_woman2.json", "fr_short_hamilton_clip": "fr_short_hamilton_clip.json"}


def clip(source: str, names: list[str], limit: int | None) -> None:
    file, video, height = SOURCES[source]
    data = json.loads((REFERENCE / file).read_text())
    if source == "mosaic":
        frames, fps = mosaic_frames(limit)
        eye = mosaic_by_eye()
        title = (f"the crowd mosaic, {frames[0].shape[1]}x{frames[0].shape[0]} (3x3 tiles of 640x360: "
                 + ", ".join(f"{name.split('_')[-2] if 'hamilton' in name else name}@{start}"
                             for name, start in mosaic.MOSAIC_TILES) + ")")
    else:
        frames, fps = read_frames(MEDIA / "videos" / video, height, limit)
        eye = by_eye_centres(video, frames[0].shape[1])
        title = (f"{video}{f' upscaled to {frames[0].shape[1]}x{frames[0].shape[0]}' if height else ''}, "
                 f"{frames[0].shape[1]}x{frames[0].shape[0]}")
    judged = [i for i in map(int, data["frame_indices"]) if i < len(frames)]
    reference = {int(k): v for k, v in data["frames"].items()}
    faces = sum(score([], reference.get(i, []))[1] for i in judged)
    print(f"### {title}: {len(frames)} frames at {fps:.2f} fps, {len(judged)} with the reference "
          f"({faces} reference faces)\n")
    print("| detector | schedule | recall | precision | precision against MTCNN alone | fps | share of the source's "
          f"{fps:.2f} fps | CPU ms per frame | CPU s per s of video |")
    print("|---|---|---|---|---|---|---|---|---|")
    model = default_model()
    bands = {}
    for name in names:
        schedules = [("fer", None)] if name == "fer" else [(f"every {DETECT_EVERY} frames, followed between",
                                                            DETECT_EVERY), ("every frame", 1)]
        for label, every in schedules:
            found = []
            if every is None:
                fer_process = fer_pipeline(model)

                def step(frame, process=fer_process):
                    return process(frame, NO_TIMER)
            else:
                analyzer = FaceAnalyzer(model, DETECTORS[name](), detect_every=every)

                def step(frame, analyzer=analyzer):
                    faces = analyzer(frame, 1 / fps)
                    encode_jpeg(draw_faces(frame, faces))
                    return [face.box for face in faces]
            wall = cpu = 0.0
            for t in range(len(frames)):
                frame = frames[t].copy()  # decoded (or built) beforehand: not timed
                start_wall, start_cpu = time.perf_counter(), time.process_time()
                found.append(step(frame))
                wall += time.perf_counter() - start_wall
                cpu += time.process_time() - start_cpu
            recall, precision, alone = clip_rates(found, reference, eye, judged)
            rate = len(frames) / wall
            print(f"| {name} | {label} | {recall:.3f} | {precision:.3f} | {alone:.3f} | {rate:.1f} | "
                  f"{rate / fps:.2f} | {1000 * cpu / len(frames):.1f} | {cpu / (len(frames) / fps):.2f} |")
            bands[(name, label)] = [band_score(list(found[i]), reference.get(i, []), eye.get(i)) for i in judged]
    print_bands(bands)


def min_score_sweep(source: str, thresholds=(0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7)) -> None:
    """Recall and precision of BlazeFace searching every frame of a clip whole, at each ``--min-score``."""
    file, video, height = SOURCES[source]
    reference = {int(k): v for k, v in json.loads((REFERENCE / file).read_text())["frames"].items()}
    frames, _ = read_frames(MEDIA / "videos" / video, height, None)
    eye = by_eye_centres(video, frames[0].shape[1])
    detector = BlazeFaceDetector(min_score=min(thresholds))
    found = [detect_faces(frame, detector) for frame in frames]
    print(f"### --min-score on {video}{f' upscaled to {height} rows' if height else ''}, every frame searched\n")
    print("| min score | recall | precision | precision against MTCNN alone |")
    print("|---|---|---|---|")
    for threshold in thresholds:
        kept = [boxes[scores >= threshold].tolist() for boxes, scores in found]
        recall, precision, alone = clip_rates(kept, reference, eye, range(len(found)))
        print(f"| {threshold:g} | {recall:.3f} | {precision:.3f} | {alone:.3f} |")
    print()


def noface_image(name: str) -> bytes:
    """The encoded bytes of one picture of ``NOFACE``, as it would be uploaded (a crop: encoded as PNG)."""
    where, crop, _ = NOFACE[name]
    package, _, file = where.partition(":")
    if package == "media":
        path = MEDIA / file
    else:
        import importlib

        module = {"skimage": "skimage.data", "sklearn": "sklearn.datasets", "matplotlib": "matplotlib"}[package]
        base = Path(importlib.import_module(module).__file__).parent
        path = base / {"skimage": "", "sklearn": "images", "matplotlib": "mpl-data/sample_data"}[package] / file
    data = path.read_bytes()
    if crop is None:
        return data
    frame = decode_image(data, MAX_PIXELS, WORKING_PIXELS).frame
    x, y, w, h = crop
    ok, png = cv2.imencode(".png", frame[y:y + h, x:x + w])
    assert ok and frame[y:y + h, x:x + w].shape[:2] == (h, w), name
    return png.tobytes()


def noface(names: list[str]) -> None:
    """Faces found on each picture of the no-face set, searched whole as ``/api/predict`` does."""
    frames = {name: decode_image(noface_image(name), MAX_PIXELS, WORKING_PIXELS).frame for name in NOFACE}
    detectors = {"default": make_face_detector()} | {name: DETECTORS[name]() for name in names
                                                     if name not in ("fer", "blazeface")}
    found = {}
    for label, detector in detectors.items():
        found[label] = {name: detect_faces(frame, detector, max_pixels=None) for name, frame in frames.items()}
    print(f"### The no-face set: {len(frames)} pictures, searched whole (as /api/predict)\n")
    print("`default`: `detectors.make_face_detector()`, the app's default (BlazeFace, its default min score).\n")
    print("| picture | size | " + " | ".join(f"{label}: faces (best score)" for label in detectors) + " | source |")
    print("|---|---|" + "---|" * len(detectors) + "---|")
    for name, frame in frames.items():
        cells = []
        for label in detectors:
            boxes, scores = found[label][name]
            best = float(np.nanmax(scores)) if len(scores) and not np.all(np.isnan(scores)) else None
            cells.append(f"**{len(boxes)}**" + (f" ({best:.2f})" if best is not None else "") if len(boxes) else "0")
        print(f"| {name} | {frame.shape[1]}x{frame.shape[0]} | " + " | ".join(cells) + f" | {NOFACE[name][2]} |")
    print("| **pictures with a face reported** | | " + " | ".join(
        f"**{sum(len(found[label][n][0]) > 0 for n in frames)} of {len(frames)}** "
        f"({sum(len(found[label][n][0]) for n in frames)} boxes)" for label in detectors) + " | |")
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sources", default=",".join(SOURCES))
    parser.add_argument("--detectors",
                        default="blazeface,blazeface-whole,blazeface-480,blazeface-no-border,blazeface-back,haar,hog,fer")
    parser.add_argument("--frames", type=int, default=None, help="at most this many frames of each clip")
    parser.add_argument("--min-score-sweep", action="store_true",
                        help="instead: BlazeFace's recall and precision at several --min-score values")
    args = parser.parse_args()
    names = args.detectors.split(",")
    print(f"machine: {machine()}\nreference: MTCNN, confidence >= {MIN_CONFIDENCE}, side >= {MIN_SIDE} px; "
          f"a match: IoU >= {MIN_IOU}, one to one\n")
    for source in args.sources.split(","):
        if args.min_score_sweep:
            if source != "photos":
                min_score_sweep(source)
        elif source == "noface":
            noface(names)
        elif not (REFERENCE / SOURCES[source][0]).is_file():
            print(f"### {source}: no reference file {SOURCES[source][0]}\n")
        elif source == "photos":
            photos(names)
        else:
            clip(source, names, args.frames)


if __name__ == "__main__":
    main()
