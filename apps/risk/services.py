"""The risk engine's interface to the apps that move money, and the review queue.

`risk_evaluate` (reads only) is called on every refund decision and payout check; the caller then
records the outcome with `risk_record` inside the transaction that creates the refund or payout.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from apps.accounts.models import Customer, Merchant, User
from apps.accounts.selectors import customer_is_frozen
from apps.accounts.services import account_freeze, customer_update
from apps.common.audit import audit_record
from apps.common.errors import ConflictError, ServiceError
from apps.risk import caching
from apps.risk.clusters import cluster_members, cluster_union, linked_customers
from apps.risk.engine import matches
from apps.risk.features import features_for
from apps.risk.models import ACTION_PRECEDENCE, Case, CaseNote, ListEntry, Observation, Rule, RuleHit
from apps.risk.signals import case_decided, risk_rules_hit

# How long a review may wait before it is overdue (the alerts issue watches this).
CASE_SLA = timedelta(hours=4)


@dataclass(frozen=True)
class RiskVerdict:
    action: str = "allow"  # allow | review | block | block_and_freeze
    matches: list[dict] = field(default_factory=list)
    score: float = 0.0
    features: dict = field(default_factory=dict)
    list_hit: dict | None = None


# A merchant's list is cached per process as the set of its (kind, value) pairs — kind and value
# never change after creation (list_entry_update edits reason and expiry only) — so the common
# request, matching no entry, needs no query. A merchant with more entries than this is always
# asked directly (the set would cost more to load than the lookups it saves).
MAX_CACHED_LIST_ENTRIES = 5000


def _listed_pairs(merchant_id: int) -> frozenset[tuple[str, str]] | None:
    def load() -> frozenset[tuple[str, str]] | None:
        pairs = list(
            ListEntry.objects.filter(merchant_id=merchant_id).values_list("kind", "value")[
                : MAX_CACHED_LIST_ENTRIES + 1
            ]
        )
        return frozenset(pairs) if len(pairs) <= MAX_CACHED_LIST_ENTRIES else None

    return caching.cached(caching.LISTS, merchant_id, load)


def _list_hit(*, merchant: Merchant, context: dict, now) -> dict | None:
    """The deciding allow/block list entry for the request (block before allow), or None."""
    pairs = []
    for kind, key in (
        (ListEntry.Kind.CUSTOMER, "customer_external_id"),
        (ListEntry.Kind.DEVICE, "device_id"),
        (ListEntry.Kind.IP, "ip"),
        (ListEntry.Kind.BANK_ACCOUNT, "account_fingerprint"),
        (ListEntry.Kind.EMAIL, "email"),
        (ListEntry.Kind.PHONE, "phone"),
    ):
        if context.get(key):
            value = str(context[key])
            # Email entries are stored lower-cased (list_entry_create); addresses match case-blind.
            pairs.append((str(kind), value.lower() if kind == ListEntry.Kind.EMAIL else value))
    if not pairs:
        return None
    listed = _listed_pairs(merchant.pk)
    if listed is not None and listed.isdisjoint(pairs):
        return None
    candidates = Q()
    for kind, value in pairs:
        candidates |= Q(kind=kind, value=value)
    # The database decides expiry (an entry's expires_at may have passed since it was cached).
    row = (
        ListEntry.objects.filter(candidates, merchant=merchant)
        .filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now))
        .order_by("-list_type", "id")  # "block" sorts before "allow"
        .values_list("pk", "list_type", "kind", "reason")
        .first()
    )
    if row is None:
        return None
    pk, list_type, kind, reason = row
    return {"list": list_type, "kind": kind, "entry_id": pk, "reason": reason}


@dataclass(frozen=True)
class _RuleRow:
    pk: int
    code: str
    version: int
    mode: str
    action: str
    severity: str
    score_modifier: int
    expression: str


def _rules_for(*, scope: str, merchant: Merchant) -> list[_RuleRow]:
    """The merchant's and the platform's live (not retired), non-disabled rules of `scope` in
    evaluation order, cached per process (apps.risk.caching: a saved rule bumps the generation for every merchant)."""

    def load() -> list[_RuleRow]:
        return [
            _RuleRow(*row)
            for row in Rule.objects.live()
            .filter(Q(merchant=merchant) | Q(merchant__isnull=True), scope=scope)
            .exclude(mode=Rule.Mode.DISABLED)
            .order_by("priority", "id")
            .values_list("pk", "code", "version", "mode", "action", "severity", "score_modifier", "expression")
        ]

    return caching.cached(caching.RULES, (merchant.pk, scope), load)


def risk_evaluate(*, scope: str, merchant: Merchant, context: dict, now=None) -> RiskVerdict:
    """Judge one money movement (`scope` refund/payout/withdrawal) from its features. Reads only.

    A block-list entry blocks and an allow-list entry allows before any rule runs. Otherwise
    every active and shadow rule is evaluated in priority order; the outcome is the strongest
    active match (block > review > allow), the first one at that strength being decisive.
    Shadow matches are returned too, flagged, and never change the outcome.
    """
    now = now or timezone.now()
    features = features_for(scope=scope, merchant=merchant, context=context, now=now)
    hit = _list_hit(merchant=merchant, context=context, now=now)
    if hit is not None:
        action = "block" if hit["list"] == ListEntry.ListType.BLOCK else "allow"
        return RiskVerdict(action=action, features=features, list_hit=hit, score=features["model_score"])

    action, matched = "allow", []
    decisive_set = False
    score = features["model_score"] * 100
    for rule in _rules_for(scope=scope, merchant=merchant):
        if not matches(rule.pk, rule.version, rule.expression, features):
            continue
        hit = {
            "rule_id": rule.pk,
            "code": rule.code,
            "version": rule.version,
            "mode": rule.mode,
            "action": rule.action,
            "severity": rule.severity,
            "decisive": False,
        }
        matched.append(hit)
        if rule.mode != Rule.Mode.ACTIVE:
            continue
        score += rule.score_modifier
        if ACTION_PRECEDENCE[rule.action] > ACTION_PRECEDENCE[action]:
            action = rule.action
            for earlier in matched:
                earlier["decisive"] = False
            hit["decisive"] = True
            decisive_set = True
        elif not decisive_set and rule.action == "allow":
            hit["decisive"] = True
            decisive_set = True
    return RiskVerdict(action=action, matches=matched, score=score, features=features)


def risk_record(
    *,
    scope: str,
    merchant: Merchant,
    subject_id: int,
    context: dict,
    verdict: RiskVerdict,
    actor: str = "risk",
) -> Observation:
    """Write what was judged: the observation, each rule hit, cluster links; freeze on
    block_and_freeze; announce hits after commit. Call inside the caller's transaction."""
    now = timezone.now()
    observation = Observation.objects.create(
        merchant=merchant,
        scope=scope,
        subject_id=subject_id,
        customer_id=context.get("customer_id"),
        device_id=context.get("device_id") or "",
        ip=context.get("ip") or None,
        account_fingerprint=context.get("account_fingerprint") or "",
        product_id=context.get("product_id"),
        amount=int(context.get("amount") or 0),
        currency=context.get("currency") or "",
        action=verdict.action,
        score=verdict.score,
        features=verdict.features,
        created_at=now,
    )
    RuleHit.objects.bulk_create(
        RuleHit(
            rule_id=hit["rule_id"],
            rule_version=hit["version"],
            observation=observation,
            merchant=merchant,
            mode=hit["mode"],
            action=hit["action"],
            decisive=hit["decisive"],
            created_at=now,
        )
        for hit in verdict.matches
    )
    customer_id = context.get("customer_id")
    if customer_id:
        others = linked_customers(
            merchant=merchant,
            customer_id=customer_id,
            device_id=context.get("device_id") or "",
            ip=context.get("ip"),
            fingerprint=context.get("account_fingerprint") or "",
            now=now,
        )
        if others:
            cluster_union(merchant=merchant, customer_id=customer_id, others=others)
    if verdict.action == "block_and_freeze" and customer_id:
        _freeze_cluster(merchant=merchant, customer_id=customer_id, verdict=verdict, actor=actor)
    payload = {
        "merchant_id": merchant.pk,
        "scope": scope,
        "subject_id": subject_id,
        "action": verdict.action,
        "hits": [h for h in verdict.matches if h["mode"] == Rule.Mode.ACTIVE],
        "shadow_hits": [h for h in verdict.matches if h["mode"] == Rule.Mode.SHADOW],
    }
    if verdict.matches:
        transaction.on_commit(lambda: risk_rules_hit.send(sender=Observation, **payload), robust=True)
    return observation


def _freeze_cluster(*, merchant: Merchant, customer_id: int, verdict: RiskVerdict, actor: str) -> None:
    codes = ", ".join(h["code"] for h in verdict.matches if h["mode"] == Rule.Mode.ACTIVE and h["decisive"])
    reason = f"risk rule {codes or 'block_and_freeze'}"
    for member in Customer.objects.filter(pk__in=cluster_members(customer_id=customer_id), merchant=merchant):
        if not customer_is_frozen(customer=member):
            account_freeze(merchant=merchant, customer=member, reason=reason, actor_label=actor)


def case_open(
    *, merchant: Merchant, subject_type: str, subject_id: int, reason: str, detail: dict | None = None
) -> Case:
    """Put a subject in the review queue, once (a second call returns the existing case)."""
    try:
        with transaction.atomic():
            return Case.objects.create(
                merchant=merchant,
                subject_type=subject_type,
                subject_id=subject_id,
                reason=reason,
                detail=detail or {},
                sla_due_at=timezone.now() + CASE_SLA,
            )
    except IntegrityError:
        return Case.objects.get(subject_type=subject_type, subject_id=subject_id)


def case_close(*, subject_type: str, subject_id: int, decision: str, actor: str) -> Case | None:
    """Record the reviewer's verdict on the subject's case (no-op when there is none or it is closed)."""
    case = Case.objects.select_for_update().filter(subject_type=subject_type, subject_id=subject_id).first()
    if case is None or case.status == Case.Status.DECIDED:
        return case
    case.status = Case.Status.DECIDED
    case.decision = decision
    case.decided_by = actor
    case.decided_at = timezone.now()
    case.save(update_fields=["status", "decision", "decided_by", "decided_at"])
    return case


def case_assign(*, case: Case, assignee_username: str, actor: str) -> Case:
    """Give an undecided case to one of the merchant's active staff (re-assigning is allowed).

    Staff of another merchant, or unknown names, are refused alike (no hint that they exist).
    """
    assignee = User.objects.filter(username=assignee_username, merchant_id=case.merchant_id, is_active=True).first()
    if assignee is None:
        raise ServiceError(
            _("No such staff member."), fields={"assignee": [_("No staff member of yours has this username.")]}
        )
    with transaction.atomic():
        case = Case.objects.select_for_update().get(pk=case.pk)
        if case.status == Case.Status.DECIDED:
            raise ConflictError(_("The case is already decided."), code="case_decided")
        case.assignee = assignee
        case.status = Case.Status.ASSIGNED
        case.save(update_fields=["assignee", "status"])
        CaseNote.objects.create(case=case, author=actor, text=f"assigned to {assignee.get_username()}")
    return case


def case_note_add(*, case: Case, author: str, text: str) -> CaseNote:
    """Append a note to a case (notes are never edited or deleted)."""
    return CaseNote.objects.create(case=case, author=author, text=text)


REVIEWER_DECISIONS = (Case.Decision.APPROVE, Case.Decision.DECLINE)
REVIEWER_DECISION_CHOICES = [(decision.value, decision.label) for decision in REVIEWER_DECISIONS]


def case_decide(*, case: Case, decision: str, actor: str, note: str = "") -> Case:
    """A reviewer's verdict on a case; the subject moves in the same transaction.

    `case_decided` is sent first and synchronously: the app owning the subject (refunds) locks
    its object, moves it and closes the case with `case_close` — so the lock order is always
    subject, then case, like a review made on the subject directly. Without a receiver the case
    is closed here. A decided case is refused with a conflict; a refusal by the receiver rolls
    everything back. Callers: the cases API and the console.
    """
    if decision not in REVIEWER_DECISIONS:
        raise ServiceError(_("Unknown decision."), fields={"decision": [_("Must be approve or decline.")]})
    with transaction.atomic():
        if Case.objects.filter(pk=case.pk, status=Case.Status.DECIDED).exists():
            raise ConflictError(_("The case is already decided."), code="case_decided")
        responses = case_decided.send(
            sender=Case,
            case_id=case.pk,
            merchant_id=case.merchant_id,
            subject_type=case.subject_type,
            subject_id=case.subject_id,
            decision=decision,
            actor=actor,
            note=note,
        )
        handled = any(response for _, response in responses)
        locked = Case.objects.select_for_update().get(pk=case.pk)
        if not handled:
            if locked.status == Case.Status.DECIDED:
                raise ConflictError(_("The case is already decided."), code="case_decided")
            locked = case_close(
                subject_type=case.subject_type, subject_id=case.subject_id, decision=decision, actor=actor
            )
        if note:
            CaseNote.objects.create(case=locked, author=actor, text=note)
    return locked


def list_entry_create(
    *,
    merchant: Merchant,
    list_type: str,
    kind: str,
    value: str,
    reason: str,
    display: str = "",
    expires_at=None,
    actor: str,
) -> ListEntry:
    """Add an allow or block list entry. `value` is already normalised by the caller (IP compressed,
    phone E.164, bank account as a fingerprint); emails are lower-cased here."""
    if expires_at is not None and expires_at <= timezone.now():
        raise ServiceError(_("expires_at must be in the future."), fields={"expires_at": [_("Must be in the future.")]})
    if kind == ListEntry.Kind.EMAIL:
        value = value.lower()
    with transaction.atomic():
        entry = ListEntry.objects.create(
            merchant=merchant,
            list_type=list_type,
            kind=kind,
            value=value,
            display=display or value,
            reason=reason,
            expires_at=expires_at,
            created_by=actor,
        )
        _audit_list_entry(entry, "list_entry.create", after=_list_entry_fields(entry))
    return entry


def _list_entry_fields(entry: ListEntry, names=("list_type", "kind", "display", "reason", "expires_at")) -> dict:
    # `display`, never `value`: for a bank account the value is its fingerprint, the display masked.
    return {name: getattr(entry, name) for name in names}


def _audit_list_entry(entry: ListEntry, action: str, *, before: dict | None = None, after: dict | None = None) -> None:
    audit_record(
        action=action,
        target_type="list_entry",
        target_id=entry.pk,
        merchant_id=entry.merchant_id,
        before=before,
        after=after,
    )


def list_entry_update(*, entry: ListEntry, **changes) -> ListEntry:
    """Change an entry's reason or expiry (kind and value are fixed: delete and re-add instead)."""
    unknown = set(changes) - {"reason", "expires_at"}
    if unknown:
        raise ServiceError(_("These fields cannot be changed."), fields={f: [_("Cannot be changed.")] for f in unknown})
    if changes.get("expires_at") is not None and changes["expires_at"] <= timezone.now():
        raise ServiceError(_("expires_at must be in the future."), fields={"expires_at": [_("Must be in the future.")]})
    changed = {name: value for name, value in changes.items() if getattr(entry, name) != value}
    if not changed:
        return entry
    with transaction.atomic():
        before = _list_entry_fields(entry, names=tuple(changed))
        for field_name, value in changed.items():
            setattr(entry, field_name, value)
        entry.save(update_fields=list(changed))
        _audit_list_entry(entry, "list_entry.update", before=before, after=_list_entry_fields(entry, tuple(changed)))
    return entry


def list_entry_delete(*, entry: ListEntry) -> None:
    """Remove an entry (the audit log keeps what it was)."""
    with transaction.atomic():
        _audit_list_entry(entry, "list_entry.delete", before=_list_entry_fields(entry))
        entry.delete()


def customer_watch(*, customer: Customer, reason: str, source: str, detail: dict | None = None, actor: str) -> bool:
    """Put a customer on watch: every later refund of theirs goes to a person (the refund decision's
    "watch" tier reads `trust_level`), and a case in the review queue says why.

    Idempotent: one case per customer (subject "customer"); a customer already watched with a case
    is left alone. Returns True when something changed. Callers: detectors in higher apps (e.g. the
    commissions abuse scan), inside their transaction.
    """
    exists = Case.objects.filter(subject_type="customer", subject_id=customer.pk).exists()
    changed = False
    if customer.trust_level != Customer.TrustLevel.WATCH:
        customer_update(customer=customer, trust_level=Customer.TrustLevel.WATCH)
        changed = True
    if not exists:
        case_open(
            merchant=customer.merchant,
            subject_type="customer",
            subject_id=customer.pk,
            reason=reason[:500],
            detail={"source": source, "actor": actor, **(detail or {})},
        )
        changed = True
    return changed
