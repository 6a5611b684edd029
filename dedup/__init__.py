"""Deduplication: one problem, one request."""

from .same_citizen import DedupDecision, same_citizen

__all__ = ["DedupDecision", "same_citizen"]
