"""Configuration: defaults shipped in resources/, a TOML file on top, command-line flags on top of that.

Every key has a default and a type; a key the defaults do not know, or a value of
the wrong type, is an error with the file and key named.
"""

from __future__ import annotations

import copy
import socket
import tomllib
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
