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
LANGUAGE = {"fr": _l("French"), "en": _l("English")}  # a citizen's language, named in the reader's
REPLY_IN = {"fr": _l("Reply to the citizen (in French)"), "en": _l("Reply to the citizen (in English)")}
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
    "duplicate_added": _l("A duplicate was linked to this request"),
    "duplicate_confirmed": _l("Suggested duplicate confirmed by an agent"),
    "duplicate_rejected": _l("Suggested duplicate rejected by an agent"),
    "duplicate_removed": _l("A duplicate was unlinked"),
    "rerouted": _l("Routed again"),
    "normalized": _l("Read and understood"),
    "dedup": _l("Checked for duplicates"),
    "dedup_joined": _l("Joined to this request (same citizen, same problem)"),
    "delivered": _l("Delivered"),
    "delivery_retry": _l("Delivery failed, will retry"),
    "delivery_dead": _l("Delivery failed for good"),
    "delivery_requeued": _l("Delivery sent again by an administrator"),
    "notification_skipped": _l("Citizen not notified"),
    "reply_queued": _l("Reply to the citizen"),
    "assigned": _l("Assigned"),
    "note": _l("Internal note"),
    "marked_spam": _l("Marked as spam"),
    "acknowledged": _l("Acknowledgement sent to the citizen in the channel's answer"),
    "message_added": _l("Message from the citizen added"),
    "message_edited": _l("Message edited by the citizen"),
    "location_added": _l("Location shared by the citizen"),
    "reported_again": _l("Reported again: a new request was opened"),
    "split": _l("A message was separated into a new request"),
    "attachment_stored": _l("Attachment received"),
    "attachment_refused": _l("Attachment refused"),
    "attachment_failed": _l("Attachment could not be retrieved"),
    "contact_linked": _l("Contact details added to the citizen"),
    "contact_undeliverable": _l("The citizen's address cannot be reached"),
    "not_deliverable_on_channel": _l("Citizen not reachable on their channel: another one used"),
    "delivery_status": _l("Text message delivery report"),
    "declined": _l("Declined by the department: back to 311"),
    "decline_ignored": _l("Refusal ignored: already with 311"),
    "status_refused": _l("Status change refused"),
    "sla_approaching": _l("Deadline approaching"),
    "sla_breached": _l("Deadline passed"),
    "escalated": _l("Escalated to the supervisors"),
    "citizen_forgotten": _l("The citizen's personal data erased at their request"),
}
CHANNEL_ICON = {
    "phone": "☎", "sms": "✆", "email": "✉", "messenger": "◉", "telegram": "➤", "walk_in": "⌂",
    "web": "⌨", "open311": "⚙", "api": "⚙",
}
DELIVERY_STATE = {"pending": _l("Waiting"), "sending": _l("Sending"), "delivered": _l("Delivered"),
                  "dead": _l("Failed")}
ROLE = {"agent": _l("311 agent"), "supervisor": _l("Supervisor"), "admin": _l("Administrator"),
        "department": _l("Department staff"), "manager": _l("Manager"), "readonly": _l("Read-only (ombudsman)")}
MATCHED_BY = {
    "category": _l("no rule: the category's defaults"),
    "explicit_category": _l("no rule: the category chosen"),
    "triage": _l("no category recognized: 311 triage"),
    "agent": _l("department chosen by an agent"),
}

# A status as words inside a sentence written to a citizen ("Votre demande est {status_label}."),
# in the request's own language: written by jobs and webhooks, where no page sets a locale.
STATUS_IN_SENTENCE = {
    "fr": {"new": "reçue", "acknowledged": "reçue", "routed": "transmise au service responsable",
           "in_progress": "en cours", "resolved": "résolue", "closed": "fermée",
           "duplicate": "liée à une autre demande", "rejected": "rejetée",
           "needs_info": "en attente de renseignements"},
    "en": {"new": "received", "acknowledged": "received", "routed": "sent to the responsible department",
           "in_progress": "in progress", "resolved": "resolved", "closed": "closed",
           "duplicate": "linked to another request", "rejected": "rejected",
           "needs_info": "waiting for more information"},
}


def status_in_sentence(status: str, language: str | None) -> str:
    """``status`` in words for a citizen writing in ``language`` (French by default)."""
    return STATUS_IN_SENTENCE.get(language or "fr", STATUS_IN_SENTENCE["fr"]).get(status, status)
