"""Every channel and sink the gateway knows, one line each. Explicit, never discovered.

Adding an adapter: write its module, add its line here, add its fixtures and its test file.
Each entry is a factory taking the gateway's settings mapping.
"""

from __future__ import annotations

from .channels.email import EmailChannel
from .channels.email_imap import EmailImapChannel
from .channels.messenger import MessengerChannel
from .channels.telegram import TelegramChannel
from .channels.twilio import TwilioSmsChannel, TwilioVoiceChannel
from .channels.web_form import WebFormChannel
from .sinks.email_smtp import EmailSmtpSink
from .sinks.open311 import Open311Sink
from .sinks.slack import SlackSink
from .sinks.webhook import WebhookSink

# Inbound parsers, by the name stored on each inbound message.
INBOUND = {
    "web_form": lambda settings: WebFormChannel(),
    "email": EmailImapChannel.from_settings,
    "messenger": MessengerChannel.from_settings,
    "telegram": TelegramChannel.from_settings,
    "twilio_sms": TwilioSmsChannel.for_inbound,
    "twilio_voice": TwilioVoiceChannel.for_inbound,
}

# Channels that can write back to a citizen, by channel name.
OUTBOUND = {
    "email": EmailChannel.from_settings,
    "messenger": MessengerChannel.for_sending,
    "telegram": TelegramChannel.for_sending,
    "sms": TwilioSmsChannel.from_settings,
}

# Department tools, by the sink `type` used in config/departments.yaml.
SINKS = {
    "email_smtp": EmailSmtpSink.from_settings,
    "slack": SlackSink.from_settings,
    "webhook": WebhookSink.from_settings,
    "open311": Open311Sink.from_settings,
}
