from django.shortcuts import render
from django.views.decorators.http import require_GET

from apps.payouts.services import withdrawal_get_by_progress_token
from apps.refunds.services import refund_get_by_progress_token
from apps.track.messages import party_text, step_text


@require_GET
def refund_progress(request, token: str):
    """The customer's view of one refund, like a parcel tracker. Read-only; the link is the key."""
    refund = refund_get_by_progress_token(token)
    if refund is None:
        return render(request, "track/invalid.html", status=404)
    locale = refund.customer.locale
    timeline = list(refund.events.all())
    events = [
        {"text": step_text(e.code, locale), "party": party_text(e.responsible_party, locale), "at": e.created_at}
        for e in timeline
    ]
    context = {
        "refund": refund,
        "locale": locale,
        "status_text": step_text(timeline[-1].code, locale) if timeline else "",
        "events": events,
        "account": refund.destination_account.masked_number if refund.destination_account else "",
        "explanation": refund.decision.get("explanation", ""),
        "appeal": refund.decision.get("appeal", False),
        "guidance": getattr(refund, "support_ticket", None) and refund.support_ticket.guidance,
        "policy": getattr(refund.order.product, "refund_policy", None),
    }
    return render(request, "track/refund.html", context)


@require_GET
def withdrawal_progress(request, token: str):
    """The customer's view of one withdrawal to their bank card. Read-only; the link is the key."""
    withdrawal = withdrawal_get_by_progress_token(token)
    if withdrawal is None:
        return render(request, "track/invalid.html", status=404)
    locale = withdrawal.customer.locale
    timeline = list(withdrawal.events.all())
    events = [
        {"text": step_text(e.code, locale), "party": party_text(e.responsible_party, locale), "at": e.created_at}
        for e in timeline
    ]
    context = {
        "withdrawal": withdrawal,
        "reference": f"W{withdrawal.pk:08d}",
        "locale": locale,
        "status_text": step_text(timeline[-1].code, locale) if timeline else "",
        "events": events,
        "account": withdrawal.destination_account.masked_number,
    }
    return render(request, "track/withdrawal.html", context)
