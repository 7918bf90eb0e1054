"""Inspection Station's core: sources, simulation, pipeline. No Qt here."""

__version__ = "0.1.0"

from engine import threads as _threads  # noqa: E402,F401 - OpenMP's wait policy, before anything loads torch
