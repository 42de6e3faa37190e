"""What every outbound transfer has (refunds, payouts, withdrawals): abstract models only, no table.

`OutboundTransfer` carries the fields the kernel moves (channel, request bookkeeping, failure,
polling and verification schedule) and gives each concrete model the shared part of its state
machine: approved → submitted → processing | unknown; unknown → submitted (resend the same request
id) | processing; submitted|processing|unknown → failed → approved (retry); approved|unknown → held
(a freeze) → approved. Each concrete model adds its own states: how it is decided or approved, how
it settles (`succeeded`, `paid`) and what happens after. Transition methods only declare; the
kernel's services lock, transition, save and record.
"""

from __future__ import annotations

from django.db import models
from django.utils import timezone
from django_fsm import FSMModelMixin, transition

from apps.common.dbguards import append_only
from apps.gateways.models import Channel


class Party(models.TextChoices):
    PLATFORM = "platform", "Platform"
    BANK = "bank", "Bank"
    CUSTOMER = "customer", "Customer"
    MERCHANT = "merchant", "Merchant"


# The kernel's transitions: name → (sources, target). Status values are the same in every kind.
SHARED_TRANSITIONS = {
    "submit": (["approved"], "submitted"),
    "resubmit": (["unknown"], "submitted"),
    "mark_processing": (["submitted", "unknown"], "processing"),
    "mark_unknown": (["submitted", "processing"], "unknown"),
    "fail": (["submitted", "processing", "unknown"], "failed"),
    "retry": (["failed"], "approved"),
    "hold_for_freeze": (["approved", "unknown"], "held"),
    "release_freeze_hold": (["held"], "approved"),
}


def _declared(name: str, source: list[str], target: str):
    def method(self): ...

    method.__name__ = method.__qualname__ = name
    return transition(field="status", source=source, target=target)(method)


class OutboundTransfer(FSMModelMixin, models.Model):
    """Money leaving the platform through a payment channel. Concrete models define `status`
    (an FSMField whose choices include every status named in SHARED_TRANSITIONS), `noun`,
    `request_id` and `transfer_memo`, and their own transitions as a table, `TRANSITIONS`:
    name → (sources, target), declared like the shared ones (a method each: `refund.cancel()`)."""

    IN_FLIGHT = ("submitted", "processing", "unknown")

    merchant = models.ForeignKey("accounts.Merchant", on_delete=models.PROTECT, related_name="%(class)ss")
    amount = models.BigIntegerField()
    currency = models.CharField(max_length=3)
    channel = models.ForeignKey(Channel, null=True, blank=True, on_delete=models.PROTECT, related_name="%(class)ss")
    # Counts approved → submitted moves.
    attempt = models.PositiveIntegerField(default=0)
    # Channel calls owed (one per submit/resubmit transition) and claimed: a sender claims with
    # `UPDATE … SET sent_seq = send_seq WHERE sent_seq < send_seq`, so no call is made twice.
    send_seq = models.PositiveIntegerField(default=0)
    sent_seq = models.PositiveIntegerField(default=0)
    channel_reference = models.CharField(max_length=128, blank=True)
    failure_code = models.CharField(max_length=64, blank=True)
    responsible_party = models.CharField(max_length=16, choices=Party.choices, blank=True)
    retry_count = models.PositiveIntegerField(default=0)
    next_poll_at = models.DateTimeField(null=True, blank=True)
    verify_until = models.DateTimeField(
        null=True, blank=True, help_text="Keep querying a settled transfer for late returns until then."
    )
    device_id = models.CharField(max_length=100, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    submitted_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True

    def __init_subclass__(cls, **kwargs) -> None:
        # The kernel's transitions and the model's own `TRANSITIONS` table become django-fsm
        # transition methods; fresh functions for each model (django-fsm binds one to one field).
        super().__init_subclass__(**kwargs)
        own = cls.__dict__.get("TRANSITIONS", {})
        for name, (source, target) in {**SHARED_TRANSITIONS, **own}.items():
            setattr(cls, name, _declared(name, list(source), target))

    @property
    def owner_reference(self) -> str:
        """How the channel, the ledger and the call log name this transfer: "<noun>:<id>"."""
        return f"{self.noun}:{self.pk}"


class TransferEvent(models.Model):
    """One line of a transfer's timeline: what happened, why, who is responsible, who did it.
    Append-only, down to the database. Concrete models add the foreign key to their transfer and
    its index."""

    code = models.CharField(max_length=48)
    from_status = models.CharField(max_length=20, blank=True)
    to_status = models.CharField(max_length=20, blank=True)
    message_key = models.CharField(max_length=100)
    responsible_party = models.CharField(max_length=16, choices=Party.choices)
    actor = models.CharField(max_length=150)
    detail = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        abstract = True
        ordering = ("created_at", "id")
        triggers = [append_only("transfer_event")]

    def __str__(self) -> str:
        transfer = next(f for f in self._meta.concrete_fields if f.is_relation and f.related_model is not None)
        transfer_id = getattr(self, transfer.attname)
        return f"{transfer_id}: {self.code} ({self.from_status}→{self.to_status})"
