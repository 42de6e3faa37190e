"""Recovery: incidents freeze, recall through the channel, track negotiated returns, escalate to
legal and, resolved with a root cause, become searchable cases. Sandbox bank in-process."""

from __future__ import annotations

import pytest

from apps.accounts.selectors import bank_account_is_frozen, customer_is_frozen
from apps.accounts.services import bank_account_get_or_create
from apps.common.models import AuditEntry
from apps.ledger.models import LedgerTransaction
from apps.payouts.incidents import payout_recall_request
from apps.payouts.models import Approval, Disbursement, Incident
from tests.factories import CustomerFactory
from tests.payouts.conftest import (
    INCIDENTS,
    PAYOUTS,
    SETTLE_AFTER,
    WITHDRAWALS,
    account_body,
    calls,
    codes,
    customer_with_wallet,
    deliver_webhooks,
    fund_merchant,
    ledger_refs,
    ledger_unbalanced,
    payable,
    payout_body,
    post,
    signed_in,
    staff,
    wallet,
    withdrawal_body,
)

pytestmark = pytest.mark.django_db

S = Disbursement.Status


@pytest.fixture
def paid(api, merchant, inproc_bank, payout_settings, clock, django_capture_on_commit_callbacks):
    """Make a payout or withdrawal and see it paid."""
    checker = signed_in(staff(merchant, "checker"))

    def make(url: str, body: dict) -> Disbursement:
        with django_capture_on_commit_callbacks(execute=True):
            created = post(api, url, body)
            assert created.status_code == 201, created.content
            approved = checker.post(f"{url}/{created.json()['id']}/approve", {}, format="json")
            assert approved.status_code == 200, approved.content
        clock.advance(SETTLE_AFTER)
        deliver_webhooks()
        d = Disbursement.objects.get(pk=created.json()["id"])
        assert d.status == S.PAID
        return d

    return make


def act(api, incident_id: int, action: str, body: dict, capture=None, **headers):
    if capture is None:
        response = api.post(f"{INCIDENTS}/{incident_id}/{action}", body, format="json", **headers)
    else:
        with capture(execute=True):
            response = api.post(f"{INCIDENTS}/{incident_id}/{action}", body, format="json", **headers)
    assert response.status_code == 200, response.content
    return response.json()


def test_a_wrong_withdrawal_is_frozen_recalled_and_the_customer_balance_restored(
    api, merchant, paid, django_capture_on_commit_callbacks
):
    customer = customer_with_wallet(merchant, 30000)
    destination = account_body()
    # Another customer of the merchant holds the same account: the money landed on the platform.
    receiver = CustomerFactory(merchant=merchant)
    bank_account_get_or_create(merchant=merchant, customer=receiver, **destination)
    d = paid(WITHDRAWALS, withdrawal_body(customer, 10000, number=destination["account_number"]))
    assert wallet(customer) == 20000

    opened = api.post(INCIDENTS, {"withdrawal": d.pk, "summary": "customer says the card is not theirs"}, format="json")
    assert opened.status_code == 201, opened.content
    incident_id = opened.json()["id"]
    assert opened.json()["withdrawal"] == d.pk
    frozen = act(api, incident_id, "freeze", {"notes": "stop everything"})
    detail = frozen["steps"][-1]["detail"]
    assert detail["held"] is False  # already paid: nothing left to hold
    assert sorted(entry.get("customer", "") for entry in detail["frozen"] if "customer" in entry) == sorted(
        [customer.external_id, receiver.external_id]
    )
    assert bank_account_is_frozen(bank_account=d.destination_account)
    assert customer_is_frozen(customer=customer)
    assert customer_is_frozen(customer=receiver)

    act(api, incident_id, "recall", {"notes": "recall via channel"}, django_capture_on_commit_callbacks)
    recalled = api.get(f"{INCIDENTS}/{incident_id}").json()  # the recall call runs after commit

    d.refresh_from_db()
    assert d.status == S.RECALLED
    assert codes(d)[-3:] == ["incident_opened", "recall_requested", "recalled"]
    assert calls(d, "recall") == 1
    recall_audit = AuditEntry.objects.get(action="withdrawal.recall")
    assert recall_audit.actor.startswith("api-key:")
    assert (recall_audit.target_id, recall_audit.merchant_id) == (str(d.pk), merchant.pk)
    assert (recall_audit.before, recall_audit.after["status"]) == ({"status": "paid"}, "recall_requested")
    assert ledger_refs(d) == [f"withdrawal:{d.pk}:{step}" for step in ("inflight", "paid", "recalled")]
    assert wallet(customer) == 30000
    assert [step["action"] for step in recalled["steps"]] == [
        "opened",
        "freeze",
        "recall_requested",
        "recall_succeeded",
    ]
    assert (recalled["status"], recalled["amount_recovered"]) == ("recovering", 10000)
    assert recalled["steps"][2]["actor"] == recalled["opened_by"]
    assert ledger_unbalanced() == []


def test_a_late_recall_is_refused_then_negotiated_returns_escalation_and_a_searchable_case(
    api, merchant, paid, clock, anomalies, django_capture_on_commit_callbacks
):
    fund_merchant(merchant, 500000)
    d = paid(PAYOUTS, payout_body(500000))
    assert payable(merchant) == 0
    clock.advance(25 * 3600)  # the bank honours recalls for 24 h after settling
    incident_id = api.post(INCIDENTS, {"payout": d.pk, "summary": "paid twice by the old batch job"}, format="json")
    incident_id = incident_id.json()["id"]

    act(api, incident_id, "recall", {}, django_capture_on_commit_callbacks)
    refused = api.get(f"{INCIDENTS}/{incident_id}").json()
    d.refresh_from_db()
    assert d.status == S.RECALL_FAILED
    assert refused["status"] == "negotiating"
    assert refused["steps"][-1]["action"] == "recall_failed"
    assert refused["steps"][-1]["detail"] == {"raw_code": "FUNDS_WITHDRAWN"}
    act(api, incident_id, "negotiation", {"notes": "merchant agreed to return it in two parts"})

    key = {"HTTP_IDEMPOTENCY_KEY": "return-1"}
    first = act(api, incident_id, "returns", {"amount": 100000, "notes": "first part"}, **key)
    replay = api.post(
        f"{INCIDENTS}/{incident_id}/returns", {"amount": 100000, "notes": "first part"}, format="json", **key
    )
    assert replay.status_code == 200
    assert replay["Idempotent-Replayed"] == "true"
    assert first["amount_recovered"] == 100000
    assert LedgerTransaction.objects.filter(reference__startswith=f"payout:{d.pk}:recovered").count() == 1
    assert payable(merchant) == 100000
    too_much = api.post(
        f"{INCIDENTS}/{incident_id}/returns", {"amount": 400001}, format="json", HTTP_IDEMPOTENCY_KEY="return-2"
    )
    assert too_much.status_code == 422
    assert too_much.json()["error"]["code"] == "amount_exceeds_at_risk"
    assert payable(merchant) == 100000

    escalated = act(api, incident_id, "escalate", {"notes": "handed to counsel"})
    assert escalated["status"] == "legal"
    resolved = act(
        api,
        incident_id,
        "resolve",
        {
            "root_cause": "Batch job re-ran after a timeout without checking the first run",
            "category": "duplicate_payment",
        },
    )
    assert (resolved["status"], resolved["category"]) == ("resolved", "duplicate_payment")
    assert [step["action"] for step in resolved["steps"]] == [
        "opened",
        "recall_requested",
        "recall_failed",
        "negotiation",
        "funds_returned",
        "legal_escalation",
        "resolved",
    ]
    assert ledger_unbalanced() == []
    assert anomalies.of(d.pk) == ["recall_failed"]

    def found(**params) -> list[int]:
        response = api.get(INCIDENTS, params)
        assert response.status_code == 200
        return [row["id"] for row in response.json()["results"]]

    assert found(q="re-ran after a TIMEOUT") == [incident_id]  # root cause, case-insensitive
    assert found(q="two parts") == [incident_id]  # a step's notes
    assert found(q="duplicate_payment", status="resolved") == [incident_id]
    assert found(q="nothing like this") == []
    assert found(status="open") == []
    refused_again = api.post(f"{INCIDENTS}/{incident_id}/escalate", {}, format="json")
    assert refused_again.status_code == 409


def test_freezing_a_payout_waiting_for_approval_holds_it_and_nothing_is_sent(
    api, merchant, inproc_bank, payout_settings, django_capture_on_commit_callbacks
):
    checker = staff(merchant, "checker")
    fund_merchant(merchant, 500000)
    created = post(api, PAYOUTS, payout_body(500000))
    d = Disbursement.objects.get(pk=created.json()["id"])
    assert d.status == S.PENDING_APPROVAL
    incident = api.post(INCIDENTS, {"payout": d.pk, "summary": "suspected account takeover"}, format="json").json()

    frozen = act(api, incident["id"], "freeze", {})

    d.refresh_from_db()
    assert d.status == S.HELD
    assert frozen["steps"][-1]["detail"]["held"] is True
    with django_capture_on_commit_callbacks(execute=True):
        refused = signed_in(checker).post(f"{PAYOUTS}/{d.pk}/approve", {}, format="json")
    assert refused.status_code == 409
    assert Approval.objects.count() == 0
    assert calls(d, "submit") == 0
    assert ledger_refs(d) == []
    assert payable(merchant) == 500000
    second = api.post(INCIDENTS, {"payout": d.pk, "summary": "again"}, format="json")
    assert second.status_code == 409
    assert Incident.objects.count() == 1


def test_only_a_paid_movement_can_be_recalled(merchant, inproc_bank, payout_settings):
    from apps.common.errors import ConflictError
    from apps.payouts.services import payout_create

    fund_merchant(merchant, 1000)
    d = payout_create(
        merchant=merchant, reference="r", amount=1000, currency="CNY", destination_account=account_body(), actor="a"
    )
    with pytest.raises(ConflictError):
        payout_recall_request(disbursement_id=d.pk, actor="ops")
    assert calls(d, "recall") == 0


def test_staff_search_the_case_library_in_the_admin_and_admin_actions_go_through_services(
    client, merchant, inproc_bank, payout_settings, django_capture_on_commit_callbacks
):
    from apps.accounts.models import User
    from apps.payouts.incidents import incident_open, incident_resolve
    from apps.payouts.services import payout_create

    operator = User.objects.create(username="ops", is_staff=True, is_superuser=True)
    client.force_login(operator)
    fund_merchant(merchant, 1000)
    d = payout_create(
        merchant=merchant, reference="r", amount=1000, currency="CNY", destination_account=account_body(), actor="maker"
    )
    assert d.status == S.PENDING_APPROVAL
    incident = incident_open(disbursement_id=d.pk, summary="wrong beneficiary bank", actor="ops")
    incident_resolve(
        incident_id=incident.pk, root_cause="stale bank master data", category="wrong_account", actor="ops"
    )

    found = client.get("/admin/payouts/incident/", {"q": "master data"})
    missed = client.get("/admin/payouts/incident/", {"q": "nothing like it"})
    assert found.status_code == 200
    assert f"/admin/payouts/incident/{incident.pk}/change/" in found.content.decode()
    assert f"/admin/payouts/incident/{incident.pk}/change/" not in missed.content.decode()
    assert client.get(f"/admin/payouts/payout/{d.pk}/change/").status_code == 200
    assert client.get("/admin/payouts/withdrawal/").status_code == 200

    with django_capture_on_commit_callbacks(execute=True):
        client.post("/admin/payouts/payout/", {"action": "approve", "_selected_action": [d.pk]})
    d.refresh_from_db()
    assert d.status == S.PROCESSING  # approved by the platform operator, then submitted
    assert d.approvals.get().approver == operator
