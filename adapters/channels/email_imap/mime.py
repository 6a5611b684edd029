"""Reading real-world MIME: headers, the citizen's text, and the attached files.

Real mail breaks the rules: charsets that are wrong or missing, 8-bit bytes in headers,
multipart messages without boundaries, HTML-only bodies. Everything here is lenient by
design: the message is parsed with the ``compat32`` policy (which never raises when a header
is read) and every decoding step falls back instead of failing, so a citizen's message is
read as well as it can be rather than refused.
"""

from __future__ import annotations

import codecs
import email
import email.policy
import re
from dataclasses import dataclass
from email.header import decode_header, make_header
from email.message import Message
from email.utils import getaddresses

import html2text

_MESSAGE_ID = re.compile(r"<[^<>\s]+>")
# Labels that lie: iso-8859-1 mail written on Windows is really windows-1252 (WHATWG does the same).
_CHARSET_ALIASES = {"iso-8859-1": "windows-1252", "latin1": "windows-1252", "latin-1": "windows-1252",
                    "us-ascii": "windows-1252", "ascii": "windows-1252", "ks_c_5601-1987": "cp949",
                    "gb2312": "gb18030", "gbk": "gb18030", "x-unknown": "", "unknown-8bit": ""}


class _Compat32Text(email.policy.Compat32):
    """compat32, except that a header holding raw 8-bit bytes is read as text, its bytes
    decoded as UTF-8 or windows-1252 (``_unescape_8bit``), instead of as an
    ``email.header.Header``: code that splits, lowercases or searches a header value never
    meets a Header object (``.split`` on one raised AttributeError and failed the message at
    every retry), nor lone surrogates (which no database column can store)."""

    def header_fetch_parse(self, name, value):
        return _unescape_8bit(value) if isinstance(value, str) else value


_PARSING = _Compat32Text()


def parse_bytes(raw: bytes) -> Message:
    """The message tree; never raises for malformed input (defects are noted on the parts)."""
    return email.message_from_bytes(raw, policy=_PARSING)


def decode_bytes(data: bytes, charset: str | None) -> str:
    """Text from bytes in a declared (maybe wrong or missing) charset; never raises."""
    for candidate in _candidates(charset):
        try:
            return data.decode(candidate)
        except (UnicodeDecodeError, LookupError):
            continue
    return data.decode("windows-1252", errors="replace")


def _candidates(charset: str | None) -> list[str]:
    declared = (charset or "").strip().strip('"').lower()
    declared = _CHARSET_ALIASES.get(declared, declared)
    try:
        declared = codecs.lookup(declared).name if declared else ""
    except (LookupError, ValueError):  # ValueError: a NUL in the label
        declared = ""
    # utf-8 first when the label is missing or plain ASCII: valid UTF-8 is almost never an accident.
    ordered = [declared, "utf-8", "windows-1252"] if declared not in ("", "cp1252") else ["utf-8", "windows-1252"]
    return [c for c in dict.fromkeys(ordered) if c]


def header(message: Message, name: str) -> str:
    """A header's decoded text (RFC 2047 encoded words, raw 8-bit bytes), or ""."""
    value = message.get(name)
    return decode_header_value(value) if value is not None else ""


def decode_header_value(value) -> str:
    text = _unescape_8bit(str(value))
    try:
        text = str(make_header(decode_header(text)))
    except (LookupError, UnicodeError, ValueError, email.errors.MessageError):  # CharsetError: a charset name not ASCII
        text = "".join(
            decode_bytes(chunk, charset) if isinstance(chunk, bytes) else chunk
            for chunk, charset in _safe_decode_header(text)
        )
    return " ".join(text.split())


def _safe_decode_header(text: str):
    try:
        return decode_header(text)
    except email.errors.HeaderParseError:
        return [(text, None)]


def _unescape_8bit(text: str) -> str:
    """compat32 keeps raw 8-bit header bytes as surrogates; read them as UTF-8 or windows-1252."""
    if not any("\udc80" <= c <= "\udcff" for c in text):
        return text
    return decode_bytes(text.encode("ascii", errors="surrogateescape"), None)


def sender(message: Message) -> tuple[str | None, str | None]:
    """(display name, address) of the first From (some mailers send two)."""
    values = message.get_all("From") or []
    for name, address in getaddresses([_unescape_8bit(str(v)) for v in values[:1]]):
        if "@" in address:
            return (decode_header_value(name) or None), address.strip().lower()
    return None, None


def message_ids(value: str) -> list[str]:
    """Every <id@host> in a Message-ID, In-Reply-To or References header, in order."""
    return _MESSAGE_ID.findall(value or "")


# --- the citizen's text --------------------------------------------------------------------

def body_text(message: Message) -> tuple[str, bool]:
    """(readable text, came_from_html). Alternatives prefer text/plain unless it is empty."""
    return _text_of(message)


def _text_of(part: Message) -> tuple[str, bool]:
    ctype = part.get_content_type()
    if part.is_multipart():
        children = [c for c in part.get_payload() if isinstance(c, Message)]
        if ctype.startswith("message/"):
            return "", False  # an enclosed message is an attachment, not the citizen's words
        if ctype == "multipart/alternative":
            return _best_alternative(children)
        texts = [_text_of(c) for c in children if not is_attachment(c)]
        kept = [t for t in texts if t[0]]
        return "\n\n".join(t for t, _ in kept), any(h for _, h in kept)
    if ctype == "text/html":
        return html_to_text(part_text(part)), True
    if ctype.startswith("text/") or ctype.startswith("multipart/") or not part.get("Content-Type"):
        # multipart/* here is a "false multipart" with no boundary: its payload is plain text
        return part_text(part), False
    return "", False


def _best_alternative(children: list[Message]) -> tuple[str, bool]:
    plain = [c for c in children if c.get_content_type() == "text/plain"]
    others = [c for c in children if c.get_content_type() != "text/plain"]
    for child in plain + others:  # text/plain first; then html or a nested multipart/related
        text, from_html = _text_of(child)
        if text.strip():
            return text, from_html
    return "", False


def part_text(part: Message) -> str:
    payload = part.get_payload(decode=True)
    if payload is None:
        payload = str(part.get_payload() or "").encode("utf-8", errors="surrogateescape")
    return decode_bytes(payload, part.get_content_charset())


def html_to_text(html: str) -> str:
    converter = html2text.HTML2Text()
    converter.body_width = 0
    converter.ignore_images = True
    converter.ignore_links = True
    converter.ignore_emphasis = True
    converter.ignore_tables = True
    converter.unicode_snob = True
    try:
        text = converter.handle(html)
    except Exception:  # html2text has raised on pathological markup; fall back to tag stripping
        text = re.sub(r"<[^>]+>", " ", html)
    return re.sub(r"\\([-.+!#*_`\[\]()])", r"\1", text)  # undo markdown escapes


# --- attached files ------------------------------------------------------------------------

@dataclass(frozen=True)
class FilePart:
    filename: str
    content_type: str
    data: bytes
    inline: bool


def is_attachment(part: Message) -> bool:
    disposition = str(part.get("Content-Disposition") or "").split(";")[0].strip().lower()
    ctype = part.get_content_type()
    if disposition == "attachment" or ctype.startswith("message/"):
        return True
    if part.is_multipart():
        return False
    if ctype in ("text/plain", "text/html") and not part.get_filename():
        return False
    return bool(part.get_filename()) or not (ctype.startswith("text/") or ctype.startswith("multipart/"))


def files(message: Message) -> list[FilePart]:
    """Every attached or inline file (pictures pasted in the body included)."""
    found = []
    for index, part in enumerate(_leaves_and_enclosed(message)):
        if part is message and not part.get_filename():
            continue  # a single-part message is its own body
        if not is_attachment(part):
            continue
        data = _file_bytes(part)
        if data is None:
            continue
        name = decode_header_value(part.get_filename() or part.get_param("name") or "") or f"part-{index}"
        disposition = str(part.get("Content-Disposition") or "").split(";")[0].strip().lower()
        found.append(FilePart(_safe_filename(name), part.get_content_type(), data, disposition != "attachment"))
    return found


def _leaves_and_enclosed(message: Message):
    """Leaf parts, and enclosed messages as one file each (not their inner parts)."""
    if message.get_content_type().startswith("message/") or not message.is_multipart():
        yield message
        return
    for child in message.get_payload():
        if isinstance(child, Message):
            yield from _leaves_and_enclosed(child)


def _file_bytes(part: Message) -> bytes | None:
    if part.get_content_type().startswith("message/"):
        inner = part.get_payload()
        if isinstance(inner, list) and inner:
            return inner[0].as_bytes()
        return str(inner or "").encode("utf-8", errors="surrogateescape") or None
    return part.get_payload(decode=True)


def _safe_filename(name: str) -> str:
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = re.sub(r"[\x00-\x1f<>:\"|?*]", "_", name).strip(" .")
    return name[:200] or "attachment"
