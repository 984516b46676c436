"""Stable labels: faces followed across frames by box overlap, their probabilities smoothed over time.

A face's label from one frame to the next flickers between close classes (neutral/sad, fear/surprise)
because every frame is classified on its own. ``FaceTracker`` matches each new box to the track whose
last box overlaps it most (greedy IoU matching, as in the SORT tracker of Bewley et al. 2016 without its
motion model) and replaces the face's probabilities by an exponential moving average whose half-life is
given in seconds, so the smoothing does not depend on the frame rate.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from model import EMOTIONS_LIST


def box_iou(a, b) -> float:
    """Intersection over union of two ``(x, y, w, h)`` boxes, in [0, 1]."""
    ix = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


@dataclass
class _Track:
    id: int
    box: list[int]
    probabilities: np.ndarray  # smoothed, float64 (7,)
    missed: int = 0


@dataclass
class FaceTracker:
    """Give each face an ``id`` that persists across frames and smooth its probabilities.

    Args:
        half_life: seconds after which an old observation weighs half as much as when it was made;
            0 turns smoothing off (ids are still given).
        min_iou: smallest overlap with a track's last box for a face to continue that track.
        max_missed: frames a track survives without a matching face (a missed detection).
    """

    half_life: float = 0.3
    min_iou: float = 0.3
    max_missed: int = 5
    _tracks: list[_Track] = field(default_factory=list)
    _next_id: int = 1

    def update(self, results: list[dict], dt: float) -> list[dict]:
        """Match this frame's faces to tracks and return them with ``id`` and smoothed probabilities.

        Args:
            results: faces of one frame, as ``camera.FaceResult`` dicts (not modified).
            dt: seconds since the previous frame (source time, so a paused or slow reader does not
                change the smoothing).

        Returns:
            New dicts in the same order: ``box`` as given, ``id`` (int, from 1), ``probabilities``
            smoothed (rounded to 4 decimals), ``emotion`` their argmax.
        """
        weight_new = 1.0 if self.half_life <= 0 else 1.0 - 0.5 ** (max(dt, 0.0) / self.half_life)
        pairs = sorted(((box_iou(r["box"], t.box), i, j) for i, r in enumerate(results)
                        for j, t in enumerate(self._tracks)), reverse=True)
        matched_results, matched_tracks, assignment = set(), set(), {}
        for overlap, i, j in pairs:
            if overlap < self.min_iou:
                break
            if i not in matched_results and j not in matched_tracks:
                matched_results.add(i)
                matched_tracks.add(j)
                assignment[i] = self._tracks[j]
        for j, track in enumerate(self._tracks):
            if j not in matched_tracks:
                track.missed += 1
        self._tracks = [t for t in self._tracks if t.missed <= self.max_missed]
        out = []
        for i, result in enumerate(results):
            p = np.array([result["probabilities"][name] for name in EMOTIONS_LIST], dtype=np.float64)
            track = assignment.get(i)
            if track is None:
                track = _Track(self._next_id, list(result["box"]), p)
                self._next_id += 1
                self._tracks.append(track)
            else:
                track.probabilities = weight_new * p + (1.0 - weight_new) * track.probabilities
                track.box, track.missed = list(result["box"]), 0
            smoothed = track.probabilities
            out.append({"id": track.id, "box": list(result["box"]),
                        "emotion": EMOTIONS_LIST[int(np.argmax(smoothed))],
                        "probabilities": {name: round(float(q), 4)
                                          for name, q in zip(EMOTIONS_LIST, smoothed, strict=True)}})
        return out
