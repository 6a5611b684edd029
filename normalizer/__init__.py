"""Inbound messages to canonical requests: text, language, citizen identity, location, threading."""

from .canonical import Normalized, normalize
from .conversation import find_conversation
from .identity import resolve_citizen

__all__ = ["Normalized", "find_conversation", "normalize", "resolve_citizen"]
