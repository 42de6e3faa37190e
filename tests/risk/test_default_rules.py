"""The default rule pack (migration 0003), each rule at its threshold and one below, through
POST /api/v1/refunds."""

from __future__ import annotations

import pytest

from apps.accounts.models import AccountFreeze, Customer
from apps.refunds.models import Refund
from apps.risk.models import Case, Observation, Rule, RuleHit
from apps.risk.signals import risk_rules_hit
from tests.risk.support import (
    HOUR,
    MIN,
    clauses,
    codes,
    counts,
    customer,
    delta,
    order,
    product,
    refund,
)

pytestmark = pytest.mark.postgres

BURST = "refund-burst-1h"
LARGE = "large-refund-unfamiliar-account"
GANG = "shared-device-or-ip-refunds"
AML = "aml-high-frequency"


def test_default_pack_is_installed_active_with_a_first_version(db):
    rules = {r.code: r for r in Rule.objects.filter(merchant__isnull=True)}
    assert set(rules) == {BURST, LARGE, GANG, AML}
    for rule in rules.values():
        assert (rule.mode, rule.scope, rule.version) == ("active", "refund", 1)
        assert list(rule.versions.values_list("version", flat=True)) == [1]
    assert rules[GANG].action == "block_and_freeze"
    assert rules[AML].severity == "P1"


def test_fifth_refund_within_an_hour_goes_to_review_fourth_does_not(api, frozen):
    buyer = customer(api)
    sku = product(api)
    orders = [order(api, buyer, sku) for _ in range(5)]
    before = counts()

    first_four = []
    for order_id in orders[:4]:
        first_four.append(refund(api, order_id))
        frozen.shift(10 * MIN)  # five refunds within 50 minutes
    fifth = refund(api, orders[4])

    assert [b["status"] for b in first_four] == ["approved"] * 4
    assert all(BURST not in codes(b) for b in first_four)
    assert fifth["status"] == "manual_review"
    assert codes(fifth) == [BURST]
    assert clauses(fifth) == ["risk_review"]
    case = Case.objects.get(subject_type="refund", subject_id=fifth["id"])
    assert case.status == Case.Status.OPEN
    assert delta(before) == {"Observation": 5, "RuleHit": 1, "Case": 1}
    hit = RuleHit.objects.get()
    assert (hit.rule.code, hit.mode, hit.action, hit.decisive, hit.rule_version) == (BURST, "active", "review", True, 1)
    assert hit.observation.subject_id == fifth["id"]


def test_refunds_spread_over_more_than_an_hour_do_not_burst(api, frozen):
    buyer = customer(api)
    sku = product(api)
    orders = [order(api, buyer, sku) for _ in range(5)]
    bodies = []
    for order_id in orders:
        bodies.append(refund(api, order_id))
        frozen.shift(16 * MIN)  # the 1st is 64 minutes before the 5th

    assert [b["status"] for b in bodies] == ["approved"] * 5
    assert RuleHit.objects.count() == 0


@pytest.mark.parametrize(("amount", "status"), [(999_999, "approved"), (1_000_000, "manual_review")])
def test_large_refund_to_an_unfamiliar_account_is_reviewed_from_10000_00(api, frozen, amount, status):
    buyer = customer(api)
    order_id = order(api, buyer, product(api, price=1_000_000), amount=1_000_000)
    before = counts()

    body = refund(
        api,
        order_id,
        amount=amount,
        destination_account={"holder_name": "someone", "bank": "ABC", "account_number": "6228480000000007"},
    )

    assert body["status"] == status
    if status == "manual_review":
        assert codes(body) == [LARGE]
        assert delta(before) == {"Observation": 1, "RuleHit": 1, "Case": 1}
    else:
        assert codes(body) == []
        assert delta(before) == {"Observation": 1}
    assert Observation.objects.get().features["unfamiliar_account"] is True


def test_large_refund_back_to_the_paying_account_is_not_unfamiliar(api, frozen):
    buyer = customer(api)
    order_id = order(api, buyer, product(api, price=1_000_000), amount=1_000_000)

    body = refund(api, order_id, amount=1_000_000)

    assert body["status"] == "approved"
    assert Observation.objects.get().features["unfamiliar_account"] is False
    assert RuleHit.objects.count() == 0


@pytest.mark.parametrize("shared", ["device_id", "ip"])
def test_third_customer_refunding_one_product_from_one_device_is_blocked_and_the_ring_frozen(api, frozen, shared):
    sku = product(api)
    # Three orders each, so the ring's refund rate stays at or under the AML rule's 50 %.
    ring = {}
    for _ in range(3):
        buyer = customer(api)
        ring[buyer] = [order(api, buyer, sku), order(api, buyer, product(api)), order(api, buyer, product(api))]
    where = {"device_id": "d-gang"} if shared == "device_id" else {"ip": "203.0.113.66"}
    buyers = list(ring)
    before = counts()

    first = refund(api, ring[buyers[0]][0], **where)
    frozen.shift(3 * HOUR)
    second = refund(api, ring[buyers[1]][0], **where)
    assert (first["status"], second["status"]) == ("approved", "approved")
    assert AccountFreeze.objects.count() == 0
    frozen.shift(20 * HOUR)  # still within 24 h of the first
    third = refund(api, ring[buyers[2]][0], **where)

    assert third["status"] == "rejected"
    assert codes(third) == [GANG]
    assert third["decision"]["clauses"][0] == {"clause": "risk_block", "action": "block_and_freeze"}
    freezes = AccountFreeze.objects.filter(lifted_at__isnull=True)
    assert sorted(f.customer.external_id for f in freezes) == sorted(buyers)
    assert all(f.reason == f"risk rule {GANG}" and f.actor_label == "risk" for f in freezes)
    assert delta(before) == {"Observation": 3, "RuleHit": 1, "AccountFreeze": 3}
    hit = RuleHit.objects.get()
    assert (hit.action, hit.decisive, hit.observation.subject_id) == ("block_and_freeze", True, third["id"])

    # A 4th request from any of them, elsewhere and for another product: frozen → a person looks.
    fourth = refund(api, ring[buyers[0]][1])
    assert fourth["status"] == "manual_review"
    assert "customer_frozen" in clauses(fourth)
    assert codes(fourth) == []
    assert Case.objects.filter(subject_id=fourth["id"]).count() == 1


def test_two_customers_on_one_device_for_one_product_is_not_a_gang(api, frozen):
    sku = product(api)
    bodies = []
    for _ in range(2):
        buyer = customer(api)
        bodies.append(refund(api, order(api, buyer, sku), device_id="d-pair"))
    # The same device for a third customer but another product is not the pattern either.
    third = customer(api)
    bodies.append(refund(api, order(api, third, product(api)), device_id="d-pair"))

    assert [b["status"] for b in bodies] == ["approved"] * 3
    assert AccountFreeze.objects.count() == 0
    assert RuleHit.objects.count() == 0


def test_tenth_refund_within_24_hours_is_an_aml_review_with_a_p1_hit(api, frozen, django_capture_on_commit_callbacks):
    buyer = customer(api)
    sku = product(api)
    bodies = []
    for _ in range(9):
        bodies.append(refund(api, order(api, buyer, sku)))
        frozen.shift(2 * HOUR + 30 * MIN)  # never 5 in an hour; 9 within 22.5 h
    assert [b["status"] for b in bodies] == ["approved"] * 9
    assert RuleHit.objects.count() == 0
    # The 10th comes 22.5 h after the 1st (the loop moved the clock on after the 9th).

    heard = []

    def listener(sender, **payload):
        heard.append(payload)

    risk_rules_hit.connect(listener, weak=False, dispatch_uid="tests.risk.aml")
    try:
        with django_capture_on_commit_callbacks(execute=True):
            tenth = refund(api, order(api, buyer, sku))
    finally:
        risk_rules_hit.disconnect(dispatch_uid="tests.risk.aml")

    assert tenth["status"] == "manual_review"
    assert codes(tenth) == [AML]
    assert Case.objects.filter(subject_id=tenth["id"]).count() == 1
    assert Observation.objects.get(subject_id=tenth["id"]).features["customer_refunds_24h"] == 10
    # Every hit raises an alert: until the alerts app exists, the risk_rules_hit signal.
    assert len(heard) == 1
    assert heard[0]["action"] == "review"
    assert [(h["code"], h["severity"], h["decisive"]) for h in heard[0]["hits"]] == [(AML, "P1", True)]


def test_nine_refunds_in_24_hours_are_not_aml(api, frozen):
    buyer = customer(api)
    sku = product(api)
    bodies = []
    for _ in range(9):
        bodies.append(refund(api, order(api, buyer, sku)))
        frozen.shift(2 * HOUR + 30 * MIN)
    frozen.shift(2 * HOUR)  # the 10th comes 24.5 h after the first: only 9 in the window
    bodies.append(refund(api, order(api, buyer, sku)))

    assert [b["status"] for b in bodies] == ["approved"] * 10
    assert RuleHit.objects.count() == 0


def test_cluster_refunding_over_half_its_orders_is_an_aml_review_exactly_half_is_not(api, frozen):
    # A and B are linked by the device of their orders; two orders each (4 in the cluster).
    sku = product(api)
    a, b = customer(api), customer(api)
    a_orders = [order(api, a, sku, device="d-shared"), order(api, a, product(api))]
    b_orders = [order(api, b, sku, device="d-shared"), order(api, b, product(api))]

    first = refund(api, a_orders[0])  # links A and B when recorded
    second = refund(api, b_orders[0])  # cluster of 2, 1 of 4 orders refunded before
    third = refund(api, a_orders[1])  # 2 of 4: exactly 50 %
    fourth = refund(api, b_orders[1])  # 3 of 4: over 50 %

    assert [x["status"] for x in (first, second, third)] == ["approved"] * 3
    third_features = Observation.objects.get(subject_id=third["id"]).features
    assert (third_features["cluster_size"], third_features["cluster_refund_rate"]) == (2, 0.5)
    assert fourth["status"] == "manual_review"
    assert codes(fourth) == [AML]
    assert Observation.objects.get(subject_id=fourth["id"]).features["cluster_refund_rate"] == 0.75
    assert RuleHit.objects.count() == 1
    assert Refund.objects.filter(status="manual_review").count() == 1
    assert Customer.objects.filter(freezes__isnull=False).count() == 0
