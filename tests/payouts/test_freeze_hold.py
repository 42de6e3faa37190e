"""G17 for payouts and withdrawals: a freeze of the destination account holds money that has not
left. Over the sandbox bank on the live server: a payout approved while its destination account is
frozen (by stored id) and a withdrawal queued for a retry while its account number is frozen (by
details: the freeze is stored for no customer and holds the number) both stay with us — 0 sent,
0 bank executions, one `held_frozen` event, a P1 alert — and lifting releases each exactly once:
the withdrawal at once by the lift's signal, the payout by the pollers' sweep when that signal is
lost."""

from __future__ import annotations

from datetime import timedelta

import pytest

from apps.accounts.models import AccountFreeze, User
from apps.accounts.signals import account_unfrozen
from apps.alerts.models import Alert
from apps.common.errors import ConflictError
from apps.payouts.models import Disbursement
from apps.payouts.services import payout_release
from tests.payouts.conftest import (
    PAYOUTS,
    RETRY_BASE,
    SETTLE_AFTER,
    WITHDRAWALS,
    calls,
    codes,
    customer_with_wallet,
    deliver_webhooks,
    executions,
    fund_merchant,
    in_flight,
    ledger_refs,
    ledger_unbalanced,
    payable,
    payout_body,
    post,
    run_poller,
    signed_in,
    staff,
    wallet,
    withdrawal_body,
)

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(120)]

S = Disbursement.Status
PAYOUT_AMOUNT, WALLET, WITHDRAWAL_AMOUNT = 500000, 20000, 10000
RECHECK = 60


def approve(api, url: str, d: Disbursement) -> None:
    response = signed_in(User.objects.get(username="checker")).post(f"{url}/{d.pk}/approve", {}, format="json")
    assert response.status_code == 200, response.content


def freeze(api, body: dict) -> int:
    response = api.post("/api/v1/freezes", {**body, "reason": "fraud report on this account"}, format="json")
    assert response.status_code == 201, response.content
    return response.json()["id"]


def lift(api, freeze_id: int) -> None:
    response = api.post(f"/api/v1/freezes/{freeze_id}/lift", {"reason": "account owner verified"}, format="json")
    assert response.status_code == 200, response.content


def hold_alerts(d: Disbursement) -> list[tuple[str, str]]:
    rows = Alert.objects.filter(subject_type=d.kind, subject_id=str(d.pk), kind=f"{d.kind}_held_frozen")
    return list(rows.values_list("tier", "status"))


def assert_held(d: Disbursement, *, submits: int) -> None:
    d.refresh_from_db()
    assert (d.status, d.hold_kind) == (S.HELD, Disbursement.HoldKind.FREEZE), codes(d)
    assert codes(d).count("held_frozen") == 1
    assert d.events.get(code="held_frozen").responsible_party == "merchant"  # frozen through its API
    assert calls(d, "submit") == submits
    assert executions(d) == 0
    assert hold_alerts(d) == [("P1", "open")]


def test_frozen_destination_accounts_hold_an_approved_payout_and_a_retrying_withdrawal_until_lifted(
    api, merchant, bank, payout_settings, clock, monkeypatch
):
    payout_settings.FREEZE_HOLD_RECHECK = timedelta(seconds=RECHECK)
    staff(merchant, "checker")
    fund_merchant(merchant, PAYOUT_AMOUNT)
    customer = customer_with_wallet(merchant, WALLET)
    created = post(api, PAYOUTS, payout_body(PAYOUT_AMOUNT, suffix="0000"))
    assert created.status_code == 201, created.content
    payout = Disbursement.objects.get(pk=created.json()["id"])
    assert payout.status == S.PENDING_APPROVAL  # a first payment to a new account is reviewed
    body = withdrawal_body(customer, WITHDRAWAL_AMOUNT, suffix="0007")
    created = post(api, WITHDRAWALS, body)
    withdrawal = Disbursement.objects.get(pk=created.json()["id"])
    approve(api, WITHDRAWALS, withdrawal)
    withdrawal.refresh_from_db()
    assert (withdrawal.status, withdrawal.failure_code) == (S.FAILED, "channel_limit")  # retry queued

    payout_freeze = freeze(api, {"bank_account_id": payout.destination_account_id})
    withdrawal_freeze = freeze(api, {"bank_account": body["destination_account"]})
    assert AccountFreeze.objects.get(pk=withdrawal_freeze).bank_account_id != withdrawal.destination_account_id

    approve(api, PAYOUTS, payout)  # approved: its submission meets the freeze
    clock.advance(RETRY_BASE + 1)
    run_poller()  # the withdrawal's retry is due: it meets the freeze of its number
    assert_held(payout, submits=0)
    assert_held(withdrawal, submits=1)
    with pytest.raises(ConflictError):
        payout_release(disbursement_id=payout.pk, actor="checker")  # only the lift lets it go
    clock.advance(RECHECK + 1)
    run_poller()  # the sweep sees the freezes still in force
    assert_held(payout, submits=0)
    assert_held(withdrawal, submits=1)

    lift(api, withdrawal_freeze)  # released at once by the signal
    withdrawal.refresh_from_db()
    assert calls(withdrawal, "submit") == 2
    with monkeypatch.context() as patched:
        patched.setattr(account_unfrozen, "send", lambda *args, **kwargs: [])  # this lift's signal is lost
        lift(api, payout_freeze)
    assert_held(payout, submits=0)
    clock.advance(RECHECK + 1)
    run_poller()  # the sweep releases it
    clock.advance(SETTLE_AFTER)
    deliver_webhooks()

    for d, submits in ((payout, 1), (withdrawal, 2)):
        d.refresh_from_db()
        assert d.status == S.PAID, codes(d)
        assert (calls(d, "submit"), executions(d)) == (submits, 1)
        assert codes(d).count("hold_released") == 1
        assert d.hold_kind == Disbursement.HoldKind.REVIEW
        assert ledger_refs(d) == [f"{d.kind}:{d.pk}:inflight", f"{d.kind}:{d.pk}:paid"]
        assert hold_alerts(d) == [("P1", "resolved")]
    assert (payable(merchant), wallet(customer)) == (0, WALLET - WITHDRAWAL_AMOUNT)

    # A second lift signal and later sweeps send nothing more.
    for freeze_id in (payout_freeze, withdrawal_freeze):
        row = AccountFreeze.objects.get(pk=freeze_id)
        account_unfrozen.send(
            sender=AccountFreeze,
            freeze_id=row.pk,
            merchant_id=merchant.pk,
            customer_id=None,
            account_fingerprint=row.bank_account.fingerprint,
        )
    clock.advance(RECHECK + 1)
    run_poller()
    assert (calls(payout, "submit"), calls(withdrawal, "submit")) == (1, 2)
    assert (executions(payout), executions(withdrawal)) == (1, 1)
    assert in_flight() == 0
    assert ledger_unbalanced() == []
