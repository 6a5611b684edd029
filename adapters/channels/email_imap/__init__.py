"""E-mail intake: citizen mail read from the city's shared mailboxes over IMAP.

Provider: any IMAP4rev1 server (RFC 3501; IDLE RFC 2177, UIDPLUS RFC 4315, MOVE RFC 6851).
There is no signature scheme: the gateway logs in to its own mailbox. The IMAP loop lives in
``gateway/poller.py`` (it writes to the database); this package only reads stored messages:

- ``mime``: lenient MIME decoding (charsets, RFC 2047 headers, HTML-only bodies, files);
- ``quotes``: the citizen's new words, without quoted history or signature (FR and EN);
- ``loops``: auto-replies, bounces and reports, which never become requests;
- ``files``: the attachment policy (size limits, executables);
- ``channel``: ``EmailImapChannel``, the registered inbound parser.

Quirks: mail lies about its charset (iso-8859-1 that is windows-1252, none at all);
Outlook omits In-Reply-To on some replies but keeps References; vacation responders often
send no ``Auto-Submitted`` header and are known by their subject or empty envelope sender.
"""

from .channel import EmailImapChannel
from .files import FilePolicy
from .loops import bounce_report, classify
from .quotes import strip_reply

__all__ = ["EmailImapChannel", "FilePolicy", "bounce_report", "classify", "strip_reply"]
