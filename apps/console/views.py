"""Merchant console pages: server-rendered, htmx for actions, live alerts over /ws/console/.

Views read and call services; they never decide. Every lookup goes through `request.merchant`
(apps.console.access), so another merchant's object is a 404 and nothing is written.
"""

from __future__ import annotations

import csv
from datetime import date, datetime, timedelta

import segno
from django.contrib import messages
from django.core.paginator import Paginator
from django.db.models import Q
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from apps.accounts.services import OTP_FIELD, staff_totp_confirm, staff_totp_device, staff_totp_enroll
from apps.alerts.models import Alert, Tier
from apps.alerts.selectors import alert_get_for_owner, alert_list_for_owner, silence_list_for_owner
from apps.alerts.services import alert_ack, alert_resolve, silence_create
from apps.commissions.selectors import commission_clawbacks_by_day_for_merchant, commission_list_for_merchant
from apps.common.errors import ServiceError
from apps.common.money import CurrencyError, Money
from apps.console import selectors
from apps.console.access import actor, can, forbidden, not_found, permissions_for, refusal, staff_view
from apps.notifications.api import mask_address
from apps.notifications.selectors import notification_list_for_merchant
from apps.payouts.models import Disbursement, Kind
from apps.payouts.selectors import disbursement_get_for_merchant, disbursement_list_for_merchant
from apps.payouts.services import payout_approve, payout_needs_second_factor
from apps.refunds.models import Refund
from apps.refunds.selectors import refund_list_for_merchant
from apps.risk.models import ACTION_PRECEDENCE, Case, Rule, Scope
from apps.risk.rules import rule_backtest, rule_stats, rule_update
from apps.risk.selectors import rule_hit_counts_for_merchant
from apps.risk.services import case_decide

PAGE_SIZE = 50
SILENCE_HOURS = (1, 4, 24, 72)


def _render(request, template: str, context: dict, *, status: int = 200):
    context = {"merchant": request.merchant, "can": permissions_for(request.user), **context}
    return render(request, template, context, status=status)


def _is_htmx(request) -> bool:
    return request.headers.get("HX-Request") == "true"


def _int(value) -> int | None:
    try:
        number = int(value)
    except (TypeError, ValueError):
        return None
    return number if 0 < number < 2**63 else None


def _date(value) -> date | None:
    try:
        return date.fromisoformat(value) if value else None
    except ValueError:
        return None


def _page(request, rows):
    return Paginator(rows, PAGE_SIZE).get_page(request.GET.get("page"))


def _done(request, message: str, url: str, *, error: bool = False):
    (messages.error if error else messages.success)(request, message)
    return redirect(url)


# --- overview -------------------------------------------------------------------------------------


@require_GET
@staff_view
def dashboard(request):
    """What is wrong right now for this merchant, and what is moving."""
    merchant = request.merchant
    return _render(
        request,
        "console/dashboard.html",
        {
            "alerts": selectors.open_alerts_for_merchant(merchant=merchant)[:50],
            "alert_counts": selectors.alert_counts_by_tier(merchant=merchant),
            "in_flight": selectors.in_flight_by_state(merchant=merchant),
            "today": selectors.refund_figures_today(merchant=merchant),
            "channels": selectors.channel_health_list(),
            "open_cases": selectors.open_case_count(merchant=merchant),
            "pending_approvals": selectors.pending_approval_count(merchant=merchant),
            "live": True,
        },
    )


# --- alerts -------------------------------------------------------------------------------------


@require_GET
@staff_view
def alert_list(request):
    tier = request.GET.get("tier") if request.GET.get("tier") in Tier.values else None
    status = request.GET.get("status") if request.GET.get("status") in Alert.Status.values else None
    rows = alert_list_for_owner(merchant=request.merchant, tier=tier, status=status).filter(parent__isnull=True)
    return _render(
        request,
        "console/alert_list.html",
        {
            "page": _page(request, rows),
            "tier": tier or "",
            "status": status or "",
            "tiers": Tier.values,
            "statuses": Alert.Status.choices,
            "silences": silence_list_for_owner(merchant=request.merchant, active=True, now=timezone.now())[:20],
            "live": True,
        },
    )


def _alert_or_404(request, pk: int) -> Alert:
    alert = alert_get_for_owner(merchant=request.merchant, pk=pk)
    if alert is None:
        raise not_found(request, "alert", pk)
    return alert


@require_GET
@staff_view
def alert_detail(request, pk: int):
    alert = _alert_or_404(request, pk)
    return _render(
        request,
        "console/alert_detail.html",
        {
            "alert": alert,
            "children": alert.children.order_by("-last_seen_at", "-id") if alert.is_group else [],
            "events": alert.events.all(),
            "silence_hours": SILENCE_HOURS,
        },
    )


def _alert_action(request, pk: int, action: str):
    alert = _alert_or_404(request, pk)
    if not can(request.user, action):
        return forbidden(request, action)
    note = request.POST.get("note", "")[:2000]
    error = ""
    try:
        if action == "alert_ack":
            alert_ack(alert_id=alert.pk, actor=actor(request), user=request.user, merchant=request.merchant, note=note)
        else:
            alert_resolve(alert_id=alert.pk, actor=actor(request), merchant=request.merchant, note=note)
    except ServiceError as exc:
        error = refusal(exc)
    alert = _alert_or_404(request, pk)
    if _is_htmx(request):
        return _render(request, "console/_alert_row.html", {"alert": alert, "error": error})
    return _done(
        request,
        error or f"Alert #{alert.pk} is {alert.get_status_display().lower()}.",
        reverse("console:alert_detail", args=[alert.pk]),
        error=bool(error),
    )


@require_POST
@staff_view
def alert_ack_view(request, pk: int):
    return _alert_action(request, pk, "alert_ack")


@require_POST
@staff_view
def alert_resolve_view(request, pk: int):
    return _alert_action(request, pk, "alert_resolve")


@require_POST
@staff_view
def alert_silence_view(request, pk: int):
    """Silence future alerts like this one (same kind, and channel when it has one) for some hours."""
    alert = _alert_or_404(request, pk)
    if not can(request.user, "silence_create"):
        return forbidden(request, "silence_create")
    hours = _int(request.POST.get("hours"))
    url = reverse("console:alert_detail", args=[alert.pk])
    if hours not in SILENCE_HOURS:
        return _done(request, "Choose how long to silence.", url, error=True)
    matchers = {"kind": alert.kind}
    if alert.channel:
        matchers["channel"] = alert.channel
    try:
        silence_create(
            matchers=matchers,
            ends_at=timezone.now() + timedelta(hours=hours),
            actor=actor(request),
            merchant=request.merchant,
            created_by=request.user,
            comment=request.POST.get("comment", "")[:500] or f"from alert #{alert.pk}",
        )
    except ServiceError as exc:
        return _done(request, refusal(exc), url, error=True)
    return _done(request, f"Alerts of kind {alert.kind} are silenced for {hours} h.", url)


# --- review queue -------------------------------------------------------------------------------


@require_GET
@staff_view
def case_list(request):
    decided = request.GET.get("status") == "decided"
    rows = Case.objects.filter(merchant=request.merchant).select_related("assignee")
    rows = (
        rows.filter(status=Case.Status.DECIDED).order_by("-decided_at", "-id")
        if decided
        else rows.exclude(status=Case.Status.DECIDED).order_by("created_at", "id")
    )
    page = _page(request, rows)
    refunds = {
        r.pk: r
        for r in refund_list_for_merchant(merchant=request.merchant).filter(
            pk__in=[c.subject_id for c in page if c.subject_type == "refund"]
        )
    }
    for case in page:
        case.refund = refunds.get(case.subject_id) if case.subject_type == "refund" else None
    return _render(request, "console/case_list.html", {"page": page, "decided": decided})


def _case_or_404(request, pk: int) -> Case:
    case = (
        Case.objects.filter(merchant=request.merchant, pk=pk)
        .select_related("assignee")
        .prefetch_related("notes")
        .first()
    )
    if case is None:
        raise not_found(request, "case", pk)
    return case


@require_GET
@staff_view
def case_detail(request, pk: int):
    case = _case_or_404(request, pk)
    refund = disbursement = None
    if case.subject_type == "refund":
        refund = refund_list_for_merchant(merchant=request.merchant).filter(pk=case.subject_id).first()
    elif case.subject_type in Kind.values:
        disbursement = disbursement_get_for_merchant(
            merchant=request.merchant, kind=case.subject_type, pk=case.subject_id
        )
    decision = refund.decision if refund else {}
    return _render(
        request,
        "console/case_detail.html",
        {
            "case": case,
            "refund": refund,
            "disbursement": disbursement,
            "decision": decision,
            "usage": (decision.get("evidence") or {}).get("usage") or {},
            "trust": (decision.get("evidence") or {}).get("trust") or {},
        },
    )


@require_POST
@staff_view
def case_decide_view(request, pk: int):
    """Approve or decline with a note; deciding a refund's case moves the refund (risk.case_decide)."""
    case = _case_or_404(request, pk)
    if not can(request.user, "case_decide"):
        return forbidden(request, "case_decide")
    url = reverse("console:case_detail", args=[case.pk])
    decision = request.POST.get("decision", "")
    if decision not in (Case.Decision.APPROVE, Case.Decision.DECLINE):
        return _done(request, "Choose approve or decline.", url, error=True)
    try:
        case_decide(case=case, decision=decision, actor=actor(request), note=request.POST.get("note", "")[:2000])
    except ServiceError as exc:
        return _done(request, refusal(exc), url, error=True)
    return _done(request, f"Case #{case.pk}: {decision}d.", url)


# --- refunds, payouts, withdrawals ----------------------------------------------------------------


def _search_dates(request) -> tuple[date | None, date | None]:
    return _date(request.GET.get("from")), _date(request.GET.get("to"))


@require_GET
@staff_view
def refund_list(request):
    rows = refund_list_for_merchant(merchant=request.merchant)
    order = request.GET.get("order", "").strip()
    customer = request.GET.get("customer", "").strip()
    status = request.GET.get("status", "")
    since, until = _search_dates(request)
    if order:
        rows = rows.filter(order__external_id__icontains=order)
    if customer:
        rows = rows.filter(Q(customer__external_id=customer) | Q(customer__name__icontains=customer))
    if status in Refund.Status.values:
        rows = rows.filter(status=status)
    if since:
        rows = rows.filter(created_at__date__gte=since)
    if until:
        rows = rows.filter(created_at__date__lte=until)
    return _render(
        request,
        "console/refund_list.html",
        {
            "page": _page(request, rows),
            "statuses": Refund.Status.choices,
            "q": {"order": order, "customer": customer, "status": status, "from": since, "to": until},
        },
    )


def _notifications(request, subject_type: str, subject_id: int) -> list:
    rows = list(
        notification_list_for_merchant(merchant=request.merchant, subject_type=subject_type).filter(
            subject_id=subject_id
        )[:100]
    )
    for row in rows:
        row.masked_address = mask_address(row.address)
    return rows


@require_GET
@staff_view
def refund_detail(request, pk: int):
    refund = (
        refund_list_for_merchant(merchant=request.merchant)
        .select_related("order__product", "channel")
        .prefetch_related("events")
        .filter(pk=pk)
        .first()
    )
    if refund is None:
        raise not_found(request, "refund", pk)
    case = Case.objects.filter(merchant=request.merchant, subject_type="refund", subject_id=refund.pk).first()
    return _render(
        request,
        "console/refund_detail.html",
        {
            "refund": refund,
            "events": refund.events.all(),
            "decision": refund.decision or {},
            "case": case,
            "notifications": _notifications(request, "refund", refund.pk),
        },
    )


KIND_OF = {"payouts": Kind.PAYOUT, "withdrawals": Kind.WITHDRAWAL}


@require_GET
@staff_view
def disbursement_list(request, kind: str):
    rows = disbursement_list_for_merchant(merchant=request.merchant, kind=KIND_OF[kind])
    reference = request.GET.get("reference", "").strip()
    customer = request.GET.get("customer", "").strip()
    status = request.GET.get("status", "")
    since, until = _search_dates(request)
    if reference:
        rows = rows.filter(Q(reference__icontains=reference) | Q(pk=_int(reference) or 0))
    if customer:
        rows = rows.filter(Q(customer__external_id=customer) | Q(customer__name__icontains=customer))
    if status in Disbursement.Status.values:
        rows = rows.filter(status=status)
    if since:
        rows = rows.filter(created_at__date__gte=since)
    if until:
        rows = rows.filter(created_at__date__lte=until)
    return _render(
        request,
        "console/disbursement_list.html",
        {
            "kind": kind,
            "page": _page(request, rows),
            "statuses": Disbursement.Status.choices,
            "q": {"reference": reference, "customer": customer, "status": status, "from": since, "to": until},
        },
    )


def _disbursement_or_404(request, kind: str, pk: int) -> Disbursement:
    d = disbursement_get_for_merchant(merchant=request.merchant, kind=KIND_OF[kind], pk=pk)
    if d is None:
        raise not_found(request, kind[:-1], pk)
    return d


def _disbursement_page(request, kind: str, d: Disbursement, *, approve_error: str = "", status: int = 200):
    approvals = list(d.approvals.all())
    may_approve = (
        d.status == Disbursement.Status.PENDING_APPROVAL
        and can(request.user, "payout_approve")
        and d.created_by != request.user.get_username()
        and all(a.approver_id != request.user.pk for a in approvals)
    )
    needs_code = may_approve and payout_needs_second_factor(d)
    return _render(
        request,
        "console/disbursement_detail.html",
        {
            "kind": kind,
            "d": d,
            "events": d.events.all(),
            "prechecks": d.prechecks.all(),
            "approvals": approvals,
            "may_approve": may_approve,
            "needs_code": needs_code,
            "has_authenticator": needs_code and staff_totp_device(user=request.user) is not None,
            "approve_error": approve_error,
            "notifications": _notifications(request, KIND_OF[kind], d.pk),
        },
        status=status,
    )


@require_GET
@staff_view
def disbursement_detail(request, kind: str, pk: int):
    return _disbursement_page(request, kind, _disbursement_or_404(request, kind, pk))


@require_POST
@staff_view
def disbursement_approve_view(request, kind: str, pk: int):
    """Maker-checker approval through payouts.payout_approve (which refuses the creator and checks
    the authenticator code of a large movement's second approval)."""
    d = _disbursement_or_404(request, kind, pk)
    if not can(request.user, "payout_approve"):
        return forbidden(request, "payout_approve")
    url = reverse("console:disbursement_detail", args=[kind, d.pk])
    try:
        d = payout_approve(
            disbursement_id=d.pk,
            approver=request.user,
            note=request.POST.get("note", "")[:2000],
            otp_token=request.POST.get(OTP_FIELD, "")[:20],
        )
    except ServiceError as exc:
        if OTP_FIELD in exc.fields:  # a form error beside the code field, nothing written
            return _disbursement_page(request, kind, d, approve_error=refusal(exc), status=exc.status_code)
        return _done(request, refusal(exc), url, error=True)
    return _done(request, f"Approval recorded; {kind[:-1]} #{d.pk} is {d.get_status_display().lower()}.", url)


@require_GET
@staff_view
def approval_list(request):
    rows = (
        Disbursement.objects.filter(merchant=request.merchant, status=Disbursement.Status.PENDING_APPROVAL)
        .select_related("customer", "destination_account")
        .prefetch_related("approvals__approver")
        .order_by("created_at", "id")
    )
    return _render(request, "console/approval_list.html", {"page": _page(request, rows)})


# --- commissions (read-only) ----------------------------------------------------------------------


@require_GET
@staff_view
def commission_statement(request):
    beneficiary = request.GET.get("beneficiary", "").strip()
    rows = commission_list_for_merchant(merchant=request.merchant, beneficiary=beneficiary or None)
    totals: dict[str, dict[str, int]] = {}
    for c in rows[:1000]:
        t = totals.setdefault(c.currency, {"accrued": 0, "clawed_back": 0, "paid": 0})
        t["accrued"] += c.amount
        t["clawed_back"] += c.clawed_back_amount
        t["paid"] += c.paid_amount
    return _render(
        request,
        "console/commission_statement.html",
        {"beneficiary": beneficiary, "page": _page(request, rows), "totals": totals},
    )


# --- rules --------------------------------------------------------------------------------------


def _rules(request):
    return (
        Rule.objects.live()
        .filter(Q(merchant=request.merchant) | Q(merchant__isnull=True))
        .order_by("scope", "priority", "id")
    )


def _window(request) -> int:
    days = _int(request.GET.get("days"))
    return days if days in REPORT_DAYS else 30


@require_GET
@staff_view
def rule_list(request):
    """The merchant's and the platform's rules with all-time hit counts, and side by side for the
    last N days: hits while in shadow mode vs in active mode, and how many decided (or, in shadow,
    would have changed) the outcome."""
    days = _window(request)
    window = rule_hit_counts_for_merchant(merchant=request.merchant, since=timezone.now() - timedelta(days=days))
    empty = {"hits": 0, "decisive": 0, "would_change": 0}
    rules = list(_rules(request))
    for rule in rules:
        rule.stats = rule_stats(rule=rule, merchant=request.merchant)
        counts = window.get(rule.pk, {})
        rule.window = {"active": counts.get(Rule.Mode.ACTIVE, empty), "shadow": counts.get(Rule.Mode.SHADOW, empty)}
    return _render(
        request,
        "console/rule_list.html",
        {"rules": rules, "modes": Rule.Mode.choices, "days": days, "report_days": REPORT_DAYS},
    )


def _visible_rule_or_404(request, pk: int) -> Rule:
    rule = _rules(request).filter(pk=pk).first()
    if rule is None:
        raise not_found(request, "rule", pk)
    return rule


RULE_TEST_ACTIONS = ("review", "block", "block_and_freeze", "allow")


def _rule_test(request, rule: Rule | None):
    """Back-test a rule (or a new expression) on this merchant's recorded requests of the last N days
    with risk.rule_backtest. Reads only: nothing is written, whatever the expression."""
    if not can(request.user, "rule_test"):
        return forbidden(request, "rule_test")
    data = request.POST if request.method == "POST" else request.GET
    days = _int(data.get("days"))
    days = days if days in REPORT_DAYS else 30
    form = {
        "scope": rule.scope if rule else data.get("scope", Scope.REFUND),
        "expression": rule.expression if rule else data.get("expression", "")[:4000],
        "action": rule.action if rule else data.get("action", "review"),
        "days": days,
    }
    result, sample, error, status = None, [], "", 200
    if request.method == "POST":
        if form["scope"] not in Scope.values or form["action"] not in RULE_TEST_ACTIONS:
            error, status = "Choose a scope and an action.", 400
        else:
            try:
                result = rule_backtest(
                    merchant=request.merchant, scope=form["scope"], expression=form["expression"], days=days
                )
            except ServiceError as exc:
                error, status = refusal(exc), 400
        if result is not None:
            rank = ACTION_PRECEDENCE[form["action"]]
            # Would decide: the request got a weaker outcome than this rule's action would give it.
            result["would_decide"] = sum(
                n for outcome, n in result["hits_by_actual_outcome"].items() if ACTION_PRECEDENCE.get(outcome, 0) < rank
            )
            sample = selectors.backtest_sample_for_merchant(
                merchant=request.merchant, scope=form["scope"], subject_ids=result["sample_subject_ids"]
            )
    return _render(
        request,
        "console/rule_test.html",
        {
            "rule": rule,
            "form": form,
            "result": result,
            "sample": sample,
            "error": error,
            "scopes": Scope.choices,
            "actions": RULE_TEST_ACTIONS,
            "report_days": REPORT_DAYS,
        },
        status=status,
    )


@require_http_methods(["GET", "POST"])
@staff_view
def rule_test_view(request):
    return _rule_test(request, None)


@require_http_methods(["GET", "POST"])
@staff_view
def rule_test_existing_view(request, pk: int):
    return _rule_test(request, _visible_rule_or_404(request, pk))


@require_POST
@staff_view
def rule_mode_view(request, pk: int):
    """Switch one of the merchant's own rules between active, shadow and disabled (platform rules
    are read-only here, as in the API)."""
    rule = Rule.objects.live().filter(merchant=request.merchant, pk=pk).first()
    if rule is None:
        raise not_found(request, "rule", pk)
    if not can(request.user, "rule_mode"):
        return forbidden(request, "rule_mode")
    mode = request.POST.get("mode", "")
    if mode not in Rule.Mode.values:
        return _done(request, "Unknown mode.", reverse("console:rule_list"), error=True)
    rule_update(rule=rule, actor=actor(request), mode=mode)
    return _done(request, f"Rule {rule.code} is now {mode}.", reverse("console:rule_list"))


# --- reports ------------------------------------------------------------------------------------

REPORT_DAYS = (7, 30, 90)


def _report_since(request) -> tuple[int, date]:
    days = _int(request.GET.get("days"))
    days = days if days in REPORT_DAYS else 30
    return days, timezone.localdate() - timedelta(days=days - 1)


def _reports(merchant, since: date) -> dict[str, list[dict]]:
    return {
        "refund_rate": selectors.report_refund_rate_by_day(merchant=merchant, since=since),
        "top_reasons": selectors.report_top_reasons_by_product(merchant=merchant, since=since),
        "outcomes": selectors.report_decision_outcomes(merchant=merchant, since=since),
        "channel_failures": selectors.report_channel_failure_rate(merchant=merchant, since=since),
        "time_to_arrival": selectors.report_time_to_arrival(merchant=merchant, since=since),
        "clawbacks": commission_clawbacks_by_day_for_merchant(merchant=merchant, since=since),
    }


def _display(amount: int, currency: str) -> tuple[str, str]:
    """(formatted, plain decimal) of minor units, for the page and the chart only (CSV keeps minor
    units)."""
    try:
        money = Money(amount, currency)
    except (CurrencyError, TypeError, ValueError):
        return f"{amount} {currency} (minor units)", str(amount)
    return money.format("en"), str(money.decimal)


@require_GET
@staff_view
def reports(request):
    days, since = _report_since(request)
    data = _reports(request.merchant, since)
    clawbacks = [
        {**row, **dict(zip(("display", "major"), _display(row["amount"], row["currency"]), strict=True))}
        for row in data["clawbacks"]
    ]
    return _render(
        request,
        "console/reports.html",
        {
            "days": days,
            "report_days": REPORT_DAYS,
            "data": {**data, "clawbacks": clawbacks},
            "clawbacks": clawbacks,
            "clawback_totals": _clawback_totals(data["clawbacks"]),
        },
    )


def _clawback_totals(rows: list[dict]) -> list[dict]:
    """Amount clawed back over the period per currency (commissions are counted per day only: one
    commission clawed back on two days is one commission, not two)."""
    totals: dict[str, int] = {}
    for row in rows:
        totals[row["currency"]] = totals.get(row["currency"], 0) + row["amount"]
    return [{"currency": c, "amount": a, "display": _display(a, c)[0]} for c, a in sorted(totals.items())]


@require_GET
@staff_view
def report_csv(request, name: str):
    days, since = _report_since(request)
    data = _reports(request.merchant, since)
    if name not in data:
        raise not_found(request, "report", name)
    rows = data[name]
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    stamp = datetime.now(tz=timezone.get_current_timezone()).strftime("%Y%m%d")
    response["Content-Disposition"] = f'attachment; filename="{name}-{days}d-{stamp}.csv"'
    writer = csv.writer(response)
    if rows:
        writer.writerow(rows[0].keys())
        for row in rows:
            # A spreadsheet runs a cell starting with = + - @ as a formula: quote those.
            writer.writerow([f"'{v}" if isinstance(v, str) and v[:1] in "=+-@" else v for v in row.values()])
    return response


# --- security: the authenticator the second approval of a large movement needs ---------------------
# Enrolling creates an unconfirmed django-otp TOTP device and shows its otpauth URI and QR code; the
# first code from the app confirms it. The secret is never shown again; an administrator resets a
# lost device by deleting it in the admin.


def _security_page(request, *, error: str = "", status: int = 200):
    device = staff_totp_device(user=request.user, confirmed=False)
    context = {
        "device": staff_totp_device(user=request.user),
        "enrolling": device,
        "error": error,
        "otp_field": OTP_FIELD,
    }
    if device is not None:
        context["config_url"] = device.config_url
        # segno's inline SVG is markup we generate from our own URI (no user input, no script).
        context["qr_svg"] = mark_safe(segno.make(device.config_url, error="m").svg_inline(scale=4))  # noqa: S308
    return _render(request, "console/security.html", context, status=status)


@require_http_methods(["GET", "POST"])
@staff_view
def security_page(request):
    if request.method == "GET":
        return _security_page(request)
    url = reverse("console:security")
    try:
        if request.POST.get("action") == "enroll":
            staff_totp_enroll(user=request.user)
            return redirect(url)
        staff_totp_confirm(user=request.user, token=request.POST.get(OTP_FIELD, "")[:20])
    except ServiceError as exc:
        return _security_page(request, error=exc.message, status=exc.status_code)
    return _done(request, "Authenticator confirmed: large approvals will ask for its code.", url)
