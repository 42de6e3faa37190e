"""Two refunds of one order succeeding at the same moment, on two connections: the order's
commissions are locked in one order, so together they claw back exactly the commission — never
twice, never a unit lost — and the ledger stays balanced."""

from __future__ import annotations

import threading

import pytest
from django.db import connection, transaction

from apps.commissions.models import Commission, CommissionEvent
from apps.commissions.services import commission_claw_back_for_refund
from apps.refunds.models import Refund
from tests.commissions.conftest import buy, commissions_of, distributor_balance, ledger_sums, refund
from tests.commissions.test_refund_outcomes import settle_all

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

S = Commission.Status


def test_two_refunds_succeeding_at_once_claw_back_exactly_the_commission(merchant, chain, plan, inproc_bank, clock):
    order = buy(merchant, chain.buyer, amount=10000)
    settle_all()
    paid = {c.beneficiary_id: c.amount for c in commissions_of(order)}
    assert all(c.status == S.PAID for c in commissions_of(order))
    first, second = refund(order, amount=3000), refund(order, amount=7000)
    assert all(c.status == S.FROZEN for c in commissions_of(order))
    # Both refunds reached the bank's "succeeded" at once (as two webhooks on two web workers).
    Refund.objects.filter(pk__in=[first.pk, second.pk]).update(status=Refund.Status.SUCCEEDED)

    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def succeed(refund_id: int) -> None:
        try:
            barrier.wait()
            with transaction.atomic():
                commission_claw_back_for_refund(refund=Refund.objects.get(pk=refund_id))
        except BaseException as exc:  # reported below: a thread's exception would vanish
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=succeed, args=(pk,)) for pk in (first.pk, second.pk)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []

    rows = commissions_of(order)
    assert [c.clawed_back_amount for c in rows] == [c.amount for c in rows]
    for c in rows:
        steps = CommissionEvent.objects.filter(commission=c, code="clawed_back").values_list("amount", flat=True)
        assert sum(steps) == c.amount  # taken back once in total, however the two refunds split it
        assert distributor_balance(c.beneficiary) == 0  # what was paid came back, nothing more
    assert sum(paid.values()) == sum(c.amount for c in rows)
    assert set(ledger_sums().values()) <= {0}
