"""The runtime dependencies in pyproject.toml are honest: each is imported by the station, and every
third-party module the station imports is declared."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("app", "widgets", "engine")
OWN = {"app", "widgets", "engine", "resources"}
# Distributions whose import name differs from their name.
IMPORT_NAMES = {
    "pyside6-essentials": "PySide6",
    "opencv-python-headless": "cv2",
    "sqlite-utils": "sqlite_utils",
    "cupy-cuda12x": "cupy",
    "pyyaml": "yaml",
}
# Extras the station imports only when they are installed (with a fallback when they are not).
OPTIONAL_EXTRAS = ("gpu",)


def _distribution(requirement: str) -> str:
    return re.split(r"[\s<>=!~;\[]", requirement.strip(), maxsplit=1)[0].lower()


def _module(distribution: str) -> str:
    return IMPORT_NAMES.get(distribution, distribution.replace("-", "_"))


def _project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def declared() -> dict[str, str]:
    """Import name -> distribution, for every runtime dependency."""
    return {_module(_distribution(r)).lower(): _distribution(r) for r in _project()["dependencies"]}


def optional() -> set[str]:
    extras = _project().get("optional-dependencies", {})
    return {_module(_distribution(r)).lower() for e in OPTIONAL_EXTRAS for r in extras.get(e, [])}


def imported() -> dict[str, set[str]]:
    """Top-level third-party module -> the files under app/, widgets/ and engine/ importing it."""
    found: dict[str, set[str]] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    top = name.split(".")[0]
                    if top not in sys.stdlib_module_names and top not in OWN:
                        found.setdefault(top, set()).add(str(path.relative_to(ROOT)))
    return found


def test_the_mapping_of_distributions_to_modules():
    assert _distribution("PySide6-Essentials>=6.6,<6.12") == "pyside6-essentials"
    assert _module("pyside6-essentials") == "PySide6" and _module("jinja2") == "jinja2"
    assert _module("sqlite-utils") == "sqlite_utils" and _module("opencv-python-headless") == "cv2"


def test_every_declared_dependency_is_imported():
    used = {m.lower() for m in imported()}
    unused = sorted(dist for module, dist in declared().items() if module not in used)
    assert not unused, f"declared in [project] dependencies but imported nowhere in {', '.join(PACKAGES)}: {unused}"


def test_every_third_party_import_is_declared():
    allowed = set(declared()) | optional()
    undeclared = {m: sorted(files)[:3] for m, files in imported().items() if m.lower() not in allowed}
    assert not undeclared, f"imported but not declared in [project] dependencies: {undeclared}"


def test_matplotlib_is_neither_declared_nor_imported():
    assert "matplotlib" not in declared() and "matplotlib" not in imported()
