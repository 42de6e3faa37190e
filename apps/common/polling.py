"""Generic pieces of the "money in flight" machinery: claiming due rows for a poller, claiming an
owed channel call, the retry backoff and the verification schedule of settled money. Used by
refunds and payouts.

Nothing here knows a model: callers pass their model and field names.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime, timedelta

from django.db import models, transaction
from django.db.models import F
from django.utils import timezone


def claim_due(
    model: type[models.Model], *, statuses: Collection[str], limit: int, lease: timedelta, field: str = "next_poll_at"
) -> list[int]:
    """Claim up to `limit` rows of `model` in `statuses` whose `field` time has come; concurrent
    pollers get disjoint sets.

    `SELECT … FOR UPDATE SKIP LOCKED` (PostgreSQL) and pushing `field` forward by `lease` mean two
    beat ticks or two workers never poll the same row at once; a claimed row whose poll dies is
    polled again when the lease ends.
    """
    now = timezone.now()
    with transaction.atomic():
        ids = list(
            model.objects.select_for_update(skip_locked=True)
            .filter(status__in=list(statuses), **{f"{field}__lte": now})
            .order_by(field)
            .values_list("id", flat=True)[:limit]
        )
        if ids:
            model.objects.filter(pk__in=ids).update(**{field: now + lease})
    return ids


def claim_call(model: type[models.Model], pk: int, *, owed: str, done: str) -> bool:
    """Claim one owed external call: `UPDATE … SET done = owed WHERE pk AND done < owed`.

    A transition that owes a call bumps `owed` in the same transaction; whoever claims first makes
    the call, so a redelivered task or a racing worker finds nothing to send. Run outside any
    transaction (it commits on its own) and before the call.
    """
    return bool(model.objects.filter(pk=pk, **{f"{done}__lt": F(owed)}).update(**{done: F(owed)}))


def backoff(attempt: int, *, base: timedelta, cap: timedelta) -> timedelta:
    """`base × 2^attempt`, at most `cap` (attempt 0 waits `base`)."""
    return min(base * (2 ** max(0, attempt)), cap)


def verify_next_check(*, since: datetime | None, now: datetime, checks: Sequence[timedelta]) -> datetime | None:
    """When money that arrived at `since` is next queried for a late return: the first of `checks`
    (ascending offsets from `since`, e.g. REFUND_VERIFY_CHECKS) later than `now`; None once the
    schedule is done (or nothing arrived).

    Callers store it as the row's next poll time when the money arrives and after each
    verification query, answered or not, so each check costs at most one query and an item costs
    at most `len(checks)` over its whole window (RELIABILITY G19), however often the poller ticks.
    A check the poller reaches late is not made up: the next one asks again. Rows scheduled by an
    older rule (any next poll time) join the schedule at their next query.
    """
    if since is None:
        return None
    return next((since + offset for offset in checks if since + offset > now), None)


def verify_window_end(*, since: datetime, checks: Sequence[timedelta]) -> datetime:
    """The end of the verification window of money that arrived at `since`: its last check."""
    return since + checks[-1]
