"""Feedback bundles for retraining: export the station's reviewed frames with their corrected truth, verify a
bundle against its checksums, merge bundles from several stations.

The rules for the corrected truth and the kinds of frames are in :mod:`engine.datasets.bundle.selection`; the files
of a bundle in :mod:`engine.datasets.bundle.export`; the train, val and test splits by time and the rule on
duplicate boxes in :mod:`engine.datasets.bundle.splits`; how a bundle is written atomically in :mod:`engine.datasets.bundle.sink`.
"""

from engine.datasets.bundle.check import BundleReader, VerifyResult, verify
from engine.datasets.bundle.export import ExportResult, export_bundle, preview
from engine.datasets.bundle.merge import merge_bundles
from engine.datasets.bundle.selection import FORMATS, KINDS, BundleError, ExportOptions, agreement_summary, iso
from engine.datasets.bundle.sink import Cancelled
from engine.datasets.bundle.splits import SPLITS, SplitRule

__all__ = ["FORMATS", "KINDS", "SPLITS", "BundleError", "BundleReader", "Cancelled", "ExportOptions", "ExportResult",
           "SplitRule", "VerifyResult", "agreement_summary", "export_bundle", "iso", "merge_bundles", "preview",
           "verify"]
