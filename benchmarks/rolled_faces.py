"""Rolled faces through the whole pipeline (detect, align, classify), with and without alignment.

    python -m benchmarks.rolled_faces [--data data/fer2013] [--angles 0 15 -15 30 -30] [--limit N]

Each PublicTest face that the FER+ protocol keeps is enlarged from 48 to ``FACE_SIDE`` px (bicubic), turned
by each angle about its centre (positive: clockwise as seen), faded into an ellipse (no square edge for a
detector to latch on to) and pasted at a random place into a larger real picture without faces (scikit-image's
sample pictures, grayscale). BlazeFace (the app's default detector and settings, ``detection.detect_faces_and_rolls``)
searches the whole picture; the largest box whose IoU with the pasted face's square is at least 0.3 is that face.
Its crop is classified by the served model (``model.default_model``) twice: cut as the box lies, and turned
level by the roll from BlazeFace's eye keypoints (``faces.crop_faces``), each lit as ``model.classify_faces``
lights it (``faces.normalize_lighting``). Printed per angle: the share of faces
found, and the FER+ majority accuracy among them with and without alignment. ``--limit`` takes every k-th face.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import cv2
import numpy as np

from datasets import FER_DIR, load_ferplus_split
from detection import detect_faces_and_rolls, make_face_detector
from faces import box_iou, crop_faces, normalize_lighting
from model import INPUT_SIZE, default_model

#: Side of a pasted face, px.
FACE_SIDE = 128
#: Size of a picture, px (width, height).
CANVAS = (480, 360)
#: scikit-image's sample pictures without a face, shipped in its wheel.
BACKGROUNDS = ("coffee", "chelsea", "rocket", "coins", "moon", "page", "text", "horse", "clock", "hubble_deep_field")


def backgrounds() -> list[np.ndarray]:
    """uint8 grayscale pictures of ``CANVAS`` size cut from scikit-image's sample pictures."""
    from skimage import data

    pictures = []
    for name in BACKGROUNDS:
        try:
            image = np.asarray(getattr(data, name)())
        except Exception:  # a picture the installed scikit-image does not ship (some are downloaded on demand)
            continue
        if image.dtype == bool:
            image = image.astype(np.uint8) * 255
        image = image if image.ndim == 2 else cv2.cvtColor(image[..., :3].astype(np.uint8), cv2.COLOR_RGB2GRAY)
        pictures.append(cv2.resize(image.astype(np.uint8), CANVAS, interpolation=cv2.INTER_AREA))
    if not pictures:
        raise SystemExit("no scikit-image sample picture could be loaded")
    return pictures


def paste(face: np.ndarray, angle: float, background: np.ndarray, rng: np.random.Generator
          ) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """``background`` with ``face`` (uint8 48x48) enlarged, turned by ``angle`` degrees (clockwise as seen)
    and faded in an ellipse at a random place; returns the picture (BGR) and the face's square ``(x, y, w, h)``."""
    big = cv2.resize(face, (FACE_SIDE, FACE_SIDE), interpolation=cv2.INTER_CUBIC).astype(np.float32)
    turn = cv2.getRotationMatrix2D((FACE_SIDE / 2, FACE_SIDE / 2), -angle, 1.0)
    big = cv2.warpAffine(big, turn, (FACE_SIDE, FACE_SIDE), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    mask = np.zeros((FACE_SIDE, FACE_SIDE), np.float32)
    cv2.ellipse(mask, (FACE_SIDE // 2, FACE_SIDE // 2), (int(FACE_SIDE * 0.47), int(FACE_SIDE * 0.5)), -angle, 0, 360,
                1.0, -1)
    mask = cv2.GaussianBlur(mask, (0, 0), FACE_SIDE / 24)
    x = int(rng.integers(0, CANVAS[0] - FACE_SIDE))
    y = int(rng.integers(0, CANVAS[1] - FACE_SIDE))
    picture = background.astype(np.float32)
    region = picture[y:y + FACE_SIDE, x:x + FACE_SIDE]
    picture[y:y + FACE_SIDE, x:x + FACE_SIDE] = mask * big + (1 - mask) * region
    return cv2.cvtColor(picture.round().astype(np.uint8), cv2.COLOR_GRAY2BGR), (x, y, FACE_SIDE, FACE_SIDE)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=FER_DIR, help="FER2013 with test/ and ferplus.csv")
    parser.add_argument("--angles", type=float, nargs="+", default=[0, 15, -15, 30, -30])
    parser.add_argument("--limit", type=int, default=0, help="use about this many faces (every k-th); 0: all")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    faces, _, crowd = load_ferplus_split(args.data / "test")
    faces, majority = faces[crowd.included], crowd.majority[crowd.included]
    if args.limit and args.limit < len(faces):
        step = len(faces) / args.limit
        chosen = (np.arange(args.limit) * step).astype(int)
        faces, majority = faces[chosen], majority[chosen]
    model, detector, pictures = default_model(), make_face_detector(), backgrounds()
    direct = float((model.predict_proba(faces).argmax(axis=1) == majority).mean())
    rows, start = [], time.perf_counter()
    for angle in args.angles:
        rng = np.random.default_rng(args.seed)  # the same places and backgrounds at every angle
        found, aligned, plain, rolls = 0, 0, 0, []
        for face, label in zip(faces, majority, strict=True):
            picture, truth = paste(face, angle, pictures[int(rng.integers(len(pictures)))], rng)
            boxes, _, face_rolls = detect_faces_and_rolls(picture, detector)
            matches = [i for i, box in enumerate(boxes) if box_iou(box, truth) >= 0.3]
            if not matches:
                continue
            i = matches[0]  # the largest (detect_faces_and_rolls orders them so)
            gray = cv2.cvtColor(picture, cv2.COLOR_BGR2GRAY)
            crops = normalize_lighting(np.concatenate([  # as model.classify_faces cuts them, and not turned
                crop_faces(gray, boxes[i:i + 1], INPUT_SIZE, face_rolls[i:i + 1]),
                crop_faces(gray, boxes[i:i + 1], INPUT_SIZE)]))
            predicted = model.predict_proba(crops).argmax(axis=1)
            found += 1
            aligned += int(predicted[0] == label)
            plain += int(predicted[1] == label)
            rolls.append(float(face_rolls[i]))
        n = len(faces)
        rows.append({"angle": angle, "faces": n, "found": round(found / n, 4),
                     "accuracy_aligned": round(aligned / max(found, 1), 4),
                     "accuracy_unaligned": round(plain / max(found, 1), 4),
                     "median_roll_measured": round(float(np.median(rolls)), 1) if rolls else None})
        print(json.dumps(rows[-1]), flush=True)
    print(json.dumps({"faces": len(faces), "face_side_px": FACE_SIDE, "canvas": CANVAS,
                      "backgrounds": len(pictures), "accuracy_of_the_48px_faces_themselves": round(direct, 4),
                      "seconds": round(time.perf_counter() - start, 1), "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
