"""Each clause of the automatic refund decision (DESIGN.md "Automatic refund decision — contract").

Mostly through POST /api/v1/refunds with orders paid a set time before a frozen now; a few checks
call `decide_refund` directly. No channel exists here and on_commit callbacks do not run (the test
transaction never commits), so an approved refund waits in `approved`: the decision is under test.
"""

from __future__ import annotations

import socket
from datetime import timedelta

import pytest
import requests
import responses
import time_machine
from django.core.cache import cache
from django.db import transaction

from apps.accounts.models import Customer
from apps.accounts.services import account_freeze
from apps.gateways.models import ChannelCall
from apps.orders.models import Order
from apps.refunds.decision import decide_refund, trust_for
from apps.refunds.models import ReasonPhrase, Refund, SupportTicket
from apps.refunds.routing import _VERSION_KEY, route_reason_text
from apps.risk.models import Case
from tests.refunds.decision_support import NOW, PRICE, buy, refund, refund_postings, results, use

pytestmark = pytest.mark.postgres

MIN = timedelta(minutes=1)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
USAGE_URL = "https://merchant.example/usage"


@pytest.fixture
def frozen(db):
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


def clauses(body: dict) -> list[str]:
    return [c["clause"] for c in body["decision"]["clauses"]]


def order_of(bought) -> Order:
    return Order.objects.select_related("customer", "product__refund_policy", "merchant").get(pk=bought.order_id)


# --- windows --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ago", "outcome", "clause"),
    [
        (timedelta(minutes=14, seconds=59), "approved", "unconditional_window"),
        (timedelta(minutes=15), "approved", "unconditional_window"),  # inclusive edge
        (timedelta(minutes=15, seconds=1), "approved", "conditional_window"),
        (timedelta(minutes=16), "approved", "conditional_window"),
        (timedelta(hours=24), "approved", "conditional_window"),  # inclusive edge
        (timedelta(hours=24, seconds=1), "rejected", "beyond_window"),
        (timedelta(days=30), "rejected", "beyond_window"),
    ],
)
def test_window_edges_are_inclusive(api, frozen, ago, outcome, clause):
    bought = buy(api, ago=ago, registered_ago=60 * DAY)

    body = refund(api, bought)

    assert body["status"] == outcome
    assert body["decision"]["outcome"] == outcome
    assert clauses(body) == [clause]
    assert body["decision"]["evidence"]["elapsed_seconds"] == int(ago.total_seconds())
    assert body["decision"]["appeal"] is (outcome == "rejected")


def test_beyond_window_is_refused_with_an_appeal_route_and_no_case(api, frozen):
    bought = buy(api, ago=24 * HOUR + timedelta(seconds=1), locale="en")

    body = refund(api, bought)

    assert body["decision"]["clauses"] == [{"clause": "beyond_window", "hours": 24, "appeal": True}]
    assert "appeal" in body["decision"]["explanation"]
    assert Refund.objects.get(pk=body["id"]).events.get(code="rejected").message_key == (
        "refund.rejected.beyond_window"
    )
    assert not Case.objects.exists()
    assert ChannelCall.objects.count() == 0
    assert refund_postings() == 0


def test_the_unconditional_window_ignores_usage(api, frozen):
    bought = buy(api, ago=10 * MIN)
    use(api, bought, "progress", 90)

    assert refund(api, bought)["status"] == "approved"


def test_windows_follow_the_products_own_policy(api, frozen):
    policy = {"unconditional_minutes": 30, "conditional_hours": 48, "max_progress_pct": 25}
    inside = buy(api, ago=30 * MIN, refund_policy=policy)
    conditional = buy(api, ago=48 * HOUR, refund_policy=policy)
    beyond = buy(api, ago=48 * HOUR + timedelta(seconds=1), refund_policy=policy)
    use(api, conditional, "progress", 25)

    assert clauses(refund(api, inside)) == ["unconditional_window"]
    assert clauses(refund(api, conditional)) == ["conditional_window"]
    assert clauses(refund(api, beyond)) == ["beyond_window"]


# --- locks per kind -------------------------------------------------------------------------------


@pytest.mark.parametrize(("progress", "outcome"), [(0, "approved"), (10, "approved"), (11, "manual_review")])
def test_course_progress_limit_is_10_percent(api, frozen, progress, outcome):
    bought = buy(api, ago=2 * HOUR, kind="course")
    use(api, bought, "progress", 5)
    use(api, bought, "progress", progress)

    body = refund(api, bought)

    assert body["status"] == outcome
    if outcome == "manual_review":
        assert body["decision"]["clauses"] == [{"clause": "progress_limit", "progress_pct": 11, "limit_pct": 10}]
    else:
        assert body["decision"]["clauses"][0]["progress_limit_pct"] == 10


@pytest.mark.parametrize(
    ("kind", "usage", "clause"),
    [
        ("license_key", "key_revealed", "key_revealed_lock"),
        ("license_key", "key_activated", "key_activated_lock"),
        ("file", "download", "download_lock"),
        ("template", "download", "download_lock"),
        ("membership", "key_revealed", "usage_lock"),
        ("membership", "download", "usage_lock"),
    ],
)
def test_each_usage_lock_sends_the_refund_to_review(api, frozen, kind, usage, clause):
    locked = buy(api, ago=2 * HOUR, kind=kind)
    untouched = buy(api, ago=2 * HOUR, kind=kind)
    use(api, locked, usage)

    body = refund(api, locked)

    assert body["status"] == "manual_review"
    assert clause in clauses(body)
    assert Case.objects.filter(subject_type="refund", subject_id=body["id"]).exists()
    assert refund(api, untouched)["status"] == "approved"


def test_membership_any_progress_at_all_locks(api, frozen):
    bought = buy(api, ago=2 * HOUR, kind="membership")
    use(api, bought, "progress", 1)

    body = refund(api, bought)

    assert body["status"] == "manual_review"
    assert clauses(body) == ["usage_lock"]


@pytest.mark.parametrize(
    ("kind", "locks"),
    [
        ("course", {"lock_on_key_reveal": False, "lock_on_key_activation": False, "lock_on_download": False}),
        ("license_key", {"lock_on_key_reveal": True, "lock_on_key_activation": True, "lock_on_download": False}),
        ("file", {"lock_on_key_reveal": False, "lock_on_key_activation": False, "lock_on_download": True}),
        ("template", {"lock_on_key_reveal": False, "lock_on_key_activation": False, "lock_on_download": True}),
        ("membership", {"lock_on_any_usage": True, "lock_on_download": False}),
        ("physical", {"unconditional_minutes": 0, "conditional_hours": 0}),
    ],
)
def test_kind_defaults_are_applied_at_product_creation(api, frozen, kind, locks):
    bought = buy(api, ago=MIN, kind=kind)

    policy = api.get(f"/api/v1/products/{bought.product_id}").json()["refund_policy"]

    assert {key: policy[key] for key in locks} == locks


def test_a_course_download_does_not_lock_by_default(api, frozen):
    bought = buy(api, ago=2 * HOUR, kind="course")
    use(api, bought, "download")

    assert refund(api, bought)["status"] == "approved"


def test_kind_defaults_can_be_overridden_by_the_refund_policy(api, frozen):
    strict_course = buy(api, ago=2 * HOUR, kind="course", refund_policy={"lock_on_download": True})
    lenient_key = buy(api, ago=2 * HOUR, kind="license_key", refund_policy={"lock_on_key_reveal": False})
    use(api, strict_course, "download")
    use(api, lenient_key, "key_revealed")

    assert clauses(refund(api, strict_course)) == ["download_lock"]
    assert refund(api, lenient_key)["status"] == "approved"


def test_a_policy_change_applies_to_the_next_request(api, frozen):
    bought = buy(api, ago=2 * HOUR)
    use(api, bought, "progress", 15)
    response = api.patch(
        f"/api/v1/products/{bought.product_id}", {"refund_policy": {"max_progress_pct": 20}}, format="json"
    )
    assert response.status_code == 200, response.content

    assert refund(api, bought)["status"] == "approved"


def test_physical_goods_always_go_to_a_person(api, frozen):
    bought = buy(api, ago=MIN, kind="physical")

    body = refund(api, bought)

    assert body["status"] == "manual_review"
    assert clauses(body) == ["physical_goods"]
    assert Case.objects.filter(subject_id=body["id"]).exists()


# --- trust tiers ----------------------------------------------------------------------------------


def _set_customer(bought, **changes) -> None:
    Customer.objects.filter(external_id=bought.customer).update(**changes)


def test_trusted_customer_gets_20_percent_progress(api, frozen):
    ok = buy(api, ago=2 * HOUR)
    over = buy(api, ago=2 * HOUR, customer=ok.customer)
    _set_customer(ok, trust_level=Customer.TrustLevel.TRUSTED)
    use(api, ok, "progress", 20)
    use(api, over, "progress", 21)

    body = refund(api, ok)
    assert body["status"] == "approved"
    assert body["decision"]["trust_tier"] == "trusted"
    assert body["decision"]["clauses"][0]["progress_limit_pct"] == 20
    assert refund(api, over)["decision"]["clauses"][0] == {
        "clause": "progress_limit",
        "progress_pct": 21,
        "limit_pct": 20,
    }


def test_trusted_customer_gets_a_small_amount_after_the_window_but_not_a_large_one(api, frozen):
    # 50.00 CNY is settings.REFUND_TRUST's small amount; an old account, so its refund rate is no issue.
    small = buy(api, ago=3 * DAY, price=5000, registered_ago=365 * DAY)
    large = buy(api, ago=3 * DAY, price=5001, customer=small.customer)
    _set_customer(small, trust_level=Customer.TrustLevel.TRUSTED)

    body = refund(api, small)
    assert body["status"] == "approved"
    assert body["decision"]["clauses"] == [{"clause": "trusted_small_amount", "limit_minor": 5000}]
    refused = refund(api, large)
    assert refused["status"] == "rejected"
    assert clauses(refused) == ["beyond_window"]
    # Part of the large order, within the small amount, is approved.
    assert refund(api, large, amount=4000)["status"] == "approved"


def test_trusted_tier_from_history(api, frozen):
    first = buy(api, ago=100 * DAY, registered_ago=365 * DAY)
    for _ in range(4):
        buy(api, ago=50 * DAY, customer=first.customer, sku=first.sku)
    latest = buy(api, ago=3 * DAY, customer=first.customer, sku=first.sku, price=PRICE)

    trust = trust_for(customer=order_of(latest).customer, now=NOW)

    assert (trust.tier, trust.orders, trust.refunds) == ("trusted", 6, 0)
    assert refund(api, latest, amount=3000)["status"] == "approved"


def test_watch_by_trust_level_is_reviewed_even_inside_15_minutes(api, frozen):
    bought = buy(api, ago=5 * MIN, registered_ago=365 * DAY)
    _set_customer(bought, trust_level=Customer.TrustLevel.WATCH)

    body = refund(api, bought)

    assert body["status"] == "manual_review"
    assert body["decision"]["trust_tier"] == "watch"
    assert clauses(body) == ["watch_tier"]
    assert Case.objects.filter(subject_id=body["id"]).exists()


def test_watch_by_chargebacks_is_reviewed_inside_15_minutes_and_in_the_conditional_window(api, frozen):
    quick = buy(api, ago=5 * MIN, registered_ago=365 * DAY)
    later = buy(api, ago=2 * HOUR, customer=quick.customer)
    _set_customer(quick, chargeback_count=1)

    assert clauses(refund(api, quick)) == ["watch_tier"]
    assert clauses(refund(api, later)) == ["watch_tier"]


def test_watch_by_new_account_with_a_high_refund_rate(api, frozen):
    first = buy(api, ago=10 * MIN, registered_ago=3 * DAY)
    second = buy(api, ago=10 * MIN, customer=first.customer)
    assert refund(api, first)["status"] == "approved"
    assert refund(api, second)["status"] == "approved"
    third = buy(api, ago=5 * MIN, customer=first.customer)

    body = refund(api, third)

    assert body["status"] == "manual_review"
    assert body["decision"]["trust_tier"] == "watch"
    assert body["decision"]["evidence"]["trust"]["refunds"] == 2
    assert clauses(body) == ["watch_tier"]


def test_an_old_account_with_the_same_refund_rate_is_not_watched(api, frozen):
    first = buy(api, ago=10 * MIN, registered_ago=365 * DAY)
    second = buy(api, ago=10 * MIN, customer=first.customer)
    refund(api, first)
    refund(api, second)
    third = buy(api, ago=5 * MIN, customer=first.customer)

    body = refund(api, third)

    assert body["status"] == "approved"
    assert body["decision"]["trust_tier"] == "standard"


def test_watch_by_declined_reviews(api, frozen):
    orders = [buy(api, ago=2 * HOUR, registered_ago=365 * DAY)]
    orders += [buy(api, ago=2 * HOUR, customer=orders[0].customer) for _ in range(4)]
    for bought in orders[:2]:
        use(api, bought, "progress", 50)
        reviewed = refund(api, bought)
        assert reviewed["status"] == "manual_review"
        assert api.post(f"/api/v1/refunds/{reviewed['id']}/reject", {}, format="json").status_code == 200
    fresh = buy(api, ago=5 * MIN, customer=orders[0].customer)

    body = refund(api, fresh)

    assert body["decision"]["trust_tier"] == "watch"
    assert body["decision"]["evidence"]["trust"]["declined_reviews"] == 2
    assert body["status"] == "manual_review"


@pytest.mark.parametrize(("registered_ago", "tier"), [(None, "new"), (29 * DAY, "new"), (30 * DAY, "standard")])
def test_new_and_standard_tiers_are_approved_inside_the_window(api, frozen, registered_ago, tier):
    bought = buy(api, ago=5 * MIN, registered_ago=registered_ago)

    body = refund(api, bought)

    assert body["decision"]["trust_tier"] == tier
    assert body["status"] == "approved"


def test_standard_tier_gets_no_small_amount_after_the_window(api, frozen):
    bought = buy(api, ago=3 * DAY, price=1000, registered_ago=60 * DAY)

    body = refund(api, bought)

    assert body["decision"]["trust_tier"] == "standard"
    assert body["status"] == "rejected"


# --- reason routing -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "category", "phrase"),
    [
        ("视频无法播放", "playback", "无法播放"),
        ("I can't play the videos", "playback", "can't play"),
        ("I can’t play the videos", "playback", "can't play"),  # typographic apostrophe (phones)
        ("打开就报错", "error", "报错"),
        ("The app keeps crashing", "error", "crashing"),
        ("It CRASHES on start", "error", "crashes"),
        ("和我的电脑兼容性不好", "compatibility", "兼容性"),
        ("Incompatible with my Mac", "compatibility", "incompatible"),
        ("这个软件用不了", "access", "用不了"),
        ("It doesn't work at all", "access", "doesn't work"),
    ],
)
def test_each_keyword_class_routes_to_tech_support_in_zh_and_en(api, frozen, text, category, phrase):
    bought = buy(api, ago=5 * MIN)  # inside the no-questions window: routing still comes first

    body = refund(api, bought, reason="not_as_described", text=text)

    assert body["status"] == "tech_support"
    assert body["decision"]["clauses"][0]["category"] == category
    assert phrase in body["decision"]["clauses"][0]["phrases"]
    assert body["support_ticket"]["category"] == category
    assert body["support_ticket"]["guidance"]
    assert ChannelCall.objects.count() == 0
    assert refund_postings() == 0
    assert not Case.objects.exists()


@pytest.mark.parametrize(
    "text",
    ["我汇报错了数据，买错了", "汇报错了", "买错了", "not as described", "errorless"],
)
def test_text_that_only_shares_characters_or_letters_does_not_route(api, frozen, text):
    bought = buy(api, ago=5 * MIN)

    body = refund(api, bought, reason="mistake", text=text)

    assert body["status"] == "approved"
    assert body["support_ticket"] is None


def test_cannot_use_without_text_goes_to_tech_support(api, frozen):
    bought = buy(api, ago=5 * MIN, locale="en")

    body = refund(api, bought, reason="cannot_use", text="")

    assert body["status"] == "tech_support"
    assert body["decision"]["clauses"] == [{"clause": "reason_routing", "category": "access", "phrases": []}]
    assert body["support_ticket"]["guidance"][0] == "Sign in with the account you bought with"


def test_guidance_is_in_the_customers_language(api, frozen):
    zh = buy(api, ago=5 * MIN, locale="zh-hans")
    en = buy(api, ago=5 * MIN, locale="en")

    assert refund(api, zh, reason="other", text="视频无法播放")["support_ticket"]["guidance"][0].startswith("刷新")
    assert refund(api, en, reason="other", text="视频无法播放")["support_ticket"]["guidance"][0].startswith("Reload")


def test_phrases_edited_in_the_database_take_effect(api, frozen, django_capture_on_commit_callbacks):
    assert route_reason_text("the picture is blurry") is None
    with django_capture_on_commit_callbacks(execute=True):
        phrase = ReasonPhrase.objects.create(phrase="blurry", language="en", category="playback")
    assert route_reason_text("the picture is blurry").category == "playback"

    with django_capture_on_commit_callbacks(execute=True):
        phrase.is_active = False
        phrase.save()
    assert route_reason_text("the picture is blurry") is None

    with django_capture_on_commit_callbacks(execute=True):
        ReasonPhrase.objects.filter(phrase="无法播放").delete()
    bought = buy(api, ago=5 * MIN)
    assert refund(api, bought, reason="other", text="视频无法播放")["status"] == "approved"


def test_a_rolled_back_phrase_edit_does_not_stick_in_the_cache(db, django_capture_on_commit_callbacks):
    assert route_reason_text("the picture is blurry") is None
    with django_capture_on_commit_callbacks(execute=True):
        try:
            with transaction.atomic():
                ReasonPhrase.objects.create(phrase="blurry", language="en", category="playback")
                route_reason_text("the picture is blurry")  # another reader, mid-transaction
                raise RuntimeError("admin save failed")
        except RuntimeError:
            pass

    assert not ReasonPhrase.objects.filter(phrase="blurry").exists()
    assert route_reason_text("the picture is blurry") is None


def test_phrase_edits_survive_the_version_key_being_evicted(db, django_capture_on_commit_callbacks):
    cache.delete(_VERSION_KEY)
    assert route_reason_text("the picture is blurry") is None
    with django_capture_on_commit_callbacks(execute=True):
        ReasonPhrase.objects.create(phrase="blurry", language="en", category="playback")
    assert route_reason_text("the picture is blurry") is not None

    cache.delete(_VERSION_KEY)  # Redis evicted it, or its timeout passed

    assert route_reason_text("the picture is blurry") is not None


# --- usage provider ---------------------------------------------------------------------------------


@pytest.fixture
def provider(api):
    api.merchant.usage_provider_url = USAGE_URL
    api.merchant.usage_provider_timeout_ms = 300
    api.merchant.save(update_fields=["usage_provider_url", "usage_provider_timeout_ms"])
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        yield mock


def test_usage_provider_answer_is_used(api, frozen, provider):
    bought = buy(api, ago=2 * HOUR)
    provider.get(USAGE_URL, json={"progress_pct": 30, "key_revealed": False, "downloaded": False})

    body = refund(api, bought)

    assert body["status"] == "manual_review"
    assert body["decision"]["clauses"] == [{"clause": "progress_limit", "progress_pct": 30, "limit_pct": 10}]
    usage = body["decision"]["evidence"]["usage"]
    assert usage["available"] is True
    assert usage["sources"] == ["recorded", "merchant_http"]
    assert provider.calls[0].request.params == {"order": bought.order, "customer": bought.customer}


def test_usage_provider_low_progress_is_approved(api, frozen, provider):
    bought = buy(api, ago=2 * HOUR)
    provider.get(USAGE_URL, json={"progress_pct": 5})

    assert refund(api, bought)["status"] == "approved"


def test_recorded_usage_counts_even_when_the_provider_says_less(api, frozen, provider):
    bought = buy(api, ago=2 * HOUR)
    use(api, bought, "progress", 40)
    provider.get(USAGE_URL, json={"progress_pct": 0})

    assert refund(api, bought)["decision"]["clauses"][0]["progress_pct"] == 40


@pytest.mark.parametrize(
    ("answer", "problem"),
    [
        ({"body": requests.exceptions.ReadTimeout("read timed out")}, "ReadTimeout"),
        ({"body": requests.exceptions.ConnectTimeout("connect timed out")}, "ConnectTimeout"),
        ({"status": 500, "json": {"error": "boom"}}, "HTTPError"),
        ({"body": "<html>not json</html>", "content_type": "text/html"}, "JSONDecodeError"),
        ({"json": [1, 2, 3]}, "AttributeError"),
        ({"json": {"progress_pct": "30"}}, "ValueError"),
        ({"json": {"progress_pct": 130}}, "ValueError"),
        ({"json": {"progress_pct": 3, "downloaded": "no"}}, "ValueError"),
    ],
)
def test_usage_provider_failure_sends_the_refund_to_review(api, frozen, provider, answer, problem):
    bought = buy(api, ago=2 * HOUR, locale="en")
    provider.get(USAGE_URL, **answer)

    body = refund(api, bought)

    assert body["status"] == "manual_review"
    assert clauses(body) == ["usage_unavailable"]
    assert body["decision"]["evidence"]["usage"]["available"] is False
    assert body["decision"]["evidence"]["usage"]["problem"] == problem
    assert "could not confirm" in body["decision"]["explanation"]
    assert Case.objects.filter(subject_id=body["id"]).exists()


def test_usage_provider_is_not_asked_inside_the_unconditional_window(api, frozen, provider):
    provider.assert_all_requests_are_fired = False
    bought = buy(api, ago=5 * MIN)
    provider.get(USAGE_URL, body=requests.exceptions.ReadTimeout())

    assert refund(api, bought)["status"] == "approved"
    assert len(provider.calls) == 0


def test_a_silent_usage_provider_times_out_for_real(api, frozen):
    """No interception: a real socket that accepts the connection and never answers."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        api.merchant.usage_provider_url = f"http://127.0.0.1:{silent.getsockname()[1]}/usage"
        api.merchant.usage_provider_timeout_ms = 200
        api.merchant.save(update_fields=["usage_provider_url", "usage_provider_timeout_ms"])
        bought = buy(api, ago=2 * HOUR)

        body = refund(api, bought)

    assert body["status"] == "manual_review"
    assert clauses(body) == ["usage_unavailable"]
    assert body["decision"]["evidence"]["usage"]["problem"] == "ReadTimeout"


# --- frozen customer, decision record, review, stats ----------------------------------------------------


def test_frozen_customer_goes_to_review_even_inside_15_minutes(api, frozen):
    bought = buy(api, ago=5 * MIN, locale="en")
    account_freeze(merchant=api.merchant, customer=order_of(bought).customer, reason="chargeback investigation")

    body = refund(api, bought)

    assert body["status"] == "manual_review"
    assert clauses(body) == ["unconditional_window", "customer_frozen"]
    assert body["decision"]["explanation"] == "Your account is under review; a person will look at this refund."
    assert Case.objects.get(subject_id=body["id"]).status == "open"


@pytest.mark.parametrize(
    ("locale", "approved_text", "review_text"),
    [
        ("zh-hans", "您在付款后15分钟内申请", "超过自助退款上限10%"),
        ("en", "within 15 minutes of paying", "above the 10% self-service limit"),
    ],
)
def test_decision_record_contents(api, frozen, locale, approved_text, review_text):
    quick = buy(api, ago=5 * MIN, locale=locale)
    watched = buy(api, ago=2 * HOUR, customer=quick.customer)
    use(api, watched, "progress", 50)

    body = refund(api, quick)
    review = refund(api, watched)

    for data in (body, review):
        decision = data["decision"]
        assert set(decision) >= {
            "outcome",
            "explanation",
            "staff_explanation",
            "clauses",
            "rules",
            "trust_tier",
            "evidence",
            "appeal",
            "latency_ms",
        }
        assert decision["latency_ms"] >= 0
        assert decision["rules"] == []
        assert decision["evidence"]["policy"] == {
            "unconditional_minutes": 15,
            "conditional_hours": 24,
            "max_progress_pct": 10,
        }
        assert decision["evidence"]["trust"]["tier"] == decision["trust_tier"] == "new"
        assert Refund.objects.get(pk=data["id"]).decision == decision
    assert approved_text in body["decision"]["explanation"]
    assert body["decision"]["staff_explanation"].startswith("Auto-approved (unconditional_window); tier new; 0h05m00s")
    assert review_text in review["decision"]["explanation"]
    assert review["decision"]["staff_explanation"].startswith("Needs review: progress_limit; tier new; 2h00m00s")
    assert review["decision"]["evidence"]["usage"]["max_progress_pct"] == 50
    assert Case.objects.get(subject_id=review["id"]).reason.startswith("Needs review: progress_limit")


def test_decide_refund_reads_only(api, frozen):
    bought = buy(api, ago=2 * HOUR)
    use(api, bought, "key_revealed")
    before = (Refund.objects.count(), Case.objects.count(), SupportTicket.objects.count())

    decision = decide_refund(
        order=order_of(bought), amount=PRICE, reason="mistake", reason_text="", now=NOW + timedelta(hours=21)
    )

    assert decision.outcome == "approved"  # a course does not lock on the key by default
    assert decision.evidence["elapsed_seconds"] == 23 * 3600
    assert (Refund.objects.count(), Case.objects.count(), SupportTicket.objects.count()) == before


@pytest.mark.parametrize(
    ("action", "status", "verdict"), [("approve", "approved", "approve"), ("reject", "rejected", "decline")]
)
def test_reviewer_verdict_closes_the_case(api, frozen, action, status, verdict):
    bought = buy(api, ago=2 * HOUR)
    use(api, bought, "progress", 50)
    body = refund(api, bought)

    response = api.post(f"/api/v1/refunds/{body['id']}/{action}", {"note": "checked"}, format="json")

    assert response.status_code == 200, response.content
    assert response.json()["status"] == status
    case = Case.objects.get(subject_type="refund", subject_id=body["id"])
    assert (case.status, case.decision) == ("decided", verdict)
    assert case.decided_by
    assert case.decided_at == NOW
    listed = results(api.get("/api/v1/cases", {"status": "decided"}))
    assert [(c["subject_id"], c["decision"]) for c in listed] == [(body["id"], verdict)]
    assert results(api.get("/api/v1/cases", {"status": "open"})) == []


def test_other_merchants_do_not_see_the_case(api, other_api, frozen):
    bought = buy(api, ago=2 * HOUR)
    use(api, bought, "progress", 50)
    refund(api, bought)

    assert results(other_api.get("/api/v1/cases")) == []


def test_refund_stats_count_reasons_and_outcomes(api, frozen):
    first = buy(api, ago=5 * MIN)
    refund(api, first, reason="mistake", amount=1000)
    refund(api, first, reason="other", text="视频无法播放", amount=2000)
    refund(api, first, reason="cannot_use", amount=3000)
    late = buy(api, ago=3 * DAY, sku=first.sku)
    refund(api, late, reason="mistake", amount=4000)
    other_product = buy(api, ago=5 * MIN)
    refund(api, other_product, reason="duplicate")

    response = api.get(f"/api/v1/products/{first.product_id}/refund-stats")

    assert response.status_code == 200
    stats = response.json()
    by_reason = {row["reason"]: row for row in stats["reasons"]}
    assert set(by_reason) == {"mistake", "other", "cannot_use"}
    assert by_reason["mistake"]["count"] == 2
    assert by_reason["mistake"]["amount"] == 5000
    assert by_reason["mistake"]["outcomes"] == {"approved": 1, "rejected": 1}
    assert by_reason["other"]["outcomes"] == {"tech_support": 1}
    assert by_reason["cannot_use"]["outcomes"] == {"tech_support": 1}
    assert stats["support_categories"] == {"access": 1, "playback": 1}
