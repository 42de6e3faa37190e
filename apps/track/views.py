"""Customer progress pages: one refund or withdrawal per signed link, in the customer's language.

Read-only except for one form: a refund that needs the customer's action takes a new receiving
account (CSRF-protected POST → `refund_update_destination`, which re-verifies through the bank and
resumes the refund). Accounts are shown as their last four digits only (G12); a link names one
object and never shows another (G11).
"""

from __future__ import annotations

from django.conf import settings
from django.shortcuts import redirect, render
from django.utils import translation
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods

from apps.commissions.selectors import commission_list_for_beneficiary
from apps.commissions.services import customer_get_by_statement_token
from apps.common.errors import ServiceError
from apps.common.money import Money
from apps.common.throttling import progress_link_missed
from apps.notifications.selectors import inbox_list_for_customer
from apps.payouts.services import withdrawal_get_by_progress_token
from apps.refunds.services import refund_get_by_progress_token, refund_update_destination
from apps.track import progress
from apps.track.forms import AccountChangeForm

LANGUAGES = ("zh-hans", "en")
MESSAGES_SHOWN = 20


def page_language(request, customer_locale: str) -> str:
    """`?lang=en|zh-hans` when given, else the customer's own language (else the site default)."""
    asked = request.GET.get("lang", "")
    if asked in LANGUAGES:
        return asked
    return customer_locale if customer_locale in LANGUAGES else settings.LANGUAGE_CODE


def _invalid(request):
    """A link that names nothing: 404, or 429 once this client has missed too often (guessing)."""
    wait = progress_link_missed(request)
    if wait is not None:
        response = render(request, "track/throttled.html", {**_support(), "wait": wait}, status=429)
        response["Retry-After"] = str(wait)
        return response
    return render(request, "track/invalid.html", _support(), status=404)


def _support() -> dict:
    return {"support_phone": settings.NOTIFY_SUPPORT_PHONE, "support_url": settings.NOTIFY_SUPPORT_URL}


def _messages(customer, subject_type: str, subject_id: int) -> list:
    rows = inbox_list_for_customer(customer=customer, subject_type=subject_type, subject_id=subject_id)
    return list(rows[:MESSAGES_SHOWN])


@require_http_methods(["GET", "HEAD", "POST"])
def refund_progress(request, token: str):
    """The customer's view of one refund, like a parcel tracker; the signed link is the key."""
    refund = refund_get_by_progress_token(token)
    if refund is None:
        return _invalid(request)
    locale = page_language(request, refund.customer.locale)
    with translation.override(locale):
        form = None
        status = 200
        if request.method == "POST":
            form, response = _change_account(request, refund, locale)
            if response is not None:
                return response
            status = 409 if form is None else 400
            refund.refresh_from_db()
        if form is None and refund.status == "needs_action":
            form = AccountChangeForm(current_account=refund.destination_account)
        context = {
            **_support(),
            "refund": refund,
            "locale": locale,
            "token": token,
            "kind": "refund",
            "reference": refund.order.external_id,
            "amount": Money(refund.amount, refund.currency).format(locale),
            "account": refund.destination_account.masked_number if refund.destination_account else "",
            "progress": progress.refund_progress(refund),
            "explanation": (refund.decision or {}).get("explanation", ""),
            "guidance": getattr(refund, "support_ticket", None) and refund.support_ticket.guidance,
            "policy": getattr(refund.order.product, "refund_policy", None),
            "form": form,
            "not_needed": request.method == "POST" and status == 409,
            "updated": request.GET.get("updated") == "1",
            "messages_about": _messages(refund.customer, "refund", refund.pk),
            "ws_path": f"/ws/r/{token}/",
            "tz": settings.NOTIFY_DEFAULT_TIME_ZONE,
        }
        return render(request, "track/refund.html", context, status=status)


def _change_account(request, refund, locale: str):
    """(form, response): a redirect after a successful change; the bound form when it is invalid;
    (None, None) when this refund does not take a new account now (nothing is written)."""
    if refund.status != "needs_action":
        return None, None
    form = AccountChangeForm(request.POST, current_account=refund.destination_account)
    if not form.is_valid():
        return form, None
    try:
        refund_update_destination(
            refund_id=refund.pk, destination_account=form.account(), actor="customer:progress_link"
        )
    except ServiceError:
        form.add_error(None, _("We could not use this account. Please check it, or contact support."))
        return form, None
    return form, redirect(f"{request.path}?lang={locale}&updated=1")


@require_GET
def withdrawal_progress(request, token: str):
    """The customer's view of one withdrawal to their bank card. Read-only; the link is the key."""
    withdrawal = withdrawal_get_by_progress_token(token)
    if withdrawal is None:
        return _invalid(request)
    locale = page_language(request, withdrawal.customer.locale)
    with translation.override(locale):
        context = {
            **_support(),
            "withdrawal": withdrawal,
            "locale": locale,
            "token": token,
            "kind": "withdrawal",
            "reference": withdrawal.withdrawal_number,
            "amount": Money(withdrawal.amount, withdrawal.currency).format(locale),
            "account": withdrawal.destination_account.masked_number,
            "progress": progress.withdrawal_progress(withdrawal),
            "messages_about": _messages(withdrawal.customer, "withdrawal", withdrawal.pk),
            "ws_path": f"/ws/r/w/{token}/",
            "tz": settings.NOTIFY_DEFAULT_TIME_ZONE,
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


def _word(group: str, key: str, locale: str) -> str:
    texts = COMMISSION_WORDS[group].get(key)
    return texts.get(locale, texts["en"]) if texts else key


@require_GET
def commission_statement(request, token: str):
    """A distributor's commission statement: every commission and why it changed. Read-only; the
    signed link is the key (it names one distributor of one merchant)."""
    customer = customer_get_by_statement_token(token)
    if customer is None:
        return _invalid(request)
    locale = customer.locale
    rows = []
    for c in commission_list_for_beneficiary(beneficiary=customer):
        rows.append(
            {
                "order": c.order.external_id,
                "level": c.level,
                "amount": Money(c.amount, c.currency).format(locale),
                "clawed_back": Money(c.clawed_back_amount, c.currency).format(locale),
                "status": _word("status", c.status, locale),
                "events": [
                    {
                        "at": e.created_at,
                        "text": _word("event", e.code, locale),
                        "amount": Money(e.amount, c.currency).format(locale) if e.amount else "",
                        "reason": e.reason,
                    }
                    for e in c.events.all()
                ],
            }
        )
    return render(request, "track/commission_statement.html", {"customer": customer, "locale": locale, "rows": rows})
