"""Money: integer minor units, a supported ISO 4217 currency, no floats, no mixing currencies."""

from __future__ import annotations

import dataclasses
from decimal import Decimal

import pytest

from apps.common.money import CurrencyError, Money, currency_exponent, currency_is_supported


@pytest.mark.parametrize(
    "amount", [10.0, 10.5, 0.0, float("nan"), float("inf"), True, False, Decimal("10"), "100", None]
)
def test_money_refuses_anything_but_int_minor_units(amount):
    with pytest.raises(TypeError):
        Money(amount, "CNY")


@pytest.mark.parametrize("currency", ["usd", "XXX", "", "CN", "CNYY", "XTS", None, 840])
def test_money_refuses_unsupported_currency(currency):
    with pytest.raises(CurrencyError):
        Money(100, currency)
    assert not currency_is_supported(currency)


@pytest.mark.parametrize("currency", ["usd", "XXX"])
def test_exponent_of_unsupported_currency_raises(currency):
    with pytest.raises(CurrencyError):
        currency_exponent(currency)


def test_zero_and_negative_amounts_are_valid_money():
    assert Money(0, "CNY").amount == 0
    assert Money(-5, "USD").amount == -5
    assert -Money(5, "USD") == Money(-5, "USD")


def test_same_currency_arithmetic_is_exact():
    assert Money(19900, "CNY") + Money(101, "CNY") == Money(20001, "CNY")
    assert Money(19900, "CNY") - Money(20000, "CNY") == Money(-100, "CNY")
    big = Money(10**18, "JPY")
    assert (big + Money(1, "JPY")).amount == 10**18 + 1
    assert Money(1, "CNY") < Money(2, "CNY")
    assert Money(2, "CNY") <= Money(2, "CNY")
    assert Money(3, "CNY") > Money(2, "CNY")
    assert Money(2, "CNY") >= Money(2, "CNY")


@pytest.mark.parametrize(
    "operation",
    [
        pytest.param(lambda a, b: a + b, id="add"),
        pytest.param(lambda a, b: a - b, id="sub"),
        pytest.param(lambda a, b: a < b, id="lt"),
        pytest.param(lambda a, b: a <= b, id="le"),
        pytest.param(lambda a, b: a > b, id="gt"),
        pytest.param(lambda a, b: a >= b, id="ge"),
    ],
)
def test_mixed_currency_arithmetic_and_comparison_raise(operation):
    with pytest.raises(CurrencyError):
        operation(Money(100, "CNY"), Money(100, "USD"))
    with pytest.raises(CurrencyError):
        operation(Money(100, "JPY"), Money(100, "KWD"))


def test_money_does_not_combine_with_plain_numbers():
    with pytest.raises(TypeError):
        Money(100, "CNY") + 1
    with pytest.raises(TypeError):
        Money(100, "CNY") - 1
    with pytest.raises(TypeError):
        Money(100, "CNY") < 1  # noqa: B015


def test_equal_amounts_in_different_currencies_are_not_equal():
    assert Money(100, "CNY") != Money(100, "USD")
    assert Money(100, "CNY") == Money(100, "CNY")


def test_money_is_immutable():
    money = Money(100, "CNY")
    with pytest.raises(dataclasses.FrozenInstanceError):
        money.amount = 1.5  # type: ignore[misc]
    assert money.amount == 100


@pytest.mark.parametrize(("currency", "exponent"), [("JPY", 0), ("KWD", 3), ("CNY", 2), ("USD", 2), ("EUR", 2)])
def test_currency_exponent(currency, exponent):
    assert currency_exponent(currency) == exponent


@pytest.mark.parametrize(
    ("amount", "currency", "expected"),
    [
        (12345, "CNY", "123.45"),
        (5, "CNY", "0.05"),
        (-5, "USD", "-0.05"),
        (1234, "JPY", "1234"),
        (12345, "KWD", "12.345"),
        (1, "KWD", "0.001"),
        (10**18 + 1, "CNY", "10000000000000000.01"),
        (999_999_999_999_999_999, "KWD", "999999999999999.999"),
    ],
)
def test_decimal_is_exact(amount, currency, expected):
    value = Money(amount, currency).decimal
    assert isinstance(value, Decimal)
    assert value == Decimal(expected)
    assert str(value) == expected
    assert str(Money(amount, currency)) == f"{expected} {currency}"


@pytest.mark.parametrize(
    ("money", "locale", "expected"),
    [
        (Money(12345, "CNY"), "en", "CN¥123.45"),
        (Money(12345, "CNY"), "zh-hans", "¥123.45"),
        (Money(123456789, "USD"), "en", "$1,234,567.89"),
        (Money(123456789, "USD"), "zh-hans", "US$1,234,567.89"),
        (Money(1234, "JPY"), "en", "¥1,234"),
        (Money(1234, "JPY"), "zh-hans", "JP¥1,234"),
        (Money(12345, "KWD"), "en", "KWD12.345"),
        (Money(-5, "USD"), "en", "-$0.05"),
    ],
)
def test_format_per_locale(money, locale, expected):
    assert money.format(locale) == expected


def test_format_defaults_to_en_and_keeps_all_minor_digits():
    assert Money(100, "CNY").format() == "CN¥1.00"
    assert Money(1, "KWD").format("zh-hans").endswith("0.001")
    assert Money(0, "JPY").format("en") == "¥0"
