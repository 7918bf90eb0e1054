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
