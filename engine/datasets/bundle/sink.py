"""Writing a bundle so that only a complete one ever carries its final name.

Everything goes to a hidden temporary name beside the target (``.NAME.partial-PID-XXXXXXXX``): a folder, or a
ZIP file. ``SHA256SUMS`` and ``manifest.json`` are written last, the contents are flushed to disk, and only
then is the temporary renamed to the target (and the parent folder synced). A cancelled or failed export
removes its temporary; one killed outright leaves a hidden ``.partial`` that has no ``SHA256SUMS`` and is
never mistaken for a bundle (the next export to the same name removes it once that process is gone).
"""

from __future__ import annotations

import ctypes
import errno
import hashlib
import os
import shutil
import sys
import uuid
import zipfile
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from pathlib import Path
from typing import BinaryIO, Callable, Iterable

from engine.datasets.bundle.formats import SUMS
from engine.datasets.bundle.selection import BundleError
from engine.core.files import fsync_path, sha256_file

CHUNK = 1 << 20


class Cancelled(BundleError):
    """The export was cancelled; nothing was left behind."""


def os_sentence(e: OSError, target: Path) -> str:
    if e.errno == errno.ENOSPC:
        return f"the disk holding {target.parent} is full; the bundle was not written"
    if e.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return f"{target.parent} cannot be written (read-only or no permission)"
    return f"writing {target} failed: {e.strerror or e}"


Source = Path | Callable[[], BinaryIO]  # a file, or something that opens one (a member of a ZIP)


def _copy_hashing(src: Source, dst: Path | None, out: object | None = None) -> str:
    """Copy ``src`` to ``dst`` (or into the open file ``out``), hashing the bytes as they pass."""
    h = hashlib.sha256()
    with (open(src, "rb") if isinstance(src, Path) else src()) as fi:
        fo = open(dst, "wb") if dst is not None else out
        try:
            while True:
                b = fi.read(CHUNK)
                if not b:
                    break
                h.update(b)
                fo.write(b)  # type: ignore[union-attr]
        finally:
            if dst is not None:
                fo.close()  # type: ignore[union-attr]
    return h.hexdigest()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def remove_stale_partials(target: Path) -> None:
    """Temporaries that an export killed outright left beside ``target`` (the process that wrote each is named
    in it; one still running is left alone)."""
    for p in target.parent.glob(f".{target.name}.partial-*"):
        pid = p.name.rsplit(".partial-", 1)[1].split("-")[0]
        if not pid.isdigit() or _alive(int(pid)):
            continue
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)


def _sync_tree(root: Path, files: Iterable[Path], threads: int) -> None:
    """Make every file under ``root`` durable: one ``syncfs`` on Linux, else an fsync per file."""
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            fd = os.open(root, os.O_RDONLY)
            try:
                if libc.syncfs(fd) == 0:
                    return
            finally:
                os.close(fd)
        except (OSError, AttributeError):
            pass

    with ThreadPoolExecutor(max(1, threads)) as ex:
        list(ex.map(fsync_path, files))


class Sink:
    """A bundle being written: files by name, each hashed as it is written, then sealed or thrown away."""

    def __init__(self, target: Path, as_zip: bool, threads: int = 2, link_images: bool = False) -> None:
        self.target = target
        self.as_zip = as_zip
        self.threads = max(1, threads)
        self.link_images = link_images
        self.sums: dict[str, str] = {}
        self.tmp = target.with_name(f".{target.name}.partial-{os.getpid()}-{uuid.uuid4().hex[:8]}")
        self._zip: zipfile.ZipFile | None = None
        self._dirs: set[Path] = set()
        if as_zip:
            self._zip = zipfile.ZipFile(self.tmp, "w", zipfile.ZIP_DEFLATED, compresslevel=1, allowZip64=True)
        else:
            self.tmp.mkdir()

    def _path(self, name: str) -> Path:
        p = self.tmp / name
        if p.parent not in self._dirs:
            p.parent.mkdir(parents=True, exist_ok=True)
            self._dirs.add(p.parent)
        return p

    def add_bytes(self, name: str, data: bytes) -> None:
        self.sums[name] = hashlib.sha256(data).hexdigest()
        if self._zip is not None:
            self._zip.writestr(name, data)
        else:
            with open(self._path(name), "wb") as f:
                f.write(data)

    def add_images(self, items: list[tuple[str, Source, str]], on_done: Callable[[], None],
                   cancelled: Callable[[], bool]) -> None:
        """Copy (or hard-link) files whose SHA-256 is known: each is hashed as it passes and checked."""
        def check(name: str, src: Source, want: str, got: str) -> None:
            if got != want:
                where = src if isinstance(src, Path) else name
                raise BundleError(f"image {where} is damaged: its content no longer matches its name")
            self.sums[name] = got

        if self._zip is not None:
            for name, src, want in items:
                if cancelled():
                    raise Cancelled("the export was cancelled; nothing was written")
                with self._zip.open(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), "w",
                                    force_zip64=True) as out:
                    got = _copy_hashing(src, None, out)
                check(name, src, want, got)
                on_done()
            return
        for name, _, _ in items[:1]:
            self._path(name)

        def one(item: tuple[str, Source, str]) -> None:
            name, src, want = item
            dst = self.tmp / name
            got = None
            if self.link_images and isinstance(src, Path):
                try:
                    os.link(src, dst)
                    got = sha256_file(dst)
                except OSError as e:
                    if e.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
                        raise
            if got is None:
                got = _copy_hashing(src, dst)
            check(name, src, want, got)

        it = iter(items)
        with ThreadPoolExecutor(self.threads) as ex:
            running = set()
            try:
                for item in it:
                    running.add(ex.submit(one, item))
                    if len(running) >= 4 * self.threads:
                        done, running = wait(running, return_when=FIRST_COMPLETED)
                        for d in done:
                            d.result()
                            on_done()
                        if cancelled():
                            raise Cancelled("the export was cancelled; nothing was written")
                for d in running:
                    d.result()
                    on_done()
                running = set()
            finally:
                for r in running:
                    r.cancel()
        if cancelled():
            raise Cancelled("the export was cancelled; nothing was written")

    def seal(self) -> None:
        """Write ``SHA256SUMS``, make it all durable, and give the bundle its name."""
        lines = "".join(f"{self.sums[n]}  {n}\n" for n in sorted(self.sums))
        if self._zip is not None:
            self._zip.writestr(SUMS, lines.encode())
            self._zip.close()
            fd = os.open(self.tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        else:
            with open(self.tmp / SUMS, "wb") as f:
                f.write(lines.encode())
            _sync_tree(self.tmp, [self.tmp / n for n in self.sums] + [self.tmp / SUMS], self.threads * 4)
            for d in sorted(self._dirs | {self.tmp}, key=lambda p: len(p.parts), reverse=True):
                fsync_path(d)
        if self.target.exists():
            raise BundleError(f"{self.target} appeared while the bundle was written; it was left as it is")
        os.rename(self.tmp, self.target)
        fsync_path(self.target.parent)

    def abort(self) -> None:
        if self._zip is not None:
            try:
                self._zip.close()
            except Exception:
                pass
            self.tmp.unlink(missing_ok=True)
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)
