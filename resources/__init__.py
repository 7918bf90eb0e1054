"""Files the station ships with: default configuration, icons, built-in model."""

from __future__ import annotations

from importlib import resources as _res
from pathlib import Path


def path(name: str) -> Path:
    """Filesystem path of a shipped resource file."""
    return Path(str(_res.files(__name__).joinpath(name)))
