"""Stable labels: faces followed across frames by box overlap, their probabilities smoothed over time.

A face's label from one frame to the next flickers between close classes (neutral/sad, fear/surprise)
because every frame is classified on its own. ``FaceTracker`` matches each new box to the track whose
box, moved on by the track's velocity, overlaps it most (greedy IoU matching with a constant-velocity
prediction, as in the SORT tracker of Bewley et al. 2016, here without its Kalman filter), or, failing any
overlap, to a track of about its size whose predicted centre lies within 3/4 of a face of its own; a track
that finds no face is kept for a few frames and, with ``keep_seconds``, a short while (so a detector's
misses and a browser camera's slow, uneven frames do not give one face a new id); and it replaces the
face's probabilities by an exponential moving average whose half-life is
given in seconds, so the smoothing does not depend on the frame rate. A face that was not classified on a
frame (``probabilities`` ``None``; ``analysis.FaceAnalyzer`` does that when classifying every face of
every frame would make a stream fall behind) keeps its track's smoothed probabilities.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from faces import Face, box_iou


@dataclass
class _Track:
    id: int
    box: tuple[int, int, int, int]
    probabilities: np.ndarray  # smoothed, float32 (7,)
    missed: int = 0
    unclassified_time: float = 0.0  # source seconds since its face was last classified, before this frame
    velocity: tuple[float, float] = (0.0, 0.0)  # of the box's centre, px per source second (smoothed)
    lost_time: float = 0.0  # source seconds since its face was last seen, before this frame

    def predicted(self, dt: float) -> tuple[float, float, float, float]:
        """The box moved on by the velocity over the time since the face was seen, ``dt`` included."""
        elapsed = self.lost_time + max(dt, 0.0)
        x, y, w, h = self.box
        return x + self.velocity[0] * elapsed, y + self.velocity[1] * elapsed, w, h


def _centre(box) -> tuple[float, float]:
    return box[0] + box[2] / 2, box[1] + box[3] / 2


@dataclass
class FaceTracker:
    """Give each face an ``id`` that persists across frames and smooth its probabilities.

    Args:
        half_life: seconds after which an old observation weighs half as much as when it was made;
            0 turns smoothing off (ids are still given).
        min_iou: smallest overlap with a track's predicted box for a face to continue that track by overlap.
        max_missed: frames a track survives without a matching face (a missed detection).
        keep_seconds: source seconds a track also survives without a matching face, however many frames
            that is (0: ``max_missed`` alone decides).
    """

    half_life: float = 0.3
    min_iou: float = 0.3
    max_missed: int = 5
    keep_seconds: float = 0.0
    _tracks: list[_Track] = field(default_factory=list)
    _next_id: int = 1

    def reset(self) -> None:
        """Forget every track (after a scene cut the faces are other faces, wherever their boxes lie); the
        next faces get new ids (ids are never reused)."""
        self._tracks = []

    def track_ids(self, boxes, dt: float = 0.0) -> list[int | None]:
        """The id of the track each box ``(x, y, w, h)`` would continue if ``update`` got these boxes now,
        ``dt`` seconds after the last frame, ``None`` for a box that would start a new track."""
        assignment = self._match([tuple(box) for box in boxes], dt)
        return [self._tracks[assignment[i]].id if i in assignment else None for i in range(len(boxes))]

    def _affinity(self, box, track: _Track, dt: float) -> float:
        """How well ``box`` continues ``track``: its IoU with the track's predicted box or with its last box,
        the larger, when at least ``min_iou`` (a velocity made of jittery boxes may predict wrong; the last box
        still counts); else, for a box of about the track's size (sides within 1.5x) whose centre lies within
        three quarters of its side of either box's centre, a value below ``min_iou`` that falls with the
        distance; else 0."""
        places = (track.predicted(dt), track.box)
        overlap = max(box_iou(box, place) for place in places)
        if overlap >= self.min_iou:
            return overlap
        side = max(track.box[2], 1.0)
        if not 1 / 1.5 <= box[2] / side <= 1.5:
            return 0.0
        bx, by = _centre(box)
        distance = min(float(np.hypot(bx - px, by - py)) for px, py in map(_centre, places)) / (0.75 * side)
        return self.min_iou * (1.0 - distance) * 0.99 if distance < 1.0 else 0.0

    def _match(self, boxes: list, dt: float) -> dict[int, int]:
        """Greedy one-to-one matching, best affinity first: box index -> track index."""
        pairs = sorted(((self._affinity(box, track, dt), i, j) for i, box in enumerate(boxes)
                        for j, track in enumerate(self._tracks)), reverse=True)
        matched_tracks, assignment = set(), {}
        for affinity, i, j in pairs:
            if affinity <= 0:
                break
            if i not in assignment and j not in matched_tracks:
                matched_tracks.add(j)
                assignment[i] = j
        return assignment

    def update(self, faces: list[Face], dt: float) -> list[Face]:
        """Match this frame's faces to tracks; return them with ``id`` and smoothed probabilities.

        Args:
            faces: the faces of one frame (not modified). A face's ``probabilities`` may be ``None`` (not
                classified on this frame) if ``track_ids`` gives it a track: it keeps that track's.
            dt: seconds since the previous frame (source time, so a paused or slow reader does not
                change the smoothing).

        Returns:
            New records in the same order: ``box`` and ``score`` as given, ``id`` (from 1), and
            ``probabilities`` smoothed (float32, still summing to 1).

        Raises:
            ValueError: a face without probabilities that continues no track.
        """
        match = self._match([face.box for face in faces], dt)
        unclassified = [face.box for i, face in enumerate(faces) if face.probabilities is None and i not in match]
        if unclassified:
            raise ValueError(f"faces at {unclassified} have no probabilities and continue no track")
        assignment = {i: self._tracks[j] for i, j in match.items()}
        continued = set(match.values())
        for j, track in enumerate(self._tracks):
            if j not in continued:  # missed: the time counts towards the weight of its next classification
                track.missed += 1
                track.unclassified_time += max(dt, 0.0)
                track.lost_time += max(dt, 0.0)
        self._tracks = [t for t in self._tracks if t.missed <= self.max_missed or t.lost_time <= self.keep_seconds]
        out = []
        for i, face in enumerate(faces):
            track = assignment.get(i)
            if track is None:
                track = _Track(self._next_id, face.box, np.asarray(face.probabilities, np.float32))
                self._next_id += 1
                self._tracks.append(track)
            else:
                if face.probabilities is None:
                    track.unclassified_time += max(dt, 0.0)
                else:  # the weight of the time since the face's last classification
                    age = max(dt, 0.0) + track.unclassified_time
                    weight_new = 1.0 if self.half_life <= 0 else 1.0 - 0.5 ** (age / self.half_life)
                    track.probabilities = (weight_new * face.probabilities
                                           + (1.0 - weight_new) * track.probabilities).astype(np.float32)
                    track.unclassified_time = 0.0
                elapsed = track.lost_time + max(dt, 0.0)
                if elapsed > 0:  # the centre's velocity, smoothed over the last two moves
                    (x0, y0), (x1, y1) = _centre(track.box), _centre(face.box)
                    track.velocity = tuple(0.5 * v + 0.5 * (b - a) / elapsed
                                           for v, a, b in zip(track.velocity, (x0, y0), (x1, y1), strict=True))
                track.box, track.missed, track.lost_time = face.box, 0, 0.0
            out.append(face.replace(id=track.id, probabilities=track.probabilities))
        return out
