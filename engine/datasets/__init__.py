"""Data out of the station: feedback bundles, annotator agreement, data readiness."""
