"""The narrow interface a kind of money movement plugs into the kernel, and the registry of kinds.

A policy names the model and its timeline, the statuses and transitions that differ between kinds
(how a transfer settles and comes back), the settings that time it, the domain's signals and tasks,
and hooks for what only the domain knows: its locks, its ledger postings, its own follow-ups. The
kernel calls the hooks
inside the transaction that holds the transfer's row lock, with the transfer locked; a hook may
stage fields (`lifecycle.stage`) for the transition that follows, move the transfer itself through
`lifecycle.move`, or raise to abort everything.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

from django.conf import settings
from django.db.models import QuerySet
from django.dispatch import Signal

from apps.gateways.base import ChannelResult
from apps.transfers.models import OutboundTransfer, TransferEvent


class TransferPolicy:
    """One kind's answers to the kernel. Subclass it once per model, register the instance."""

    label: ClassVar[str]  # the registry key ("refund", "disbursement")
    prefixes: ClassVar[tuple[str, ...]]  # request-id prefixes it owns ("refund"; "payout", "withdrawal")
    model: ClassVar[type[OutboundTransfer]]
    event_model: ClassVar[type[TransferEvent]]
    event_fk: ClassVar[str]  # the event model's foreign key to the transfer
    settings_prefix: ClassVar[str]  # <PREFIX>_POLL_INTERVAL, _RETRY_BASE … in settings
    # The domain's signals (payloads: apps.transfers.lifecycle), the keys naming the transfer in
    # them besides the event's (`signal_ids`), the key of an anomaly's kind.
    state_changed_signal: ClassVar[Signal]
    anomaly_signal: ClassVar[Signal]
    event_recorded_signal: ClassVar[Signal]
    anomaly_key: ClassVar[str] = "kind"
    # The module whose import makes the kind's tasks (apps.transfers.tasks.transfer_tasks).
    tasks_module: ClassVar[str]
    tasks: Any = None
    lock_related: ClassVar[tuple[str, ...]] = ("channel", "destination_account")
    poll_related: ClassVar[tuple[str, ...]] = ("channel", "destination_account")
    polled_statuses: ClassVar[tuple[str, ...]]
    # Settling: the transition, its event code and status, and the field stamped with the moment.
    settle_transition: ClassVar[str]
    settled_status: ClassVar[str]
    settled_at_field: ClassVar[str]
    # Statuses in which a success report changes nothing (the settled one and what follows it).
    settled_family: ClassVar[tuple[str, ...]]
    # Coming back after settling: the transition and its event code, from which statuses, and the
    # statuses in which a return report changes nothing; who answers for a return without a reason.
    return_transition: ClassVar[str]
    returned_code: ClassVar[str]
    returnable: ClassVar[tuple[str, ...]]
    returned_family: ClassVar[tuple[str, ...]]
    return_party: ClassVar[str]

    # --- settings ---------------------------------------------------------------------------------
    def setting(self, name: str) -> Any:
        """`<PREFIX>_<NAME>` read now (tests change settings between calls)."""
        return getattr(settings, f"{self.settings_prefix}_{name}")

    # --- naming -----------------------------------------------------------------------------------
    def lookup(self, request_id: str) -> int | None:
        """The id of the transfer a request id this kind issued names, if that transfer exists."""
        raise NotImplementedError

    def signal_ids(self, item: OutboundTransfer) -> dict:
        """How the domain's signals name the transfer: {"refund_id": 7}."""
        raise NotImplementedError

    def capability(self, item: OutboundTransfer) -> str:
        """What a channel must support to carry this transfer."""
        return item.noun

    # --- hooks around the shared steps --------------------------------------------------------------
    def verify_before_submit(self, pk: int) -> OutboundTransfer | None:
        """Outside any transaction, before a submission: a check the channel must answer first
        (a destination to verify). Returns the transfer when it must not be sent now, else None."""
        return None

    def lock_before(self, pk: int, step: str) -> None:
        """Take locks that must come before the transfer's own ("submit", "retry")."""

    def may_retry(self, item: OutboundTransfer) -> bool:
        """False when a failed transfer may no longer be sent again (its money is spoken for)."""
        return True

    def before_submit(self, item: OutboundTransfer) -> bool:
        """Under the locks, before `submitted`: False when the domain stopped it (and moved it)."""
        return True

    def after_submit(self, item: OutboundTransfer) -> None:
        """`submitted` was written: the in-flight postings."""

    def on_delay(self, item: OutboundTransfer) -> None:
        """The bank said it holds the transfer: whoever promised a date learns it is later."""

    def before_settle(self, item: OutboundTransfer) -> None:
        """Before the settle transition (stage fields)."""

    def after_settle(self, item: OutboundTransfer) -> None:
        """After the settle transition: post the settlement."""

    def on_return(self, item: OutboundTransfer, *, actor: str, result: ChannelResult) -> None:
        """After the return transition: post the money back, raise the anomaly."""

    def before_fail(self, item: OutboundTransfer, *, retryable: bool) -> None:
        """Before the fail transition (stage fields)."""

    def after_fail(self, item: OutboundTransfer, *, retryable: bool) -> None:
        """After the fail transition: postings, the domain's next move."""

    def on_freeze_hold(self, item: OutboundTransfer, *, hold) -> None:
        """Before the hold_for_freeze transition (stage fields, release postings)."""

    def is_freeze_held(self, item: OutboundTransfer) -> bool:
        return item.status == "held"

    def freeze_held(self, rows: QuerySet) -> QuerySet:
        """Of `rows`, those a freeze holds (released when it lifts)."""
        return rows.filter(status="held")

    def on_freeze_release(self, item: OutboundTransfer) -> None:
        """Before the release_freeze_hold transition (stage fields)."""

    def poll_own(self, item: OutboundTransfer) -> OutboundTransfer | None:
        """A poll of a status only the domain knows (pre-checks, recalls); None: not one."""
        return None


_policies: dict[str, TransferPolicy] = {}


def policy_register(policy: TransferPolicy) -> TransferPolicy:
    _policies[policy.label] = policy
    return policy


def policies() -> Iterator[TransferPolicy]:
    return iter(list(_policies.values()))
