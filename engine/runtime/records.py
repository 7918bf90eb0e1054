"""The headless record stream: one JSON object per line, flushed as it is written."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import IO, Any

from engine.runtime.pipeline import FrameResult, SourceEvent

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
        self._lock = threading.Lock()  # the pipeline's worker and the feedback writer both write

    def write(self, record: dict[str, Any]) -> None:
        try:
            line = json.dumps(record, separators=(",", ":"), allow_nan=False) + "\n"
        except ValueError:  # a statistic that is not a number (the colour temperature of a black frame)
            line = json.dumps(_finite(record), separators=(",", ":"), allow_nan=False) + "\n"
        with self._lock:
            self._file.write(line)
            self._file.flush()

    def frame(self, result: FrameResult) -> None:
        self.write(result.to_record())
        self.count += 1

    def event(self, event: SourceEvent) -> None:
        self.write(event.to_dict())

    def close(self) -> None:
        if self._owned:
            self._file.close()


def _finite(value: Any) -> Any:
    """NaN and infinities as null: JSON has no numbers for them."""
    if isinstance(value, float):
        return value if value == value and abs(value) != float("inf") else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value
