"""Every channel and sink the gateway knows, one line each. Explicit, never discovered.

Adding an adapter: write its module, add its line here, add its fixtures and its test file.
Each entry is a factory taking the gateway's settings mapping.
"""

from __future__ import annotations

from .channels.email import EmailChannel
from .channels.web_form import WebFormChannel
from .sinks.email_smtp import EmailSmtpSink
from .sinks.open311 import Open311Sink
from .sinks.slack import SlackSink
from .sinks.webhook import WebhookSink

# Inbound parsers, by the name stored on each inbound message.
INBOUND = {
    "web_form": lambda settings: WebFormChannel(),
}

# Channels that can write back to a citizen, by channel name.
OUTBOUND = {
    "email": EmailChannel.from_settings,
}

# Department tools, by the sink `type` used in config/departments.yaml.
SINKS = {
    "email_smtp": EmailSmtpSink.from_settings,
    "slack": SlackSink.from_settings,
    "webhook": WebhookSink.from_settings,
    "open311": Open311Sink.from_settings,
}
