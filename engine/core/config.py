"""Configuration: defaults shipped in resources/, a TOML file on top, command-line flags on top of that.

Every key has a default and a type; a key the defaults do not know, or a value of
the wrong type, is an error with the file and key named. Every numeric key also has a range
(``resources/setting_ranges.toml``, beside the defaults): a value outside it, NaN or an
infinity is refused the same way, as are a few pairs that must be in order (the first retry
no longer than the longest, ``boundary_low`` below ``boundary_high``, ``min_views`` at most
``max_views``).
"""

from __future__ import annotations

import copy
import functools
import math
import re
import socket
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import platformdirs

import resources
from engine.core.errors import StationError

APP_NAME = "inspection-station"


class ConfigError(StationError, ValueError):
    """The configuration file cannot be used; the message names the file and key."""


# Settings that take one of a few words.
CHOICES: dict[str, tuple[str, ...]] = {"drift.backend": ("auto", "cpu", "gpu")}


# Pairs of settings whose first must not exceed the second.
ORDERED: tuple[tuple[str, str], ...] = (("pipeline.retry_initial_s", "pipeline.retry_max_s"),
                                        ("agreement.boundary_low", "agreement.boundary_high"),
                                        ("calibration.min_views", "calibration.max_views"))

_INTERVAL = re.compile(r"\s*([\[(])\s*([^,\s]+)\s*,\s*([^\])\s]+)\s*([\])])\s*\Z")


@dataclass(frozen=True)
class Range:
    """An interval of allowed values: ``[low, high]``, either end open; NaN is never inside."""

    low: float
    high: float
    low_open: bool = False
    high_open: bool = False

    @classmethod
    def parse(cls, text: str) -> Range:
        m = _INTERVAL.match(text)
        if not m:
            raise ValueError(f"{text!r} is not an interval such as '[0, 1]' or '(0, inf)'")
        low, high = _number(m.group(2)), _number(m.group(3))
        if math.isnan(low) or math.isnan(high) or low > high:
            raise ValueError(f"{text!r} is not an interval")
        return cls(low, high, m.group(1) == "(", m.group(4) == ")")

    def __contains__(self, value: object) -> bool:
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            return False
        if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
            return False
        above = value > self.low if self.low_open else value >= self.low
        below = value < self.high if self.high_open else value <= self.high
        return above and below

    def __str__(self) -> str:
        def num(x: float) -> str:
            return "inf" if isinstance(x, float) and math.isinf(x) else Range._n(x)

        return f"{'(' if self.low_open else '['}{num(self.low)}, {num(self.high)}{')' if self.high_open else ']'}"

    def words(self) -> str:
        """The range as a phrase: 'between 0 and 1', 'above 0 and at most 3600'."""
        low = f"{'above' if self.low_open else 'at least'} {Range._n(self.low)}"
        high = f"{'below' if self.high_open else 'at most'} {Range._n(self.high)}"
        if not self.low_open and not self.high_open:
            return f"between {Range._n(self.low)} and {Range._n(self.high)}"
        return f"{low} and {high}"

    @staticmethod
    def _n(x: float) -> str:
        if isinstance(x, int):
            return str(x)
        return "infinity" if math.isinf(x) else (str(int(x)) if x == int(x) and abs(x) < 1e15 else f"{x:g}")


def _number(text: str) -> float:
    return int(text) if re.fullmatch(r"[-+]?\d+", text) else float(text)  # whole bounds compare exactly


@functools.cache
def ranges() -> dict[str, dict[str, Range]]:
    """``{"settings": {"drift.batch_frames": Range, ...}, "uri.sim": {"dt": Range, ...}}`` from the ranges table."""
    with open(resources.path("setting_ranges.toml"), "rb") as f:
        raw = tomllib.load(f)
    out: dict[str, dict[str, Range]] = {}

    def walk(table: dict[str, Any], prefix: str, into: dict[str, Range]) -> None:
        for key, value in table.items():
            name = f"{prefix}.{key}" if prefix else key
            if isinstance(value, dict):
                walk(value, name, into)
            else:
                into[name] = Range.parse(value)

    walk(raw.get("settings", {}), "", out.setdefault("settings", {}))
    for kind, table in raw.get("uri", {}).items():
        walk(table, "", out.setdefault(f"uri.{kind}", {}))
    return out


def out_of_range(table: str, name: str, value: Any) -> str | None:
    """``None`` when ``value`` is within the stated range of ``name`` (in ``table``), else what is wrong."""
    r = ranges().get(table, {}).get(name)
    if r is None or value in r:
        return None
    return f"must be {r.words()}, not {value!r}"


def check_ranges(cfg: dict[str, Any], origin: str) -> None:
    """Every numeric setting within its range and the ordered pairs in order; ConfigError naming the key."""
    def walk(table: dict[str, Any], prefix: str) -> None:
        for key, value in table.items():
            name = f"{prefix}.{key}" if prefix else key
            if isinstance(value, dict):
                walk(value, name)
            elif isinstance(value, (int, float)) and not isinstance(value, bool):
                problem = out_of_range("settings", name, value)
                if problem:
                    raise ConfigError(f"{origin}: {name} {problem}")

    walk(cfg, "")
    for first, second in ORDERED:
        a, b = _get(cfg, first), _get(cfg, second)
        if isinstance(a, (int, float)) and isinstance(b, (int, float)) and a > b:
            raise ConfigError(f"{origin}: {first} ({a!r}) must not exceed {second} ({b!r})")


def _get(cfg: dict[str, Any], dotted: str) -> Any:
    node: Any = cfg
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def default_config() -> dict[str, Any]:
    with open(resources.path("default_config.toml"), "rb") as f:
        return tomllib.load(f)


def default_config_path() -> Path:
    return Path(platformdirs.user_config_dir(APP_NAME)) / "config.toml"


def default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir(APP_NAME))


def _merge(base: dict[str, Any], over: dict[str, Any], where: str, origin: str) -> None:
    for key, value in over.items():
        name = f"{where}.{key}" if where else key
        if key not in base:
            known = ", ".join(sorted(base))
            raise ConfigError(f"{origin}: unknown setting {name!r} (known here: {known})")
        current = base[key]
        if isinstance(current, dict):
            if not isinstance(value, dict):
                raise ConfigError(f"{origin}: {name} must be a table")
            _merge(current, value, name, origin)
            continue
        if isinstance(current, bool) != isinstance(value, bool):
            raise ConfigError(f"{origin}: {name} must be true or false" if isinstance(current, bool)
                              else f"{origin}: {name} must be a {type(current).__name__}, not {value!r}")
        if isinstance(current, float) and isinstance(value, int):
            value = float(value)
        if type(value) is not type(current):
            raise ConfigError(f"{origin}: {name} must be a {type(current).__name__}, not {value!r}")
        if name in CHOICES and value not in CHOICES[name]:
            raise ConfigError(f"{origin}: {name} must be one of {', '.join(map(repr, CHOICES[name]))}, not {value!r}")
        base[key] = value


def load_config(path: Path | None = None) -> dict[str, Any]:
    """Defaults, overridden by ``path`` (or the user's config file if it exists)."""
    cfg = copy.deepcopy(default_config())
    explicit = path is not None
    path = Path(path) if path is not None else default_config_path()
    if not path.exists():
        if explicit:
            raise ConfigError(f"config file {path} does not exist")
        return cfg
    try:
        with open(path, "rb") as f:
            user = tomllib.load(f)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"config file {path} is not valid TOML: {e}") from None
    except OSError as e:
        raise ConfigError(f"config file {path} cannot be read: {e.strerror}") from None
    _merge(cfg, user, "", str(path))
    check_ranges(cfg, str(path))
    return cfg


def prepare_data_dir(path: Path | None) -> Path:
    """The data directory, created if needed; a clear error when it cannot be."""
    d = Path(path).expanduser() if path is not None else default_data_dir()
    try:
        d.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"data directory {d} cannot be created: {e.strerror}") from None
    if not d.is_dir():
        raise ConfigError(f"data directory {d} is not a directory")
    return d


def station_id(config: dict[str, Any]) -> str:
    """The station's name: ``[station] id``, or the computer's host name when that is empty."""
    return config.get("station", {}).get("id") or socket.gethostname() or "station"
