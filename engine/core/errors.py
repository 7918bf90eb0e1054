"""The one root of every error a user can fix.

A :class:`StationError` is something the person at the station can act on: a missing file, a damaged
database, a wrong PIN, a model that cannot be read. Its ``str()`` is one sentence, shown as it is by the
command line (``inspection-station: error: <sentence>``, exit status 2) and by the window. Anything else
that escapes is a bug and keeps its traceback.
"""

from __future__ import annotations


class StationError(Exception):
    """Something the user can fix; ``str()`` is one sentence."""
