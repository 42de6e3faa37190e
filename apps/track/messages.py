"""Plain words for the progress pages, per event code and reason code. English msgids, translated in
`locale/zh_Hans/LC_MESSAGES/django.po` (compiled `.mo` committed): `step_text(code, "zh-hans")`."""

from __future__ import annotations

from django.utils import translation
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

STEPS = {
    "requested": _("We received your refund request"),
    "approved": _("Refund approved"),
    "manual_review": _("A person is reviewing your refund"),
    "rejected": _("Refund declined; you can appeal to a person"),
    "tech_support": _("Sent to technical support to fix the problem"),
    "submitted": _("Sent to the bank"),
    "processing": _("The bank is processing it"),
    "held_by_bank": _("Held by the bank's security review"),
    "unknown": _("Confirming the result with the bank"),
    "resubmitted": _("The bank had not executed it; sent again"),
    "succeeded": _("The money has arrived"),
    "failed": _("The bank could not complete it"),
    "retrying": _("Retrying automatically"),
    "needs_action": _("Please check your receiving account"),
    "account_updated": _("Receiving account updated"),
    "reversed": _("The bank returned the money (account may be closed)"),
    "cancelled": _("Cancelled"),
    "held_frozen": _("On hold while the account is reviewed; nothing has been sent"),
    "hold_released": _("Review finished; on its way again"),
    # withdrawals
    "created": _("We received your withdrawal request"),
    "checking": _("Running safety checks"),
    "held": _("Under security review; we may need documents"),
    "released": _("Review passed"),
    "pending_approval": _("Waiting for a second check"),
    "precheck_failed": _("Checks failed; please check your card details"),
    "paid": _("The money has arrived"),
    "returned": _("The bank returned the money"),
}

PARTIES = {
    "platform": pgettext_lazy("responsible party", "Platform"),
    "bank": pgettext_lazy("responsible party", "Bank"),
    "customer": pgettext_lazy("responsible party", "You"),
    "merchant": pgettext_lazy("responsible party", "Merchant"),
}

# Who has to do something, said to the customer (the "responsible" line of a delay or failure).
RESPONSIBILITY = {
    "platform": _("Our side: we are fixing it, nothing is needed from you."),
    "bank": _("The bank: nothing is needed from you; we follow it up."),
    "customer": _("You: the receiving account needs your attention."),
    "merchant": _("The merchant: they are looking at it, nothing is needed from you."),
}

# Why money did not arrive (normalised reason codes, apps.gateways.reasons).
REASONS = {
    "account_frozen": _("The bank says the receiving account is frozen."),
    "holder_name_mismatch": _("The holder name does not match the bank's records."),
    "account_closed": _("The receiving account has been closed."),
    "channel_limit": _("The bank's daily limit was reached; we retry automatically."),
    "risk_hold": _("The bank is running a security check on this transfer."),
    "timeout": _("The bank's system is busy; we retry automatically."),
    "outage": _("The bank's system is down for maintenance; we retry automatically."),
    "request_invalid": _("A problem in our own system."),
    "late": _("It is taking longer than we promised."),
}
REASON_FALLBACK = _("The bank gave no reason; we are checking with them.")

# The parcel-tracker stages, in order, and which timeline codes reach which stage.
REFUND_STAGES = (
    ("requested", _("Requested")),
    ("approved", _("Approved")),
    ("accepted", _("Bank accepted")),
    ("processing", _("Processing")),
    ("arrived", _("Arrived")),
)
REFUND_STAGE_OF = {
    "requested": 0,
    "manual_review": 0,
    "tech_support": 0,
    "approved": 1,
    "account_updated": 1,
    "retrying": 1,
    "held_frozen": 1,
    "hold_released": 1,
    "submitted": 2,
    "resubmitted": 2,
    "unknown": 2,
    "processing": 3,
    "held_by_bank": 3,
    "succeeded": 4,
}
WITHDRAWAL_STAGE_OF = {
    "created": 0,
    "checking": 0,
    "held": 0,
    "pending_approval": 0,
    "released": 0,
    "approved": 1,
    "held_frozen": 1,
    "hold_released": 1,
    "submitted": 2,
    "resubmitted": 2,
    "unknown": 2,
    "processing": 3,
    "held_by_bank": 3,
    "paid": 4,
}


def _in(locale: str, text) -> str:
    with translation.override(locale):
        return str(text)


def step_text(code: str, locale: str) -> str:
    text = STEPS.get(code)
    return code if text is None else _in(locale, text)


def party_text(party: str, locale: str) -> str:
    text = PARTIES.get(party)
    return party if text is None else _in(locale, text)


def reason_text(code: str) -> str:
    """In the active language."""
    return str(REASONS.get(code, REASON_FALLBACK))
