"""``sim://`` — the simulated production line as a frame source.

``sim://?seed=N&scenario=NAME&width=W&height=H&fps=F[&dt=S][&realtime=0|1][&show=checkerboard|golden][&start=SLOT]``

Each read advances one frame *slot* (one camera period). Unpaced (the default
for headless runs), slots advance as fast as the reader reads and waiting on the
source's clock lets simulated time pass instantly. Paced (``realtime=1``, what
the GUI uses), slots follow the wall clock at ``fps`` and a slow reader misses
frames, as with a real camera.
"""

from __future__ import annotations

import math
import threading
import time
from urllib.parse import parse_qs, urlsplit

from engine.core.config import out_of_range
from engine.core.frame import Frame
from engine.simulation.line import EPOCH0, LineSimulator
from engine.simulation.scenarios import SCENARIOS
from engine.sources.base import Clock, FrameSource, SourceError, SourceNotFound, SourceStalled

SHOWABLE = ("checkerboard", "golden")


class SimClock(Clock):
    """The simulated camera's clock: waiting on it moves the line forward without sleeping."""

    def __init__(self, source: SimSource) -> None:
        self._source = source

    def now(self) -> float:
        return self._source.line_time()

    def sleep(self, seconds: float, stop: threading.Event | None = None) -> None:
        if seconds > 0:
            self._source.skip(int(math.ceil(seconds * self._source.fps)))


class PacedSimClock(Clock):
    """The paced simulator's clock: line time, as its frames are stamped; waiting on it takes real time."""

    def __init__(self, source: SimSource) -> None:
        self._source = source

    def now(self) -> float:
        return self._source.line_time()


class SimSource(FrameSource):
    def __init__(self, seed: int = 0, scenario: str = "nominal", width: int = 1280, height: int = 1024,
                 fps: float = 30.0, dt: float | None = None, realtime: bool = False, show: str | None = None,
                 start: int = 0, uri: str | None = None) -> None:
        for name, value in (("seed", seed), ("width", width), ("height", height), ("fps", fps), ("dt", dt),
                            ("start", start)):
            problem = None if value is None else out_of_range("uri.sim", name, value)
            if problem:
                raise SourceNotFound(f"the simulated line's {name} {problem}")
        if show not in (None, *SHOWABLE):
            raise SourceNotFound(f"the simulated line can show {' or '.join(SHOWABLE)}, not {show!r}")
        try:
            self.sim = LineSimulator(seed=seed, scenario=scenario, width=width, height=height, dt=dt)
        except ValueError as e:
            raise SourceNotFound(f"cannot start the simulated line: {e}") from None
        self.fps = float(fps)
        self.realtime = bool(realtime)
        self.live = self.realtime
        self.nominal_fps = self.fps
        self.uri = uri or (f"sim://?seed={seed}&scenario={scenario}&width={width}&height={height}&fps={fps:g}")
        self.source_id = f"sim:{scenario}:{seed}"
        self.clock = PacedSimClock(self) if self.realtime else SimClock(self)
        self._slot = int(start)
        self._show = show
        self._show_until: int | None = None
        self._last: tuple | None = None  # the last image delivered, repeated while the camera is frozen
        self._t0: float | None = None
        self._slot0 = 0
        self._open = False
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ control

    def request(self, what: str | None, frames: int | None = None) -> None:
        """Show the calibration target or the golden parts (``None`` returns to production).

        ``frames`` limits how many slots it is shown for; by default until the next request.
        """
        if what not in (None, *SHOWABLE):
            raise ValueError(f"the simulated line can show {' or '.join(SHOWABLE)}, not {what!r}")
        with self._lock:
            self._show = what
            self._show_until = None if frames is None else self._slot + int(frames)

    def skip(self, slots: int) -> None:
        """Let ``slots`` camera periods pass without reading them."""
        with self._lock:
            self._slot += max(0, int(slots))

    def line_time(self) -> float:
        return EPOCH0 + self.sim.time_of(self._slot)

    @property
    def slot(self) -> int:
        return self._slot

    # ------------------------------------------------------------------ FrameSource

    def open(self) -> None:
        # Reopening does not restart the line: a real camera keeps running while nobody reads it.
        self._open = True

    def close(self) -> None:
        self._open = False

    def read(self, timeout: float = 2.0) -> Frame:
        if not self._open:
            raise SourceError("the simulated camera is not open")
        if self.realtime:
            self._pace(timeout)
        with self._lock:
            slot = self._slot
            self._slot += 1
            if self._show_until is not None and slot >= self._show_until:
                self._show, self._show_until = None, None
            show = self._show
        cond = self.sim.conditions(slot)
        if cond.dropout:
            # A read that gets nothing waits out its timeout: that much line time passes.
            if self.realtime:
                time.sleep(min(timeout, 1.0 / self.fps))
            else:
                self.skip(int(math.ceil(timeout * self.fps)) - 1)
            raise SourceStalled(f"the simulated camera delivered no frame within {timeout:g} s")
        if cond.frozen and self._last is not None:
            image, truth = self._last
        else:
            image, truth = self.sim.render(slot, show=show)
            self._last = (image, truth)
        return Frame(image=image, channel_order="BGR", sequence=slot, timestamp=EPOCH0 + self.sim.time_of(slot),
                     source_id=self.source_id, ground_truth=truth)

    def _pace(self, timeout: float) -> None:
        """Wait for the next camera period; after a long wait, the camera has moved on."""
        now = time.monotonic()
        if self._t0 is None:
            self._t0, self._slot0 = now, self._slot
        due = self._t0 + (self._slot - self._slot0) / self.fps
        if due > now:
            time.sleep(due - now)
        else:
            behind = int((now - due) * self.fps)
            if behind > 0:
                self.skip(behind)


def open_sim(uri: str, realtime: bool = False) -> SimSource:
    """Parse a ``sim://`` URI. ``realtime`` is the pacing when the URI does not say."""
    q = parse_qs(urlsplit(uri).query, keep_blank_values=True)
    known = {"seed", "scenario", "width", "height", "fps", "dt", "realtime", "show", "start"}
    unknown = sorted(set(q) - known)
    if unknown:
        raise SourceNotFound(f"unknown sim:// parameter {unknown[0]!r}; known: {', '.join(sorted(known))}")

    def one(name: str, cast, default):
        if name not in q:
            return default
        raw = q[name][-1]
        try:
            value = cast(raw)
        except ValueError:
            raise SourceNotFound(f"sim:// parameter {name}={raw!r} is not a valid {cast.__name__}") from None
        problem = out_of_range("uri.sim", name, value)  # the ranges beside the default settings
        if problem:
            raise SourceNotFound(f"sim:// parameter {name} {problem}")
        return value

    def flag(raw: str) -> bool:
        if raw.lower() in ("1", "true", "yes", "on"):
            return True
        if raw.lower() in ("0", "false", "no", "off"):
            return False
        raise ValueError(raw)

    flag.__name__ = "yes/no value"
    scenario = one("scenario", str, "nominal")
    if scenario not in SCENARIOS:
        raise SourceNotFound(f"unknown scenario {scenario!r}; choose one of {', '.join(SCENARIOS)}")
    show = one("show", str, None) or None
    return SimSource(seed=one("seed", int, 0), scenario=scenario, width=one("width", int, 1280),
                     height=one("height", int, 1024), fps=one("fps", float, 30.0), dt=one("dt", float, None),
                     realtime=one("realtime", flag, realtime), show=show, start=one("start", int, 0), uri=uri)
