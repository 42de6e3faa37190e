from django.shortcuts import render
from django.views.decorators.http import require_GET

from apps.commissions.selectors import commission_list_for_beneficiary
from apps.commissions.services import customer_get_by_statement_token
from apps.common.money import Money
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


COMMISSION_WORDS = {
    "status": {
        "pending": {"zh-hans": "待结算", "en": "Pending"},
        "available": {"zh-hans": "可结算", "en": "Available"},
        "paid": {"zh-hans": "已入账", "en": "Paid"},
        "frozen": {"zh-hans": "已冻结(退款处理中)", "en": "On hold (refund in progress)"},
        "clawed_back": {"zh-hans": "已扣回", "en": "Taken back"},
        "void": {"zh-hans": "已作废(退款在结算前完成)", "en": "Void (refunded before payment)"},
    },
    "event": {
        "accrued": {"zh-hans": "佣金产生", "en": "Commission earned"},
        "available": {"zh-hans": "结算期结束", "en": "Settlement period over"},
        "paid": {"zh-hans": "已计入余额", "en": "Paid into your balance"},
        "frozen": {"zh-hans": "冻结", "en": "Put on hold"},
        "clawed_back": {"zh-hans": "扣回", "en": "Taken back"},
        "released": {"zh-hans": "解冻", "en": "Released"},
        "debt_offset": {"zh-hans": "抵扣欠款", "en": "Offset against what you owed"},
    },
}


def format_amount(amount: int, currency: str, locale: str) -> str:
    return Money(amount, currency).format(locale)


def _word(group: str, key: str, locale: str) -> str:
    texts = COMMISSION_WORDS[group].get(key)
    return texts.get(locale, texts["en"]) if texts else key


@require_GET
def commission_statement(request, token: str):
    """A distributor's commission statement: every commission and why it changed. Read-only; the
    signed link is the key (it names one distributor of one merchant)."""
    customer = customer_get_by_statement_token(token)
    if customer is None:
        return render(request, "track/invalid.html", status=404)
    locale = customer.locale
    rows = []
    for c in commission_list_for_beneficiary(beneficiary=customer):
        rows.append(
            {
                "order": c.order.external_id,
                "level": c.level,
                "amount": format_amount(c.amount, c.currency, locale),
                "clawed_back": format_amount(c.clawed_back_amount, c.currency, locale),
                "status": _word("status", c.status, locale),
                "events": [
                    {
                        "at": e.created_at,
                        "text": _word("event", e.code, locale),
                        "amount": format_amount(e.amount, c.currency, locale) if e.amount else "",
                        "reason": e.reason,
                    }
                    for e in c.events.all()
                ],
            }
        )
    return render(request, "track/commission_statement.html", {"customer": customer, "locale": locale, "rows": rows})
