"""The command-line commands, one module per group. Each has ``register(subparsers, common)``
which adds its parser and sets ``func(args, config) -> exit status``."""

from __future__ import annotations

import argparse
from typing import Any

from engine.core.config import prepare_data_dir
from engine.core.errors import StationError

EXIT_USER_ERROR = 2
EXIT_NOT_STORED = 3  # a headless run ended with decisions that were not stored
EXIT_INTERRUPTED = 130


class UserError(StationError):
    """Something the user can fix; the message is shown as it is."""


def positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if v <= 0:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {v}")
    return v


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None


def fraction(text: str) -> float:
    """An argparse type: a number from 0 to 1 (a confidence, a share)."""
    v = _number(text)
    if not 0.0 <= v <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {v}")
    return v


def positive_float(text: str) -> float:
    """An argparse type: a number above 0."""
    v = _number(text)
    if not v > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {v:g}")
    return v


def when(text: str | None, option: str = "--since") -> float | None:
    """Every ``--since`` / ``--until`` read one way (:func:`engine.core.timeparse.parse_time`): seconds since
    1970, an ISO 8601 date or time (UTC unless it carries an offset) or a span back from now (``30m``, ``8h``,
    ``2d``, ``1w``). None stays None; a bad value is a :class:`UserError`, one sentence."""
    from engine.core.timeparse import TimeParseError, parse_time

    if text is None:
        return None
    try:
        return parse_time(text)
    except TimeParseError as e:
        raise UserError(f"{option} {e}") from None


WHEN_HELP = ("seconds since 1970, an ISO 8601 date or time such as 2026-01-31T08:00 (UTC unless an offset "
             "such as +01:00 follows), or a span back from now: 30m, 8h, 2d, 1w")


def data_dir(args: argparse.Namespace) -> Any:
    """The data directory named by ``--data-dir`` (or the default), created if needed."""
    return prepare_data_dir(getattr(args, "data_dir", None))
