"""The content-addressed image store: every stored frame is a PNG file named by the SHA-256 of its bytes.

A file lives at ``<data dir>/images/<first 2 hex digits>/<sha256>.png``; :class:`ImageStore` is the only
place that spells that path. Files are written atomically (temporary file, fsync, rename, fsync of the
folder) before the database row that names them commits, so a crash leaves at worst a file no row names,
which :meth:`ImageStore.sweep` removes.

A file no row names is removed only on the word of a database known to be good: the caller decides (see
``FeedbackStore.recover``); :meth:`ImageStore.sweep` removes unnamed files only when told to, and a new or
empty database beside stored images is refused when it is opened (``engine.storage.db.connect``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from engine.core.files import write_atomic

if TYPE_CHECKING:
    import numpy as np

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
        import cv2

        return cv2.imread(str(self.path(sha)), cv2.IMREAD_COLOR)

    def remove(self, sha: str) -> None:
        self.path(sha).unlink(missing_ok=True)

    def files(self) -> Iterator[Path]:
        """Every stored image file (not the temporary ones), in no particular order."""
        for sub in self.root.iterdir() if self.root.is_dir() else ():
            if sub.is_dir():
                yield from (f for f in sub.iterdir() if f.suffix == SUFFIX and not f.name.startswith("."))

    def count(self) -> int:
        """How many image files the store holds."""
        return sum(1 for _ in self.files())

    def unnamed(self, known: set[str]) -> list[Path]:
        """The image files whose hash is not in ``known``."""
        return [f for f in self.files() if f.stem not in known]

    def sweep(self, known: set[str], orphans: bool = True) -> tuple[int, int]:
        """Remove what a crash can leave: temporary files, and (when ``orphans``) image files whose hash is not
        in ``known``. The numbers removed of each. Pass ``orphans=False`` unless the database that gave
        ``known`` is known to be good: an empty or replaced database names nothing, and every image would go."""
        temporary = removed = 0
        for sub in self.root.iterdir() if self.root.exists() else ():
            if not sub.is_dir():
                continue
            for f in sub.iterdir():
                if f.name.endswith(".tmp"):
                    f.unlink(missing_ok=True)
                    temporary += 1
                elif orphans and f.suffix == SUFFIX and f.stem not in known:
                    f.unlink(missing_ok=True)
                    removed += 1
        return temporary, removed
