"""Facebook Messenger: a city's Facebook page, in (webhook) and out (Send API).

Provider docs: Messenger Platform webhooks
(developers.facebook.com/docs/messenger-platform/webhooks, event reference under
.../webhook-events: messages, messaging_postbacks, message_edits, message_deliveries,
message_reads, message_echoes) and the Send API (.../reference/send-api).

Signature: every POST carries ``X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the raw body
keyed with the app secret>``; compared in constant time. The subscription check is a GET with
``hub.mode=subscribe``, ``hub.verify_token`` and ``hub.challenge`` (echoed when the token
matches).

Quirks:
- One POST batches several ``entry`` items, each with several ``messaging`` events: the
  webhook splits them and stores one inbound message per event, keyed by the message id
  ``mid`` (postbacks without a mid get ``postback:<psid>:<timestamp>``). An event sent
  alone, the usual POST, is stored as Meta sent it.
- Deliveries, reads, echoes of the page's own messages, opt-ins and referrals are never
  requests: :func:`split_batch` drops them (counted).
- Location attachments were removed from the platform in 2019; old payloads still parse.
- Only messages within 24 hours of the citizen's last message may be sent without a tag
  (the gateway checks the window before choosing the channel; Meta's own refusal, error
  code 10 / subcode 2018278, is a permanent error).
- facebook-sdk is not used: unmaintained since 2018, retired Graph versions only, no Send
  API, no signature check. Plain httpx instead.

Modules: ``webhook`` (signature, subscription check, splitting a batch into stored events)
and ``channel`` (``MessengerChannel``: an event parsed, messages sent, attachments fetched).
"""

from .channel import MessengerChannel
from .webhook import split_batch, verify_signature, verify_subscription

__all__ = ["MessengerChannel", "split_batch", "verify_signature", "verify_subscription"]
