"""Usage evidence for refund decisions: what we were told (UsageEvents) and, where a merchant runs
one, what its own system says right now (a live usage provider over HTTP).

A provider that does not answer within its timeout, or answers nonsense, yields evidence marked
`available=False`; the decision engine then sends the refund to a person instead of guessing.
"""

from __future__ import annotations

import abc
import logging
from dataclasses import dataclass, field

import requests

from apps.orders.models import Order
from apps.orders.selectors import usage_summary

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class UsageEvidence:
    available: bool = True
    max_progress_pct: int = 0
    key_revealed: bool = False
    key_activated: bool = False
    downloaded: bool = False
    sources: tuple[str, ...] = ()
    problem: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def any_usage(self) -> bool:
        return self.max_progress_pct > 0 or self.key_revealed or self.key_activated or self.downloaded

    def merged(self, other: UsageEvidence) -> UsageEvidence:
        """The stronger of two accounts of usage (usage only ever grows)."""
        return UsageEvidence(
            available=self.available and other.available,
            max_progress_pct=max(self.max_progress_pct, other.max_progress_pct),
            key_revealed=self.key_revealed or other.key_revealed,
            key_activated=self.key_activated or other.key_activated,
            downloaded=self.downloaded or other.downloaded,
            sources=self.sources + other.sources,
            problem=self.problem or other.problem,
        )

    def as_dict(self) -> dict:
        return {
            "available": self.available,
            "max_progress_pct": self.max_progress_pct,
            "key_revealed": self.key_revealed,
            "key_activated": self.key_activated,
            "downloaded": self.downloaded,
            "sources": list(self.sources),
            "problem": self.problem,
        }


class UsageProvider(abc.ABC):
    name: str

    @abc.abstractmethod
    def evidence(self, order: Order) -> UsageEvidence: ...


class RecordedUsageProvider(UsageProvider):
    """The UsageEvents the merchant posted through the API."""

    name = "recorded"

    def evidence(self, order: Order) -> UsageEvidence:
        summary = usage_summary(order=order)
        return UsageEvidence(
            max_progress_pct=summary["max_progress_pct"],
            key_revealed=summary["key_revealed"],
            key_activated=summary["key_activated"],
            downloaded=summary["downloaded"],
            sources=(self.name,),
        )


class HttpUsageProvider(UsageProvider):
    """Asks the merchant's system: GET <url>?order=<external_id> → {"progress_pct", "key_revealed", ...}."""

    name = "merchant_http"

    def __init__(self, url: str, timeout_ms: int) -> None:
        self.url = url
        self.timeout = timeout_ms / 1000

    def evidence(self, order: Order) -> UsageEvidence:
        try:
            response = requests.get(
                self.url,
                params={"order": order.external_id, "customer": order.customer.external_id},
                timeout=self.timeout,
                headers={"Accept": "application/json"},
            )
            response.raise_for_status()
            body = response.json()
            progress = body.get("progress_pct", 0)
            flags = [body.get(k, False) for k in ("key_revealed", "key_activated", "downloaded")]
            if isinstance(progress, bool) or not isinstance(progress, int) or not 0 <= progress <= 100:
                raise ValueError("progress_pct must be an integer 0–100")
            if not all(isinstance(flag, bool) for flag in flags):
                raise ValueError("flags must be booleans")
        except (requests.RequestException, ValueError, AttributeError) as exc:
            logger.warning("usage provider for merchant %s failed: %s", order.merchant_id, type(exc).__name__)
            return UsageEvidence(available=False, sources=(self.name,), problem=type(exc).__name__)
        return UsageEvidence(
            max_progress_pct=progress,
            key_revealed=flags[0],
            key_activated=flags[1],
            downloaded=flags[2],
            sources=(self.name,),
        )


def usage_evidence_for(*, order: Order) -> UsageEvidence:
    """Everything known about how much of the order was used, recorded and live."""
    evidence = RecordedUsageProvider().evidence(order)
    merchant = order.merchant
    if merchant.usage_provider_url:
        live = HttpUsageProvider(merchant.usage_provider_url, merchant.usage_provider_timeout_ms).evidence(order)
        evidence = evidence.merged(live)
    return evidence
