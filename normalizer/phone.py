"""Phone numbers to E.164 with the phonenumbers library (default region from the city).

``to_e164`` keeps its last answers (an LRU cache): the same sender texts again and again
(follow-ups, STATUS, a provider's retries) and the library's parse costs ~30 µs a call on the
SMS webhook's path. The answer is a pure function of (raw, region), so a cached one is the
one the library gave; only short inputs are kept, so the cache stays small.
"""

from __future__ import annotations

from functools import lru_cache

import phonenumbers

_CACHED_LENGTH = 40  # '+1 (514) 555-0142 ext. 1234' fits; anything longer is parsed every time


def to_e164(raw: str | None, region: str = "CA") -> str | None:
    """'+15145550142' for '(514) 555-0142'; None when it is not a possible number."""
    if not raw:
        return None
    if len(raw) > _CACHED_LENGTH:
        return _to_e164(raw, region)
    return _cached(raw, region)


def _to_e164(raw: str, region: str) -> str | None:
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException:
        return None
    # A 7-digit local number is "possible" only locally: without its area code it reaches nobody.
    if phonenumbers.is_possible_number_with_reason(number) != phonenumbers.ValidationResult.IS_POSSIBLE:
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


_cached = lru_cache(maxsize=8192)(_to_e164)


def mask(e164: str | None) -> str:
    """For logs and reprs: '+1514•••••42'."""
    if not e164:
        return "-"
    return e164[:5] + "•" * max(len(e164) - 7, 0) + e164[-2:]
