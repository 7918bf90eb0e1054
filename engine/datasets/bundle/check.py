"""Reading a bundle (a folder or a ZIP file) and checking it against its ``SHA256SUMS``.

A bundle comes from another machine and is read as hostile: in a folder only regular files are
read, opened one path component at a time without following any link (``O_NOFOLLOW``), never a
FIFO, a device or a link out of the bundle; in a ZIP every member's name must stay inside the
bundle (no ``..``, no absolute path, no drive, no backslash). Anything else is one sentence
(:class:`BundleError`) at once.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import stat
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Callable

from engine.datasets.bundle.formats import FORMAT_NAME, FORMAT_VERSION, MANIFEST, SUMS
from engine.datasets.bundle.selection import BundleError

CHUNK = 1 << 20


def _bad_name(name: str) -> bool:
    """Whether a name inside a bundle could point outside it (or is no plain relative path)."""
    if not name or name.startswith("/") or "\\" in name or "\x00" in name or (len(name) > 1 and name[1] == ":"):
        return True
    return any(part in ("", ".", "..") for part in name.rstrip("/").split("/"))


def _kind(mode: int) -> str:
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


class BundleReader:
    """The files of a bundle by their names inside it (``images/ab….png``), whether a folder or a ZIP."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._zip: zipfile.ZipFile | None = None
        self._names: list[str] | None = None
        if self.path.is_dir():
            return
        if not self.path.exists():
            raise BundleError(f"{self.path} does not exist")
        if not self.path.is_file():
            raise BundleError(f"{self.path} is neither a bundle folder nor a ZIP file (it is not a regular file)")
        try:
            self._zip = zipfile.ZipFile(self.path)
            infos = self._zip.infolist()
        except (zipfile.BadZipFile, OSError, ValueError) as e:
            raise BundleError(f"{self.path} is neither a bundle folder nor a ZIP file ({e})") from None
        seen: set[str] = set()
        for info in infos:
            if _bad_name(info.filename):
                self._zip.close()
                raise BundleError(f"{self.path} holds a member named {info.filename[:80]!r}, which points outside "
                                  "the bundle; it is not read")
            if info.filename in seen:
                self._zip.close()
                raise BundleError(f"{self.path} holds two members named {info.filename[:80]!r}; it is not read")
            seen.add(info.filename)
        self._names = [i.filename for i in infos if not i.is_dir()]

    @property
    def is_zip(self) -> bool:
        return self._zip is not None

    def names(self) -> list[str]:
        """Every file of the bundle; a link, FIFO, device or socket anywhere in a folder is a BundleError."""
        if self._names is not None:
            return list(self._names)
        out: list[str] = []
        stack = [""]
        while stack:
            rel = stack.pop()
            try:
                with os.scandir(self.path / rel if rel else self.path) as it:
                    entries = list(it)
            except OSError as e:
                raise BundleError(f"{self.path / rel} cannot be read ({e.strerror or e})") from None
            for entry in entries:
                name = f"{rel}/{entry.name}" if rel else entry.name
                try:
                    mode = entry.stat(follow_symlinks=False).st_mode
                except OSError as e:
                    raise BundleError(f"{name} in {self.path} cannot be read ({e.strerror or e})") from None
                if stat.S_ISDIR(mode):
                    stack.append(name)
                elif stat.S_ISREG(mode):
                    out.append(name)
                else:
                    raise BundleError(f"{self.path} holds {name}, which is {_kind(mode)}; a bundle holds regular "
                                      "files only and this one is not read")
        self._names = sorted(out)
        return list(self._names)

    def exists(self, name: str) -> bool:
        if _bad_name(name):
            return False
        if self._zip is not None:
            try:
                self._zip.getinfo(name)
                return True
            except KeyError:
                return False
        try:
            return stat.S_ISREG(os.lstat(self.path / name).st_mode)
        except OSError:
            return False

    def _open_file(self, name: str) -> BinaryIO:
        """A regular file inside the folder, reached without following any link; never blocks on a FIFO."""
        if _bad_name(name):
            raise BundleError(f"{name[:80]!r} is not a name inside a bundle")
        parts = name.split("/")
        nofollow = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
        fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0))
        try:
            for part in parts[:-1]:
                nxt = os.open(part, nofollow | getattr(os, "O_DIRECTORY", 0), dir_fd=fd)
                os.close(fd)
                fd = nxt
            nxt = os.open(parts[-1], nofollow | getattr(os, "O_NONBLOCK", 0), dir_fd=fd)
            os.close(fd)
            fd = nxt
            mode = os.fstat(fd).st_mode
            if not stat.S_ISREG(mode):
                raise BundleError(f"{name} in {self.path} is {_kind(mode)}; a bundle holds regular files only")
            return os.fdopen(fd, "rb")
        except OSError as e:
            os.close(fd)
            if e.errno == errno.ELOOP or e.errno == errno.ENOTDIR:
                raise BundleError(f"{name} in {self.path} goes through a symbolic link; it is not read") from None
            if e.errno == errno.ENOENT:
                raise FileNotFoundError(e.errno, e.strerror, name) from None
            raise BundleError(f"{name} in {self.path} cannot be read ({e.strerror or e})") from None
        except BaseException:
            os.close(fd)
            raise

    def opener(self, name: str) -> Callable[[], BinaryIO]:
        if self._zip is not None:
            z = self._zip
            return lambda: z.open(name)  # type: ignore[return-value]
        return lambda: self._open_file(name)

    def read(self, name: str) -> bytes:
        if self._zip is not None:
            return self._zip.read(name)
        with self._open_file(name) as f:
            return f.read()

    def json(self, name: str) -> Any:
        try:
            return json.loads(self.read(name))
        except (KeyError, FileNotFoundError):
            raise BundleError(f"{self.path} has no {name}") from None
        except (ValueError, RecursionError) as e:
            raise BundleError(f"{name} in {self.path} is not valid JSON ({e})") from None

    def sha256(self, name: str) -> str:
        h = hashlib.sha256()
        with self.opener(name)() as f:
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
            res.problems += _manifest_problems(reader, res)
        res.problems += _split_problems(reader, present)
        return res
    finally:
        reader.close()


def _manifest_problems(reader: BundleReader, res: VerifyResult) -> list[str]:
    try:
        m = json.loads(reader.read(MANIFEST))
    except (ValueError, RecursionError) as e:
        return [f"{MANIFEST} is not valid JSON ({e})"]
    if not isinstance(m, dict):
        return [f"{MANIFEST} holds a JSON {type(m).__name__}, not the object a bundle manifest is"]
    res.manifest = m
    if m.get("format") != FORMAT_NAME:
        return [f"{MANIFEST} names the format {str(m.get('format'))[:60]!r}, not {FORMAT_NAME!r}"]
    version = m.get("format_version", 0)
    if not isinstance(version, int) or isinstance(version, bool):
        return [f"{MANIFEST} gives the format version {str(version)[:40]!r}, not a whole number"]
    if version > FORMAT_VERSION:
        return [f"format version {version} is newer than this station reads ({FORMAT_VERSION})"]
    return []


def _split_problems(reader: BundleReader, present: set[str]) -> list[str]:
    """The YOLO list files of the splits: each line one of the bundle's own images, no image in two splits."""
    from engine.datasets.bundle.formats import list_name
    from engine.datasets.bundle.splits import SPLITS

    problems: list[str] = []
    where: dict[str, str] = {}
    for split in SPLITS:
        name = list_name(split)
        if name not in present:
            continue
        for n, line in enumerate(reader.read(name).decode("utf-8", "replace").splitlines(), 1):
            member = line[2:] if line.startswith("./") else None
            if member is None or _bad_name(member) or not member.startswith("images/") or member not in present:
                problems.append(f"{name} line {n} names {line[:80]!r}, which is not one of the bundle's images")
            elif member in where:
                problems.append(f"{member} is in both the {where[member]} and the {split} split")
            else:
                where[member] = split
            if len(problems) > 20:
                return problems
    return problems
