"""The crowd mosaic's builder and reference (benchmarks/mtcnn_reference.py) and the face-size band scoring
(benchmarks/face_finding.py), on synthetic frames and boxes: no media, no detector."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks import face_finding
from benchmarks import mtcnn_reference as mosaic


def numbered_clip(count: int, size: tuple[int, int], channel: int) -> list[np.ndarray]:
    """``count`` frames of ``size`` (w, h), frame ``i`` filled with ``i % 250 + 1`` in ``channel`` (never black)."""
    frames = []
    for i in range(count):
        frame = np.zeros((size[1], size[0], 3), np.uint8)
        frame[..., channel] = i % 250 + 1
        frames.append(frame)
    return frames


def test_mosaic_layout_is_3x3_of_both_clips_with_distinct_starts():
    assert len(mosaic.MOSAIC_TILES) == 9 and mosaic.MOSAIC_GRID == (3, 3)
    assert {name for name, _ in mosaic.MOSAIC_TILES} == {"fer_woman2", "fr_short_hamilton_clip"}
    assert len(set(mosaic.MOSAIC_TILES)) == 9  # no two tiles show the same frames


def test_mosaic_frame_places_each_clip_frame_at_native_size_in_its_tile():
    clips = {"fr_short_hamilton_clip": numbered_clip(275, (640, 360), 0),
             "fer_woman2": numbered_clip(464, (596, 336), 1)}
    t = 200
    frame = mosaic.mosaic_frame(clips, t)
    assert frame.shape == (1080, 1920, 3) and frame.dtype == np.uint8
    for k, (name, start) in enumerate(mosaic.MOSAIC_TILES):
        x0, y0 = 640 * (k % 3), 360 * (k // 3)
        tile = frame[y0:y0 + 360, x0:x0 + 640]
        index = (start + t) % len(clips[name])
        if name == "fr_short_hamilton_clip":  # fills its tile
            assert (tile[..., 0] == index % 250 + 1).all() and not tile[..., 1:].any()
        else:  # 596x336, centred: 22 px black left and right, 12 above and below
            assert mosaic.tile_origin(k, (596, 336)) == (x0 + 22, y0 + 12)
            assert (tile[12:348, 22:618, 1] == index % 250 + 1).all()
            assert not tile[:12].any() and not tile[348:].any() and not tile[:, :22].any() and not tile[:, 618:].any()
    # the clip runs out: it starts again from frame 0
    assert mosaic.tile_frame_index(8, 464 - 309, 464) == 0
    with pytest.raises(ValueError):
        mosaic.tile_origin(0, (641, 360))


def test_mosaic_boxes_are_the_clip_boxes_shifted_into_their_tiles():
    tiles = [("a", 0), ("b", 5), ("a", 1), ("b", 0)]
    references = {
        "a": {"frames_decoded": 2, "width": 640, "height": 360, "frames": {"0": [[10, 20, 30, 40, 0.99]]}},
        "b": {"frames_decoded": 7, "width": 596, "height": 336, "frames": {"5": [[1, 2, 50, 60, 0.9]]}},
    }
    boxes = mosaic.mosaic_boxes(references, 0, tiles)
    # tile 0: a frame 0; tile 1: b frame 5 at (640 + 22, 12); tile 2: a frame 1 (none); tile 3: b frame 0 (none)
    assert boxes == [[10, 20, 30, 40, 0.99], [663, 14, 50, 60, 0.9]]
    # frame 1: tile 2 shows a's frame (1 + 1) % 2 = 0 at (1280, 0)
    assert [1290, 20, 30, 40, 0.99] in mosaic.mosaic_boxes(references, 1, tiles)


def test_band_of_uses_the_bounds_of_the_issue():
    assert [face_finding.band_of(s) for s in (24, 39, 40, 59, 60, 89, 90, 149, 150, 900)] == [0, 0, 1, 1, 2, 2, 3, 3,
                                                                                              4, 4]


def test_band_score_counts_faces_by_their_reference_side_and_false_boxes_by_their_own():
    reference = [[0, 0, 30, 36, 0.99],  # < 40, found
                 [100, 0, 100, 120, 0.99],  # 90-150, missed
                 [300, 0, 70, 80, 0.97],  # 60-90, found by a box of side 50 (counted in the face's band)
                 [500, 0, 20, 20, 0.99],  # under 24 px: unsure, not a reference face
                 [600, 0, 50, 50, 0.80]]  # weak: unsure
    found = [[1, 1, 30, 34],  # matches the 30-px face
             [305, 5, 50, 60],  # matches the 70-px face (IoU 0.54)
             [800, 0, 50, 55],  # false, 50 px
             [600, 0, 50, 50],  # on a weak MTCNN detection: neither matched nor false
             [900, 0, 200, 200]]  # false, > 150
    counts = face_finding.band_score(found, reference)
    assert counts == [(1, 1, 0), (0, 0, 1), (1, 1, 0), (0, 1, 0), (0, 0, 1)]
    assert face_finding.score(found, reference) == (2, 3, 2)
    # a false box on a face marked by eye is not false
    assert face_finding.band_score(found, reference, [(825, 20)])[1] == (0, 0, 0)
    rates = face_finding.band_rates([counts, counts])
    assert rates[0] == (1.0, 1.0, 2)
    assert rates[3][0] == 0.0 and np.isnan(rates[3][1]) and rates[3][2] == 2
    assert rates[1][1] == 0.0 and np.isnan(rates[1][0])
