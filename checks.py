"""The one number check of the app's settings and arguments: ``check_number``.

A setting that must be a number (or a whole number) in a range is checked here, once, rather than with the
same three lines in every constructor: ``True`` and ``False`` are refused although Python counts them as
integers (a flag passed where a count belongs is a mistake), strings are refused rather than converted, and
NaN fails every bound. This module imports nothing from the app, so any module may use it.
"""

from __future__ import annotations

import numbers


def check_number(value: object, name: str, *, integer: bool = False, minimum: float | None = None,
                 maximum: float | None = None, above: float | None = None) -> int | float:
    """``value`` as an ``int`` (``integer``) or a ``float``, once it is a number in the range given.

    Args:
        value: what was given: a Python or NumPy number; ``bool`` is refused.
        name: how the error message names it (``"min_score"``, ``"MAX_UPLOADS"``).
        integer: whether it must be a whole number (``numbers.Integral``; ``2.0`` is refused).
        minimum, maximum: inclusive bounds (``None``: none).
        above: an exclusive lower bound (``None``: none), for a value that must be above it.

    Returns:
        ``int(value)`` when ``integer``, else ``float(value)``.

    Raises:
        ValueError: not such a number, or out of the range; the message names ``name``, the range and the value
            (``"min_score must be a number from 0 to 1, not 1.5"``).
    """
    kind = numbers.Integral if integer else numbers.Real
    fits = isinstance(value, kind) and not isinstance(value, bool)
    fits = fits and (minimum is None or value >= minimum) and (maximum is None or value <= maximum)
    fits = fits and (above is None or value > above)
    if not fits:
        noun = "an integer" if integer else "a number"
        raise ValueError(f"{name} must be {noun}{_range(minimum, maximum, above)}, not {value!r}")
    return int(value) if integer else float(value)


def _range(minimum: float | None, maximum: float | None, above: float | None) -> str:
    """The range of ``check_number``'s message: ``" from 0 to 1"``, ``" of at least 1"``, ``" above 0 and at
    most 4"``, ... (empty without bounds)."""
    lower = f"above {above:g}" if above is not None else None if minimum is None else f"at least {minimum:g}"
    if lower is not None and maximum is not None:
        return f" from {minimum:g} to {maximum:g}" if above is None else f" {lower} and at most {maximum:g}"
    if lower is not None:
        return f" of {lower}" if above is None else f" {lower}"
    return "" if maximum is None else f" of at most {maximum:g}"
