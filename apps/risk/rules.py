"""Writing rules (with version history), back-testing them on recorded traffic, and their statistics."""

from __future__ import annotations

from datetime import timedelta

import rule_engine
from django.db import IntegrityError, transaction
from django.db.models import Count, Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from apps.accounts.models import Merchant
from apps.common.audit import audit_record
from apps.common.errors import ConflictError, NotFoundError, ServiceError
from apps.risk.engine import ExpressionError, compile_expression
from apps.risk.models import Case, Observation, Rule, RuleHit, RuleVersion

_VERSIONED = ("expression", "action", "mode", "priority", "severity", "score_modifier")


def _validated_expression(expression: str) -> str:
    try:
        compile_expression(expression)
    except ExpressionError as exc:
        raise ServiceError(str(exc), fields={"expression": [str(exc)]}) from None
    return expression.strip()


def _snapshot(rule: Rule, actor: str) -> None:
    RuleVersion.objects.create(
        rule=rule,
        version=rule.version,
        changed_by=actor,
        **{field: getattr(rule, field) for field in _VERSIONED},
    )


@transaction.atomic
def rule_create(*, merchant: Merchant | None, actor: str, **fields) -> Rule:
    """Add a rule (shadow mode unless told otherwise, so its hits can be compared before it acts)."""
    fields["expression"] = _validated_expression(fields.get("expression", ""))
    try:
        with transaction.atomic():
            rule = Rule.objects.create(merchant=merchant, updated_by=actor, **fields)
    except IntegrityError:
        raise ConflictError(
            _("A rule with this code exists."), code="duplicate_code", fields={"code": [_("Already exists.")]}
        ) from None
    _snapshot(rule, actor)
    _audit(rule, "rule.create", after={"code": rule.code, **{field: getattr(rule, field) for field in _VERSIONED}})
    return rule


def _audit(rule: Rule, action: str, *, before: dict | None = None, after: dict | None = None) -> None:
    audit_record(
        action=action, target_type="rule", target_id=rule.pk, merchant_id=rule.merchant_id, before=before, after=after
    )


@transaction.atomic
def rule_update(*, rule: Rule, actor: str, **changes) -> Rule:
    """Change a rule; any change to what it matches or does is a new version with a history row."""
    rule = _live_for_update(rule)
    if "expression" in changes:
        changes["expression"] = _validated_expression(changes["expression"])
    changed = {field: value for field, value in changes.items() if getattr(rule, field) != value}
    if not changed:
        return rule
    before = {field: getattr(rule, field) for field in changed}
    for field, value in changed.items():
        setattr(rule, field, value)
    if set(changed) & set(_VERSIONED):
        rule.version += 1
    rule.updated_by = actor
    rule.updated_at = timezone.now()
    rule.save()
    if set(changed) & set(_VERSIONED):
        _snapshot(rule, actor)
    # A mode change alone (shadow, active, disabled) is its own action, so the log can be filtered for it.
    _audit(rule, "rule.mode" if set(changed) == {"mode"} else "rule.update", before=before, after=changed)
    return rule


@transaction.atomic
def rule_retire(*, rule: Rule, actor: str) -> Rule:
    """Retire a rule (DELETE /api/v1/rules/{id}): disabled as a last version and marked retired, it is
    gone from the API, the console and the engine. The row stays, because its hits, cases, versions
    and audit rows refer to it; its code is free for a new rule."""
    rule = _live_for_update(rule)
    before = {"mode": rule.mode}
    now = timezone.now()
    newly_disabled = rule.mode != Rule.Mode.DISABLED
    if newly_disabled:
        rule.mode = Rule.Mode.DISABLED
        rule.version += 1
    rule.retired_at, rule.retired_by = now, actor
    rule.updated_by, rule.updated_at = actor, now
    rule.save()
    if newly_disabled:
        _snapshot(rule, actor)
    after = {"mode": rule.mode, "retired_at": now.isoformat(), "retired_by": actor}
    _audit(rule, "rule.retire", before=before, after=after)
    return rule


def _live_for_update(rule: Rule) -> Rule:
    """The rule, locked; a retired rule is refused like an unknown one (nothing about it changes)."""
    live = Rule.objects.live().select_for_update().filter(pk=rule.pk).first()
    if live is None:
        raise NotFoundError(_("Rule not found."))
    return live


def rule_backtest(*, merchant: Merchant, scope: str, expression: str, days: int = 30, limit: int = 20000) -> dict:
    """Would-be hits of an expression over the last `days` of recorded requests (their stored features)."""
    rule = compile_expression(_validated_expression(expression))
    since = timezone.now() - timedelta(days=days)
    observations = (
        Observation.objects.filter(merchant=merchant, scope=scope, created_at__gte=since)
        .order_by("-created_at")
        .values("id", "subject_id", "action", "features")[:limit]
    )
    total = hits = 0
    by_action: dict[str, int] = {}
    sample: list[int] = []
    for row in observations.iterator(chunk_size=2000):
        total += 1
        try:
            matched = rule.matches(row["features"])
        except rule_engine.errors.EngineError:
            matched = False  # a snapshot missing a newer feature cannot match
        if matched:
            hits += 1
            by_action[row["action"]] = by_action.get(row["action"], 0) + 1
            if len(sample) < 20:
                sample.append(row["subject_id"])
    return {
        "days": days,
        "evaluated": total,
        "hits": hits,
        "hit_rate": hits / total if total else 0.0,
        "hits_by_actual_outcome": by_action,
        "sample_subject_ids": sample,
    }


def rule_stats(*, rule: Rule, merchant: Merchant) -> dict:
    """Hits, and how reviewers judged the requests the rule sent to review (false positives).

    Counted for one merchant only: a platform rule fires for every merchant, and one merchant
    must not learn another's traffic from it.
    """
    counts = RuleHit.objects.filter(rule=rule, merchant=merchant).aggregate(
        hits=Count("id"),
        active=Count("id", filter=Q(mode=Rule.Mode.ACTIVE)),
        shadow=Count("id", filter=Q(mode=Rule.Mode.SHADOW)),
        decisive=Count("id", filter=Q(decisive=True)),
    )
    hit_subjects = RuleHit.objects.filter(rule=rule, merchant=merchant, observation__subject_id__isnull=False).values(
        "observation__subject_id"
    )
    decided = Case.objects.filter(
        merchant=merchant, status=Case.Status.DECIDED, subject_type=rule.scope, subject_id__in=hit_subjects
    )
    outcomes = decided.aggregate(
        approved=Count("id", filter=Q(decision=Case.Decision.APPROVE)),
        declined=Count("id", filter=Q(decision=Case.Decision.DECLINE)),
    )
    reviewed = outcomes["approved"] + outcomes["declined"]
    return {
        **counts,
        "reviewed": reviewed,
        "review_approved": outcomes["approved"],
        "review_declined": outcomes["declined"],
        # A hit that a reviewer then approved was a false alarm.
        "false_positive_rate": outcomes["approved"] / reviewed if reviewed else None,
    }
