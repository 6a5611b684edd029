"""Telegram: the city's bot, in (webhook) and out (Bot API), with python-telegram-bot.

Provider docs: Bot API (core.telegram.org/bots/api: Update, Message, setWebhook, getFile,
sendMessage) and the webhook guide (core.telegram.org/bots/webhooks).

Signature: there is no body signature. ``setWebhook`` is called with a ``secret_token``
(``gateway telegram set-webhook``) and Telegram sends it back in every request as
``X-Telegram-Bot-Api-Secret-Token``; compared in constant time. ``update_id`` is the
idempotency key (Telegram retries on any non-2xx answer).

Quirks:
- ``Update.de_json`` is synchronous and offline. The payloads of Telegram's own webhook guide
  are old: users lack ``is_bot`` and files lack ``file_unique_id``; both are filled in
  (``False`` and the file id) before parsing, so such payloads still read.
- Only private chats are citizens: groups, supergroups and channels are ignored.
- A photo arrives in several sizes: the largest is fetched by a background job (getFile, then
  the file URL); voice notes, audio and documents are attached the same way.
- PTB is asyncio: each send opens a fresh ``async with Bot(...)`` inside ``asyncio.run``.
  Reusing one Bot across event loops fails against a keep-alive server ("Event loop is closed").
- ``/start`` (bilingual welcome), ``/status [code]`` (also ``/statut``), ``/langue`` and
  ``/language`` are commands, not requests.
"""

from __future__ import annotations

import asyncio
import hmac
import mimetypes
import warnings
from datetime import timedelta

from telegram import Bot, Update
from telegram.error import (
    BadRequest,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TelegramError,
)
from telegram.warnings import PTBDeprecationWarning

from ..base import (
    Attachment,
    CitizenMessage,
    Contact,
    DeliveryReceipt,
    Location,
    OutboundMessage,
    RawInbound,
)
from ..errors import (
    AdapterMisconfiguredError,
    MalformedPayloadError,
    PermanentDeliveryError,
    SignatureError,
    TransientDeliveryError,
    UnsupportedEventError,
)
from ..payload import json_object

DEFAULT_API_BASE = "https://api.telegram.org"
MAX_TEXT = 4096
COMMANDS = {"start": "start", "aide": "start", "help": "start", "status": "status", "statut": "status",
            "suivi": "status", "langue": "language:fr", "language": "language:en"}
TRACK_CALLBACKS = {"track", "status", "suivre"}
FILE_KINDS = ("voice", "audio", "document", "video")
UPDATE_KINDS = ("message", "edited_message", "channel_post", "edited_channel_post", "callback_query",
                "inline_query", "chosen_inline_result", "my_chat_member", "chat_member", "poll")


def check_secret(expected: str | None, header: str | None) -> None:
    """Raises AdapterMisconfiguredError (no secret configured) or SignatureError."""
    if not expected:
        raise AdapterMisconfiguredError("TELEGRAM_SECRET_TOKEN is not set")
    if not header or not hmac.compare_digest(expected.encode(), header.encode()):
        raise SignatureError("X-Telegram-Bot-Api-Secret-Token is missing or wrong")


def update_id(body: bytes) -> str:
    """The idempotency key of an update. Raises MalformedPayloadError."""
    document = json_object(body)
    value = document.get("update_id")
    if not isinstance(value, int) or isinstance(value, bool):
        raise MalformedPayloadError("update_id must be an integer", field="update_id")
    return str(value)


class TelegramChannel:
    """Parses stored updates; sends and fetches files through the Bot API."""

    name = "telegram"

    def __init__(self, token: str | None = None, base: str = DEFAULT_API_BASE):
        self.token = token
        self.base = base.rstrip("/")

    @classmethod
    def from_settings(cls, settings) -> TelegramChannel:
        return cls(settings.get("TELEGRAM_BOT_TOKEN"), str(settings.get("TELEGRAM_API_BASE") or DEFAULT_API_BASE))

    @classmethod
    def for_sending(cls, settings) -> TelegramChannel:
        """Raises AdapterMisconfiguredError without a bot token: nothing could be sent."""
        if not settings.get("TELEGRAM_BOT_TOKEN"):
            raise AdapterMisconfiguredError("TELEGRAM_BOT_TOKEN is not set")
        return cls.from_settings(settings)

    # --- parsing ---

    def parse(self, raw: RawInbound) -> CitizenMessage:
        """Raises MalformedPayloadError or UnsupportedEventError."""
        document = _modernize(json_object(raw.body))
        try:
            update = Update.de_json(document, None)
        except (TypeError, KeyError, ValueError, AttributeError, OverflowError) as exc:  # Overflow: a date past time_t
            raise MalformedPayloadError(f"not a Telegram update: {exc}", field="body") from exc
        try:
            return _parsed(update, document)
        except (TypeError, ValueError, AttributeError, OverflowError) as exc:
            # python-telegram-bot builds its objects without checking the fields' types: a
            # text that is a list, a date that is an object, reach the gateway as they came.
            raise MalformedPayloadError(f"a field of the update has an unexpected type ({type(exc).__name__})",
                                        field="body") from exc

    # --- the Bot API ---

    def send(self, message: OutboundMessage) -> DeliveryReceipt:
        """sendMessage. Raises AdapterMisconfiguredError, TransientDeliveryError (timeouts,
        network errors, 429 with its retry_after) or PermanentDeliveryError."""
        chat_id = _chat_id(message.to)
        text = message.text if len(message.text) <= MAX_TEXT else message.text[: MAX_TEXT - 1] + "…"

        async def send_once():
            async with self._bot() as bot:
                return await bot.send_message(chat_id=chat_id, text=text)

        sent = self._run(send_once)
        return DeliveryReceipt(external_id=f"{chat_id}:{sent.message_id}")

    def fetch(self, url: str, max_bytes: int) -> tuple[bytes, str]:
        """A file from ``telegram:<file_id>`` (getFile, then download): (content, content type).
        Raises TransientDeliveryError, PermanentDeliveryError (unknown file, too large) or
        AdapterMisconfiguredError."""
        file_id = url.removeprefix("telegram:")

        async def download():
            async with self._bot() as bot:
                found = await bot.get_file(file_id)
                if found.file_size and found.file_size > max_bytes:
                    raise PermanentDeliveryError(f"file is {found.file_size} bytes, over the {max_bytes} limit")
                return bytes(await found.download_as_bytearray()), found.file_path

        data, path = self._run(download)
        if len(data) > max_bytes:
            raise PermanentDeliveryError(f"file is over the {max_bytes} bytes limit")
        return data, _content_type(path or "")

    def set_webhook(self, url: str, secret_token: str) -> bool:
        async def register():
            async with self._bot() as bot:
                return await bot.set_webhook(url=url, secret_token=secret_token,
                                             allowed_updates=["message", "edited_message", "callback_query"])

        return bool(self._run(register))

    def _bot(self) -> Bot:
        if not self.token:
            raise AdapterMisconfiguredError("TELEGRAM_BOT_TOKEN is not set")
        return Bot(self.token, base_url=f"{self.base}/bot", base_file_url=f"{self.base}/file/bot")

    def _run(self, coroutine_function):
        """One event loop and one Bot per call; PTB errors mapped to the taxonomy."""
        try:
            return asyncio.run(coroutine_function())
        except RetryAfter as exc:
            with warnings.catch_warnings():  # PTB 22.2+ warns that this becomes a timedelta; both are handled
                warnings.simplefilter("ignore", PTBDeprecationWarning)
                wait = exc.retry_after
            seconds = wait.total_seconds() if isinstance(wait, timedelta) else float(wait)
            raise TransientDeliveryError("Telegram asks to slow down", retry_after=seconds) from exc
        except InvalidToken as exc:
            raise AdapterMisconfiguredError("the Telegram bot token was rejected") from exc
        except (Forbidden, BadRequest) as exc:  # blocked by the user, chat not found, bad file…
            raise PermanentDeliveryError(f"Telegram refused: {exc.message[:200]}") from exc
        except NetworkError as exc:  # includes TimedOut
            raise TransientDeliveryError(f"Telegram unreachable: {type(exc).__name__}") from exc
        except TelegramError as exc:
            raise PermanentDeliveryError(f"Telegram error: {str(exc)[:200]}") from exc


def _modernize(node):
    """Fill the fields old payloads lack (``is_bot``, ``file_unique_id``), recursively."""
    if isinstance(node, list):
        return [_modernize(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: _modernize(value) for key, value in node.items()}
    for key in ("from", "forward_from", "user"):
        if isinstance(node.get(key), dict) and "first_name" in node[key]:
            node[key].setdefault("is_bot", False)
    if "file_id" in node:
        node.setdefault("file_unique_id", node["file_id"])
    return node


def _chat_id(value: str) -> int:
    try:
        return int(value)
    except ValueError as exc:
        raise PermanentDeliveryError("not a Telegram chat id") from exc


def _contact(message) -> Contact:
    user = message.from_user
    return Contact(name=user.full_name if user else None, telegram_chat_id=str(message.chat.id),
                   preferred_channel="telegram")


def _message(message, edited: bool) -> CitizenMessage:
    text = message.text or message.caption or ""
    key = f"{message.chat.id}:{message.message_id}"
    if edited:
        return CitizenMessage(channel="telegram", text=text, contact=_contact(message),
                              external_id=f"{key}:edit:{int(message.edit_date.timestamp()) if message.edit_date else 0}",
                              edit_of=key)
    command, language = _command(text, message.from_user)
    attachments = _attachments(message)
    where = message.location or (message.venue.location if message.venue else None)
    location = Location(lat=where.latitude, lon=where.longitude) if where else Location()
    if not command and not text.strip() and not attachments and where is None:
        raise UnsupportedEventError("a Telegram message with nothing the gateway can use (sticker, contact…)")
    reply = message.reply_to_message
    return CitizenMessage(
        channel="telegram", text=text, contact=_contact(message), location=location,
        attachments=attachments, external_id=key, command=command, language=language,
        in_reply_to=f"{message.chat.id}:{reply.message_id}" if reply else None,
        # Words may come after a photo, a voice note or a location: until then the request
        # waits for them (needs_info), and the first words describe it and route it.
        needs_info=not text.strip(), fills_description=bool(text.strip()),
    )


def _parsed(update: Update, document: dict) -> CitizenMessage:
    if update.callback_query is not None:
        return _callback(update.callback_query)
    message = update.message or update.edited_message
    if message is None:
        kind = next((k for k in UPDATE_KINDS if document.get(k) is not None), "unknown")
        raise UnsupportedEventError(f"Telegram update of type {kind!r} is not handled")
    if message.chat.type != "private":
        raise UnsupportedEventError(f"message from a Telegram {message.chat.type} chat: only private chats are handled")
    return _message(message, edited=update.edited_message is not None)


def _command(text: str, user) -> tuple[str | None, str | None]:
    """(command, language) for a text starting with "/"; unknown commands show the welcome."""
    if not text.startswith("/"):
        return None, None
    words = text.split()
    name = words[0][1:].split("@")[0].lower()
    command = COMMANDS.get(name, "start")
    if command.startswith("language") and len(words) > 1 and words[1].lower()[:2] in ("fr", "en"):
        command = f"language:{words[1].lower()[:2]}"
    if command.startswith("language:"):
        return command, command.split(":")[1]
    hint = (user.language_code or "")[:2] if user else ""
    return command, hint if hint in ("fr", "en") else None


def _attachments(message) -> tuple[Attachment, ...]:
    found = []
    if message.photo:
        largest = max(message.photo, key=lambda size: (size.width * size.height, size.file_size or 0))
        found.append(Attachment(filename=f"photo-{largest.file_unique_id}.jpg", content_type="image/jpeg",
                                url=f"telegram:{largest.file_id}"))
    for kind in FILE_KINDS:
        item = getattr(message, kind, None)
        if item is not None:
            content_type = item.mime_type or "application/octet-stream"
            name = getattr(item, "file_name", None) or f"{kind}-{item.file_unique_id}{_extension(content_type)}"
            found.append(Attachment(filename=name, content_type=content_type, url=f"telegram:{item.file_id}"))
    return tuple(found)


def _content_type(path: str) -> str:
    if path.endswith((".oga", ".ogg")):  # voice notes; not in every mimetypes table
        return "audio/ogg"
    return mimetypes.guess_type(path)[0] or "application/octet-stream"


def _extension(content_type: str) -> str:
    return {"audio/ogg": ".ogg", "audio/mpeg": ".mp3"}.get(content_type) or mimetypes.guess_extension(content_type) or ""


def _callback(query) -> CitizenMessage:
    if (query.data or "").lower() not in TRACK_CALLBACKS:
        raise UnsupportedEventError("Telegram button with data the gateway does not know")
    user = query.from_user
    return CitizenMessage(channel="telegram", text="/status", command="status",
                          contact=Contact(name=user.full_name, telegram_chat_id=str(user.id),
                                          preferred_channel="telegram"))
