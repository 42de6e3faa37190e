from django.conf import settings
from django.db import models
from django.utils import timezone

from apps.accounts.models import Merchant


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
