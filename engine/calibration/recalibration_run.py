"""Setting a recalibration session up and driving its steps from a source, for the wizard, the
``calibrate`` command and tests: the references to compare with, the simulated line's nominal lens, asking a
simulated line to show the target or the golden parts, and feeding a step until it can be judged.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from engine.calibration.lens import LensProfile
from engine.calibration.recalibration import SHOWS, Recalibration, StepState, Update
from engine.monitoring.reference import Reference, ReferenceError


def simulated_nominal_profile(source: Any, width: int, height: int) -> LensProfile | None:
    """For the simulated line: the nominal lens's profile, from the simulator's own camera model."""
    sim = getattr(source, "sim", None)
    if sim is None:
        return None
    from engine.simulation.optics import NOMINAL_LENS, WORKING_DISTANCE_MM, Camera

    cam = Camera.for_lens(NOMINAL_LENS, width, height)
    return LensProfile(width, height, cam.fx, cam.fx, cam.cx, cam.cy, [cam.k1, 0.0, 0.0, 0.0, 0.0], None, 0,
                       WORKING_DISTANCE_MM / cam.fx, None, WORKING_DISTANCE_MM, "", "simulator nominal lens",
                       created_utc="(simulator)")


def load_references(config: dict[str, Any], data_dir: Path) -> tuple[Reference | None, Reference | None, list[str]]:
    """The station's active reference (its own, else the config's) and the training reference
    (``[calibration] training_reference``, else the config's ``[drift] reference``), with why one is missing."""
    from engine.monitoring.drift import BUILTIN_REFERENCE, station_reference

    problems: list[str] = []
    cache: dict[str, Reference | None] = {}

    def load(path: str | None) -> Reference | None:
        if not path:
            return None
        if path not in cache:
            real = path
            if path == "builtin":
                import resources

                real = str(resources.path(BUILTIN_REFERENCE))
            try:
                cache[path] = Reference.load(Path(real))
            except ReferenceError as e:
                problems.append(f"{e}; the steps that compare with it cannot pass")
                cache[path] = None
        return cache[path]

    drift_ref = config["drift"]["reference"]
    active = load(station_reference(data_dir) or drift_ref)
    training = load(config.get("calibration", {}).get("training_reference") or drift_ref)
    return active, training, problems


def request_show(source: Any, what: str | None) -> bool:
    """Ask the source to show the calibration target, the golden parts or production (``None``).

    A simulated line switches at once; a camera cannot be asked, the technician places the target.
    Returns whether the source took the request.
    """
    req = getattr(source, "request", None)
    if req is None:
        return False
    req(what)
    return True


MAX_STALLED_READS = 50  # a camera that delivers nothing for this many reads in a row ends the step


def run_step(session: Recalibration, source: Any, step: str, frames: int | None = None,
             on_update: Callable[[Update], None] | None = None, stop: Callable[[], bool] | None = None) -> StepState:
    """Show what ``step`` needs, feed it frames until it is ready (or ``frames`` were read), then judge it.

    ``source`` must be open. Stalled reads are skipped, up to ``MAX_STALLED_READS`` in a row (then the step is
    judged on what it has); the line is returned to production at the end.
    """
    from engine.sources.base import SourceEnded, SourceError

    request_show(source, SHOWS[step])
    limit = frames if frames is not None else 1000
    n = stalled = 0
    try:
        while n < limit and stalled < MAX_STALLED_READS:
            if stop is not None and stop():
                break
            try:
                frame = source.read()
            except SourceEnded:
                break
            except SourceError:
                stalled += 1
                continue
            n, stalled = n + 1, 0
            u = session.feed(step, frame)
            if on_update is not None:
                on_update(u)
            if frames is None and u.ready:
                break
    finally:
        request_show(source, None)
    return session.finish(step)
