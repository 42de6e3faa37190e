"""Pre-checks: each one stops (or holds, or sends to review) what it should, with one result row per
check, before any money moves. The bank is the sandbox bank in-process (see conftest)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from apps.accounts.services import account_freeze, bank_account_get_or_create
from apps.gateways.models import SandboxTransfer
from apps.gateways.sandbox.bank import outage_set
from apps.ledger.models import LedgerTransaction
from apps.payouts.checks import run_prechecks
from apps.payouts.models import Disbursement, PrecheckResult
from apps.risk.services import list_entry_create
from tests.payouts.conftest import (
    PAYOUTS,
    RETRY_BASE,
    SETTLE_AFTER,
    WITHDRAWALS,
    account_body,
    calls,
    check_results,
    codes,
    customer_with_wallet,
    deliver_webhooks,
    fund_merchant,
    in_flight,
    ledger_refs,
    ledger_unbalanced,
    payable,
    payout_body,
    post,
    run_poller,
    wallet,
    withdrawal_body,
)

pytestmark = pytest.mark.django_db

S = Disbursement.Status
ALL_CHECKS = {
    "account_verification",
    "account_status",
    "currency_match",
    "fx_simulation",
    "amount_matches_source",
    "balance_sufficient",
    "per_transaction_limit",
    "daily_limit",
    "destination_frequency",
    "duplicate",
    "risk",
    "large_amount",
    "cross_border",
    "new_destination",
}


@pytest.fixture
def known_destinations(payout_settings):
    """Most tests look at one check: a first payout to an account is not reviewed for that here."""
    payout_settings.PAYOUT_REVIEW_NEW_DESTINATION = False
    return payout_settings


def create(api, url, body, capture):
    with capture(execute=True):
        response = post(api, url, body)
    assert response.status_code == 201, response.content
    return Disbursement.objects.get(pk=response.json()["id"]), response.json()


def assert_stopped(d: Disbursement, check: str, *, result: str = "failed") -> None:
    """Stopped by `check` with nothing sent and no money moved."""
    d.refresh_from_db()
    expected_status = S.FAILED if result == "failed" else S.HELD
    assert d.status == expected_status, (d.status, check_results(d))
    assert check_results(d)[check] == result
    assert set(check_results(d)) == ALL_CHECKS
    if result == "failed":
        assert d.failure_code == f"precheck_{check}"
    assert calls(d, "submit") == 0
    assert ledger_refs(d) == []
    assert not SandboxTransfer.objects.filter(request_id=d.request_id).exists()
    assert not d.has_funds_in_flight


def test_a_payout_of_the_whole_payable_passes_every_check_and_is_paid_once(
    api, merchant, inproc_bank, known_destinations, clock, django_capture_on_commit_callbacks
):
    fund_merchant(merchant, 500000)
    d, body = create(api, PAYOUTS, payout_body(500000), django_capture_on_commit_callbacks)

    assert set(check_results(d).values()) == {"passed"}
    assert len(body["prechecks"]) == len(ALL_CHECKS)
    d.refresh_from_db()
    assert d.status == S.PROCESSING
    assert payable(merchant) == 0
    assert in_flight() == 500000
    clock.advance(SETTLE_AFTER)
    deliver_webhooks()

    d.refresh_from_db()
    assert d.status == S.PAID
    assert codes(d) == ["created", "checking", "approved", "submitted", "processing", "paid"]
    assert (calls(d, "verify"), calls(d, "submit")) == (1, 1)
    assert SandboxTransfer.objects.get(request_id=f"payout:{d.pk}:submit").executions == 1
    assert ledger_refs(d) == [f"payout:{d.pk}:inflight", f"payout:{d.pk}:paid"]
    assert in_flight() == 0
    assert payable(merchant) == 0
    assert ledger_unbalanced() == []


def test_0004_holder_name_mismatch_stops_the_payout_at_verification(
    api, merchant, inproc_bank, known_destinations, django_capture_on_commit_callbacks
):
    fund_merchant(merchant, 500000)
    d, body = create(api, PAYOUTS, payout_body(500000, suffix="0004"), django_capture_on_commit_callbacks)

    assert_stopped(d, "account_verification")
    assert d.responsible_party == "customer"
    verification = next(check for check in body["prechecks"] if check["name"] == "account_verification")
    assert verification["detail"]["reason"] == "holder_name_mismatch"
    assert calls(d, "verify") == 1
    assert payable(merchant) == 500000


def test_verification_unanswered_is_retried_by_the_poller_then_holds_the_payout(
    api, merchant, inproc_bank, known_destinations, clock, django_capture_on_commit_callbacks
):
    fund_merchant(merchant, 500000)
    outage_set(channel="sandbox", enabled=True)
    outage_set(channel="sandbox-backup", enabled=True)
    d, _ = create(api, PAYOUTS, payout_body(500000), django_capture_on_commit_callbacks)
    d.refresh_from_db()
    assert d.status == S.CHECKING
    assert d.prechecks.count() == 0

    clock.advance(RETRY_BASE + 1)
    assert run_poller() == [d.pk]
    d.refresh_from_db()
    assert d.status == S.CHECKING
    clock.advance(2 * RETRY_BASE + 1)
    assert run_poller() == [d.pk]

    assert_stopped(d, "account_verification", result="held")
    assert d.hold_reason == "account_verification"
    assert codes(d) == ["created", "checking", "verification_unanswered", "verification_unanswered", "held"]
    assert calls(d, "verify") == 3


def test_a_frozen_destination_account_stops_the_payout(
    api, merchant, inproc_bank, known_destinations, django_capture_on_commit_callbacks
):
    fund_merchant(merchant, 500000)
    body = payout_body(500000)
    account = bank_account_get_or_create(merchant=merchant, customer=None, **body["destination_account"])
    account_freeze(merchant=merchant, bank_account=account, reason="court order", actor_label="ops")
    d, _ = create(api, PAYOUTS, body, django_capture_on_commit_callbacks)

    assert_stopped(d, "account_status")
    assert d.prechecks.get(name="account_status").detail["reason"] == "destination_account_frozen"


def test_a_frozen_customer_cannot_withdraw(
    api, merchant, inproc_bank, known_destinations, django_capture_on_commit_callbacks
):
    customer = customer_with_wallet(merchant, 20000)
    account_freeze(merchant=merchant, customer=customer, reason="chargeback", actor_label="risk")
    d, _ = create(api, WITHDRAWALS, withdrawal_body(customer, 10000), django_capture_on_commit_callbacks)

    assert_stopped(d, "account_status")
    assert d.prechecks.get(name="account_status").detail["reason"] == "customer_frozen"
    assert wallet(customer) == 20000


def test_an_account_holding_another_currency_stops_the_payout(
    api, merchant, inproc_bank, known_destinations, django_capture_on_commit_callbacks
):
    fund_merchant(merchant, 500000)
    body = payout_body(500000)
    body["destination_account"]["currency"] = "USD"
    d, _ = create(api, PAYOUTS, body, django_capture_on_commit_callbacks)

    assert_stopped(d, "currency_match")


@pytest.mark.parametrize(
    ("amount", "lines"),
    [
        (400000, None),
        (500001, None),
        (300000, [{"reference": "l-1", "amount": 200000}, {"reference": "l-2", "amount": 50000}]),
    ],
    ids=["less-than-payable", "more-than-payable", "lines-sum-differs"],
)
def test_a_payout_amount_differing_from_its_source_documents_is_stopped(
    api, merchant, inproc_bank, known_destinations, django_capture_on_commit_callbacks, amount, lines
):
    fund_merchant(merchant, 500000)
    extra = {"settlement_lines": lines} if lines else {}
    d, _ = create(api, PAYOUTS, payout_body(amount, **extra), django_capture_on_commit_callbacks)

    assert_stopped(d, "amount_matches_source")
    detail = d.prechecks.get(name="amount_matches_source").detail
    assert detail["expected"] == (250000 if lines else 500000)
    assert detail["source"] == ("settlement_lines" if lines else "merchant_payable")


def test_settlement_lines_allow_a_partial_payout_and_reserve_it_against_the_next(
    api, merchant, inproc_bank, payout_settings, django_capture_on_commit_callbacks
):
    """The first (reviewed: new destination) waits for approval; its amount is reserved, so a
    second payout asking more than what is left fails the balance check."""
    fund_merchant(merchant, 500000)
    lines = [{"reference": "o-1", "amount": 200000}, {"reference": "o-2", "amount": 100000}]
    first, _ = create(api, PAYOUTS, payout_body(300000, settlement_lines=lines), django_capture_on_commit_callbacks)
    first.refresh_from_db()
    assert first.status == S.PENDING_APPROVAL
    assert first.review_reasons == ["new_destination"]

    second, _ = create(
        api,
        PAYOUTS,
        payout_body(250000, settlement_lines=[{"reference": "o-3", "amount": 250000}]),
        django_capture_on_commit_callbacks,
    )
    assert_stopped(second, "balance_sufficient")
    assert second.prechecks.get(name="balance_sufficient").detail == {"available": 200000, "needed": 250000}
    assert payable(merchant) == 500000  # nothing posted before submission


def test_a_withdrawal_above_the_customers_balance_is_stopped(
    api, merchant, inproc_bank, known_destinations, django_capture_on_commit_callbacks
):
    customer = customer_with_wallet(merchant, 9999)
    d, _ = create(api, WITHDRAWALS, withdrawal_body(customer, 10000), django_capture_on_commit_callbacks)

    assert_stopped(d, "amount_matches_source")
    assert check_results(d)["balance_sufficient"] == "failed"
    assert wallet(customer) == 9999


@pytest.mark.parametrize(
    ("setting", "value", "check"),
    [
        ("WITHDRAWAL_MAX_PER_TRANSACTION", 9999, "per_transaction_limit"),
        ("WITHDRAWAL_DAILY_LIMIT", 25000, "daily_limit"),
        ("PAYOUT_FREQUENCY_MAX", 2, "destination_frequency"),
    ],
)
def test_limits_stop_a_withdrawal(
    api, merchant, inproc_bank, known_destinations, django_capture_on_commit_callbacks, setting, value, check
):
    setattr(known_destinations, setting, value)
    known_destinations.PAYOUT_DUPLICATE_WINDOW = timedelta(0)  # the same amount again is not the point here
    customer = customer_with_wallet(merchant, 100000)
    number = account_body()["account_number"]
    for _ in range(2):
        earlier, _ = create(
            api, WITHDRAWALS, withdrawal_body(customer, 10000, number=number), django_capture_on_commit_callbacks
        )
        if check == "per_transaction_limit":
            break
        earlier.refresh_from_db()
        assert earlier.status == S.PROCESSING
    d, _ = create(api, WITHDRAWALS, withdrawal_body(customer, 10000, number=number), django_capture_on_commit_callbacks)

    assert_stopped(d, check)
    detail = d.prechecks.get(name=check).detail
    assert detail["limit"] == value
    assert detail["value"] == {"per_transaction_limit": 10000, "daily_limit": 30000, "destination_frequency": 3}[check]


def test_a_risk_block_list_entry_stops_the_withdrawal(
    api, merchant, inproc_bank, known_destinations, django_capture_on_commit_callbacks
):
    customer = customer_with_wallet(merchant, 20000)
    list_entry_create(
        merchant=merchant,
        list_type="block",
        kind="customer",
        value=customer.external_id,
        reason="mule account",
        actor="risk-team",
    )
    d, _ = create(api, WITHDRAWALS, withdrawal_body(customer, 10000), django_capture_on_commit_callbacks)

    assert_stopped(d, "risk")
    assert d.prechecks.get(name="risk").detail["action"] == "block"
    from apps.risk.models import Observation

    observation = Observation.objects.get(scope="withdrawal", subject_id=d.pk)
    assert (observation.amount, observation.action) == (10000, "block")


def test_same_destination_and_amount_within_the_window_is_held_as_a_duplicate_and_announced(
    api, merchant, inproc_bank, known_destinations, clock, anomalies, django_capture_on_commit_callbacks
):
    fund_merchant(merchant, 300000)
    number = account_body()["account_number"]
    lines = [{"reference": "week-1", "amount": 100000}]
    first, _ = create(
        api, PAYOUTS, payout_body(100000, number=number, settlement_lines=lines), django_capture_on_commit_callbacks
    )
    first.refresh_from_db()
    assert first.status == S.PROCESSING

    again, body = create(
        api, PAYOUTS, payout_body(100000, number=number, settlement_lines=lines), django_capture_on_commit_callbacks
    )
    assert_stopped(again, "duplicate", result="held")
    assert again.prechecks.get(name="duplicate").detail == {"duplicate_of": [first.pk]}
    assert anomalies.of(again.pk) == ["duplicate_suspected"]
    assert body["status"] == "held"
    assert payable(merchant) == 200000  # only the first one left

    clock.advance(24 * 3600 + 60)  # outside PAYOUT_DUPLICATE_WINDOW
    later, _ = create(
        api, PAYOUTS, payout_body(100000, number=number, settlement_lines=lines), django_capture_on_commit_callbacks
    )
    later.refresh_from_db()
    assert check_results(later)["duplicate"] == "passed"
    assert later.status == S.PROCESSING


def test_cross_border_and_new_destinations_go_to_review_and_a_paid_destination_does_not(
    api, merchant, inproc_bank, payout_settings, clock, django_capture_on_commit_callbacks
):
    fund_merchant(merchant, 900000)
    number = account_body()["account_number"]
    lines = lambda amount: [{"reference": "x", "amount": amount}]  # noqa: E731
    first, _ = create(
        api,
        PAYOUTS,
        payout_body(300000, number=number, settlement_lines=lines(300000)),
        django_capture_on_commit_callbacks,
    )
    first.refresh_from_db()
    assert (first.status, first.review_reasons, first.required_approvals) == (
        S.PENDING_APPROVAL,
        ["new_destination"],
        1,
    )

    abroad = payout_body(200000, settlement_lines=lines(200000))
    abroad["destination_account"]["country"] = "HK"
    foreign, _ = create(api, PAYOUTS, abroad, django_capture_on_commit_callbacks)
    foreign.refresh_from_db()
    assert foreign.status == S.PENDING_APPROVAL
    assert foreign.review_reasons == ["cross_border", "new_destination"]

    # Once something was paid to the account, the next payout to it is not reviewed.
    Disbursement.objects.filter(pk=first.pk).update(paid_at=timezone.now())
    repeat, _ = create(
        api,
        PAYOUTS,
        payout_body(100000, number=number, settlement_lines=lines(100000)),
        django_capture_on_commit_callbacks,
    )
    repeat.refresh_from_db()
    assert check_results(repeat)["new_destination"] == "passed"
    assert repeat.status == S.PROCESSING


def test_fx_payout_converts_the_payable_rounding_down_and_posts_balanced_legs_per_currency(
    api, merchant, inproc_bank, known_destinations, clock, django_capture_on_commit_callbacks
):
    """CNY payable paid out in USD: the fixed table quotes USD:CNY 7.1, so CNY:USD is its inverse
    (0.140845070423); 1 000.00 CNY is 140.845070423 USD, paid as 140.84 (ROUND_FLOOR), the rest of
    the cent recorded; the ledger debits the whole 1 000.00 CNY."""
    fund_merchant(merchant, 100000)
    body = payout_body(14084, source_currency="CNY")
    body["currency"] = "USD"
    body["destination_account"]["currency"] = "USD"
    d, response = create(api, PAYOUTS, body, django_capture_on_commit_callbacks)

    d.refresh_from_db()
    assert d.status == S.PENDING_APPROVAL  # another currency than the source: cross-border review
    assert d.review_reasons == ["cross_border"]
    assert (d.source_amount, d.source_currency, d.fx_pair) == (100000, "CNY", "CNY:USD")
    assert d.fx_rate == Decimal("0.140845070423")
    assert (d.fx_rate_source, d.fx_rounding) == ("fixed", "ROUND_FLOOR")
    fx_detail = d.prechecks.get(name="fx_simulation").detail
    assert fx_detail["remainder_minor_units"] == "0.5070423"
    assert response["fx"] == {
        "pair": "CNY:USD",
        "rate": "0.140845070423",
        "rate_source": "fixed",
        "rounding": "ROUND_FLOOR",
    }

    from apps.payouts.services import payout_approve
    from tests.payouts.conftest import staff

    with django_capture_on_commit_callbacks(execute=True):
        payout_approve(disbursement_id=d.pk, approver=staff(merchant, "fin-1"))
    clock.advance(SETTLE_AFTER)
    deliver_webhooks()
    d.refresh_from_db()
    assert d.status == S.PAID
    assert payable(merchant, "CNY") == 0
    assert in_flight("USD") == 0
    transfer = SandboxTransfer.objects.get(request_id=d.request_id)
    assert (transfer.amount, transfer.currency) == (14084, "USD")
    inflight = LedgerTransaction.objects.get(reference=f"payout:{d.pk}:inflight")
    assert sorted(inflight.entries.values_list("currency", "amount")) == [
        ("CNY", -100000),
        ("CNY", 100000),
        ("USD", -14084),
        ("USD", 14084),
    ]
    assert ledger_unbalanced() == []


def test_fx_payout_of_one_cent_more_than_the_converted_payable_is_stopped(
    api, merchant, inproc_bank, known_destinations, django_capture_on_commit_callbacks
):
    fund_merchant(merchant, 100000)
    body = payout_body(14085, source_currency="CNY")
    body["currency"] = "USD"
    body["destination_account"]["currency"] = "USD"
    d, _ = create(api, PAYOUTS, body, django_capture_on_commit_callbacks)

    assert_stopped(d, "amount_matches_source")
    assert d.prechecks.get(name="amount_matches_source").detail["expected"] == 14084


def test_fx_withdrawal_takes_the_converted_amount_rounding_up_and_a_missing_rate_fails(
    api, merchant, inproc_bank, known_destinations, django_capture_on_commit_callbacks
):
    customer = customer_with_wallet(merchant, 100000)
    body = withdrawal_body(customer, 1001, source_currency="CNY")
    body["currency"] = "JPY"  # JPY:CNY 0.048: ¥1001 is 48.048 CNY → 48.05 CNY (ROUND_CEILING)
    body["destination_account"]["currency"] = "JPY"
    d, _ = create(api, WITHDRAWALS, body, django_capture_on_commit_callbacks)
    d.refresh_from_db()
    assert (d.source_amount, d.fx_pair, d.fx_rounding) == (4805, "JPY:CNY", "ROUND_CEILING")
    assert check_results(d)["fx_simulation"] == "passed"

    no_rate = withdrawal_body(customer, 1000, source_currency="CNY")
    no_rate["currency"] = "KWD"
    no_rate["destination_account"]["currency"] = "KWD"
    stopped, _ = create(api, WITHDRAWALS, no_rate, django_capture_on_commit_callbacks)
    assert_stopped(stopped, "fx_simulation")


def test_every_check_writes_exactly_one_row(merchant, inproc_bank, known_destinations):
    """The check runner itself: one outcome per named check, in a fixed order."""
    from apps.payouts.services import payout_create

    fund_merchant(merchant, 1000)
    d = payout_create(
        merchant=merchant,
        reference="r-1",
        amount=1000,
        currency="CNY",
        destination_account=account_body(),
        actor="tester",
    )
    assert d.prechecks.count() == len(ALL_CHECKS)
    assert PrecheckResult.objects.filter(disbursement=d).values("name").distinct().count() == len(ALL_CHECKS)
    report = run_prechecks(Disbursement.objects.get(pk=d.pk), verification=None)
    assert [outcome.name for outcome in report.outcomes] == [
        "account_verification",
        "account_status",
        "currency_match",
        "fx_simulation",
        "amount_matches_source",
        "balance_sufficient",
        "per_transaction_limit",
        "daily_limit",
        "destination_frequency",
        "duplicate",
        "risk",
        "large_amount",
        "cross_border",
        "new_destination",
    ]
    assert set(check_results(d)) == ALL_CHECKS
