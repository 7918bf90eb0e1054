"""Golden parts: a small fixed set of parts with known defects, shown to the camera on request.

They are physical objects, so they are the same on every station whatever its seed: their random streams
are keyed by their index alone. Their defects are never faint, and part ``k`` carries ``GOLDEN_DEFECTS[k]``
of them, one of each class in turn; in the ground truth a golden part's id is ``-1 - k``.
"""

from __future__ import annotations

GOLDEN_COUNT = 6
GOLDEN_DEFECTS = (0, 1, 0, 2, 0, 3)  # defects on each golden part; 0 means a good part


def golden_index(part: int) -> int:
    """Which golden part the ``part``-th one on the belt is: they come round in turn."""
    return part % GOLDEN_COUNT


def golden_rng_key(part: int) -> list[int]:
    """The random-stream key of a golden part: its index, not the station's seed."""
    return [7919, 11, golden_index(part)]


def golden_part_id(part: int) -> int:
    """The part id a golden part has in the ground truth (negative, apart from production parts)."""
    return -1 - golden_index(part)
