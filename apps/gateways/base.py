"""The channel adapter interface: what RefundGuard needs from any bank or payment channel.

`gateways` knows no refund or payout. Callers send a `TransferRequest` whose `reference` says who
owns it ("refund:42", "payout:7"); adapters answer with normalised `ChannelResult`s; webhook and
poll results are handed to the handler registered for the reference's prefix (see registry.py).
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum


class Party(StrEnum):
    """Who has to act (or is to blame) for an outcome; shown to customers and staff."""

    PLATFORM = "platform"
    BANK = "bank"
    CUSTOMER = "customer"
    MERCHANT = "merchant"


class TransferStatus(StrEnum):
    ACCEPTED = "accepted"  # the channel took the request; no outcome yet
    PROCESSING = "processing"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    RETURNED = "returned"  # reported succeeded earlier, then the funds came back
    HELD = "held"  # held by the channel's risk control
    NOT_FOUND = "not_found"  # a query found no such request: it was never executed


@dataclass(frozen=True)
class Reason:
    """A channel status code mapped to what it means for us."""

    code: str  # normalised, e.g. "account_frozen", "channel_limit", "timeout"
    retryable: bool
    responsible_party: Party
    message_key: str  # key of the customer/staff wording, e.g. "refund.failed.account_frozen"


@dataclass(frozen=True)
class Account:
    holder_name: str
    bank: str
    number: str  # full number: goes into the channel request body only, never into logs

    @property
    def masked(self) -> str:
        return f"**** {self.number[-4:]}"


@dataclass(frozen=True)
class TransferRequest:
    request_id: str  # stable per (owner, attempt-chain): "refund:42:submit"; the bank dedupes on it
    reference: str  # owner, "refund:42"
    amount: int
    currency: str
    account: Account
    kind: str = "refund"  # or "payout", "withdrawal"
    memo: str = ""


@dataclass(frozen=True)
class ChannelResult:
    status: TransferStatus
    request_id: str
    channel_reference: str = ""
    reason: Reason | None = None
    raw_code: str = ""
    amount: int | None = None
    currency: str = ""
    occurred_at: datetime | None = None
    http_status: int | None = None  # of the call that produced this result (None for webhooks)


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    reason: Reason | None = None
    raw_code: str = ""
    http_status: int | None = None


@dataclass(frozen=True)
class InboundEvent:
    """One parsed, authenticated webhook event."""

    event_id: str  # the channel's id for this delivery's event; dedupe key
    result: ChannelResult
    raw: dict = field(default_factory=dict)


class StatementDirection(StrEnum):
    OUT = "out"  # money left the platform's account at the channel (a transfer executed)
    IN = "in"  # money came back to it (a transfer returned)


@dataclass(frozen=True)
class StatementLine:
    """One movement on a channel's statement of the platform's account, as the channel reports it."""

    line_id: str  # the channel's id for this line, stable across pulls
    value_date: date
    request_id: str  # our request id as the channel echoes it, "refund:42:1"
    reference: str  # owner, "refund:42"
    amount: int  # positive, minor units
    currency: str
    direction: StatementDirection
    channel_reference: str = ""  # the channel's own transfer id


@dataclass(frozen=True)
class RecallResult:
    """The channel's answer to a recall of an executed transfer (getting paid money back)."""

    ok: bool  # the funds are coming back
    request_id: str
    raw_code: str = ""  # why not, when refused ("NOT_RECALLABLE", "FUNDS_WITHDRAWN", ...)
    http_status: int | None = None


class ChannelError(Exception):
    """The channel could not be asked (refused connection, 5xx, outage).

    `reason` is the normalised meaning (e.g. "outage", retryable, bank's fault) when known;
    `raw_code` and `http_status` are what the channel said, for the call log.
    """

    def __init__(
        self, message: str = "", *, reason: Reason | None = None, raw_code: str = "", http_status: int | None = None
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.raw_code = raw_code
        self.http_status = http_status


class ChannelTimeout(ChannelError):
    """No answer in time: the request may or may not have been executed. Query before retrying."""


class WebhookRejected(Exception):
    """A webhook failed authentication (signature, timestamp) or could not be parsed.

    `code` says which check failed ("signature_missing", "signature_mismatch", ...); nothing was written.
    """

    def __init__(self, message: str = "", *, code: str = "webhook_rejected") -> None:
        super().__init__(message)
        self.code = code


class ChannelAdapter(abc.ABC):
    """One implementation per channel kind; instances are built from a `Channel` row."""

    def __init__(self, channel) -> None:
        self.channel = channel

    @abc.abstractmethod
    def verify_account(self, account: Account) -> VerifyResult: ...

    @abc.abstractmethod
    def submit(self, request: TransferRequest) -> ChannelResult:
        """Send a transfer. Raises ChannelTimeout when the outcome is unknown."""

    @abc.abstractmethod
    def query(self, request_id: str) -> ChannelResult:
        """Ask for the outcome of a request; NOT_FOUND means it was never executed."""

    @abc.abstractmethod
    def parse_webhook(self, *, headers: dict[str, str], body: bytes) -> list[InboundEvent]:
        """Authenticate and parse a webhook delivery; raises WebhookRejected."""

    @abc.abstractmethod
    def reason_for(self, raw_code: str) -> Reason:
        """Map the channel's own status code to a normalised reason."""

    def statement(self, value_date: date) -> list[StatementLine]:
        """The channel's statement of the platform's account for one value date: every transfer
        executed (OUT, once per execution) and every return (IN) booked that day. Optional:
        channels that offer no statement API raise NotImplementedError; ChannelError when the
        channel cannot be asked."""
        raise NotImplementedError(f"{type(self).__name__} offers no statement")

    def recall(self, request_id: str) -> RecallResult:
        """Ask the channel to pull back the money of an executed transfer (paid to the wrong
        account, paid twice). Optional: channels without a recall API raise NotImplementedError;
        ChannelError when the channel cannot be asked."""
        raise NotImplementedError(f"{type(self).__name__} offers no recall")
