"""Stripping quoted history and signatures from a reply, in French and English.

Mail clients paste the whole conversation under a reply. What the citizen wrote is what
comes before the first marker below; if nothing is left above it (a forward, or a mail that
starts with a quote) the text is kept whole rather than lost. Patterns seen in real mail
(talon's and email-reply-parser's fixtures):

- attribution lines: "Le 29 avr. 2025 à 11:11, X <x@y> a écrit :" (sometimes wrapped over
  two or three lines), "On Mon, Apr 2, 2012 at 6:26 PM, X wrote:", "Am … schrieb …:";
- separators: "-----Original Message-----", "-------- Message d'origine --------",
  "________________________________" (Outlook), a horizontal rule ("* * *" once converted
  from HTML); "Begin forwarded message" is NOT one (a forward is the citizen's content);
- header blocks: "From: … / Sent: …", "De : … / Envoyé : …", "De : … / Date : … / Objet :";
- quoted lines starting with ">";
- signatures: "-- " and mobile footers ("Sent from my iPhone", "Envoyé de mon iPhone",
  "Envoyé à partir de Outlook pour iOS", "Get Outlook for Android").
"""

from __future__ import annotations

import re

_ATTRIBUTION = re.compile(
    r"^\s*>?\s*(?:(?:le|on|am|el|il)\b.{0,200}?\b(?:a\s+écrit|wrote|schrieb|escribió|ha\s+scritto)"
    r"|.{0,200}<[^>]+@[^>]+>\s+(?:a\s+écrit|wrote))\s*:?\s*$",
    re.IGNORECASE,
)
_SEPARATOR = re.compile(
    r"^\s*(?:-{2,}\s*(?:original\s+message|message\s+d['’]origine|message\s+original|"
    r"forwarded\s+message|message\s+transféré)\s*-{2,}|_{10,}|-{10,}|\*\s\*\s\*)\s*$",
    re.IGNORECASE,
)
_FROM = re.compile(r"^\s*\*?(?:from|de|von|от)\s*\*?\s*:", re.IGNORECASE)
_HEADER_AFTER_FROM = re.compile(
    r"^\s*\*?(?:sent|envoyé|date|to|à|a|objet|subject|cc|gesendet|an|betreff|отправлено|кому|тема)\s*\*?\s*:", re.IGNORECASE
)
_SIGNATURE = re.compile(
    r"^\s*(?:--\s*|(?:sent|envoyé)\s+(?:from|de|depuis|à\s+partir\s+de)\s+(?:my|mon|ma|outlook|"
    r"yahoo|samsung|gmail|l['’])\S*.*|(?:get|obtenir|télécharger)\s+outlook\s+(?:for|pour)\s+\S+.*)$",
    re.IGNORECASE,
)


def strip_reply(text: str) -> str:
    """The new part of a reply: quoted history and signature removed."""
    lines = text.replace("\r\n", "\n").split("\n")
    result = _above_first_marker(lines)
    if not result:  # the citizen answered below the quote ("bottom-posting")
        unquoted = [line for i, line in enumerate(lines)
                    if not line.lstrip().startswith(">") and not _attribution_at(lines, i)]
        result = _above_first_marker(unquoted)
    return result if result else text.strip()


def _above_first_marker(lines: list[str]) -> str:
    kept = lines[:_first_marker(lines)]
    return "\n".join(line for line in kept if not line.lstrip().startswith(">")).strip()


def _first_marker(lines: list[str]) -> int:
    for i, line in enumerate(lines):
        if _SEPARATOR.match(line) or _SIGNATURE.match(line):
            return i
        if _attribution_at(lines, i):
            return i
        if _FROM.match(line) and _header_block_at(lines, i):
            return i
        if line.lstrip().startswith(">") and all(
            not rest.strip() or rest.lstrip().startswith(">") for rest in lines[i:]
        ):
            return i  # everything from here down is quoted
    return len(lines)


def _attribution_at(lines: list[str], i: int) -> bool:
    """An attribution line, possibly wrapped over up to three lines.

    A wrapped one starts with "Le/On …" and a date (a digit), with no blank line inside:
    a citizen's sentence starting with "Le" is not taken for one."""
    if not lines[i].strip():
        return False
    if _ATTRIBUTION.match(lines[i]):
        return True
    if not (re.match(r"^\s*>?\s*(le|on|am|el|il)\b", lines[i], re.IGNORECASE) and re.search(r"\d", lines[i])):
        return False
    for span in (2, 3):
        part = lines[i:i + span]
        if len(part) < span or not all(line.strip() for line in part):
            return False
        if _ATTRIBUTION.match(" ".join(line.strip().lstrip(">").strip() for line in part)):
            return True
    return False


def _header_block_at(lines: list[str], i: int) -> bool:
    """A "From:" line followed within five lines by Sent:/Date:/To:/Subject: (or their French)."""
    following = [line for line in lines[i + 1:i + 6] if line.strip()]
    return any(_HEADER_AFTER_FROM.match(line) for line in following) or bool(
        re.search(r"(?:envoyé|sent|objet|subject)\s*:", lines[i], re.IGNORECASE)
    )
