"""How faces are found, classified and followed: ``AnalysisSettings``, one value built and checked once (from
the command line in ``main.py``, or given to ``server.create_app``) and read by everything that analyses:
the live streams (``server/sources.py``), the photo API (``server/api.py``), the visitors' own cameras
(``server/clients.py``) and the video reports (``report.py``).

This module takes only the defaults and the choices from the modules that define them; nothing here imports
back from the server or the reports.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass

from analysis import SMOOTHING_HALF_LIFE
from checks import check_number
from detection import DEFAULT_DETECTOR, DETECT_EVERY, DETECTORS, MIN_SCORE
from runtimes import RUNTIMES

#: The app-config keys (``server.create_app``'s ``config``) that older callers give these settings by, and
#: the field each sets.
CONFIG_KEYS = {"DETECTOR": "detector", "MIN_SCORE": "min_score", "DETECT_EVERY": "detect_every",
               "SMOOTHING_HALF_LIFE": "smoothing_half_life", "RUNTIME": "runtime"}


@dataclass(frozen=True)
class AnalysisSettings:
    """The analysis settings shared by streams, photos, browser cameras and video reports.

    Attributes:
        detector: the face detector, one of ``detectors.DETECTORS`` (default ``"blazeface"``).
        min_score: the least detector confidence of a face, a number from 0 to 1 (BlazeFace; Haar and HOG
            give none). Stored as a ``float``.
        detect_every: videos are searched whole for faces on every this-many-th frame (and on cuts), the faces
            followed between; an integer of at least 1 (see ``detection.FaceFinder``).
        smoothing_half_life: half-life of the smoothing of each tracked face's probabilities, in seconds, at
            least 0 (0: none; see ``tracking.FaceTracker``). Stored as a ``float``.
        runtime: what runs the classifier, one of ``model.RUNTIMES`` (``"litert"``, the default, or
            ``"keras"``; see ``model.FacialExpressionModel``).

    Raises:
        ValueError: a setting of the wrong type or out of its range; the message names the setting.
    """

    detector: str = DEFAULT_DETECTOR
    min_score: float = MIN_SCORE
    detect_every: int = DETECT_EVERY
    smoothing_half_life: float = SMOOTHING_HALF_LIFE
    runtime: str = "litert"

    def __post_init__(self) -> None:
        if self.detector not in DETECTORS:
            raise ValueError(f"unknown face detector {self.detector!r}; expected one of {DETECTORS}")
        if self.runtime not in RUNTIMES:
            raise ValueError(f"unknown runtime {self.runtime!r}; expected one of {RUNTIMES}")
        checked = {"min_score": check_number(self.min_score, "min_score", minimum=0, maximum=1),
                   "detect_every": check_number(self.detect_every, "detect_every", integer=True, minimum=1),
                   "smoothing_half_life": check_number(self.smoothing_half_life, "smoothing_half_life", minimum=0)}
        for name, value in checked.items():  # frozen: stored as float or int, whatever number type was given
            object.__setattr__(self, name, value)

    @classmethod
    def from_config(cls, config: Mapping, base: AnalysisSettings | None = None) -> AnalysisSettings:
        """``base`` (default: the defaults) with the settings that ``config`` gives by their app-config keys
        (``CONFIG_KEYS``: ``{"MIN_SCORE": 0.7}`` sets ``min_score``); other keys are ignored. ``base`` itself
        when ``config`` gives none.

        Raises:
            ValueError: as the class.
        """
        base = base if base is not None else cls()
        given = {field: config[key] for key, field in CONFIG_KEYS.items() if key in config}
        return dataclasses.replace(base, **given) if given else base
