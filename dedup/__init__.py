"""Deduplication: one problem, one request.

``same_citizen``: a known citizen writing again joins their open request. ``cross_citizen``:
several citizens, one problem (blocking index → candidates → scoring → decision). Settings
in config/dedup.yaml (``current_rules``).
"""

from .config import DedupRules, current_rules, load_dedup_rules
from .cross_citizen import cross_citizen
from .index import stored_keys
from .same_citizen import DedupDecision, same_citizen
from .scoring import CrossDecision, Report, Score, decide

__all__ = ["CrossDecision", "DedupDecision", "DedupRules", "Report", "Score", "cross_citizen",
           "current_rules", "decide", "load_dedup_rules", "same_citizen", "stored_keys"]
