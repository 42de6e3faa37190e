"""Who may see and do what in the merchant console.

Every console view is wrapped in `staff_view`: signed in, staff of one merchant (platform operators
get the no-merchant page and work in the admin). Objects are always looked up through the signed-in
user's merchant, so another merchant's id is a 404 like an id that does not exist (RELIABILITY.md
G10) — never a 403 that would confirm it exists. A role that may not take an action on its own
merchant's object gets a plain 403.
"""

from __future__ import annotations

import functools
import logging

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import render
from django.utils import translation

from apps.accounts.models import User

logger = logging.getLogger("refundguard.console")
# The console's templates are written in English: its views render in it, whatever the browser asks
# (one language per page; customers' pages follow the customer's language).
CONSOLE_LANGUAGE = "en"

R = User.Role

# action → roles allowed to take it. Reviewers decide cases, finance approves payouts, operators
# run alerts and rules; the owner may do anything. Payout approval is the payouts service's own
# rule (settings.PAYOUT_APPROVER_ROLES), so the console offers exactly what the API allows.
ACTIONS: dict[str, frozenset[str] | None] = {
    "alert_ack": frozenset({R.OWNER, R.OPERATOR, R.REVIEWER, R.FINANCE}),
    "alert_resolve": frozenset({R.OWNER, R.OPERATOR}),
    "silence_create": frozenset({R.OWNER, R.OPERATOR}),
    "case_decide": frozenset({R.OWNER, R.REVIEWER}),
    "payout_approve": None,
    "rule_mode": frozenset({R.OWNER, R.OPERATOR}),
    "rule_test": frozenset({R.OWNER, R.OPERATOR}),
}


def can(user, action: str) -> bool:
    roles = ACTIONS[action]
    if roles is None:
        roles = settings.PAYOUT_APPROVER_ROLES
    return bool(getattr(user, "merchant_id", None)) and user.role in roles


def permissions_for(user) -> dict[str, bool]:
    return {action: can(user, action) for action in ACTIONS}


def actor(request) -> str:
    return f"console:{request.user.get_username()}"


def staff_view(view):
    """Signed-in staff of a merchant; `request.merchant` is that merchant for the view."""

    @login_required
    @functools.wraps(view)
    def wrapper(request, *args, **kwargs):
        merchant = request.user.merchant
        if merchant is None:
            return render(request, "console/no_merchant.html", status=403)
        request.merchant = merchant
        with translation.override(CONSOLE_LANGUAGE):
            return view(request, *args, **kwargs)

    return wrapper


def staff_or_operator_view(view):
    """Like `staff_view`, but a platform operator (staff of no merchant, `is_staff`) is let in too,
    with `request.merchant` None: the view then shows every merchant's rows."""

    @login_required
    @functools.wraps(view)
    def wrapper(request, *args, **kwargs):
        request.merchant = request.user.merchant
        if request.merchant is None and not request.user.is_staff:
            return render(request, "console/no_merchant.html", status=403)
        with translation.override(CONSOLE_LANGUAGE):
            return view(request, *args, **kwargs)

    return wrapper


def refusal(exc) -> str:
    """A service's refusal (ServiceError) as the console shows it: in English, the language its
    pages are written in, whatever the platform's default language (one language per page)."""
    with translation.override(CONSOLE_LANGUAGE):
        return str(exc.message)


def not_found(request, what: str, pk) -> Http404:
    """The 404 for an object outside the user's merchant (or missing): logged, nothing revealed."""
    logger.warning(
        "console: %s %s not found for merchant %s (user %s, %s %s)",
        what,
        pk,
        request.merchant.pk,
        request.user.get_username(),
        request.method,
        request.path,
    )
    return Http404(f"No such {what}.")


def forbidden(request, action: str):
    return render(request, "console/forbidden.html", {"action": action}, status=403)
