"""Display helpers for console templates: money from minor units, durations, JSON values."""

from __future__ import annotations

import json

from django import template

from apps.common.money import CurrencyError, Money

register = template.Library()


@register.simple_tag
def money(amount, currency) -> str:
    """`{% money row.amount row.currency %}` → "¥199.00" (minor units, never float)."""
    if amount is None:
        return ""
    try:
        return Money(int(amount), currency).format("en")
    except (CurrencyError, TypeError, ValueError):
        return f"{amount} {currency} (minor units)"


@register.filter
def duration(seconds) -> str:
    if seconds is None:
        return "—"
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes} min"
    if minutes:
        return f"{minutes} min {secs} s"
    return f"{secs} s"


@register.filter
def as_json(value) -> str:
    """Compact JSON for evidence cells (autoescaped by the template, as any string)."""
    if value in (None, "", {}, []):
        return ""
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


@register.filter
def get(mapping, key):
    return mapping.get(key) if hasattr(mapping, "get") else None
