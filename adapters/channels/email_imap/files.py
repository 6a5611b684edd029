"""What is kept of attached files: a size limit, a content check, and a policy for the rest.

The declared content type is not trusted: the first bytes say what a file really is
(a "photo.jpg" that starts with "MZ" is a Windows executable). Executables and scripts are
never kept; ``EMAIL_DANGEROUS_POLICY`` decides whether the rest of the message still
becomes a request (``drop``, the default: the file is refused and the reason recorded) or
the whole message waits for an agent (``reject``). ``EMAIL_OVERSIZE_POLICY`` does the same
for messages over ``EMAIL_MAX_MESSAGE_BYTES``: ``reject`` (default) or ``strip`` (keep the
text, refuse the files).
"""

from __future__ import annotations

from dataclasses import dataclass

from ...base import Attachment
from ...errors import MalformedPayloadError
from .mime import FilePart

_DANGEROUS_EXTENSIONS = {
    "exe", "com", "bat", "cmd", "scr", "pif", "cpl", "msi", "msp", "dll", "vbs", "vbe", "js", "jse",
    "wsf", "wsh", "ps1", "psm1", "jar", "hta", "lnk", "reg", "scf", "sh", "app", "apk", "iso", "docm",
    "xlsm", "pptm", "appx", "msix",
}
_DANGEROUS_TYPES = {
    "application/x-msdownload", "application/x-msdos-program", "application/x-executable",
    "application/x-dosexec", "application/x-sh", "application/x-bat", "application/java-archive",
    "application/vnd.microsoft.portable-executable", "application/x-ms-installer", "application/hta",
    "application/javascript", "text/javascript", "application/x-javascript", "application/vbscript",
}
_MAGIC = [
    (b"MZ", "application/x-msdownload"),
    (b"\x7fELF", "application/x-executable"),
    (b"#!", "application/x-sh"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"GIF8", "image/gif"),
    (b"%PDF-", "application/pdf"),
]
_EXECUTABLE_MAGIC = {"application/x-msdownload", "application/x-executable", "application/x-sh"}


@dataclass(frozen=True)
class FilePolicy:
    max_message_bytes: int = 25 * 1024 * 1024
    max_file_bytes: int = 10 * 1024 * 1024
    oversize: str = "reject"  # or "strip"
    dangerous: str = "drop"  # or "reject"

    @classmethod
    def from_settings(cls, settings) -> FilePolicy:
        return cls(
            max_message_bytes=int(settings.get("EMAIL_MAX_MESSAGE_BYTES") or cls.max_message_bytes),
            max_file_bytes=int(settings.get("EMAIL_MAX_FILE_BYTES") or cls.max_file_bytes),
            oversize=str(settings.get("EMAIL_OVERSIZE_POLICY") or cls.oversize),
            dangerous=str(settings.get("EMAIL_DANGEROUS_POLICY") or cls.dangerous),
        )

    def oversized(self, size: int) -> bool:
        """True when the message is over the limit and its files must go (policy ``strip``).

        Raises MalformedPayloadError when it is over the limit and the policy is ``reject``."""
        if size <= self.max_message_bytes:
            return False
        if self.oversize != "strip":
            raise MalformedPayloadError(
                f"message of {size} bytes is over the {self.max_message_bytes}-byte limit", field="size")
        return True

    def review(self, part: FilePart, strip: bool = False) -> Attachment:
        """The attachment to keep, or one marked refused with the reason."""
        sniffed = sniff(part.data)
        reason = dangerous_reason(part, sniffed)
        if reason and self.dangerous == "reject":
            raise MalformedPayloadError(f"dangerous attachment refused by policy: {reason}", field="attachments")
        if reason is None and len(part.data) > self.max_file_bytes:
            reason = f"file of {len(part.data)} bytes is over the {self.max_file_bytes}-byte limit"
        if reason is None and strip:
            reason = "message over the size limit: files not kept"
        content_type = sniffed or part.content_type
        if reason:
            return Attachment(filename=part.filename, content_type=content_type, refused=reason)
        return Attachment(filename=part.filename, content_type=content_type, data=part.data)


def sniff(data: bytes) -> str | None:
    for magic, content_type in _MAGIC:
        if data.startswith(magic):
            return content_type
    return None


def dangerous_reason(part: FilePart, sniffed: str | None) -> str | None:
    extension = part.filename.rsplit(".", 1)[-1].lower() if "." in part.filename else ""
    if sniffed in _EXECUTABLE_MAGIC:
        return f"executable content ({sniffed})"
    if extension in _DANGEROUS_EXTENSIONS:
        return f"dangerous file type (.{extension})"
    if part.content_type in _DANGEROUS_TYPES:
        return f"dangerous content type ({part.content_type})"
    return None
