"""Which fact is which alert: pure functions from a signal's payload (plus read-only looks at the
subject) to what the alerts services should do. Thresholds live in settings (ALERT_*).

Each function returns a list of actions: `Raise(**alert_raise kwargs)` or `Resolve(dedup_key, reason)`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.conf import settings

from apps.alerts.models import Tier
from apps.gateways.models import Channel
from apps.payouts.models import Disbursement
from apps.refunds.models import Refund

# Anomalies that mean money may have left twice, or not as agreed: a person now.
REFUND_P0_ANOMALIES = {
    "reversed_after_success": "refund_reversed",
    "late_failure_after_success": "refund_failed_after_success",
    "amount_mismatch": "refund_amount_mismatch",
    "duplicate_suspected": "refund_duplicate",
    "duplicate_execution": "refund_duplicate",
    "double_refund": "refund_duplicate",
}
PAYOUT_P0_ANOMALIES = {
    "duplicate_suspected": "duplicate",
    "reversed": "reversed",
    "late_failure_after_success": "failed_after_success",
    "amount_mismatch": "amount_mismatch",
    "recall_failed": "recall_failed",
}
# Money stopped on purpose and watched: held because its customer or account is frozen (G17).
REFUND_P1_ANOMALIES = {"held_frozen": "refund_held_frozen"}
PAYOUT_P1_ANOMALIES = {"insufficient_funds_at_submit": "insufficient_funds", "held_frozen": "held_frozen"}


@dataclass(frozen=True)
class Raise:
    tier: str
    kind: str
    dedup_key: str
    subject_type: str
    subject_id: str | int
    summary: str
    merchant: int | None = None
    detail: dict = field(default_factory=dict)
    group_key: str = ""
    channel: str = ""
    subject_label: str = ""
    count_repeat: bool = True


@dataclass(frozen=True)
class Resolve:
    dedup_key: str
    reason: str


def refund_key(refund_id: int, what: str) -> str:
    return f"refund:{refund_id}:{what}"


def payout_key(kind: str, disbursement_id: int, what: str) -> str:
    return f"{kind}:{disbursement_id}:{what}"


def _money(amount: int, currency: str) -> dict:
    return {"amount": amount, "currency": currency}


def _channel_code(row) -> str:
    return row.channel.code if row.channel_id else ""


def refund_state_rules(*, refund_id: int, merchant_id: int, from_status: str, to_status: str, event_code: str) -> list:
    actions = _refund_state_rules(refund_id, merchant_id, from_status, to_status)
    if from_status == Refund.Status.HELD:  # released or cancelled: the freeze hold is over
        actions.insert(0, Resolve(refund_key(refund_id, "held_frozen"), f"refund {event_code}"))
    return actions


def _refund_state_rules(refund_id: int, merchant_id: int, from_status: str, to_status: str) -> list:
    S = Refund.Status
    if to_status in (S.SUCCEEDED, S.REJECTED, S.CANCELLED):
        actions: list = [
            Resolve(refund_key(refund_id, what), f"refund {to_status}") for what in ("retry", "not_arrived", "deadline")
        ]
        if to_status == S.CANCELLED:
            actions.append(
                Raise(
                    Tier.P2,
                    "refund_cancelled",
                    refund_key(refund_id, "cancelled"),
                    "refund",
                    refund_id,
                    f"Refund {refund_id} cancelled",
                    merchant=merchant_id,
                    detail={"from_status": from_status},
                )
            )
        return actions
    if to_status not in (S.FAILED, S.UNKNOWN, S.REVERSED):
        return []
    refund = Refund.objects.select_related("channel").filter(pk=refund_id).first()
    if refund is None:
        return []
    channel = _channel_code(refund)
    base = {
        "subject_type": "refund",
        "subject_id": refund_id,
        "merchant": merchant_id,
        "channel": channel,
        "subject_label": f"refund {refund_id} ({refund.amount} {refund.currency})",
    }
    detail = {**_money(refund.amount, refund.currency), "failure_code": refund.failure_code, "channel": channel}
    if to_status == S.REVERSED:
        return [
            Raise(
                Tier.P0,
                "refund_reversed",
                refund_key(refund_id, "reversed"),
                summary=f"Refund {refund_id} arrived, then the bank returned the funds",
                detail=detail,
                **base,
            )
        ]
    if to_status == S.FAILED and refund.amount >= settings.ALERT_LARGE_FAILURE_AMOUNT:
        return [
            Raise(
                Tier.P0,
                "refund_large_failed",
                refund_key(refund_id, "large_failed"),
                summary=f"Large refund {refund_id} failed ({refund.amount} {refund.currency})",
                detail=detail,
                **base,
            )
        ]
    retryable = to_status == S.UNKNOWN or refund.next_poll_at is not None
    group_key = f"channel:{channel}:refund_failures" if channel else ""
    if retryable:
        kind = "refund_outcome_unknown" if to_status == S.UNKNOWN else "refund_retryable_failure"
        return [
            Raise(
                Tier.P1,
                kind,
                refund_key(refund_id, "retry"),
                summary=f"Refund {refund_id} {to_status}: retrying automatically",
                detail={**detail, "retry_count": refund.retry_count},
                group_key=group_key,
                **base,
            )
        ]
    return [
        Raise(
            Tier.P2,
            "refund_failed",
            refund_key(refund_id, "failed"),
            summary=f"Refund {refund_id} failed ({refund.failure_code or 'unknown reason'})",
            detail=detail,
            **base,
        )
    ]


def refund_anomaly_rules(*, refund_id: int, merchant_id: int, kind: str, detail: dict) -> list:
    refund = Refund.objects.select_related("channel").filter(pk=refund_id).first()
    channel = _channel_code(refund) if refund else ""
    if kind in REFUND_P1_ANOMALIES:
        # No channel: a freeze is about the customer, not a channel's health (nor muted with it).
        return [
            Raise(
                Tier.P1,
                REFUND_P1_ANOMALIES[kind],
                refund_key(refund_id, kind),
                "refund",
                refund_id,
                f"Refund {refund_id}: {kind.replace('_', ' ')}",
                merchant=merchant_id,
                detail={"anomaly": kind, **detail},
            )
        ]
    if kind in REFUND_P0_ANOMALIES:
        alert_kind = REFUND_P0_ANOMALIES[kind]
        # The reversal is also announced as a state change: one fact, one occurrence.
        return [
            Raise(
                Tier.P0,
                alert_kind,
                refund_key(refund_id, "reversed" if alert_kind == "refund_reversed" else kind),
                "refund",
                refund_id,
                f"Refund {refund_id}: {kind.replace('_', ' ')}",
                merchant=merchant_id,
                detail={"anomaly": kind, **detail},
                channel=channel,
                count_repeat=alert_kind != "refund_reversed",
            )
        ]
    return [
        Raise(
            Tier.P2,
            f"refund_{kind}"[:64],
            refund_key(refund_id, kind),
            "refund",
            refund_id,
            f"Refund {refund_id}: {kind.replace('_', ' ')}",
            merchant=merchant_id,
            detail={"anomaly": kind, **detail},
            channel=channel,
        )
    ]


def payout_state_rules(
    *, disbursement_id: int, kind: str, merchant_id: int, from_status: str, to_status: str, event_code: str
) -> list:
    actions = _payout_state_rules(disbursement_id, kind, merchant_id, to_status)
    if from_status == Disbursement.Status.HELD:  # released or cancelled: a freeze hold is over
        actions.insert(0, Resolve(payout_key(kind, disbursement_id, "held_frozen"), f"{kind} {event_code}"))
    return actions


def _payout_state_rules(disbursement_id: int, kind: str, merchant_id: int, to_status: str) -> list:
    S = Disbursement.Status
    if to_status in (S.PAID, S.CANCELLED, S.RECALLED):
        actions: list = [
            Resolve(payout_key(kind, disbursement_id, what), f"{kind} {to_status}") for what in ("retry", "not_arrived")
        ]
        if to_status == S.CANCELLED:
            actions.append(
                Raise(
                    Tier.P2,
                    f"{kind}_cancelled",
                    payout_key(kind, disbursement_id, "cancelled"),
                    kind,
                    disbursement_id,
                    f"{kind.capitalize()} {disbursement_id} cancelled",
                    merchant=merchant_id,
                )
            )
        return actions
    if to_status not in (S.FAILED, S.UNKNOWN, S.RETURNED):
        return []
    d = Disbursement.objects.select_related("channel").filter(pk=disbursement_id).first()
    if d is None:
        return []
    channel = _channel_code(d)
    base = {
        "subject_type": kind,
        "subject_id": disbursement_id,
        "merchant": merchant_id,
        "channel": channel,
        "subject_label": f"{kind} {disbursement_id} ({d.amount} {d.currency})",
    }
    detail = {**_money(d.amount, d.currency), "failure_code": d.failure_code, "channel": channel}
    if to_status == S.RETURNED:
        return [
            Raise(
                Tier.P0,
                f"{kind}_reversed",
                payout_key(kind, disbursement_id, "reversed"),
                summary=f"{kind.capitalize()} {disbursement_id} paid, then returned by the bank",
                detail=detail,
                **base,
            )
        ]
    if to_status == S.FAILED and d.amount >= settings.ALERT_LARGE_FAILURE_AMOUNT:
        return [
            Raise(
                Tier.P0,
                f"{kind}_large_failed",
                payout_key(kind, disbursement_id, "large_failed"),
                summary=f"Large {kind} {disbursement_id} failed",
                detail=detail,
                **base,
            )
        ]
    retryable = to_status == S.UNKNOWN or d.next_poll_at is not None
    return [
        Raise(
            Tier.P1,
            f"{kind}_outcome_unknown"
            if to_status == S.UNKNOWN
            else (f"{kind}_retryable_failure" if retryable else f"{kind}_failed"),
            payout_key(kind, disbursement_id, "retry" if retryable else "failed"),
            summary=f"{kind.capitalize()} {disbursement_id} {to_status}",
            detail=detail,
            group_key=f"channel:{channel}:{kind}_failures" if channel and retryable else "",
            **base,
        )
    ]


def payout_anomaly_rules(*, disbursement_id: int, kind: str, merchant_id: int, anomaly: str, detail: dict) -> list:
    if anomaly in PAYOUT_P0_ANOMALIES:
        suffix = PAYOUT_P0_ANOMALIES[anomaly]
        tier = Tier.P0
    elif anomaly in PAYOUT_P1_ANOMALIES:
        suffix, tier = PAYOUT_P1_ANOMALIES[anomaly], Tier.P1
    else:
        suffix, tier = anomaly, Tier.P2
    return [
        Raise(
            tier,
            f"{kind}_{suffix}"[:64],
            payout_key(kind, disbursement_id, suffix),
            kind,
            disbursement_id,
            f"{kind.capitalize()} {disbursement_id}: {anomaly.replace('_', ' ')}",
            merchant=merchant_id,
            detail={"anomaly": anomaly, **detail},
            count_repeat=suffix != "reversed",
        )
    ]


def channel_key(code: str, what: str) -> str:
    return f"channel:{code}:{what}"


def backup_channels(code: str) -> list[str]:
    return list(Channel.objects.filter(is_enabled=True).exclude(code=code).values_list("code", flat=True)[:5])


def channel_health_rules(*, channel_code: str, old_state: str, new_state: str, reason: str, **facts) -> list:
    detail = {
        "old_state": old_state,
        "new_state": new_state,
        "reason": reason,
        "failure_rate": facts.get("failure_rate"),
        "score": facts.get("score"),
        "calls": facts.get("calls"),
    }
    common = {"subject_type": "channel", "subject_id": channel_code, "channel": channel_code, "detail": detail}
    down, degraded = channel_key(channel_code, "down"), channel_key(channel_code, "degraded")
    if new_state == "down":
        return [
            Resolve(degraded, "channel down"),
            Raise(Tier.P0, "channel_down", down, summary=f"Channel {channel_code} is down ({reason})", **common),
        ]
    if new_state == "degraded":
        return [
            Resolve(down, "channel degraded, no longer down"),
            Raise(
                Tier.P1,
                "channel_degraded",
                degraded,
                summary=f"Channel {channel_code} degraded",
                **{**common, "detail": {**detail, "backup_channels": backup_channels(channel_code)}},
            ),
        ]
    if new_state == "healthy":
        return [Resolve(down, "channel healthy"), Resolve(degraded, "channel healthy")]
    return []


def channel_rising_rules(*, channel_code: str, failure_rate: float, days: list) -> list:
    last_day = days[-1]["date"] if days else ""
    backups = backup_channels(channel_code)
    return [
        Raise(
            Tier.P1,
            "channel_failure_rate_rising",
            channel_key(channel_code, f"rising:{last_day}"),
            "channel",
            channel_code,
            f"Channel {channel_code}: failure rate rising {len(days) - 1 if days else 0} days in a row; "
            f"prefer {backups[0] if backups else 'a backup channel'}",
            detail={"failure_rate": failure_rate, "days": days, "recommended_channel": backups[0] if backups else ""},
            channel=channel_code,
        )
    ]


def reconciliation_mismatch_rules(*, dedupe_key: str, severity: str, **payload) -> list:
    tier = Tier.P0 if severity == "P0" else Tier.P1
    return [
        Raise(
            tier,
            "reconciliation_mismatch",
            f"{dedupe_key}:mismatch",
            "reconciliation",
            payload.get("reconciliation_id", ""),
            f"Reconciliation {payload.get('source')} {payload.get('date')}: "
            f"{payload.get('mismatches_total', 0)} mismatches",
            detail={
                "date": payload.get("date"),
                "source": payload.get("source"),
                "counts": payload.get("counts", {}),
                "mismatches_total": payload.get("mismatches_total", 0),
                "mismatches": list(payload.get("mismatches", []))[:20],
            },
        ),
        Resolve(f"{dedupe_key}:failed", "reconciliation ran"),
    ]


def reconciliation_completed_rules(*, dedupe_key: str, status: str, **payload) -> list:
    actions: list = [Resolve(f"{dedupe_key}:failed", "reconciliation ran")]
    if status == "clean":
        actions.append(Resolve(f"{dedupe_key}:mismatch", "re-run is clean"))
    return actions


def reconciliation_failed_rules(*, dedupe_key: str, **payload) -> list:
    return [
        Raise(
            Tier.P1,
            "reconciliation_failed",
            f"{dedupe_key}:failed",
            "reconciliation",
            payload.get("reconciliation_id", ""),
            f"Reconciliation {payload.get('source')} {payload.get('date')} could not read the statement",
            detail={
                "date": payload.get("date"),
                "source": payload.get("source"),
                "error": str(payload.get("error"))[:500],
            },
        )
    ]
