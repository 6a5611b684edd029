"""Phone numbers to E.164 with the phonenumbers library (default region from the city)."""

from __future__ import annotations

import phonenumbers


def to_e164(raw: str | None, region: str = "CA") -> str | None:
    """'+15145550142' for '(514) 555-0142'; None when it is not a possible number."""
    if not raw:
        return None
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException:
        return None
    # A 7-digit local number is "possible" only locally: without its area code it reaches nobody.
    if phonenumbers.is_possible_number_with_reason(number) != phonenumbers.ValidationResult.IS_POSSIBLE:
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def mask(e164: str | None) -> str:
    """For logs and reprs: '+1514•••••42'."""
    if not e164:
        return "-"
    return e164[:5] + "•" * max(len(e164) - 7, 0) + e164[-2:]
