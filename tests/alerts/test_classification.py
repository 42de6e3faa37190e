"""Every default classification: the real signals, sent with the payloads the services send, end in
the tier, kind, dedup key and routing of DESIGN.md "Tiered alerts — contract"."""

from __future__ import annotations

import pytest
from django.utils import timezone

from apps.alerts.models import Alert, AlertDelivery
from apps.gateways.signals import channel_failure_rate_rising, channel_health_changed
from apps.ledger.models import Reconciliation
from apps.ledger.signals import reconciliation_completed, reconciliation_failed, reconciliation_mismatch
from apps.payouts.models import Disbursement
from apps.payouts.signals import payout_anomaly, payout_state_changed
from apps.refunds.models import Refund
from apps.refunds.signals import refund_anomaly, refund_state_changed
from tests.alerts.conftest import channels_of, make_payout, make_refund

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]

ONCALL = "oncall-primary"


def refund_moved(refund: Refund, to_status: str, from_status: str = "processing", code: str = "") -> None:
    refund_state_changed.send(
        sender=Refund,
        refund_id=refund.pk,
        merchant_id=refund.merchant_id,
        from_status=from_status,
        to_status=to_status,
        event_code=code or to_status,
        responsible_party="bank",
    )


def payout_moved(d: Disbursement, to_status: str, from_status: str = "processing") -> None:
    payout_state_changed.send(
        sender=Disbursement,
        disbursement_id=d.pk,
        kind=d.kind,
        merchant_id=d.merchant_id,
        from_status=from_status,
        to_status=to_status,
        event_code=to_status,
        responsible_party="bank",
    )


def health(code: str, old: str, new: str, reason: str = "outage") -> None:
    channel_health_changed.send(
        sender=None,
        channel_code=code,
        old_state=old,
        new_state=new,
        reason=reason if new != "healthy" else "",
        failure_rate=0.95 if new != "healthy" else 0.0,
        score=5 if new != "healthy" else 100,
        calls=40,
    )


def only(**filters) -> Alert:
    rows = list(Alert.objects.filter(**filters))
    assert len(rows) == 1, rows
    return rows[0]


# --- P0 ---------------------------------------------------------------------------------------------


def test_large_refund_failure_is_p0_and_pages_oncall_by_sms_and_voice(merchant, channel):
    refund = make_refund(merchant, status="failed", amount=10_000_000, channel=channel, failure_code="account_frozen")

    refund_moved(refund, "failed")

    alert = only(kind="refund_large_failed")
    assert (alert.tier, alert.status, alert.dedup_key) == ("P0", "open", f"refund:{refund.pk}:large_failed")
    assert (alert.subject_type, alert.subject_id, alert.merchant_id) == ("refund", str(refund.pk), merchant.pk)
    assert alert.detail["amount"] == 10_000_000
    assert channels_of(alert) == [("console", f"merchant:{merchant.pk}"), ("sms", ONCALL), ("voice", ONCALL)]
    assert alert.last_paged_at is not None


def test_refund_one_unit_under_the_p0_amount_failing_retryably_is_p1(merchant, channel):
    refund = make_refund(merchant, status="failed", amount=9_999_999, channel=channel, next_poll_at=timezone.now())

    refund_moved(refund, "failed")

    assert not Alert.objects.filter(tier="P0").exists()
    child = only(kind="refund_retryable_failure", is_group=False)
    assert (child.tier, child.dedup_key) == ("P1", f"refund:{refund.pk}:retry")


def test_duplicate_payout_suspected_is_p0(merchant):
    d = make_payout(merchant, status="held")

    payout_anomaly.send(
        sender=Disbursement,
        disbursement_id=d.pk,
        kind="payout",
        merchant_id=merchant.pk,
        anomaly="duplicate_suspected",
        detail={"matched": [123], "amount": d.amount, "currency": "CNY"},
    )

    alert = only(kind="payout_duplicate")
    assert (alert.tier, alert.dedup_key, alert.subject_type) == ("P0", f"payout:{d.pk}:duplicate", "payout")
    assert alert.detail["matched"] == [123]
    assert AlertDelivery.objects.filter(alert=alert, channel="voice").count() == 1


@pytest.mark.parametrize("kind", ["duplicate_execution", "double_refund"])
def test_refund_paid_twice_anomalies_are_p0(merchant, kind):
    refund = make_refund(merchant, status="succeeded")

    refund_anomaly.send(sender=Refund, refund_id=refund.pk, merchant_id=merchant.pk, kind=kind, detail={})

    assert only(kind="refund_duplicate").tier == "P0"


def test_p0_reconciliation_mismatch_is_a_platform_p0(db):
    payload = {
        "reconciliation_id": 7,
        "date": "2026-11-26",
        "source": "sandbox",
        "version": 1,
        "status": "mismatched",
        "severity": "P0",
        "counts": {"matched": 10, "missing_on_statement": 1},
        "totals": {},
        "dedupe_key": "reconciliation:sandbox:2026-11-26",
        "mismatches": [{"kind": "amount_mismatch", "severity": "P0", "reference": "refund:1"}],
        "mismatches_total": 1,
    }
    reconciliation_mismatch.send(sender=Reconciliation, **payload)

    alert = only(kind="reconciliation_mismatch")
    assert (alert.tier, alert.merchant_id) == ("P0", None)
    assert alert.dedup_key == "reconciliation:sandbox:2026-11-26:mismatch"
    assert alert.detail["mismatches"][0]["reference"] == "refund:1"
    assert channels_of(alert) == [("console", "platform"), ("sms", ONCALL), ("voice", ONCALL)]

    # A clean re-run of the day clears it.
    reconciliation_completed.send(sender=Reconciliation, **{**payload, "status": "clean", "severity": ""})
    alert.refresh_from_db()
    assert alert.status == "resolved"


def test_channel_down_is_p0_and_resolves_when_healthy(db):
    health("sandbox", "healthy", "down")

    alert = only(kind="channel_down")
    assert (alert.tier, alert.merchant_id, alert.channel, alert.dedup_key) == (
        "P0",
        None,
        "sandbox",
        "channel:sandbox:down",
    )
    assert alert.detail["reason"] == "outage"

    health("sandbox", "down", "healthy")
    alert.refresh_from_db()
    assert alert.status == "resolved"
    assert list(alert.events.values_list("code", flat=True)) == ["raised", "resolved"]


def test_reversed_refund_is_one_p0_from_the_state_change_and_its_anomaly(merchant):
    refund = make_refund(merchant, status="reversed", failure_code="account_closed")

    refund_moved(refund, "reversed", from_status="succeeded")
    refund_anomaly.send(
        sender=Refund,
        refund_id=refund.pk,
        merchant_id=merchant.pk,
        kind="reversed_after_success",
        detail={"failure_code": "account_closed", "amount": refund.amount},
    )

    alert = only(kind="refund_reversed")
    assert (alert.tier, alert.occurrence_count) == ("P0", 1)
    assert alert.detail["anomaly"] == "reversed_after_success"
    assert AlertDelivery.objects.filter(alert=alert).count() == 3


def test_returned_payout_is_p0(merchant):
    d = make_payout(merchant, status="returned")

    payout_moved(d, "returned", from_status="paid")
    payout_anomaly.send(
        sender=Disbursement,
        disbursement_id=d.pk,
        kind="payout",
        merchant_id=merchant.pk,
        anomaly="reversed",
        detail={"failure_code": "account_closed"},
    )

    alert = only(kind="payout_reversed")
    assert (alert.tier, alert.occurrence_count, alert.dedup_key) == ("P0", 1, f"payout:{d.pk}:reversed")


# --- P1 ---------------------------------------------------------------------------------------------


def test_retryable_refund_failure_is_p1_and_resolves_when_the_refund_arrives(merchant):
    refund = make_refund(merchant, status="failed", next_poll_at=timezone.now())

    refund_moved(refund, "failed")
    alert = only(kind="refund_retryable_failure")
    assert alert.tier == "P1"
    assert channels_of(alert) == [
        ("console", f"merchant:{merchant.pk}"),
        ("email", f"digest:merchant:{merchant.pk}"),
        ("in_app", f"merchant:{merchant.pk}"),
    ]

    refund_moved(refund, "unknown", from_status="submitted")  # the retry timed out: same key, a repeat
    alert.refresh_from_db()
    assert alert.occurrence_count == 2

    refund_moved(refund, "succeeded")
    alert.refresh_from_db()
    assert alert.status == "resolved"


def test_unknown_outcome_is_p1(merchant):
    refund = make_refund(merchant, status="unknown")

    refund_moved(refund, "unknown", from_status="submitted")

    alert = only(kind="refund_outcome_unknown")
    assert (alert.tier, alert.dedup_key) == ("P1", f"refund:{refund.pk}:retry")


def test_retryable_payout_failure_is_p1_and_resolves_when_paid(merchant):
    d = make_payout(merchant, status="failed", next_poll_at=timezone.now())

    payout_moved(d, "failed")
    alert = only(kind="payout_retryable_failure")
    assert (alert.tier, alert.dedup_key) == ("P1", f"payout:{d.pk}:retry")

    payout_moved(d, "paid")
    alert.refresh_from_db()
    assert alert.status == "resolved"


def test_degraded_channel_is_p1_naming_the_backup(channel):
    health("sandbox", "healthy", "degraded", reason="failure_rate")

    alert = only(kind="channel_degraded")
    assert (alert.tier, alert.merchant_id) == ("P1", None)
    assert alert.detail["backup_channels"] == ["sandbox-backup"]


def test_failure_rate_rising_is_p1_recommending_the_backup(channel):
    days = [{"date": f"2026-11-2{i}", "calls": 100, "failures": i * 3, "failure_rate": i * 0.03} for i in range(3, 7)]

    channel_failure_rate_rising.send(sender=None, channel_code="sandbox", failure_rate=0.18, days=days)

    alert = only(kind="channel_failure_rate_rising")
    assert alert.tier == "P1"
    assert alert.dedup_key == "channel:sandbox:rising:2026-11-26"
    assert alert.detail["recommended_channel"] == "sandbox-backup"
    assert "sandbox-backup" in alert.summary


def test_p1_reconciliation_mismatch_and_failed_run_are_p1(db):
    base = {
        "reconciliation_id": 8,
        "date": "2026-11-25",
        "source": "sandbox",
        "dedupe_key": "reconciliation:sandbox:2026-11-25",
    }
    reconciliation_failed.send(sender=Reconciliation, **base, version=1, severity="P1", error="statement unreadable")
    reconciliation_mismatch.send(
        sender=Reconciliation,
        **base,
        version=2,
        status="mismatched",
        severity="P1",
        counts={},
        totals={},
        mismatches=[],
        mismatches_total=2,
    )

    assert only(kind="reconciliation_mismatch").tier == "P1"
    failed = only(kind="reconciliation_failed")
    assert (failed.tier, failed.status) == ("P1", "resolved")  # the later run read the statement


# --- P2 ---------------------------------------------------------------------------------------------


def test_customer_cancelled_refund_is_p2_and_routes_nowhere(merchant):
    refund = make_refund(merchant, status="cancelled")

    refund_moved(refund, "cancelled", from_status="requested", code="cancelled")

    alert = only(kind="refund_cancelled")
    assert (alert.tier, alert.status) == ("P2", "open")
    assert AlertDelivery.objects.count() == 0


def test_irrelevant_state_changes_raise_nothing(merchant):
    refund = make_refund(merchant, status="processing")
    refund_moved(refund, "processing", from_status="submitted")
    refund_moved(refund, "approved", from_status="requested")
    assert Alert.objects.count() == 0
