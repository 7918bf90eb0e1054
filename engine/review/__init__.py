"""Operators' decisions: the feedback store, the review queue, blind re-review."""
