"""Inspection Station's core: sources, simulation, pipeline. No Qt here."""

__version__ = "0.1.0"
