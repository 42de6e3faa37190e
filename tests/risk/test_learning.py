"""Nightly learning: labelled refunds → a versioned, validated scoring model behind model_score."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from apps.accounts.models import AccountFreeze
from apps.common.models import PeriodicRun
from apps.refunds.models import Refund
from apps.risk.learning import FEATURE_NAMES, labelled_dataset, risk_model_train
from apps.risk.models import Case, Observation, RiskModel, Rule
from apps.risk.scoring import model_score
from apps.risk.services import risk_evaluate
from apps.risk.tasks import risk_model_train_task
from tests.factories import BankAccountFactory, CustomerFactory, OrderFactory

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]

ABUSIVE = {"customer_refunds_24h": 8.0, "unfamiliar_account": True, "amount": 19900.0}
BENIGN = {"customer_refunds_24h": 1.0, "unfamiliar_account": False, "amount": 19900.0}


def _snapshot(rng: random.Random, abusive: bool) -> dict:
    return {
        "amount": float(rng.choice((9900, 19900, 29900))),
        "currency": "CNY",
        "customer_refunds_24h": float(rng.randint(4, 10) if abusive else rng.randint(1, 2)),
        "unfamiliar_account": rng.random() < (0.85 if abusive else 0.08),
        "model_score": 0.0,
    }


def _labelled_observations(merchant, *, n: int, abuse_share: float = 1 / 3, seed: int = 1, start_id: int = 1):
    """n refund observations judged by reviewers; about 5 % of the verdicts go against the pattern."""
    rng = random.Random(seed)
    now = timezone.now()
    for i in range(n):
        subject_id = start_id + i
        abusive = rng.random() < abuse_share
        Observation.objects.create(
            merchant=merchant,
            scope="refund",
            subject_id=subject_id,
            customer_id=None,
            amount=19900,
            currency="CNY",
            action="review",
            features=_snapshot(rng, abusive),
            created_at=now - timedelta(days=2, minutes=i),
        )
        declined = abusive != (rng.random() < 0.05)
        Case.objects.create(
            merchant=merchant,
            subject_type="refund",
            subject_id=subject_id,
            reason="review",
            status=Case.Status.DECIDED,
            decision=Case.Decision.DECLINE if declined else Case.Decision.APPROVE,
            decided_at=now - timedelta(days=1),
        )


def test_training_on_reviewed_cases_stores_an_active_version_that_separates_abuse(merchant):
    _labelled_observations(merchant, n=300)

    result = risk_model_train()

    assert result.status == "trained"
    assert result.version == 1
    assert result.activated
    assert result.samples == 300
    assert result.positives + result.negatives == 300
    row = RiskModel.objects.get(version=1)
    assert row.is_active
    assert row.samples == 300
    assert row.feature_names == FEATURE_NAMES
    assert "model_score" not in row.feature_names
    assert "currency" not in row.feature_names
    assert row.metrics["roc_auc"] > 0.8
    assert row.metrics["validation_samples"] == 75
    assert row.metrics["train_samples"] == 225
    assert 0 <= row.metrics["precision_at_0_5"] <= 1
    assert 0 <= row.metrics["recall_at_0_5"] <= 1
    assert row.metrics["label_sources"]["case_decline"] + row.metrics["label_sources"]["case_approve"] == 300
    assert model_score(ABUSIVE) > 0.8 > 0.2 > model_score(BENIGN)


def test_a_model_score_rule_fires_through_risk_evaluate(merchant):
    _labelled_observations(merchant, n=300)
    assert risk_model_train().activated
    Rule.objects.create(
        merchant=merchant,
        code="learned-abuse",
        name="Learned abuse score",
        scope="refund",
        expression="model_score > 0.8",
        action=Rule.Action.REVIEW,
        mode=Rule.Mode.ACTIVE,
    )
    customer = CustomerFactory(merchant=merchant)
    now = timezone.now()
    for minutes in range(1, 8):  # seven refunds in the last hour: the eighth is being judged
        Observation.objects.create(
            merchant=merchant,
            scope="refund",
            customer_id=customer.pk,
            amount=19900,
            currency="CNY",
            action="allow",
            created_at=now - timedelta(minutes=minutes),
        )
    context = {"customer_id": customer.pk, "amount": 19900, "currency": "CNY", "account_fingerprint": "fp-unseen"}

    verdict = risk_evaluate(scope="refund", merchant=merchant, context=context, now=now)

    assert verdict.features["customer_refunds_24h"] == 8.0
    assert verdict.features["unfamiliar_account"] is True
    assert verdict.features["model_score"] > 0.8
    assert "learned-abuse" in [hit["code"] for hit in verdict.matches]
    assert verdict.action in ("review", "block", "block_and_freeze")

    benign = risk_evaluate(
        scope="refund",
        merchant=merchant,
        context={"customer_id": CustomerFactory(merchant=merchant).pk, "amount": 19900, "currency": "CNY"},
        now=now,
    )
    assert benign.features["model_score"] < 0.8
    assert "learned-abuse" not in [hit["code"] for hit in benign.matches]


def test_too_little_data_keeps_the_active_model_and_writes_nothing(merchant):
    _labelled_observations(merchant, n=300)
    first = risk_model_train()
    assert first.activated
    Observation.objects.all().delete()
    Case.objects.all().delete()
    _labelled_observations(merchant, n=40, seed=2)

    result = risk_model_train()

    assert result.status == "insufficient_data"
    assert result.version is None
    assert not result.activated
    assert "40 labelled refunds" in result.reason
    assert list(RiskModel.objects.values_list("version", "is_active")) == [(1, True)]
    assert model_score(ABUSIVE) > 0.8  # the previous model still scores


def test_one_class_only_is_insufficient_data(merchant):
    _labelled_observations(merchant, n=250, abuse_share=0.0)
    Case.objects.update(decision=Case.Decision.APPROVE)

    result = risk_model_train()

    assert result.status == "insufficient_data"
    assert result.positives == 0
    assert result.negatives == 250
    assert not RiskModel.objects.exists()
    assert model_score(ABUSIVE) == 0.0


def test_retraining_activates_version_two_only_when_it_validates(merchant):
    _labelled_observations(merchant, n=300)
    assert risk_model_train().version == 1

    second = risk_model_train()
    assert second.version == 2
    assert second.activated
    assert list(RiskModel.objects.order_by("version").values_list("version", "is_active")) == [(1, False), (2, True)]

    # Labels that are pure noise: version 3 is stored with its metrics but not activated.
    rng = random.Random(9)
    for case in Case.objects.all():
        case.decision = rng.choice((Case.Decision.APPROVE, Case.Decision.DECLINE))
        case.save(update_fields=["decision"])
    third = risk_model_train(auc_floor=0.75)

    assert third.status == "trained"
    assert third.version == 3
    assert not third.activated
    assert "below floor" in third.reason
    assert list(RiskModel.objects.order_by("version").values_list("version", "is_active")) == [
        (1, False),
        (2, True),
        (3, False),
    ]
    assert RiskModel.objects.get(version=3).metrics["roc_auc"] < 0.75


def test_confirmed_outcomes_label_refunds_without_a_review(merchant):
    now = timezone.now()
    customer = CustomerFactory(merchant=merchant)
    frozen = CustomerFactory(merchant=merchant)

    def refund(status, *, owner=customer, verify_until=None):
        order = OrderFactory(merchant=merchant, customer=owner)
        row = Refund.objects.create(
            merchant=merchant,
            order=order,
            customer=owner,
            amount=order.amount,
            currency=order.currency,
            reason="mistake",
            status=status,
            verify_until=verify_until,
        )
        Observation.objects.create(
            merchant=merchant,
            scope="refund",
            subject_id=row.pk,
            customer_id=owner.pk,
            amount=row.amount,
            currency="CNY",
            action="allow",
            features={"customer_refunds_24h": 1.0, "model_score": 0.9},
            created_at=now - timedelta(days=3),
        )
        return row

    refund("reversed")
    refund("succeeded", verify_until=now - timedelta(days=1))  # verified: legitimate
    refund("succeeded", verify_until=now + timedelta(days=1))  # still being verified: no label
    refund("processing")  # in flight: no label
    refund("succeeded", owner=frozen, verify_until=now - timedelta(days=1))
    AccountFreeze.objects.create(
        merchant=merchant, customer=frozen, reason="risk rule gang-refunds", actor_label="risk", created_at=now
    )
    AccountFreeze.objects.create(
        merchant=merchant,
        customer=customer,
        reason="staff: customer asked",
        actor_label="ops",
        created_at=now,
        bank_account=BankAccountFactory(merchant=merchant, customer=customer),
    )

    x, y, sources = labelled_dataset(now=now, since=now - timedelta(days=30))

    assert sources == {"case_decline": 0, "case_approve": 0, "reversed": 1, "risk_freeze": 1, "succeeded_verified": 1}
    assert sorted(y.tolist()) == [0, 1, 1]
    assert x.shape == (3, len(FEATURE_NAMES))
    assert (x[:, FEATURE_NAMES.index("customer_refunds_24h")] == 1).all()


def test_the_nightly_task_trains_once_per_day_however_often_it_fires(merchant):
    _labelled_observations(merchant, n=300)

    first = risk_model_train_task.delay().get()
    second = risk_model_train_task.delay().get()  # a second beat, or the broker handing it out again
    assert (first["status"], first["version"], second) == ("trained", 1, None)
    assert RiskModel.objects.count() == 1

    with time_machine.travel(timezone.now() + timedelta(days=1)):
        assert risk_model_train_task.delay().get()["version"] == 2
    assert RiskModel.objects.count() == 2
    assert PeriodicRun.objects.filter(job="risk.model_train").count() == 2


def test_nightly_task_reports_insufficient_data_cleanly(merchant):
    assert risk_model_train_task.delay().get()["status"] == "insufficient_data"
    assert not RiskModel.objects.exists()
