"""Twilio: SMS/MMS and voice calls in, SMS out (see sms.py and voice.py)."""

from .common import TwilioAccount, verify_signature
from .sms import TwilioSmsChannel, sms_reply
from .voice import TwilioVoiceChannel

__all__ = ["TwilioAccount", "TwilioSmsChannel", "TwilioVoiceChannel", "sms_reply", "verify_signature"]
