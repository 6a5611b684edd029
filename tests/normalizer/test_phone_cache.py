"""to_e164's cache gives the library's own answer, for every region, the first time and after."""

from __future__ import annotations

import json
from pathlib import Path

from normalizer import phone
from normalizer.phone import to_e164

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
TRICKY = ["+15145550142", "(514) 555-0142", "514 555 0142", "555-0142", "+1 613 555 0110", "+33 1 23 45 67 89",
          "0123456789", "+4420 7946 0958", "tel:+1-819-555-0177", "+1514555014", "+999123", "not a number",
          "+15145550142 ext. 12", "１５１４５５５０１４２", "+1 (819) 555-0177 x99999999999999999999999999999"]


def senders() -> list[str]:
    found = []
    for folder in ("twilio_sms", "twilio_voice"):
        for path in sorted((FIXTURES / folder).glob("*.json")):
            params = json.loads(path.read_text(encoding="utf-8")).get("params", {})
            found += [params[key] for key in ("From", "To", "Caller") if params.get(key)]
    return found


def test_cached_answers_are_the_librarys():
    numbers = senders() + TRICKY
    assert len(numbers) > 20
    phone._cached.cache_clear()
    for region in ("CA", "US", "FR", "GB"):
        for raw in numbers:
            uncached = phone._to_e164(raw, region)
            assert to_e164(raw, region) == uncached, (raw, region)  # a miss
            assert to_e164(raw, region) == uncached, (raw, region)  # a hit
    assert phone._cached.cache_info().hits >= len(numbers) * 4 - 8


def test_long_inputs_are_parsed_not_kept():
    phone._cached.cache_clear()
    long_input = "+1 (819) 555-0177" + " " * 60
    assert to_e164(long_input, "CA") == "+18195550177"
    assert phone._cached.cache_info().currsize == 0
