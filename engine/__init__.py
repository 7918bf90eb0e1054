"""Inspection Station's core: sources, simulation, pipeline. No Qt here."""

from engine.runtime import threads as _threads  # noqa: F401 - OpenMP's wait policy, set before anything loads torch

__version__ = "0.1.0"
