"""Listeners on the domain apps' signals (all sent after commit): classify with `rules`, act with
`services`. A failing alert must never break the sender, so errors are logged, not raised."""

from __future__ import annotations

import functools
import logging

from django.dispatch import receiver

from apps.alerts import rules
from apps.alerts.services import alert_auto_resolve, alert_raise
from apps.gateways.signals import channel_failure_rate_rising, channel_health_changed
from apps.ledger.signals import reconciliation_completed, reconciliation_failed, reconciliation_mismatch
from apps.payouts.signals import payout_anomaly, payout_state_changed
from apps.refunds.signals import refund_anomaly, refund_state_changed

logger = logging.getLogger(__name__)


def apply(actions: list) -> None:
    for action in actions:
        if isinstance(action, rules.Resolve):
            alert_auto_resolve(dedup_key=action.dedup_key, reason=action.reason)
        else:
            alert_raise(**vars(action))


def _guarded(handler):
    @functools.wraps(handler)
    def wrapper(sender, **kwargs):
        try:
            apply(handler(**kwargs))
        except Exception:
            logger.exception("alerts: %s failed on %s", handler.__name__, kwargs)

    return wrapper


def _only(payload: dict, *names: str) -> dict:
    return {name: payload.get(name) for name in names}


@receiver(refund_state_changed, dispatch_uid="alerts.refund_state_changed")
@_guarded
def on_refund_state_changed(**payload):
    return rules.refund_state_rules(
        **_only(payload, "refund_id", "merchant_id", "from_status", "to_status", "event_code")
    )


@receiver(refund_anomaly, dispatch_uid="alerts.refund_anomaly")
@_guarded
def on_refund_anomaly(**payload):
    payload["detail"] = payload.get("detail") or {}
    return rules.refund_anomaly_rules(**_only(payload, "refund_id", "merchant_id", "kind", "detail"))


@receiver(payout_state_changed, dispatch_uid="alerts.payout_state_changed")
@_guarded
def on_payout_state_changed(**payload):
    return rules.payout_state_rules(
        **_only(payload, "disbursement_id", "kind", "merchant_id", "from_status", "to_status", "event_code")
    )


@receiver(payout_anomaly, dispatch_uid="alerts.payout_anomaly")
@_guarded
def on_payout_anomaly(**payload):
    payload["detail"] = payload.get("detail") or {}
    return rules.payout_anomaly_rules(**_only(payload, "disbursement_id", "kind", "merchant_id", "anomaly", "detail"))


@receiver(channel_health_changed, dispatch_uid="alerts.channel_health_changed")
@_guarded
def on_channel_health_changed(**payload):
    payload.pop("signal", None)
    return rules.channel_health_rules(**payload)


@receiver(channel_failure_rate_rising, dispatch_uid="alerts.channel_failure_rate_rising")
@_guarded
def on_channel_failure_rate_rising(**payload):
    return rules.channel_rising_rules(**_only(payload, "channel_code", "failure_rate", "days"))


@receiver(reconciliation_mismatch, dispatch_uid="alerts.reconciliation_mismatch")
@_guarded
def on_reconciliation_mismatch(**payload):
    payload.pop("signal", None)
    return rules.reconciliation_mismatch_rules(**payload)


@receiver(reconciliation_completed, dispatch_uid="alerts.reconciliation_completed")
@_guarded
def on_reconciliation_completed(**payload):
    payload.pop("signal", None)
    return rules.reconciliation_completed_rules(**payload)


@receiver(reconciliation_failed, dispatch_uid="alerts.reconciliation_failed")
@_guarded
def on_reconciliation_failed(**payload):
    payload.pop("signal", None)
    return rules.reconciliation_failed_rules(**payload)
