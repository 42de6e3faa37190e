"""Reads of risk data shared by several callers, each scoped to one merchant."""

from __future__ import annotations

import functools
import operator
from datetime import datetime

from django.db.models import Count, Q

from apps.accounts.models import Merchant
from apps.risk.models import ACTION_PRECEDENCE, Rule, RuleHit

# A hit "would have changed the outcome" when its rule's action outranks what the request actually
# got — the precedence risk_evaluate applies (block > review > allow).
_OUTRANKS_OUTCOME = functools.reduce(
    operator.or_,
    (
        Q(action=action, observation__action__in=[o for o, weaker in ACTION_PRECEDENCE.items() if weaker < rank])
        for action, rank in ACTION_PRECEDENCE.items()
        if rank > 0
    ),
)


def rule_hit_counts_for_merchant(*, merchant: Merchant, since: datetime) -> dict[int, dict[str, dict[str, int]]]:
    """Per rule id, this merchant's hits since `since` split by the mode the rule was in when it
    matched: {rule_id: {"active": {...}, "shadow": {...}}}, each with `hits`, `decisive` (the hit
    decided the outcome, as recorded by risk_record; never true for a shadow hit) and
    `would_change` (the rule's action outranks the recorded outcome).

    Counted as rules.rule_stats counts (RuleHit rows of this merchant), windowed; a platform rule's
    hits on other merchants' traffic are never included."""
    rows = (
        RuleHit.objects.filter(merchant=merchant, created_at__gte=since, mode__in=(Rule.Mode.ACTIVE, Rule.Mode.SHADOW))
        .values("rule_id", "mode")
        .annotate(
            hits=Count("id"),
            decisive=Count("id", filter=Q(decisive=True)),
            would_change=Count("id", filter=_OUTRANKS_OUTCOME),
        )
        .order_by("rule_id", "mode")
    )
    out: dict[int, dict[str, dict[str, int]]] = {}
    for row in rows:
        out.setdefault(row["rule_id"], {})[row["mode"]] = {
            "hits": row["hits"],
            "decisive": row["decisive"],
            "would_change": row["would_change"],
        }
    return out
