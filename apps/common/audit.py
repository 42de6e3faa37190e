"""The audit log: who did what to which object, before/after, when and from where.

Services call `audit_record` once per money-moving or staff action, inside the transaction of the
change, so a rolled-back change leaves no row. Who and from where are not passed around: they come
from the audit context, set once per unit of work —
- web requests and API calls: `AuditContextMiddleware` (the signed-in staff user, or the API key DRF
  authenticated on the same request; client IP, user agent, method and path);
- Celery tasks (beat's periodic jobs included): `system:<task name>`, set around every task run;
- anything else (a shell, a management command): `system`.
Staff sign-ins, failed sign-ins and sign-outs are recorded from Django's auth signals.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from celery.signals import task_postrun, task_prerun
from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.dispatch import receiver
from django.http import HttpRequest

from apps.common.models import AuditEntry
from apps.common.throttling import client_ip

Kind = AuditEntry.ActorKind

# A run of 9+ digits (spaces or dashes between them allowed) may be an account or card number: the
# audit log keeps only its last four, whatever a caller passed (G12).
_DIGIT_RUN = re.compile(r"\d(?:[ -]?\d){8,}")


@dataclass(frozen=True)
class AuditContext:
    request: HttpRequest | None = None
    task: str = ""


_context: ContextVar[AuditContext | None] = ContextVar("refundguard_audit_context", default=None)


@contextmanager
def audit_context(*, request: HttpRequest | None = None, task: str = "") -> Iterator[None]:
    """Attribute every audit row written inside the block to this request or task."""
    token = _context.set(AuditContext(request=request, task=task))
    try:
        yield
    finally:
        _context.reset(token)


class AuditContextMiddleware:
    """Sets the audit context for the request (after AuthenticationMiddleware; the actor is read when
    a row is written, so an API key that DRF authenticates in the view is seen too)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        with audit_context(request=request):
            return self.get_response(request)


@receiver(task_prerun, dispatch_uid="common.audit.task_prerun")
def _task_started(sender=None, task=None, **kwargs) -> None:
    if task is not None:
        task.request.audit_token = _context.set(AuditContext(task=task.name))


@receiver(task_postrun, dispatch_uid="common.audit.task_postrun")
def _task_finished(sender=None, task=None, **kwargs) -> None:
    token = getattr(getattr(task, "request", None), "audit_token", None)
    if token is not None:
        _context.reset(token)
        task.request.audit_token = None


def mask(value):
    """`value` (a small JSON-able structure) with every long digit run cut to its last four."""
    if isinstance(value, str):
        return _DIGIT_RUN.sub(lambda m: "****" + re.sub(r"\D", "", m.group(0))[-4:], value)
    if isinstance(value, dict):
        return {str(key): mask(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [mask(item) for item in value]
    if value is None or isinstance(value, bool | int | float):
        return value
    return mask(str(value))


def _actor(context: AuditContext | None, user) -> tuple[str, str, int | None]:
    if user is None and context is not None and context.request is not None:
        user = getattr(context.request, "user", None)
    api_key = getattr(user, "api_key", None)
    if api_key is not None:
        return Kind.API_KEY, f"api-key:{api_key.prefix}", None
    if user is not None and user.is_authenticated:
        return Kind.STAFF, user.get_username()[:150], user.pk
    if context is None or context.request is None:
        return Kind.SYSTEM, f"system:{context.task}" if context and context.task else "system", None
    return Kind.ANONYMOUS, "anonymous", None


def _where(context: AuditContext | None) -> dict:
    if context is None:
        return {}
    if context.request is None:
        return {"source": context.task[:200]}
    meta = context.request.META
    return {
        "ip": client_ip(context.request),
        "user_agent": meta.get("HTTP_USER_AGENT", "")[:300],
        "source": f"{context.request.method} {context.request.path}"[:200],
    }


def audit_record(
    *,
    action: str,
    target_type: str,
    target_id: object = "",
    merchant_id: int | None,
    before: dict | None = None,
    after: dict | None = None,
    user=None,
    actor: str = "",
) -> AuditEntry:
    """Append one audit row for `action` on `target_type:target_id` of `merchant_id`.

    Call it in the transaction of the change (after the write, before returning), once per action.
    `before`/`after` hold only the fields that changed; long digit runs are masked here whatever the
    caller passed. `user` names the actor when the context cannot (a sign-in); `actor` labels an
    unauthenticated one (the username a failed sign-in tried).
    """
    context = _context.get()
    kind, label, user_id = (Kind.ANONYMOUS, actor[:150], None) if actor else _actor(context, user)
    return AuditEntry.objects.create(
        actor_kind=kind,
        actor=label,
        actor_user_id=user_id,
        action=action,
        target_type=target_type,
        target_id=str(target_id)[:64],
        merchant_id=merchant_id,
        before=mask(before or {}),
        after=mask(after or {}),
        **_where(context),
    )


@receiver(user_logged_in, dispatch_uid="common.audit.logged_in")
def _logged_in(sender, request, user, **kwargs) -> None:
    with audit_context(request=request):
        audit_record(
            action="staff.login", target_type="user", target_id=user.pk, merchant_id=_merchant_of(user), user=user
        )


@receiver(user_logged_out, dispatch_uid="common.audit.logged_out")
def _logged_out(sender, request, user, **kwargs) -> None:
    if user is None:
        return
    with audit_context(request=request):
        audit_record(
            action="staff.logout", target_type="user", target_id=user.pk, merchant_id=_merchant_of(user), user=user
        )


@receiver(user_login_failed, dispatch_uid="common.audit.login_failed")
def _login_failed(sender, credentials, request=None, **kwargs) -> None:
    username = str(credentials.get("username", ""))[:150]
    known = get_user_model().objects.filter(username=username).values_list("pk", "merchant_id").first()
    with audit_context(request=request):
        audit_record(
            action="staff.login_failed",
            target_type="user",
            target_id=known[0] if known else "",
            merchant_id=known[1] if known else None,
            actor=username or "anonymous",
        )


def _merchant_of(user) -> int | None:
    return getattr(user, "merchant_id", None)
