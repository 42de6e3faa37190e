"""FX simulation for payouts and withdrawals in another currency than their source balance.

Rates come from a pluggable source (PAYOUT_FX_RATE_SOURCE, a dotted path to a class with
`name` and `rate(base=, quote=)`); the default reads the fixed table PAYOUT_FX_FIXED_RATES.
Amounts stay integers in minor units: the conversion is exact `Decimal` arithmetic over the
currencies' exponents, then one explicit rounding to a whole minor unit, and the fraction rounded
away is reported so the caller can record it. Never float.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Context, Decimal, InvalidOperation, localcontext
from typing import Protocol

from django.conf import settings
from django.utils.module_loading import import_string

from apps.common.money import currency_exponent

# Enough digits for 10**15 minor units times a 12-decimal rate, exactly.
_CONTEXT = Context(prec=60)
RATE_PLACES = Decimal("0.000000000001")


class RateSource(Protocol):
    name: str

    def rate(self, *, base: str, quote: str) -> Decimal | None:
        """Units of `quote` per one unit of `base` (major units), or None when unknown."""


class FixedRateSource:
    """Rates from the PAYOUT_FX_FIXED_RATES table ({"USD:CNY": "7.1"}); the inverse pair is derived."""

    name = "fixed"

    def __init__(self, table: dict[str, str] | None = None) -> None:
        self.table = table if table is not None else settings.PAYOUT_FX_FIXED_RATES

    def rate(self, *, base: str, quote: str) -> Decimal | None:
        if base == quote:
            return Decimal(1)
        direct = self._read(f"{base}:{quote}")
        if direct is not None:
            return direct
        inverse = self._read(f"{quote}:{base}")
        if inverse is None:
            return None
        with localcontext(_CONTEXT):
            return (Decimal(1) / inverse).quantize(RATE_PLACES)

    def _read(self, key: str) -> Decimal | None:
        raw = self.table.get(key)
        if raw is None:
            return None
        try:
            value = Decimal(str(raw))
        except InvalidOperation:
            return None
        return value if value.is_finite() and value > 0 else None


def rate_source() -> RateSource:
    return import_string(settings.PAYOUT_FX_RATE_SOURCE)()


@dataclass(frozen=True)
class Conversion:
    amount: int  # minor units of the target currency, rounded by `rounding`
    pair: str  # "SOURCE:TARGET"
    rate: Decimal  # target units per source unit (major)
    rate_source: str
    rounding: str  # the rule, as recorded: "ROUND_FLOOR" or "ROUND_CEILING" on target minor units
    remainder: Decimal  # exact − rounded, in target minor units (a fraction of one unit)

    def as_detail(self) -> dict:
        return {
            "pair": self.pair,
            "rate": str(self.rate),
            "rate_source": self.rate_source,
            "rounding": self.rounding,
            "remainder_minor_units": str(self.remainder.normalize()),
        }


def convert(*, amount: int, source: str, target: str, rate: Decimal, rounding: str, rate_source: str) -> Conversion:
    """`amount` minor units of `source` in minor units of `target`, at `rate` (target per source).

    `rounding` is ROUND_FLOOR (never pay out more than the source is worth) or ROUND_CEILING
    (never take less from the source than what is paid out).
    """
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise TypeError("amounts are int minor units")
    if rounding not in (ROUND_FLOOR, ROUND_CEILING):
        raise ValueError(f"unsupported rounding {rounding!r}")
    with localcontext(_CONTEXT):
        exact = Decimal(amount) * rate * (Decimal(10) ** (currency_exponent(target) - currency_exponent(source)))
        rounded = int(exact.to_integral_value(rounding=rounding))
        return Conversion(
            amount=rounded,
            pair=f"{source}:{target}",
            rate=rate,
            rate_source=rate_source,
            rounding=rounding,
            remainder=exact - rounded,
        )
