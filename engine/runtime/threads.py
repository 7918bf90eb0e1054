"""How the engine's OpenMP threads wait: asleep, not spinning, unless the environment says otherwise.

PyTorch's CPU kernels run on OpenMP (libgomp in the Linux wheels). By default a libgomp thread that
finishes its share of an operation spins for a while waiting for the next one. On a machine with a
core to spare that is fastest; but as soon as another busy program holds a core (a second application
on the line PC, a virus scan, a neighbour on a shared host) the spinning threads and the one doing
the work take turns on the remaining core, and inference collapses. Measured on a 2-core machine
with one busy competing process, ``inspection-station bench contention``: the built-in detector at
1280x1024 fell from 65 to under 2 frames/s when spinning, and kept 36 frames/s with passive waiting,
which costs about a third of the speed on an otherwise idle machine (44 instead of 65 frames/s).
A station must keep up whatever else runs, so the passive policy is the default.

The policy is read once, when libgomp loads (the first ``import torch``), so :func:`apply` runs when
the engine is imported; an ``OMP_WAIT_POLICY`` or ``GOMP_SPINCOUNT`` already in the environment wins.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

DEFAULT_WAIT_POLICY = "PASSIVE"
KEYS = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")


def apply(environ: dict[str, str] | None = None) -> str:
    """Set ``OMP_WAIT_POLICY`` unless the environment already chose; returns the policy, in words."""
    env = os.environ if environ is None else environ
    late = " (torch was loaded before the engine: its threads may wait otherwise)" if "torch" in sys.modules else ""
    for key in KEYS:
        if key in env:
            return f"{key}={env[key]} (from the environment){late}"
    env["OMP_WAIT_POLICY"] = DEFAULT_WAIT_POLICY
    return f"OMP_WAIT_POLICY={DEFAULT_WAIT_POLICY} (the station's default){late}"


POLICY = apply()


def usable_cores() -> int:
    """The cores this process may run on (its affinity), else the machine's."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class ThreadPlan:
    """How many threads each pool gets, chosen together so the stages never ask for more cores than there are.

    Pipelined, the capture and statistics stages each run on one thread of their own and share OpenCV's pool;
    the detector's pool (torch, and ONNX Runtime, which takes torch's count) gets half the cores, at least one.
    On two cores that is one thread each: inference on one core, capture, statistics and the window's drawing
    on the other, and nothing spins (passive waits, above), so a busy program beside the station costs it a
    share of one core, not a collapse. Serial (one stage after another), every pool gets every core."""

    cores: int
    inference: int
    opencv: int
    pipelined: bool

    def describe(self) -> str:
        how = "pipelined stages" if self.pipelined else "stages one after another"
        return (f"{how} on {self.cores} core{'s' if self.cores != 1 else ''}: inference threads {self.inference}, "
                f"OpenCV threads {self.opencv}")


def plan(pipelined: bool = True, cores: int | None = None) -> ThreadPlan:
    n = max(1, int(cores or usable_cores()))
    if not pipelined:
        return ThreadPlan(n, n, n, False)
    inference = max(1, n // 2)
    return ThreadPlan(n, inference, max(1, n - inference), True)


def use(p: ThreadPlan, torch_too: bool = False) -> ThreadPlan:
    """Set OpenCV's threads, and torch's when torch is loaded or ``torch_too`` (a detector is about to load: ONNX
    Runtime sessions take torch's count when they are made)."""
    import cv2

    cv2.setNumThreads(p.opencv)
    if torch_too or "torch" in sys.modules:
        import torch

        if torch.get_num_threads() != p.inference:
            torch.set_num_threads(p.inference)
    return p


def auto_stats_stride(live: bool, cores: int | None = None) -> int:
    """``[pipeline] stats_stride = 0``: every frame from a source that waits for the station (a file, the unpaced
    simulator: every frame measured, records the same on any machine); from a live camera, every frame on four
    cores or more, every second frame on three, every third on one or two, where the statistics of every frame
    (about 30 ms at 1280x1024 on one core) would hold the line below the camera's rate."""
    if not live:
        return 1
    n = max(1, int(cores or usable_cores()))
    return 1 if n >= 4 else (2 if n == 3 else 3)


def lower_priority(nice: int) -> bool:
    """Lower the calling thread's OS priority by ``nice`` (Linux: each thread has its own nice value); True if it
    was lowered. Never raises: elsewhere, or when refused, the thread runs as before."""
    import os
    import threading

    if not sys.platform.startswith("linux"):  # elsewhere a thread id is not a process id to setpriority
        return False
    try:
        tid = threading.get_native_id()
        now = os.getpriority(os.PRIO_PROCESS, tid)
        os.setpriority(os.PRIO_PROCESS, tid, min(19, now + int(nice)))
        return os.getpriority(os.PRIO_PROCESS, tid) > now
    except (AttributeError, OSError):
        return False
