"""Reading a bundle (a folder or a ZIP file) and checking it against its ``SHA256SUMS``."""

from __future__ import annotations

import hashlib
import json
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Callable

from engine.datasets.bundle.formats import FORMAT_NAME, FORMAT_VERSION, MANIFEST, SUMS
from engine.datasets.bundle.selection import BundleError

CHUNK = 1 << 20


class BundleReader:
    """The files of a bundle by their names inside it (``images/ab….png``), whether a folder or a ZIP."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._zip: zipfile.ZipFile | None = None
        if self.path.is_dir():
            return
        if not self.path.exists():
            raise BundleError(f"{self.path} does not exist")
        try:
            self._zip = zipfile.ZipFile(self.path)
        except (zipfile.BadZipFile, OSError) as e:
            raise BundleError(f"{self.path} is neither a bundle folder nor a ZIP file ({e})") from None

    @property
    def is_zip(self) -> bool:
        return self._zip is not None

    def names(self) -> list[str]:
        if self._zip is not None:
            return [i.filename for i in self._zip.infolist() if not i.is_dir()]
        return sorted(p.relative_to(self.path).as_posix() for p in self.path.rglob("*") if not p.is_dir())

    def exists(self, name: str) -> bool:
        if self._zip is not None:
            try:
                self._zip.getinfo(name)
                return True
            except KeyError:
                return False
        return (self.path / name).is_file()

    def opener(self, name: str) -> Path | Callable[[], BinaryIO]:
        if self._zip is not None:
            z = self._zip
            return lambda: z.open(name)  # type: ignore[return-value]
        return self.path / name

    def read(self, name: str) -> bytes:
        if self._zip is not None:
            return self._zip.read(name)
        return (self.path / name).read_bytes()

    def json(self, name: str) -> Any:
        try:
            return json.loads(self.read(name))
        except (KeyError, FileNotFoundError):
            raise BundleError(f"{self.path} has no {name}") from None
        except ValueError as e:
            raise BundleError(f"{name} in {self.path} is not valid JSON ({e})") from None

    def sha256(self, name: str) -> str:
        h = hashlib.sha256()
        op = self.opener(name)
        with (open(op, "rb") if isinstance(op, Path) else op()) as f:
            while True:
                b = f.read(CHUNK)
                if not b:
                    break
                h.update(b)
        return h.hexdigest()

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()


@dataclass
class VerifyResult:
    path: Path
    checked: int = 0
    problems: list[str] = field(default_factory=list)
    manifest: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems


def read_sums(data: bytes) -> tuple[dict[str, str], list[str]]:
    sums, bad = {}, []
    for n, line in enumerate(data.decode("utf-8", "replace").splitlines(), 1):
        if not line.strip():
            continue
        digest, sep, name = line.partition("  ")
        name = name.lstrip("*")
        if not sep or len(digest) != 64 or not name:
            bad.append(f"{SUMS} line {n} is not 'SHA256  NAME'")
            continue
        sums[name] = digest.lower()
    return sums, bad


def verify(path: Path, threads: int = 2) -> VerifyResult:
    """Every file listed in ``SHA256SUMS`` present and unchanged, nothing unlisted, a readable manifest."""
    reader = BundleReader(path)
    try:
        res = VerifyResult(Path(path))
        if not reader.exists(SUMS):
            raise BundleError(f"{path} is not a feedback bundle: it has no {SUMS}")
        sums, res.problems = read_sums(reader.read(SUMS))
        present = set(reader.names())
        res.problems += [f"missing: {n}" for n in sorted(sums) if n not in present]
        res.problems += [f"extra: {n}" for n in sorted(present - set(sums) - {SUMS})]
        todo = [n for n in sorted(sums) if n in present]
        with ThreadPoolExecutor(1 if reader.is_zip else max(1, threads)) as ex:
            for name, got in zip(todo, ex.map(reader.sha256, todo)):
                res.checked += 1
                if got != sums[name]:
                    res.problems.append(f"changed: {name}")
        if MANIFEST not in sums:
            res.problems.append(f"{MANIFEST} is not listed in {SUMS}")
        elif MANIFEST in present:
            try:
                m = json.loads(reader.read(MANIFEST))
                res.manifest = m
                if m.get("format") != FORMAT_NAME:
                    res.problems.append(f"{MANIFEST} names the format {m.get('format')!r}, not {FORMAT_NAME!r}")
                elif int(m.get("format_version", 0)) > FORMAT_VERSION:
                    res.problems.append(f"format version {m.get('format_version')} is newer than this station "
                                        f"reads ({FORMAT_VERSION})")
            except (ValueError, TypeError) as e:
                res.problems.append(f"{MANIFEST} is not valid JSON ({e})")
        return res
    finally:
        reader.close()
