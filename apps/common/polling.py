"""Generic pieces of the "money in flight" machinery: claiming due rows for a poller, claiming an
owed channel call, and the retry backoff. Used by refunds and payouts.

Nothing here knows a model: callers pass their model and field names.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import timedelta

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
