from django.conf import settings
from django.db import models
from django.utils import timezone

from apps.accounts.models import Merchant
from apps.common.dbguards import append_only


class Case(models.Model):
    """An item in the reviewers' queue: a refund (or payout) a person must decide.

    The subject is named by type and id so `risk` stays below the apps whose objects it reviews.
    """

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        ASSIGNED = "assigned", "Assigned"
        DECIDED = "decided", "Decided"

    class Decision(models.TextChoices):
        APPROVE = "approve", "Approve"
        DECLINE = "decline", "Decline"
        # Set by the system, never by a reviewer: the subject was cancelled while in review.
        WITHDRAWN = "withdrawn", "Withdrawn (cancelled before review)"

    merchant = models.ForeignKey(Merchant, on_delete=models.PROTECT, related_name="cases")
    subject_type = models.CharField(max_length=16)  # "refund", "payout", "withdrawal"
    subject_id = models.BigIntegerField()
    reason = models.CharField(max_length=500)
    detail = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.OPEN, db_index=True)
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="cases"
    )
    decision = models.CharField(max_length=16, choices=Decision.choices, blank=True)
    decided_by = models.CharField(max_length=100, blank=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    sla_due_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["subject_type", "subject_id"], name="case_once_per_subject")]
        indexes = [models.Index(fields=["merchant", "status", "created_at"])]

    def __str__(self) -> str:
        return f"case {self.pk}: {self.subject_type} {self.subject_id} ({self.status})"


class CaseNote(models.Model):
    """A reviewer's note on a case (append-only: notes are part of the review record)."""

    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="notes")
    author = models.CharField(max_length=100)
    text = models.TextField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ("created_at", "id")
        triggers = [append_only("case_note")]

    def __str__(self) -> str:
        return f"note on case {self.case_id} by {self.author}"


class Scope(models.TextChoices):
    REFUND = "refund", "Refund"
    PAYOUT = "payout", "Payout"
    WITHDRAWAL = "withdrawal", "Withdrawal"


class Observation(models.Model):
    """Append-only log of every money-out request the risk engine judged: who, from where, to
    where, how much, when — and the feature values it was judged on. Velocity features are
    index-backed counts over this table; the learned model trains on the feature snapshots."""

    merchant = models.ForeignKey(Merchant, on_delete=models.PROTECT, related_name="+")
    scope = models.CharField(max_length=16, choices=Scope.choices)
    subject_id = models.BigIntegerField(null=True, blank=True)
    customer_id = models.BigIntegerField(null=True, blank=True)
    device_id = models.CharField(max_length=100, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    account_fingerprint = models.CharField(max_length=64, blank=True)
    product_id = models.BigIntegerField(null=True, blank=True)
    amount = models.BigIntegerField()
    currency = models.CharField(max_length=3)
    action = models.CharField(max_length=20)
    score = models.FloatField(default=0.0)
    features = models.JSONField(default=dict)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [
            models.Index(fields=["merchant", "scope", "customer_id", "created_at"], name="obs_customer_idx"),
            models.Index(fields=["merchant", "scope", "device_id", "created_at"], name="obs_device_idx"),
            models.Index(fields=["merchant", "scope", "ip", "created_at"], name="obs_ip_idx"),
            models.Index(fields=["merchant", "scope", "account_fingerprint", "created_at"], name="obs_account_idx"),
            models.Index(fields=["merchant", "scope", "product_id", "created_at"], name="obs_product_idx"),
            models.Index(fields=["merchant", "created_at"], name="obs_merchant_time_idx"),
            # Merchant-wide counts of one scope over a window, answered from the index alone
            # (current refund rate, nightly baselines).
            models.Index(fields=["merchant", "scope", "created_at"], name="obs_merchant_scope_time_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.scope} {self.subject_id} → {self.action}"


# How strong an outcome is: a request's outcome is its strongest active match; a rule whose
# action outranks what a request got would have changed it.
ACTION_PRECEDENCE = {"allow": 0, "review": 1, "block": 2, "block_and_freeze": 2}


class RuleQuerySet(models.QuerySet):
    def live(self):
        """Rules not retired: the only ones the API, the console and the engine see."""
        return self.filter(retired_at__isnull=True)


class Rule(models.Model):
    """A risk rule in the rule-engine expression language (never Python `eval`).

    Evaluation order: priority (lower first); result block > review > allow; the first decisive
    match wins and every match is recorded. Shadow rules are evaluated and recorded, never act.
    """

    class Action(models.TextChoices):
        ALLOW = "allow", "Allow"
        REVIEW = "review", "Review"
        BLOCK = "block", "Block"
        BLOCK_AND_FREEZE = "block_and_freeze", "Block and freeze"

    class Mode(models.TextChoices):
        ACTIVE = "active", "Active"
        SHADOW = "shadow", "Shadow (record only)"
        DISABLED = "disabled", "Disabled"

    class Severity(models.TextChoices):
        P0 = "P0", "P0 — page a human"
        P1 = "P1", "P1 — handled, watched"
        P2 = "P2", "P2 — recorded"

    merchant = models.ForeignKey(
        Merchant,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="rules",
        help_text="Empty: a platform rule that applies to every merchant.",
    )
    code = models.SlugField(max_length=64)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    scope = models.CharField(max_length=16, choices=Scope.choices)
    expression = models.TextField()
    action = models.CharField(max_length=20, choices=Action.choices)
    severity = models.CharField(max_length=2, choices=Severity.choices, default=Severity.P2)
    score_modifier = models.IntegerField(default=0)
    priority = models.PositiveIntegerField(default=100)
    mode = models.CharField(max_length=10, choices=Mode.choices, default=Mode.SHADOW)
    version = models.PositiveIntegerField(default=1)
    updated_by = models.CharField(max_length=100, blank=True)
    updated_at = models.DateTimeField(default=timezone.now)
    created_at = models.DateTimeField(default=timezone.now)
    # Retired (DELETE /api/v1/rules/{id}): gone from the API, the console and the engine; the row
    # stays for its hits, cases, versions and audit rows. Its code is free for a new rule.
    retired_at = models.DateTimeField(null=True, blank=True)
    retired_by = models.CharField(max_length=100, blank=True)

    objects = RuleQuerySet.as_manager()

    class Meta:
        # Codes are unique among live rules only, so a retired rule's code can be reused.
        constraints = [
            models.UniqueConstraint(
                fields=["merchant", "code"], condition=models.Q(retired_at__isnull=True), name="rule_code_per_merchant"
            ),
            models.UniqueConstraint(
                fields=["code"],
                condition=models.Q(merchant__isnull=True, retired_at__isnull=True),
                name="platform_rule_code_unique",
            ),
        ]
        ordering = ("priority", "id")

    def __str__(self) -> str:
        return f"{self.code} v{self.version} ({self.mode})"


class RuleVersion(models.Model):
    """Every saved state of a rule, so a hit can be traced to the exact expression that fired."""

    rule = models.ForeignKey(Rule, on_delete=models.CASCADE, related_name="versions")
    version = models.PositiveIntegerField()
    expression = models.TextField()
    action = models.CharField(max_length=20)
    mode = models.CharField(max_length=10)
    priority = models.PositiveIntegerField()
    severity = models.CharField(max_length=2)
    score_modifier = models.IntegerField()
    changed_by = models.CharField(max_length=100, blank=True)
    changed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["rule", "version"], name="rule_version_unique")]

    def __str__(self) -> str:
        return f"{self.rule.code} v{self.version}"


class RuleHit(models.Model):
    """One rule matching one request: whether it acted (active) or only watched (shadow)."""

    rule = models.ForeignKey(Rule, on_delete=models.PROTECT, related_name="hits")
    rule_version = models.PositiveIntegerField()
    observation = models.ForeignKey(Observation, on_delete=models.CASCADE, related_name="hits")
    merchant = models.ForeignKey(Merchant, on_delete=models.PROTECT, related_name="+")
    mode = models.CharField(max_length=10)
    action = models.CharField(max_length=20)
    decisive = models.BooleanField(default=False, help_text="This hit decided the outcome.")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [models.Index(fields=["rule", "created_at"])]

    def __str__(self) -> str:
        return f"{self.rule.code} hit on {self.observation_id}"


class ListEntry(models.Model):
    """An allow or block list entry by customer, device, IP, bank account, email or phone."""

    class ListType(models.TextChoices):
        ALLOW = "allow", "Allow"
        BLOCK = "block", "Block"

    class Kind(models.TextChoices):
        CUSTOMER = "customer", "Customer (external id)"
        DEVICE = "device", "Device id"
        IP = "ip", "IP address"
        BANK_ACCOUNT = "bank_account", "Bank account (fingerprint)"
        EMAIL = "email", "Email"
        PHONE = "phone", "Phone"

    merchant = models.ForeignKey(Merchant, on_delete=models.PROTECT, related_name="list_entries")
    list_type = models.CharField(max_length=5, choices=ListType.choices)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    value = models.CharField(max_length=254)
    # What screens may show: the value itself, or "**** 1234" for a bank account (whose value is a
    # fingerprint: the number is never stored).
    display = models.CharField(max_length=254, blank=True)
    reason = models.CharField(max_length=500)
    expires_at = models.DateTimeField(null=True, blank=True)
    created_by = models.CharField(max_length=100, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [models.Index(fields=["merchant", "kind", "value"], name="list_lookup_idx")]

    def __str__(self) -> str:
        return f"{self.list_type}:{self.kind}:{self.value}"


class ClusterMember(models.Model):
    """Union-find over customers linked by a shared device, IP or bank account (gang detection).

    `root_id` is the representative customer id of the member's cluster; unions re-point the
    smaller cluster's members at the larger root, so a lookup is one indexed read.
    """

    merchant = models.ForeignKey(Merchant, on_delete=models.PROTECT, related_name="+")
    customer_id = models.BigIntegerField(unique=True)
    root_id = models.BigIntegerField(db_index=True)

    def __str__(self) -> str:
        return f"{self.customer_id} ∈ {self.root_id}"


class RiskModel(models.Model):
    """A trained scoring model (scikit-learn), versioned, with its validation metrics."""

    version = models.PositiveIntegerField(unique=True)
    algorithm = models.CharField(max_length=64)
    feature_names = models.JSONField()
    metrics = models.JSONField(default=dict)
    samples = models.PositiveIntegerField()
    blob = models.BinaryField()
    is_active = models.BooleanField(default=False)
    trained_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"model v{self.version} ({self.algorithm})"


class MerchantBaseline(models.Model):
    """Rolling robust statistics of a merchant's traffic (median and MAD), refreshed nightly."""

    merchant = models.ForeignKey(Merchant, on_delete=models.CASCADE, related_name="baselines")
    metric = models.CharField(max_length=32)  # "refund_amount", "daily_refund_rate"
    median = models.FloatField()
    mad = models.FloatField()
    samples = models.PositiveIntegerField()
    computed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["merchant", "metric"], name="baseline_per_metric")]

    def __str__(self) -> str:
        return f"{self.merchant_id}:{self.metric} median={self.median} mad={self.mad}"
