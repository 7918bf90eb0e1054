"""What a recalibration keeps in the data directory, apart from its report: lens profiles
(``lens_profiles/<time>.json``), the station's active reference (``station.json``, read by
:func:`engine.monitoring.drift.measurers_for`) and data collection campaigns (``campaigns/<time>.json``, read by
the review router). Every file is written through a temporary name, fsync and rename.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.calibration.lens import CalibrationError, LensProfile, utc_now, write_json_atomic
from engine.monitoring.drift import STATION_FILE


def lens_profile_dir(data_dir: Path) -> Path:
    return Path(data_dir) / "lens_profiles"


def latest_lens_profile(data_dir: Path) -> LensProfile | None:
    """The newest lens profile kept in the data directory, or ``None``."""
    d = lens_profile_dir(data_dir)
    if not d.is_dir():
        return None
    for p in sorted(d.glob("*.json"), reverse=True):
        try:
            return LensProfile.load(p)
        except CalibrationError:
            continue
    return None


def utc_stamp() -> str:
    """The time now, UTC, as a file name: ``20260131T080000Z``."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())


def unique_path(path: Path) -> Path:
    """``path``, or ``<stem>-2<suffix>`` and so on when it is taken."""
    n, out = 1, path
    while out.exists():
        n += 1
        out = path.with_name(f"{path.stem}-{n}{path.suffix}")
    return out


def save_lens_profile(data_dir: Path, profile: LensProfile, stamp: str | None = None) -> Path:
    path = unique_path(lens_profile_dir(data_dir) / f"{stamp or utc_stamp()}.json")
    return profile.save(path)


def set_station_reference(data_dir: Path, path: Path, ref_id: str, who: str, why: str) -> Path:
    """Make ``path`` the station's active reference (``<data dir>/station.json``)."""
    out = Path(data_dir) / STATION_FILE
    current: dict[str, Any] = {}
    if out.is_file():
        try:
            current = json.loads(out.read_text())
        except (OSError, ValueError):
            current = {}
    current.update(reference=str(path), reference_id=ref_id, reference_set_utc=utc_now(), reference_set_by=who,
                   reference_reason=why)
    write_json_atomic(out, current)
    return out


@dataclass
class Campaign:
    """Route every ``every_n``-th frame to the review queue for the next ``frames`` frames (a data collection)."""

    id: str
    every_n: int
    frames: int
    reason: str
    opened_utc: str = ""
    seen: int = 0
    path: Path | None = None

    def take(self) -> bool:
        """Count one frame; ``True`` when this one goes to the review queue. Progress is saved now and then."""
        if self.seen >= self.frames:
            return False
        self.seen += 1
        if self.path is not None and (self.seen % 1000 == 0 or self.seen == self.frames):
            try:
                self.save(self.path)
            except OSError:
                pass  # progress is a convenience; the campaign goes on in memory
        return self.seen % self.every_n == 0

    @property
    def active(self) -> bool:
        return self.seen < self.frames

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "every_n": self.every_n, "frames": self.frames, "reason": self.reason,
                "opened_utc": self.opened_utc, "seen": self.seen}

    def save(self, path: Path) -> Path:
        write_json_atomic(path, self.to_dict())
        return path


def active_campaign(data_dir: Path) -> Campaign | None:
    """The newest data collection campaign in ``<data dir>/campaigns`` that still has frames to collect."""
    d = Path(data_dir) / "campaigns"
    if not d.is_dir():
        return None
    for p in sorted(d.glob("*.json"), reverse=True):
        try:
            raw = json.loads(p.read_text())
            c = Campaign(str(raw["id"]), max(1, int(raw["every_n"])), int(raw["frames"]), str(raw.get("reason", "")),
                         str(raw.get("opened_utc", "")), int(raw.get("seen", 0)), p)
        except (OSError, ValueError, KeyError, TypeError):
            continue
        return c if c.active else None
    return None
