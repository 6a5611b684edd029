"""Words shown to people for the codes stored in the database (translated with Babel)."""

from flask_babel import lazy_gettext as _l

STATUS = {
    "new": _l("Received"),
    "acknowledged": _l("Acknowledged"),
    "routed": _l("Sent to the department"),
    "in_progress": _l("In progress"),
    "resolved": _l("Resolved"),
    "closed": _l("Closed"),
    "duplicate": _l("Linked to another request"),
    "rejected": _l("Rejected"),
    "needs_info": _l("More information needed"),
}
PRIORITY = {"urgent": _l("Urgent"), "routine": _l("Routine"), "deferrable": _l("Deferrable")}
CHANNEL = {
    "phone": _l("Phone"), "sms": _l("Text message"), "email": _l("E-mail"), "messenger": "Messenger",
    "telegram": "Telegram", "walk_in": _l("At the counter"), "web": _l("Web form"),
    "open311": "Open311", "api": "API", "none": _l("No follow-up"),
}
EVENT = {
    "received": _l("Request received"),
    "routed": _l("Sent to the responsible department"),
    "status_changed": _l("Status changed"),
    "resolved": _l("Resolved"),
    "closed": _l("Closed"),
    "duplicate_linked": _l("Linked to a request about the same problem"),
    "duplicate_unlinked": _l("Handled as a request of its own"),
    "split_from": _l("Separated from another request"),
}
