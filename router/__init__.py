"""Routing rules: loading and validating config/, matching, and the decision record."""

from .engine import Decision, Facts, decide, tried
from .holder import RuleBookHolder
from .loader import RuleBook, load_rulebook
from .yamlfile import ConfigError, Problem

__all__ = ["ConfigError", "Decision", "Facts", "Problem", "RuleBook", "RuleBookHolder", "decide", "load_rulebook", "tried"]
