"""The content-addressed image store: every stored frame is a PNG file named by the SHA-256 of its bytes.

A file lives at ``<data dir>/images/<first 2 hex digits>/<sha256>.png``; :class:`ImageStore` is the only
place that spells that path. Files are written atomically (temporary file, fsync, rename, fsync of the
folder) before the database row that names them commits, so a crash leaves at worst a file no row names,
which :meth:`ImageStore.sweep` removes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

import cv2
import numpy as np

from engine.core.files import write_atomic

IMAGES_DIR = "images"
SUFFIX = ".png"


class ImageStore:
    """The image files of one data directory, by content hash."""

    def __init__(self, data_dir: Path) -> None:
        self.root = Path(data_dir) / IMAGES_DIR

    def path(self, sha: str) -> Path:
        """Where the image with this SHA-256 lives (whether or not it is there)."""
        return self.root / sha[:2] / f"{sha}{SUFFIX}"

    def has(self, sha: str) -> bool:
        return self.path(sha).is_file()

    def missing(self, shas: Iterable[str]) -> list[str]:
        """The hashes, in order, whose file is not in the store."""
        return [s for s in shas if not self.has(s)]

    def put(self, data: bytes, durable: bool = True) -> str:
        """Store encoded image bytes under their SHA-256 (unless already there); the hash.

        ``durable`` (the default) writes atomically and fsyncs; without it the bytes are written plainly,
        for synthetic stores built in bulk that no crash can matter to."""
        sha = hashlib.sha256(data).hexdigest()
        path = self.path(sha)
        if not path.exists():
            if durable:
                write_atomic(path, data)
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)
        return sha

    def read(self, sha: str) -> bytes:
        """The stored bytes; ``FileNotFoundError`` when the file is gone (pruned, or never written)."""
        return self.path(sha).read_bytes()

    def load(self, sha: str) -> np.ndarray | None:
        """The image decoded as BGR uint8, or None when its file is missing or cannot be decoded."""
        return cv2.imread(str(self.path(sha)), cv2.IMREAD_COLOR)

    def remove(self, sha: str) -> None:
        self.path(sha).unlink(missing_ok=True)

    def sweep(self, known: set[str]) -> tuple[int, int]:
        """Remove what a crash can leave: temporary files, and image files whose hash is not in ``known``.
        The numbers removed of each."""
        temporary = orphans = 0
        for sub in self.root.iterdir() if self.root.exists() else ():
            if not sub.is_dir():
                continue
            for f in sub.iterdir():
                if f.name.endswith(".tmp"):
                    f.unlink(missing_ok=True)
                    temporary += 1
                elif f.suffix == SUFFIX and f.stem not in known:
                    f.unlink(missing_ok=True)
                    orphans += 1
        return temporary, orphans
