"""What each fact owes whom: the trigger table, and the plain-language values messages are filled
with. Called by the receivers inside the transaction that recorded the fact.

| fact (timeline event)                                   | message                    | priority |
|---------------------------------------------------------|----------------------------|----------|
| refund approved (automatically or by a reviewer)        | refund_approved            | low      |
| refund sent to manual review                            | refund_under_review        | medium   |
| refund rejected                                         | refund_rejected            | medium   |
| refund routed to technical support                      | refund_tech_support        | medium   |
| refund held by the bank / failed, retried or not ours   | refund_delayed (new ETA)   | medium   |
| refund needs the customer's action (account problem)    | refund_failed_account      | high     |
| refund arrived                                          | refund_arrived             | medium   |
| withdrawal held (risk control, pre-checks)              | withdrawal_held            | high     |
| withdrawal held by the bank / failed and retried         | withdrawal_delayed         | medium   |
| withdrawal failed on the card's details (customer's)    | withdrawal_failed_account  | high     |
| withdrawal refused by another pre-check (why, what to do)| withdrawal_refused         | high     |
| payout (to a merchant) held, failed or returned         | payout_problem (staff)     | medium   |
| P0 alert raised or escalated (apps.alerts calls)        | p0_page (on-call staff)    | critical |
| commission frozen / clawed back / released (commissions)| commission_*               | medium   |
"""

from __future__ import annotations

import logging
from datetime import datetime
from zoneinfo import ZoneInfo

from babel.dates import format_datetime
from django.conf import settings
from django.db.models import Q

from apps.accounts.models import BankAccount, Customer, User
from apps.common.money import Money
from apps.notifications.models import Priority
from apps.notifications.services import notify
from apps.payouts.services import withdrawal_progress_url

logger = logging.getLogger(__name__)

_BABEL = {"zh-hans": "zh_Hans_CN", "en": "en"}

# Why money did not arrive, in the customer's words (normalised reason codes, apps.gateways.reasons).
REASON_TEXT = {
    "account_frozen": {"zh-hans": "银行反馈该账户已被冻结", "en": "the bank says the account is frozen"},
    "holder_name_mismatch": {
        "zh-hans": "持卡人姓名与银行登记的不一致",
        "en": "the holder name does not match the bank's records",
    },
    "account_closed": {"zh-hans": "该账户已注销", "en": "the account has been closed"},
    "channel_limit": {
        "zh-hans": "银行当日处理额度已满,我们会自动重试",
        "en": "the bank's daily limit was reached; we retry automatically",
    },
    "risk_hold": {"zh-hans": "银行正在进行安全审核", "en": "the bank is running a security check"},
    "timeout": {"zh-hans": "银行系统繁忙,我们会自动重试", "en": "the bank's system is busy; we retry automatically"},
    "outage": {"zh-hans": "银行系统维护中,我们会自动重试", "en": "the bank's system is down for maintenance; we retry"},
    "request_invalid": {"zh-hans": "我方系统出现问题", "en": "a problem in our system"},
    # Pre-check failures are recorded as "precheck_<check name>" (apps.payouts.checks).
    "precheck_account_verification": {
        "zh-hans": "持卡人姓名或卡号与银行登记的不一致",
        "en": "the cardholder name or number does not match the bank's records",
    },
}

# A withdrawal the pre-checks refused, by check (and, for the account status, by its reason): why,
# in the customer's words, and what they can do. Nothing was sent to a bank; the money stays in
# their balance.
WITHDRAWAL_REFUSALS = {
    "account_status:merchant_inactive": (
        {"zh-hans": "商户账户当前不可用", "en": "the merchant's account is not active"},
        {"zh-hans": "请联系商户客服", "en": "Please contact the merchant"},
    ),
    "account_status:destination_account_frozen": (
        {"zh-hans": "该银行卡已被暂停收款", "en": "payments to this card are suspended"},
        {"zh-hans": "请更换其他银行卡后重新提交,或联系客服", "en": "Use another card and submit again, or contact us"},
    ),
    "account_status:customer_frozen": (
        {"zh-hans": "您的账户正在安全审核中", "en": "your account is under a security review"},
        {
            "zh-hans": "审核完成后即可提现,如有疑问请联系客服",
            "en": "You can withdraw once the review is done; contact us with any question",
        },
    ),
    "currency_match": (
        {"zh-hans": "提现币种与银行卡币种不一致", "en": "the withdrawal currency differs from the card's"},
        {"zh-hans": "请使用与银行卡相同的币种重新提交", "en": "Submit again in the card's currency"},
    ),
    "fx_simulation": (
        {"zh-hans": "我方汇率换算出现问题", "en": "a currency conversion problem on our side"},
        {"zh-hans": "我们正在处理,您可稍后重新提交", "en": "We are fixing it; you can submit again later"},
    ),
    "amount_matches_source": (
        {"zh-hans": "提现金额超过了您的可提现余额", "en": "the amount is more than your withdrawable balance"},
        {"zh-hans": "请按可提现余额修改金额后重新提交", "en": "Submit again for at most your withdrawable balance"},
    ),
    "balance_sufficient": (
        {"zh-hans": "可提现余额不足", "en": "the available balance is not enough"},
        {
            "zh-hans": "请等待处理中的提现完成,或减少金额后重新提交",
            "en": "Wait for your withdrawals in progress to finish, or ask for less",
        },
    ),
    "per_transaction_limit": (
        {"zh-hans": "超过单笔提现限额", "en": "it is over the limit for one withdrawal"},
        {"zh-hans": "请减少金额或分多笔提现", "en": "Ask for less, or split it into several withdrawals"},
    ),
    "daily_limit": (
        {"zh-hans": "超过每日提现限额", "en": "it is over the daily withdrawal limit"},
        {"zh-hans": "请明天再试或减少金额", "en": "Try again tomorrow, or ask for less"},
    ),
    "risk": (
        {"zh-hans": "未通过安全检查", "en": "it did not pass our security checks"},
        {"zh-hans": "请联系客服核实", "en": "Contact us to have it checked"},
    ),
}
_REFUSAL_FALLBACK = (
    {"zh-hans": "未通过提现前检查", "en": "it did not pass the checks before sending"},
    {"zh-hans": "请联系客服", "en": "Contact us"},
)


def withdrawal_refusal(d, event, locale: str) -> tuple[str, str]:
    """(why, what to do) for a withdrawal the pre-checks refused, in `locale`."""
    check = d.failure_code.removeprefix("precheck_")
    reason = event.detail.get("reason", "")
    why, steps = WITHDRAWAL_REFUSALS.get(f"{check}:{reason}") or WITHDRAWAL_REFUSALS.get(check) or _REFUSAL_FALLBACK
    return why.get(locale) or why["en"], steps.get(locale) or steps["en"]


_REASON_FALLBACK = {"zh-hans": "银行未说明原因,我们正在核实", "en": "the bank gave no reason; we are checking"}

# What a customer sends so a risk review can finish (seed practice: say exactly which documents).
WITHDRAWAL_MATERIALS = {
    "zh-hans": "身份证正反面照片,以及这笔资金来源的说明(如订单截图或收入证明)",
    "en": "a photo of both sides of your ID card, and a note on where the money came from "
    "(an order screenshot or proof of income)",
}

_CUSTOMER_ACCOUNT_CODES = {"account_frozen", "holder_name_mismatch", "account_closed"}


def reason_text(code: str, locale: str) -> str:
    return REASON_TEXT.get(code, _REASON_FALLBACK).get(locale) or REASON_TEXT.get(code, _REASON_FALLBACK)["en"]


def format_amount(amount: int, currency: str, locale: str) -> str:
    return Money(amount, currency).format(locale)


def format_when(value: datetime | None, locale: str) -> str:
    if value is None:
        return ""
    local = value.astimezone(ZoneInfo(settings.NOTIFY_DEFAULT_TIME_ZONE))
    pattern = "M月d日 HH:mm" if locale == "zh-hans" else "d MMM HH:mm"
    return format_datetime(local, pattern, locale=_BABEL.get(locale, "en"))


def _common(locale: str) -> dict:
    return {
        "support_phone": settings.NOTIFY_SUPPORT_PHONE,
        "support_link": settings.NOTIFY_SUPPORT_URL,
        "compensation": settings.NOTIFY_COMPENSATION.get(locale, settings.NOTIFY_COMPENSATION["en"]),
    }


def _account(account: BankAccount | None) -> dict:
    return {"account_last4": account.last4 if account else "", "bank": account.bank if account else ""}


# --- refunds ---------------------------------------------------------------------------------

_REFUND_MESSAGES = {
    "approved": ("refund_approved", Priority.LOW),
    "manual_review": ("refund_under_review", Priority.MEDIUM),
    "rejected": ("refund_rejected", Priority.MEDIUM),
    "tech_support": ("refund_tech_support", Priority.MEDIUM),
    "held_by_bank": ("refund_delayed", Priority.MEDIUM),
    "needs_action": ("refund_failed_account", Priority.HIGH),
    "succeeded": ("refund_arrived", Priority.MEDIUM),
}


def _refund_message(refund, event) -> tuple[str, str] | None:
    if event.code == "failed":
        # A customer's account problem is told by the needs_action event that follows.
        if event.responsible_party == "customer":
            return None
        return "refund_delayed", Priority.MEDIUM
    return _REFUND_MESSAGES.get(event.code)


def _support_guidance(refund, locale: str) -> str:
    """The self-help steps of a refund routed to technical support. The event is announced before
    the support ticket is written (apps.refunds.services._create_decided, then
    _follow_up_decision), so the steps come from the decision's routing clause, as the ticket's do."""
    from apps.refunds.routing import guidance_for

    ticket = getattr(refund, "support_ticket", None)
    if ticket is not None:
        steps = ticket.guidance
    else:
        clauses = (refund.decision or {}).get("clauses") or []
        category = next((c.get("category") for c in clauses if c.get("category")), None) or "access"
        steps = guidance_for(category, locale)
    return " ".join(str(step) for step in steps)


def refund_event(refund, event) -> int:
    """Write what a refund's timeline event owes its customer (see the table above)."""
    from apps.refunds.services import refund_progress_url

    message = _refund_message(refund, event)
    if message is None:
        return 0
    template_key, priority = message
    customer = refund.customer
    locale = customer.locale
    link = refund_progress_url(refund)
    guidance = _support_guidance(refund, locale) if event.code == "tech_support" else ""
    context = {
        **_common(locale),
        **_account(refund.destination_account),
        "amount": format_amount(refund.amount, refund.currency, locale),
        "eta": format_when(refund.expected_arrival_at, locale),
        "party": event.responsible_party,
        "reason": reason_text(refund.failure_code, locale) if refund.failure_code else "",
        "explanation": (refund.decision or {}).get("explanation", ""),
        "guidance": guidance,
        "appeal_link": f"{link}#appeal",
        "change_account_link": f"{link}#account",
    }
    fresh = template_key != "refund_delayed"
    if fresh:
        event_key = f"refund:{refund.pk}:{event.code}:{event.pk}"  # the event was just written
    else:
        # One delay message per promised arrival time: a new ETA is news, the same one is not.
        event_key = f"refund:{refund.pk}:delayed:{refund.expected_arrival_at:%Y%m%d%H%M}"
    return notify(
        recipient=customer,
        template_key=template_key,
        priority=priority,
        event_key=event_key,
        context=context,
        subject_type="refund",
        subject_id=refund.pk,
        reference=refund.order.external_id,
        link=link,
        fresh=fresh,
    )


# --- withdrawals and payouts -----------------------------------------------------------------


def _withdrawal_message(d, event) -> tuple[str, str] | None:
    code = event.code
    if code == "held":
        return "withdrawal_held", Priority.HIGH
    if code == "held_by_bank":
        return "withdrawal_delayed", Priority.MEDIUM
    # A card the bank does not recognise gets the "check your card" message; any other refusal by
    # the pre-checks (limits, balance, a frozen account or card, the merchant, security) says why
    # and what the customer can do.
    if code == "precheck_failed":
        if d.failure_code == "precheck_account_verification":
            return "withdrawal_failed_account", Priority.HIGH
        return "withdrawal_refused", Priority.HIGH
    if code == "failed":
        if d.failure_code in _CUSTOMER_ACCOUNT_CODES:
            return "withdrawal_failed_account", Priority.HIGH
        if event.detail.get("retryable"):
            return "withdrawal_delayed", Priority.MEDIUM
    return None


def _disbursement_link(d) -> str:
    return settings.PUBLIC_BASE_URL.rstrip("/") + f"/console/{d.kind}s/{d.pk}/"


def withdrawal_event(d, event) -> int:
    message = _withdrawal_message(d, event)
    if message is None or d.customer_id is None:
        return 0
    template_key, priority = message
    customer = d.customer
    locale = customer.locale
    link = withdrawal_progress_url(d)
    reference = d.withdrawal_number
    refusal = withdrawal_refusal(d, event, locale) if template_key == "withdrawal_refused" else ("", "")
    context = {
        **_common(locale),
        **_account(d.destination_account),
        "amount": format_amount(d.amount, d.currency, locale),
        "eta": "",
        "party": event.responsible_party,
        "reason": refusal[0] or (reason_text(d.failure_code, locale) if d.failure_code else ""),
        "steps": refusal[1],
        "materials": WITHDRAWAL_MATERIALS.get(locale, WITHDRAWAL_MATERIALS["en"]),
        "change_account_link": f"{link}#account",
    }
    return notify(
        recipient=customer,
        template_key=template_key,
        priority=priority,
        event_key=f"withdrawal:{d.pk}:{event.code}:{event.pk}",
        context=context,
        subject_type="withdrawal",
        subject_id=d.pk,
        reference=reference,
        link=link,
    )


_PAYOUT_PROBLEMS = {"held", "failed", "returned", "precheck_failed", "recall_failed"}
_PAYOUT_REASON = {
    "held": {"zh-hans": "已被预检拦截,等待人工处理", "en": "stopped by the pre-checks; waiting for a person"},
    "returned": {"zh-hans": "银行退回了款项", "en": "the bank returned the money"},
    "recall_failed": {"zh-hans": "撤回失败", "en": "the recall failed"},
}


def payout_event(d, event) -> int:
    """A merchant's payout needing attention: its finance staff and owners are told (inbox + push)."""
    if event.code not in _PAYOUT_PROBLEMS:
        return 0
    staff = User.objects.filter(merchant_id=d.merchant_id, is_active=True).filter(
        Q(role=User.Role.FINANCE) | Q(role=User.Role.OWNER)
    )
    # Staff read in their merchant's language: one context serves them all.
    locale = d.merchant.default_locale
    context = {
        **_common(locale),
        **_account(d.destination_account),
        "amount": format_amount(d.amount, d.currency, locale),
        "party": event.responsible_party,
        "reason": _PAYOUT_REASON.get(event.code, {}).get(locale) or reason_text(d.failure_code, locale),
    }
    written = 0
    for user in staff:
        written += notify(
            recipient=user,
            template_key="payout_problem",
            priority=Priority.MEDIUM,
            event_key=f"payout:{d.pk}:{event.code}:{event.pk}",
            context=context,
            subject_type="payout",
            subject_id=d.pk,
            reference=d.reference,
            link=_disbursement_link(d),
        )
    return written


# --- alerts and commissions (called by the higher apps) ---------------------------------------


def staff_page(
    *, alert_id: int, usernames: list[str], summary: str, reference: str, level: int, merchant_id: int | None
) -> int:
    """Page on-call staff for a P0 alert: SMS + voice + inbox, ignoring quiet hours and limits.
    One page per alert and escalation level. Staff are found by username (the on-call rota)."""
    link = settings.PUBLIC_BASE_URL.rstrip("/") + f"/console/alerts/{alert_id}/"
    written = 0
    for user in User.objects.filter(username__in=usernames, is_active=True):
        written += notify(
            recipient=user,
            template_key="p0_page",
            priority=Priority.CRITICAL,
            event_key=f"alert:{alert_id}:page:{level}",
            context={"summary": summary},
            subject_type="alert",
            subject_id=alert_id,
            reference=reference,
            link=link,
        )
    if not written:
        logger.error("notifications: nobody to page for alert %s (rota %s)", alert_id, usernames)
    return written


COMMISSION_MESSAGES = {
    "frozen": "commission_frozen",
    "clawed_back": "commission_clawed_back",
    "released": "commission_released",
}


def commission_changed(
    *,
    distributor: Customer,
    change: str,
    commission_id: int,
    order_reference: str,
    amount: int,
    currency: str,
    link: str,
    reason: str = "",
    cause: str = "",
) -> int:
    """Tell a distributor their commission on an order was frozen, clawed back or released.
    `cause` (e.g. "refund:12") tells changes apart: a second refund of the order freezes or claws
    back again, and that is news; the same cause reported twice is not."""
    locale = distributor.locale
    return notify(
        recipient=distributor,
        template_key=COMMISSION_MESSAGES[change],
        priority=Priority.MEDIUM,
        event_key=f"commission:{commission_id}:{change}:{cause}" if cause else f"commission:{commission_id}:{change}",
        context={**_common(locale), "amount": format_amount(amount, currency, locale), "reason": reason},
        subject_type="commission",
        subject_id=commission_id,
        reference=order_reference,
        link=link,
    )
