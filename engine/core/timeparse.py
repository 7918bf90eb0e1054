"""One reading of a point in time, for every ``--since`` and ``--until`` and every stored ISO time.

:func:`parse_time` takes

- seconds since 1970 (UTC): ``1767225600``, ``1767225600.5``;
- an ISO 8601 date or date and time, with or without an offset: ``2026-01-31``, ``2026-01-31T08:00``,
  ``2026-01-31 08:00:00``, ``2026-01-31T08:00Z``, ``2026-01-31T09:00+01:00``. A time without an offset is
  UTC (the station stores and prints every time in UTC), never the line PC's local time; a date alone is its
  midnight, UTC;
- a span back from now: a whole number and a unit, ``45s``, ``30m``, ``8h``, ``2d``, ``1w``: now minus the span.

It returns seconds since the epoch. A value it cannot read raises :class:`TimeParseError`, one sentence.
"""

from __future__ import annotations

import re
import time
from datetime import datetime, timezone

from engine.core.errors import StationError

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
FORMS = "seconds since 1970, an ISO 8601 date or time (2026-01-31, 2026-01-31T08:00 in UTC, or with an offset " \
        "such as +01:00) or a span back from now (30m, 8h, 2d, 1w)"

_SPAN = re.compile(r"(\d+)\s*([smhdw])", re.IGNORECASE)
_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)")


class TimeParseError(StationError, ValueError):
    """A value that is not a time; one sentence."""


def parse_time(text: str, now: float | None = None) -> float:
    """Seconds since the epoch from any of the module's forms; ``now`` (default: the clock) anchors a span."""
    t = str(text).strip()
    if _NUMBER.fullmatch(t):
        return float(t)
    span = _SPAN.fullmatch(t)
    if span:
        return (time.time() if now is None else float(now)) - int(span.group(1)) * UNITS[span.group(2).lower()]
    iso = t[:-1] + "+00:00" if t.endswith(("Z", "z")) else t
    try:
        d = datetime.fromisoformat(iso)
    except ValueError:
        raise TimeParseError(f"{text!r} is not a time: use {FORMS}") from None
    if d.tzinfo is None:
        d = d.replace(tzinfo=timezone.utc)
    return d.timestamp()

