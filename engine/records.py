"""The headless record stream: one JSON object per line, flushed as it is written."""

from __future__ import annotations

import json
from pathlib import Path
from typing import IO, Any

from engine.pipeline import FrameResult, SourceEvent

RECORD_FORMAT_VERSION = 1


class JsonlWriter:
    """Writes frame, event and summary records; each line is complete before the next starts."""

    def __init__(self, target: Path | IO[str]) -> None:
        if isinstance(target, (str, Path)):
            self._file: IO[str] = open(target, "w", encoding="utf-8")
            self._owned = True
        else:
            self._file = target
            self._owned = False
        self.count = 0

    def write(self, record: dict[str, Any]) -> None:
        self._file.write(json.dumps(record, separators=(",", ":"), allow_nan=False) + "\n")
        self._file.flush()

    def frame(self, result: FrameResult) -> None:
        self.write(result.to_record())
        self.count += 1

    def event(self, event: SourceEvent) -> None:
        self.write(event.to_dict())

    def close(self) -> None:
        if self._owned:
            self._file.close()
