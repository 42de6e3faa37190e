"""Rules page: shadow vs active hits of the last N days side by side, and "test on last N days"
(risk.rule_backtest on this merchant's recorded requests). Counts are asserted against the hit and
observation rows each test writes; nothing of merchant B shows up, B's rule id is a 404, and a bad
expression is an error that writes nothing."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.accounts.models import User
from apps.console.selectors import backtest_sample_for_merchant
from apps.risk.models import Observation, Rule, RuleHit, RuleVersion
from apps.risk.rules import rule_create, rule_retire
from tests.console.support import reviewed_refund, staff

pytestmark = pytest.mark.django_db

BIG = "amount >= 1000000000"
DAY = timedelta(days=1)


def _rule(merchant, code: str, *, mode: str, action: str) -> Rule:
    return rule_create(
        merchant=merchant, actor="test", code=code, name=code, scope="refund", expression=BIG, action=action, mode=mode
    )


def _hit(
    merchant,
    rule: Rule | None,
    *,
    mode: str = "",
    decisive: bool = False,
    outcome: str = "allow",
    ago=DAY,
    subject_id: int | None = None,
) -> Observation:
    """One judged request of `merchant` (big enough for BIG to match) and, with a rule, its hit:
    written directly, as risk_record would have written them at that time."""
    at = timezone.now() - ago
    obs = Observation.objects.create(
        merchant=merchant,
        scope="refund",
        subject_id=subject_id,
        amount=2_000_000_000,
        currency="CNY",
        action=outcome,
        features={"amount": 2_000_000_000.0},
        created_at=at,
    )
    if rule is not None:
        RuleHit.objects.create(
            rule=rule,
            rule_version=rule.version,
            observation=obs,
            merchant=merchant,
            mode=mode,
            action=rule.action,
            decisive=decisive,
            created_at=at,
        )
    return obs


@pytest.fixture
def traffic(merchant, other_merchant):
    """Merchant A: `watch` (block, now shadow) and `gate` (review, active), and a platform rule;
    merchant B: its own rule and hits on the platform rule, which must never be counted for A."""
    watch = _rule(merchant, "a-watch", mode="shadow", action="block")
    gate = _rule(merchant, "a-gate", mode="active", action="review")
    platform = _rule(None, "p-big", mode="active", action="review")
    theirs = _rule(other_merchant, "b-secret-rule", mode="active", action="block")
    refund, _ = reviewed_refund(merchant)
    other_refund, _ = reviewed_refund(other_merchant)
    # watch, in shadow: 3 hits in the window; a block rule outranks allow and review, not block.
    _hit(merchant, watch, mode="shadow", outcome="allow", subject_id=refund.pk)
    _hit(merchant, watch, mode="shadow", outcome="review", ago=3 * DAY)
    _hit(merchant, watch, mode="shadow", outcome="block", ago=6 * DAY)
    # watch, when it was active (8 days ago): one decisive hit.
    _hit(merchant, watch, mode="active", decisive=True, outcome="block", ago=8 * DAY)
    # gate: 2 active hits in the last 30 days (one decisive), one 40 days ago.
    _hit(merchant, gate, mode="active", decisive=True, outcome="review", ago=2 * DAY)
    _hit(merchant, gate, mode="active", decisive=False, outcome="block", ago=20 * DAY)
    _hit(merchant, gate, mode="active", decisive=True, outcome="review", ago=40 * DAY)
    # the platform rule: one hit of A's, three of B's.
    _hit(merchant, platform, mode="active", decisive=False, outcome="allow", ago=DAY)
    for _ in range(3):
        _hit(other_merchant, platform, mode="active", decisive=True, outcome="review", subject_id=other_refund.pk)
    _hit(other_merchant, theirs, mode="active", decisive=True, outcome="block", subject_id=other_refund.pk)
    return {
        "watch": watch,
        "gate": gate,
        "platform": platform,
        "theirs": theirs,
        "refund": refund,
        "other_refund": other_refund,
    }


def _windows(response) -> dict[str, dict]:
    return {rule.code: rule.window for rule in response.context["rules"]}


def _counts() -> tuple[int, ...]:
    return tuple(m.objects.count() for m in (Rule, RuleVersion, RuleHit, Observation))


@pytest.mark.parametrize("role", list(User.Role.values))
def test_rules_page_compares_shadow_and_active_hits_of_the_window_for_every_role(login, merchant, traffic, role):
    client = login(staff(merchant, role))
    response = client.get("/console/rules/")  # 30 days by default
    assert response.status_code == 200
    windows = _windows(response)
    assert windows["a-watch"] == {
        "shadow": {"hits": 3, "decisive": 0, "would_change": 2},
        "active": {"hits": 1, "decisive": 1, "would_change": 0},
    }
    assert windows["a-gate"]["active"] == {"hits": 2, "decisive": 1, "would_change": 0}
    assert windows["a-gate"]["shadow"]["hits"] == 0
    assert windows["p-big"]["active"] == {"hits": 1, "decisive": 0, "would_change": 1}
    body = response.content.decode()
    assert 'id="shadow-vs-active"' in body
    assert "b-secret-rule" not in body
    assert ('href="/console/rules/test"' in body) is (role in (User.Role.OWNER, User.Role.OPERATOR))


def test_the_window_is_chosen_by_days(owner_client, traffic):
    week = _windows(owner_client.get("/console/rules/", {"days": 7}))
    assert (week["a-watch"]["shadow"]["hits"], week["a-watch"]["active"]["hits"]) == (3, 0)
    assert week["a-gate"]["active"] == {"hits": 1, "decisive": 1, "would_change": 0}
    quarter = _windows(owner_client.get("/console/rules/", {"days": 90}))
    assert quarter["a-gate"]["active"] == {"hits": 3, "decisive": 2, "would_change": 0}
    odd = owner_client.get("/console/rules/", {"days": "365"})
    assert odd.context["days"] == 30


def test_backtest_of_an_own_rule_counts_matches_and_would_decide_with_a_masked_sample(owner_client, traffic):
    refund = traffic["refund"]
    before = _counts()
    response = owner_client.post(f"/console/rules/{traffic['watch'].pk}/test", {"days": 30})
    assert response.status_code == 200
    result = response.context["result"]
    # A's requests in the last 30 days that match BIG: 3 (watch shadow) + 1 (watch active) + 1 (gate) + 1
    # (gate, 20 days) + 1 (platform) = 7; refund requests of reviewed_refund are far below the threshold.
    assert (
        result["evaluated"]
        == Observation.objects.filter(
            merchant=traffic["watch"].merchant, created_at__gte=timezone.now() - timedelta(days=30)
        ).count()
    )
    assert result["hits"] == 7
    assert result["hits_by_actual_outcome"] == {"allow": 2, "review": 2, "block": 3}
    assert result["would_decide"] == 4  # block outranks allow and review, not block
    assert [s["id"] for s in response.context["sample"]] == [refund.pk]
    body = response.content.decode()
    assert refund.customer.name not in body
    assert response.context["sample"][0]["customer"] == refund.customer.name[0] + "****"
    assert f'href="/console/refunds/{refund.pk}/"' in body
    assert str(traffic["other_refund"].pk) not in [str(s["id"]) for s in response.context["sample"]]
    assert _counts() == before


def test_backtest_of_a_new_expression_over_seven_days_and_a_review_action(login, merchant, traffic):
    client = login(staff(merchant, User.Role.OPERATOR))
    form = client.get("/console/rules/test")
    assert form.status_code == 200
    assert 'id="rule-test-form"' in form.content.decode()
    response = client.post("/console/rules/test", {"scope": "refund", "expression": BIG, "action": "review", "days": 7})
    assert response.status_code == 200
    result = response.context["result"]
    assert (result["days"], result["hits"]) == (7, 5)  # 1, 3, 6 days (watch), 2 days (gate), 1 day (platform)
    assert result["hits_by_actual_outcome"] == {"allow": 2, "review": 2, "block": 1}
    assert result["would_decide"] == 2  # review outranks allow only
    assert 'data-figure="would-decide">2<' in response.content.decode()


def test_a_bad_expression_is_shown_as_an_error_and_writes_nothing(owner_client, traffic):
    before = _counts()
    response = owner_client.post(
        "/console/rules/test", {"scope": "refund", "expression": "no_such_feature > 1", "action": "block", "days": 30}
    )
    assert response.status_code == 400
    assert response.context["result"] is None
    assert "Unknown feature" in response.content.decode()
    assert 'id="rule-test-error"' in response.content.decode()
    empty = owner_client.post("/console/rules/test", {"scope": "refund", "expression": "", "days": 30})
    assert empty.status_code == 400
    bad_scope = owner_client.post("/console/rules/test", {"scope": "ledger", "expression": BIG, "days": 30})
    assert bad_scope.status_code == 400
    assert _counts() == before


@pytest.mark.parametrize("role", [User.Role.REVIEWER, User.Role.FINANCE])
def test_reviewers_and_finance_may_not_run_backtests(login, merchant, traffic, role):
    client = login(staff(merchant, role))
    for url in ("/console/rules/test", f"/console/rules/{traffic['gate'].pk}/test"):
        assert client.get(url).status_code == 403, url
        response = client.post(url, {"scope": "refund", "expression": BIG, "action": "block", "days": 30})
        assert response.status_code == 403, url
        assert "result" not in response.context


def test_another_merchants_rule_is_a_404_and_a_platform_rule_can_be_tested(owner_client, other_client, traffic):
    theirs = traffic["theirs"].pk
    assert owner_client.get(f"/console/rules/{theirs}/test").status_code == 404
    assert owner_client.post(f"/console/rules/{theirs}/test", {"days": 30}).status_code == 404
    assert other_client.get(f"/console/rules/{traffic['gate'].pk}/test").status_code == 404
    response = owner_client.post(f"/console/rules/{traffic['platform'].pk}/test", {"days": 30})
    assert response.status_code == 200
    assert response.context["result"]["hits"] == 7  # A's traffic only, never B's 4 big requests


def test_a_retired_rule_leaves_the_rules_page_and_its_pages_are_404(owner_client, traffic):
    gate = traffic["gate"]
    rule_retire(rule=gate, actor="test")

    assert "a-gate" not in _windows(owner_client.get("/console/rules/"))
    assert "a-watch" in _windows(owner_client.get("/console/rules/"))
    assert owner_client.get(f"/console/rules/{gate.pk}/test").status_code == 404
    assert owner_client.post(f"/console/rules/{gate.pk}/mode", {"mode": "active"}).status_code == 404
    assert Rule.objects.get(pk=gate.pk).mode == Rule.Mode.DISABLED


def test_merchant_b_sees_only_its_own_hits_and_backtests_only_its_own_traffic(other_client, traffic):
    windows = _windows(other_client.get("/console/rules/"))
    assert "a-watch" not in windows
    assert "a-gate" not in windows
    assert windows["p-big"]["active"] == {"hits": 3, "decisive": 3, "would_change": 0}
    assert windows["b-secret-rule"]["active"]["hits"] == 1
    response = other_client.post(
        "/console/rules/test", {"scope": "refund", "expression": BIG, "action": "block", "days": 30}
    )
    assert response.context["result"]["hits"] == 4
    assert [s["id"] for s in response.context["sample"]] == [traffic["other_refund"].pk] * 4
    assert traffic["refund"].customer.name[1:] not in response.content.decode()


def test_the_sample_never_resolves_another_merchants_subject(merchant, traffic):
    other = traffic["other_refund"]
    assert backtest_sample_for_merchant(merchant=merchant, scope="refund", subject_ids=[other.pk]) == []
    assert backtest_sample_for_merchant(merchant=merchant, scope="payout", subject_ids=[other.pk]) == []
