"""How BlazeFace's boxes sit against the Haar cascade's, on the same faces: the basis of
``BlazeFaceDetector.box_scale`` and ``box_shift`` (the classifier's crops were evaluated on Haar boxes).

    python -m benchmarks.box_calibration

On the shared face photos and every 20th frame of ``fer_woman2.mp4``, every BlazeFace box (unscaled) that
overlaps a Haar box (IoU > 0.3) gives the ratio of their sides and the offset of their centres, in units
of BlazeFace's side; the medians are printed.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from detection import detect_faces, load_face_detector
from detectors.blazeface import BlazeFaceDetector
from faces import box_iou

MEDIA = Path(__file__).resolve().parents[2] / "shared" / "media"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--media", type=Path, default=MEDIA,
                        help="folder with faces/ (photos) and videos/fer_woman2.mp4 (default ../shared/media)")
    media = parser.parse_args().media
    blaze = BlazeFaceDetector()
    blaze.box_scale, blaze.box_shift = 1.0, 0.0
    haar = load_face_detector()
    images = [cv2.imread(str(p)) for p in sorted((media / "faces").iterdir())]
    capture = cv2.VideoCapture(str(media / "videos" / "fer_woman2.mp4"))
    index = 0
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        if index % 20 == 0:
            images.append(frame)
        index += 1
    capture.release()
    rows = []
    for image in images:
        haar_boxes, _ = detect_faces(image, haar, max_pixels=None)
        for b in blaze.detect(image)[0]:
            for a in haar_boxes:
                if box_iou(a, b) > 0.3:
                    rows.append((a[2] / b[2], (a[0] + a[2] / 2 - b[0] - b[2] / 2) / b[2],
                                 (a[1] + a[3] / 2 - b[1] - b[3] / 2) / b[3]))
    r = np.array(rows)
    print(f"{len(r)} pairs of boxes on {len(images)} images")
    print(f"median side ratio, Haar / BlazeFace: {np.median(r[:, 0]):.3f}")
    print(f"median centre offset, Haar - BlazeFace, in BlazeFace sides: x {np.median(r[:, 1]):+.3f}, "
          f"y {np.median(r[:, 2]):+.3f}")


if __name__ == "__main__":
    main()
