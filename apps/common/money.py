"""Money as integer minor units with an ISO 4217 currency.

`Money(12345, "CNY")` is 123.45 CNY. The exponent comes from the currency (JPY 0, KWD 3, per
CLDR via babel). Mixed-currency arithmetic raises; floats are refused everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from babel.numbers import format_currency, get_currency_precision
from django.conf import settings


class CurrencyError(ValueError):
    """Raised for an unknown currency or arithmetic across two currencies."""


def currency_is_supported(code: str) -> bool:
    return isinstance(code, str) and code in settings.SUPPORTED_CURRENCIES


def currency_exponent(code: str) -> int:
    if not currency_is_supported(code):
        raise CurrencyError(f"unsupported currency {code!r}")
    return get_currency_precision(code)


@dataclass(frozen=True, slots=True)
class Money:
    amount: int
    currency: str

    def __post_init__(self) -> None:
        if isinstance(self.amount, bool) or not isinstance(self.amount, int):
            raise TypeError("Money.amount must be an int of minor units")
        if not currency_is_supported(self.currency):
            raise CurrencyError(f"unsupported currency {self.currency!r}")

    def _same(self, other: Money) -> None:
        if not isinstance(other, Money):
            raise TypeError("Money only combines with Money")
        if other.currency != self.currency:
            raise CurrencyError(f"cannot combine {self.currency} with {other.currency}")

    def __add__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.amount + other.amount, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.amount - other.amount, self.currency)

    def __neg__(self) -> Money:
        return Money(-self.amount, self.currency)

    def __lt__(self, other: Money) -> bool:
        self._same(other)
        return self.amount < other.amount

    def __le__(self, other: Money) -> bool:
        self._same(other)
        return self.amount <= other.amount

    @property
    def decimal(self) -> Decimal:
        """The major-unit value, exact (for display and FX only; never stored)."""
        return Decimal(self.amount).scaleb(-currency_exponent(self.currency))

    def format(self, locale: str = "en") -> str:
        babel_locale = {"zh-hans": "zh_Hans_CN", "en": "en"}.get(locale, locale)
        return format_currency(self.decimal, self.currency, locale=babel_locale)

    def __str__(self) -> str:
        return f"{self.decimal} {self.currency}"
