"""Which wording a recipient gets and how it is filled in.

Templates use Django's template syntax on a standalone engine with autoescaping off (an SMS is not
HTML; the pages that show inbox messages escape them). A template that fails to compile or render
never stops the change that caused the message: the built-in wording (`defaults.BUILTIN`) is used
and the error logged.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import re
from dataclasses import dataclass

from django.template import Context, Engine, TemplateSyntaxError

from apps.common import localcache
from apps.notifications.defaults import BUILTIN
from apps.notifications.models import Template

logger = logging.getLogger(__name__)

ENGINE = Engine(autoescape=False, debug=False, loaders=[], string_if_invalid="")
_CACHE_KEY = "notifications:templates"
# A template edited in the admin reaches other processes within this many seconds.
TEMPLATE_CACHE_SECONDS = 5.0

# A 13–19 digit run (spaces or dashes allowed inside) that passes the Luhn check looks like a card
# number (PCI DSS 3.4.1): only its last four digits may be shown.
_DIGIT_RUN = re.compile(r"(?<!\d)\d(?:[ -]?\d){12,18}(?!\d)")


class RenderError(ValueError):
    """A template that does not compile or render (shown to the admin who edits it)."""


@dataclass(frozen=True, slots=True)
class Rendered:
    title: str
    body: str
    version: int  # 0: the built-in wording


def _luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def mask_card_numbers(text: str, *, keep: tuple[str, ...] = ()) -> str:
    """Replace anything that looks like a full card number with its last four digits. `keep` lists
    values that must survive as they are (the order number the message is about)."""

    def repl(match: re.Match) -> str:
        raw = match.group(0)
        digits = re.sub(r"\D", "", raw)
        if raw in keep or digits in keep or not _luhn_ok(digits):
            return raw
        return f"****{digits[-4:]}"

    return _DIGIT_RUN.sub(repl, text)


def bucket_for(*, recipient_key: str, template_key: str) -> int:
    """0–99, stable per recipient and message: the same person always gets the same wording."""
    digest = hashlib.sha256(f"{template_key}:{recipient_key}".encode()).digest()
    return int.from_bytes(digest[:4], "big") % 100


def _active_templates() -> dict[tuple[str, str], list[Template]]:
    def load() -> dict[tuple[str, str], list[Template]]:
        table: dict[tuple[str, str], list[Template]] = {}
        for t in Template.objects.filter(is_active=True).order_by("-version"):
            table.setdefault((t.key, t.locale), []).append(t)
        return table

    return localcache.get_or_compute(_CACHE_KEY, load, local_seconds=TEMPLATE_CACHE_SECONDS)


def forget_templates() -> None:
    localcache.forget(_CACHE_KEY)


def template_choose(*, key: str, channel: str, locale: str, bucket: int) -> Template | None:
    """The template for this channel (or the channel-less one), highest version whose rollout covers
    `bucket`; a version at 100 % covers everyone below it."""
    candidates = _active_templates().get((key, locale), [])
    for wanted in (channel, ""):
        versions = [t for t in candidates if t.channel == wanted]
        for t in versions:  # highest version first
            if bucket < t.rollout_percent:
                return t
    return None


@functools.lru_cache(maxsize=1024)
def _compiled(source: str):
    """Compiling is most of a render's cost; the same few wordings are rendered over and over."""
    return ENGINE.from_string(source)


def render_text(source: str, context: dict) -> str:
    try:
        return _compiled(source).render(Context(context, autoescape=False)).strip()
    except TemplateSyntaxError as exc:
        raise RenderError(str(exc)) from exc
    except Exception as exc:
        raise RenderError(f"{type(exc).__name__}: {exc}") from exc


def render(*, key: str, channel: str, locale: str, recipient_key: str, context: dict) -> Rendered:
    """The title and body a recipient gets for `key` on `channel`, masked."""
    keep = tuple(str(context[k]) for k in ("reference",) if context.get(k))
    template = template_choose(
        key=key, channel=channel, locale=locale, bucket=bucket_for(recipient_key=recipient_key, template_key=key)
    )
    if template is not None:
        try:
            title = render_text(template.subject, context)
            body = render_text(template.body, context)
            return Rendered(mask_card_numbers(title, keep=keep), mask_card_numbers(body, keep=keep), template.version)
        except RenderError:
            logger.exception("notifications: template %s failed; using the built-in wording", template)
    builtin = BUILTIN.get((key, locale)) or BUILTIN[(key, "en")]
    title = render_text(builtin.get("subject", ""), context)
    source = builtin.get(f"body_{channel}") or builtin["body"]
    body = render_text(source, context)
    return Rendered(mask_card_numbers(title, keep=keep), mask_card_numbers(body, keep=keep), 0)
