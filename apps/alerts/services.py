"""Writes of the alerts app. Every status change re-reads the alert with `select_for_update()`,
runs its FSM transition, writes an `AlertEvent`, records the routing (`AlertDelivery` rows, in the
same transaction, so nothing is lost) and announces `alert_changed` after commit.

Callers: `apps.alerts.receivers` (signals of the domain apps), `apps.alerts.tasks` (watchers and
escalation), the API and the admin.
"""

from __future__ import annotations

import logging
from datetime import datetime

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.text import format_lazy
from django.utils.translation import gettext_lazy as _

from apps.accounts.models import Merchant
from apps.alerts.models import Alert, AlertDelivery, AlertEvent, Silence, Tier
from apps.alerts.signals import alert_changed
from apps.common.errors import InvalidStateError, NotFoundError, ServiceError
from apps.notifications.triggers import staff_page

logger = logging.getLogger(__name__)

S = Alert.Status
CHANNEL_DOWN = "channel_down"
MAX_GROUP_ITEMS = 500


# --- helpers ----------------------------------------------------------------------------------


def _event(alert: Alert, code: str, *, actor: str, from_status: str = "", detail: dict | None = None) -> AlertEvent:
    return AlertEvent.objects.create(
        alert=alert, code=code, actor=actor, from_status=from_status, to_status=alert.status, detail=detail or {}
    )


def _announce(alert: Alert, action: str) -> None:
    payload = {
        "alert_id": alert.pk,
        "merchant_id": alert.merchant_id,
        "tier": alert.tier,
        "kind": alert.kind,
        "status": alert.status,
        "action": action,
    }
    transaction.on_commit(lambda: alert_changed.send(sender=Alert, **payload), robust=True)


def _oncall(level: int) -> str:
    rota = settings.ALERT_ONCALL_ROTA or ["oncall"]
    return rota[min(level, len(rota) - 1)]


def _route(alert: Alert) -> list[AlertDelivery]:
    """Record who is told (P0: page on-call by SMS + voice and the console; P1: console, in-app and
    the email digest; P2: the log only). A P0 page is written as notifications (SMS + voice to the
    on-call user named by the rota) in the alert's transaction; the SMS/voice delivery rows say
    whether anyone could be paged ("queued") or the rota names nobody known ("no_recipient")."""
    audience = f"merchant:{alert.merchant_id}" if alert.merchant_id else "platform"
    if alert.tier == Tier.P0:
        oncall = _oncall(alert.escalation_level)
        plan = [
            (AlertDelivery.Channel.SMS, oncall),
            (AlertDelivery.Channel.VOICE, oncall),
            (AlertDelivery.Channel.CONSOLE, audience),
        ]
        alert.last_paged_at = timezone.now()
        alert.save(update_fields=["last_paged_at"])
        paged = staff_page(
            alert_id=alert.pk,
            usernames=[oncall],
            summary=alert.summary,
            reference=f"{alert.subject_type}:{alert.subject_id}" if alert.subject_type else alert.kind,
            level=alert.escalation_level,
            merchant_id=alert.merchant_id,
        )
        page_status = "queued" if paged else "no_recipient"
    elif alert.tier == Tier.P1:
        page_status = "recorded"
        plan = [
            (AlertDelivery.Channel.CONSOLE, audience),
            (AlertDelivery.Channel.IN_APP, audience),
            (AlertDelivery.Channel.EMAIL, f"digest:{audience}"),
        ]
    else:
        logger.info("alert P2 kind=%s subject=%s:%s", alert.kind, alert.subject_type, alert.subject_id)
        return []
    return AlertDelivery.objects.bulk_create(
        AlertDelivery(
            alert=alert,
            channel=channel,
            target=target,
            escalation_level=alert.escalation_level,
            status=page_status if channel in (AlertDelivery.Channel.SMS, AlertDelivery.Channel.VOICE) else "recorded",
        )
        for channel, target in plan
    )


def _fields_for_matching(alert: Alert) -> dict[str, str]:
    return {
        "kind": alert.kind,
        "tier": alert.tier,
        "channel": alert.channel,
        "subject_type": alert.subject_type,
        "merchant_id": str(alert.merchant_id) if alert.merchant_id else "",
    }


def silence_matching(alert: Alert, *, now: datetime | None = None) -> Silence | None:
    """The first active silence whose every matcher equals the alert's field (merchant silences only
    cover their merchant's alerts)."""
    now = now or timezone.now()
    fields = _fields_for_matching(alert)
    active = Silence.objects.filter(starts_at__lte=now, ends_at__gt=now).filter(
        Q(merchant__isnull=True) | Q(merchant_id=alert.merchant_id)
    )
    for silence in active.order_by("id"):
        matchers = silence.matchers or {}
        if matchers and all(fields.get(key) == str(value) for key, value in matchers.items()):
            return silence
    return None


def _inhibitor(alert: Alert) -> Alert | None:
    """A live P0 channel-down alert for the channel that caused this P1."""
    if alert.tier != Tier.P1 or not alert.channel or alert.kind == CHANNEL_DOWN:
        return None
    return (
        Alert.objects.filter(kind=CHANNEL_DOWN, channel=alert.channel, status__in=(S.OPEN, S.ACKED))
        .order_by("id")
        .first()
    )


def _attach_to_group(alert: Alert, *, group_key: str, actor: str) -> Alert:
    """Hang a per-item alert under the one live group alert for `group_key`, adding the item to its
    list and count. Returns the group alert (locked)."""
    key = f"group:{group_key}"
    item = {"subject_type": alert.subject_type, "subject_id": alert.subject_id, "alert_id": alert.pk}
    group = Alert.objects.select_for_update().filter(dedup_key=key).exclude(status=S.RESOLVED).first()
    if group is not None and group.status == S.SUPPRESSED and alert.status != S.SUPPRESSED:
        # The silence or the channel-down that hid the group is over: close the hidden group so this
        # item opens (and routes) a visible one.
        _resolve_locked(group, actor=actor, detail={"reason": "superseded: items no longer suppressed"})
        group = None
    created = False
    if group is None:
        try:
            with transaction.atomic():
                group = Alert.objects.create(
                    tier=alert.tier,
                    kind=alert.kind,
                    is_group=True,
                    merchant=alert.merchant,
                    subject_type="group",
                    subject_id=group_key[:64],
                    subject_label=group_key[:200],
                    channel=alert.channel,
                    dedup_key=key,
                    group_key=group_key,
                    summary=f"{alert.kind}: several items ({group_key})",
                    detail={"items": [item], "count": 1},
                    status=alert.status,
                    suppressed_reason=alert.suppressed_reason,
                )
            created = True
        except IntegrityError:
            group = Alert.objects.select_for_update().filter(dedup_key=key).exclude(status=S.RESOLVED).get()
    if created:
        _event(group, "raised", actor=actor, detail={"group_key": group_key})
        if group.status == S.OPEN:
            _route(group)
        _announce(group, "raised")
    else:
        items = list(group.detail.get("items", []))
        if len(items) < MAX_GROUP_ITEMS:
            items.append(item)
        group.detail = {**group.detail, "items": items, "count": int(group.detail.get("count", 0)) + 1}
        group.occurrence_count += 1
        group.last_seen_at = timezone.now()
        group.save(update_fields=["detail", "occurrence_count", "last_seen_at"])
        _event(group, "grouped", actor=actor, detail=item)
        _announce(group, "repeated")
    alert.parent = group
    alert.save(update_fields=["parent"])
    return group


# --- raising ----------------------------------------------------------------------------------


def alert_raise(
    *,
    tier: str,
    kind: str,
    dedup_key: str,
    subject_type: str,
    subject_id: str | int,
    merchant: Merchant | int | None = None,
    summary: str,
    detail: dict | None = None,
    group_key: str = "",
    channel: str = "",
    subject_label: str = "",
    actor: str = "system",
    count_repeat: bool = True,
) -> Alert:
    """Open an alert, or count a repeat of the live one with the same `dedup_key`.

    A new alert matching an active silence, or a P1 caused by a channel with a live P0 channel-down,
    is stored as suppressed with the reason and never routed. With `group_key`, the alert joins the
    group alert for that key (its routing stands for all of them). Routing rows are written in the
    transaction; `alert_changed` is sent after commit. Safe under concurrency: a racing insert hits
    the partial unique constraint and becomes a repeat. `count_repeat=False` merges the detail of a
    second announcement of the same fact (a state change and its anomaly) without counting it.
    """
    if tier not in Tier.values:
        raise ServiceError(
            format_lazy(_("Unknown tier {value}."), value=repr(tier)), fields={"tier": [_("Must be P0, P1 or P2.")]}
        )
    merchant_id = merchant.pk if isinstance(merchant, Merchant) else merchant
    now = timezone.now()
    with transaction.atomic():
        alert = Alert.objects.select_for_update().filter(dedup_key=dedup_key).exclude(status=S.RESOLVED).first()
        if alert is None:
            fields = {
                "tier": tier,
                "kind": kind,
                "merchant_id": merchant_id,
                "subject_type": subject_type,
                "subject_id": str(subject_id),
                "subject_label": subject_label[:200],
                "channel": channel,
                "dedup_key": dedup_key,
                "group_key": group_key,
                "summary": summary[:500],
                "detail": detail or {},
                "first_seen_at": now,
                "last_seen_at": now,
            }
            candidate = Alert(**fields)
            reason = ""
            if silence := silence_matching(candidate, now=now):
                reason = f"silenced by silence #{silence.pk}"
            elif inhibitor := _inhibitor(candidate):
                reason = f"inhibited by alert #{inhibitor.pk} (channel {channel} down)"
            try:
                with transaction.atomic():
                    alert = Alert.objects.create(
                        **fields, status=S.SUPPRESSED if reason else S.OPEN, suppressed_reason=reason[:200]
                    )
            except IntegrityError:
                alert = Alert.objects.select_for_update().filter(dedup_key=dedup_key).exclude(status=S.RESOLVED).get()
            else:
                _event(
                    alert,
                    "suppressed" if reason else "raised",
                    actor=actor,
                    detail={"reason": reason} if reason else {},
                )
                if group_key:
                    _attach_to_group(alert, group_key=group_key, actor=actor)
                elif not reason:
                    _route(alert)
                _announce(alert, "suppressed" if reason else "raised")
                return alert
        # A repeat of the live alert: count it, keep the newest detail, route nothing again — unless
        # the repeat is more severe (a P1 reconciliation mismatch re-run as P0): then upgrade and page.
        if count_repeat:
            alert.occurrence_count += 1
        alert.last_seen_at = now
        if detail:
            alert.detail = {**alert.detail, **detail}
        upgraded = tier < alert.tier and not alert.is_group
        if upgraded:
            alert.tier = tier
        alert.save(update_fields=["occurrence_count", "last_seen_at", "detail", "tier"])
        _event(alert, "repeated", actor=actor, detail={"occurrence_count": alert.occurrence_count})
        if upgraded:
            _event(alert, "upgraded", actor=actor, from_status=alert.status, detail={"to_tier": tier})
            if alert.status == S.OPEN:
                _route(alert)
        _announce(alert, "upgraded" if upgraded else "repeated")
        return alert


# --- acting on an alert -------------------------------------------------------------------------


def _locked(alert_id: int, merchant: Merchant | None) -> Alert:
    rows = Alert.objects.select_for_update().filter(pk=alert_id)
    if merchant is not None:
        rows = rows.filter(merchant=merchant)
    alert = rows.first()
    if alert is None:
        raise NotFoundError(_("No such alert."))
    return alert


def alert_ack(*, alert_id: int, actor: str, user=None, merchant: Merchant | None = None, note: str = "") -> Alert:
    """A person takes an open alert: re-paging stops and they become its assignee. Acking an acked
    alert returns it unchanged; a resolved or suppressed one is a 409. `merchant` scopes the lookup."""
    with transaction.atomic():
        alert = _locked(alert_id, merchant)
        if alert.status == S.ACKED:
            return alert
        if alert.status != S.OPEN:
            raise InvalidStateError(
                format_lazy(_("An alert that is {status} cannot be acknowledged."), status=alert.status)
            )
        before = alert.status
        alert.ack()
        alert.acked_at = timezone.now()
        alert.assignee = user if user is not None and getattr(user, "pk", None) else alert.assignee
        alert.save(update_fields=["status", "acked_at", "assignee"])
        _event(alert, "acked", actor=actor, from_status=before, detail={"note": note} if note else {})
        _announce(alert, "acked")
        return alert


def alert_resolve(*, alert_id: int, actor: str, merchant: Merchant | None = None, note: str = "") -> Alert:
    """Close an alert (and the per-item alerts of a group). Resolving a resolved alert returns it."""
    with transaction.atomic():
        alert = _locked(alert_id, merchant)
        if alert.status == S.RESOLVED:
            return alert
        _resolve_locked(alert, actor=actor, detail={"note": note} if note else {})
        if alert.is_group:
            for child in Alert.objects.select_for_update().filter(parent=alert).exclude(status=S.RESOLVED):
                _resolve_locked(child, actor=actor, detail={"group_resolved": alert.pk})
        return alert


def _resolve_locked(alert: Alert, *, actor: str, detail: dict) -> None:
    before = alert.status
    alert.resolve()
    alert.resolved_at = timezone.now()
    alert.save(update_fields=["status", "resolved_at"])
    _event(alert, "resolved", actor=actor, from_status=before, detail=detail)
    _announce(alert, "resolved")


def alert_auto_resolve(*, dedup_key: str, reason: str = "", actor: str = "system") -> Alert | None:
    """Resolve the live alert for `dedup_key`, if any, because its condition cleared (the refund
    arrived, the channel is healthy). Returns the resolved alert or None. Idempotent."""
    with transaction.atomic():
        alert = Alert.objects.select_for_update().filter(dedup_key=dedup_key).exclude(status=S.RESOLVED).first()
        if alert is None:
            return None
        _resolve_locked(alert, actor=actor, detail={"auto": True, "reason": reason})
        return alert


def alert_escalate(*, alert_id: int, actor: str = "escalation") -> Alert | None:
    """Page an unacked P0 again, one step further down the on-call rota (new delivery rows). Does
    nothing (returns None) when the alert was acked, resolved or paged within the re-page interval
    meanwhile, so two runs at once page once."""
    cutoff = timezone.now() - settings.ALERT_P0_REPAGE_AFTER
    with transaction.atomic():
        alert = Alert.objects.select_for_update().filter(pk=alert_id).first()
        if alert is None or alert.status != S.OPEN or alert.tier != Tier.P0 or alert.parent_id:
            return None
        if alert.last_paged_at and alert.last_paged_at > cutoff:
            return None
        alert.escalation_level += 1
        alert.save(update_fields=["escalation_level"])
        deliveries = _route(alert)
        _event(
            alert,
            "escalated",
            actor=actor,
            from_status=alert.status,
            detail={"level": alert.escalation_level, "target": deliveries[0].target if deliveries else ""},
        )
        _announce(alert, "escalated")
        return alert


def alert_upgrade(*, alert_id: int, actor: str = "escalation") -> Alert | None:
    """Make a P1 that stayed unresolved too long a P0 and page. None when already done or closed."""
    cutoff = timezone.now() - settings.ALERT_P1_UPGRADE_AFTER
    with transaction.atomic():
        alert = Alert.objects.select_for_update().filter(pk=alert_id).first()
        if (
            alert is None
            or alert.tier != Tier.P1
            or alert.status not in (S.OPEN, S.ACKED)
            or alert.first_seen_at > cutoff
            or alert.parent_id
        ):
            return None
        alert.tier = Tier.P0
        alert.save(update_fields=["tier"])
        _event(alert, "upgraded", actor=actor, from_status=alert.status, detail={"from_tier": "P1", "to_tier": "P0"})
        if alert.status == S.OPEN:
            _route(alert)
        _announce(alert, "upgraded")
        return alert


# --- silences -----------------------------------------------------------------------------------


def silence_create(
    *,
    matchers: dict,
    ends_at: datetime,
    actor: str,
    starts_at: datetime | None = None,
    merchant: Merchant | None = None,
    created_by=None,
    comment: str = "",
) -> Silence:
    """Silence future alerts matching every matcher until `ends_at`. Live alerts stay as they are."""
    starts_at = starts_at or timezone.now()
    unknown = sorted(set(matchers) - set(Silence.MATCHER_KEYS))
    if not matchers or unknown:
        raise ServiceError(
            "A silence needs at least one matcher among " + ", ".join(Silence.MATCHER_KEYS) + ".",
            fields={
                "matchers": [
                    format_lazy(_("Unknown keys: {value}."), value=", ".join(unknown))
                    if unknown
                    else _("Must not be empty.")
                ]
            },
        )
    if ends_at <= starts_at:
        raise ServiceError(
            _("A silence must end after it starts."), fields={"ends_at": [_("Must be after starts_at.")]}
        )
    if merchant is not None:
        matchers = {**matchers, "merchant_id": str(merchant.pk)}
    return Silence.objects.create(
        merchant=merchant,
        matchers={key: str(value) for key, value in matchers.items()},
        starts_at=starts_at,
        ends_at=ends_at,
        created_by=created_by if created_by is not None and getattr(created_by, "pk", None) else None,
        actor=actor,
        comment=comment,
    )


def silence_expire(*, silence_id: int, actor: str, merchant: Merchant | None = None) -> Silence:
    """End a silence now (an ended one is returned unchanged)."""
    with transaction.atomic():
        rows = Silence.objects.select_for_update().filter(pk=silence_id)
        if merchant is not None:
            rows = rows.filter(merchant=merchant)
        silence = rows.first()
        if silence is None:
            raise NotFoundError(_("No such silence."))
        now = timezone.now()
        if silence.ends_at > now:
            silence.ends_at = max(now, silence.starts_at)
            silence.save(update_fields=["ends_at"])
            logger.info("silence %s expired by %s", silence.pk, actor)
        return silence
