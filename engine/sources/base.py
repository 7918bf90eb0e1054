"""The frame-source interface, its errors, and the clocks sources run on."""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod

from engine.core.errors import StationError
from engine.core.frame import Frame


class SourceError(StationError):
    """A source failed. The message is one sentence a line operator can act on."""


class SourceNotFound(SourceError):
    """The source does not exist or cannot be opened at all (bad path, no such camera)."""


class SourceStalled(SourceError):
    """The source is open but delivered no frame within the read timeout."""


class SourceEnded(SourceError):
    """A finite source (a video file, a folder without looping) has no more frames."""


class Clock:
    """Wall-clock time; ``sleep`` can be cut short by setting ``stop``."""

    def now(self) -> float:
        return time.time()

    def sleep(self, seconds: float, stop: threading.Event | None = None) -> None:
        if seconds <= 0:
            return
        if stop is None:
            time.sleep(seconds)
        else:
            stop.wait(seconds)


REAL_CLOCK = Clock()


class FrameSource(ABC):
    """Where frames come from.

    ``live`` sources produce frames on their own schedule (a camera, a paced
    simulator): a slow reader misses frames, which shows as gaps in
    ``Frame.sequence``. Non-live sources (files, the unpaced simulator) hand over
    the next frame whenever asked, so a reader can process every one.

    ``clock`` is the time base the source runs on. A pipeline waits on it between
    retries, so an unpaced simulator can let simulated time pass instantly.
    """

    uri: str = ""
    source_id: str = ""
    live: bool = False
    nominal_fps: float | None = None
    clock: Clock = REAL_CLOCK
    detect_frozen: bool = True  # identical frames in a row mean a stuck camera (not so for a folder)

    @abstractmethod
    def open(self) -> None:
        """Open (or reopen after a failure). Raises :class:`SourceNotFound`."""

    @abstractmethod
    def read(self, timeout: float = 2.0) -> Frame:
        """The next frame; raises :class:`SourceStalled`, :class:`SourceEnded` or :class:`SourceError`."""

    @abstractmethod
    def close(self) -> None:
        """Release the device or file. Safe to call twice."""

    def describe(self) -> str:
        return self.uri

    def __enter__(self) -> FrameSource:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
