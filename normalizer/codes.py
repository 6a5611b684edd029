"""Public tracking codes: R-2026-4821735.

Digits only after the prefix, so nothing can be misread (no O/0, I/1) and the code is easy
to type on a phone keypad or read aloud; the last digit is a Luhn check digit, so a mistyped
digit, or two adjacent digits swapped, is caught instead of pointing at someone else's
request (Luhn's one blind spot: "09" swapped for "90", or back, is not caught). The six middle
digits are random: codes reveal neither volumes nor neighbours' requests.
"""

from __future__ import annotations

import re
import secrets

_CANDIDATE = re.compile(r"\b([A-Za-z]{1,3})[\s.-]*((?:[0-9OoIl][\s.-]*){10}[0-9OoIl])\b")
_READ_AS = str.maketrans({"O": "0", "o": "0", "I": "1", "l": "1"})


def luhn_digit(digits: str) -> str:
    total = 0
    for i, char in enumerate(reversed(digits)):
        value = int(char) * (2 if i % 2 == 0 else 1)
        total += value - 9 if value > 9 else value
    return str((10 - total % 10) % 10)


def new_code(prefix: str, year: int) -> str:
    body = f"{year:04d}{secrets.randbelow(1_000_000):06d}"
    return f"{prefix}-{body[:4]}-{body[4:]}{luhn_digit(body)}"


def is_valid(code: str) -> bool:
    digits = code.replace("-", "")[-11:]
    return len(digits) == 11 and digits.isdigit() and luhn_digit(digits[:10]) == digits[10]


def find_codes(text: str, prefix: str) -> list[str]:
    """Every valid tracking code in ``text``, however it was typed ('r 2026 482 1735')."""
    found = []
    for letters, raw in _CANDIDATE.findall(text or ""):
        if letters.upper() != prefix:
            continue
        digits = re.sub(r"[\s.-]", "", raw).translate(_READ_AS)
        if digits.isdigit() and luhn_digit(digits[:10]) == digits[10]:
            code = f"{prefix}-{digits[:4]}-{digits[4:]}"
            if code not in found:
                found.append(code)
    return found


def spoken(code: str) -> str:
    """Digit by digit, for voice: 'R, 2 0 2 6, 4 8 2 1 7 3 5'."""
    prefix, year, rest = code.split("-")
    return f"{prefix}, {' '.join(year)}, {' '.join(rest)}"
