"""Lens solving and the lens-change recalibration procedure."""
