"""Every write of the notifications app.

Writing (`notify`) happens in the caller's transaction — the one that changed the refund, the
withdrawal or the alert — so a message exists exactly when its cause was committed (a transactional
outbox). Sending happens in a worker: `notification_dispatch_event` right after commit, and
`notification_dispatch_due` from beat for anything deferred, retried or left behind by a crash.

Exactly once, per message: a row is claimed (`queued → sending`, committed) before the provider is
called and marked `sent` after. A worker that dies between the two leaves it `sending`; after the
lease the sweep asks the provider whether it went out (`Provider.find_sent`) and only sends again
when the provider says it did not; where a provider cannot be asked (email) the message is marked
failed and its fallback (the inbox) carries it instead of a possible second copy.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Count, Min, Q, Value
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from apps.accounts.models import Customer, User
from apps.common.audit import audit_record
from apps.common.errors import NotFoundError
from apps.common.polling import backoff
from apps.common.publish import publish_after_commit
from apps.common.rows import Columns
from apps.notifications import policy
from apps.notifications.models import Channel, Notification, Preference, Priority, ProviderStatusEvent, Template
from apps.notifications.providers import Provider, ProviderError, PushProvider, SendResult, provider_for
from apps.notifications.rendering import forget_templates, render

logger = logging.getLogger(__name__)
S = Notification.Status

DIGEST_KEY = "sms_digest"


# --- writing -----------------------------------------------------------------------------------


def _recipient(recipient: Customer | User) -> dict:
    if isinstance(recipient, Customer):
        return {
            "recipient_type": Notification.RecipientType.CUSTOMER,
            "customer": recipient,
            "recipient_key": f"customer:{recipient.pk}",
            "merchant_id": recipient.merchant_id,
        }
    return {
        "recipient_type": Notification.RecipientType.STAFF,
        "user": recipient,
        "recipient_key": f"user:{recipient.pk}",
        "merchant_id": recipient.merchant_id,
    }


def _locale_of(recipient: Customer | User) -> str:
    if isinstance(recipient, Customer):
        return recipient.locale
    merchant = recipient.merchant if recipient.merchant_id else None
    return merchant.default_locale if merchant else settings.LANGUAGE_CODE


# Read for every message written (a refund request writes one): by hand, as apps.common.rows says.
_PREFERENCE = Columns(Preference, "p")
_PREFERENCE_SQL = {
    owner: f"SELECT {_PREFERENCE.sql} FROM {Preference._meta.db_table} p WHERE p.{owner}_id = %s"  # noqa: S608
    for owner in ("customer", "user")
}


def _preference_of(recipient: Customer | User) -> Preference | None:
    owner = "customer" if isinstance(recipient, Customer) else "user"
    with connection.cursor() as cursor:
        cursor.execute(_PREFERENCE_SQL[owner], [recipient.pk])
        row = cursor.fetchone()
    return _PREFERENCE.build(row) if row is not None else None


def _address(channel: str, recipient: Customer | User) -> str:
    if channel in (Channel.SMS, Channel.VOICE):
        return recipient.phone or ""
    if channel == Channel.EMAIL:
        return recipient.email or ""
    return ""


def _dispatch_after_commit(event_key: str) -> None:
    from apps.notifications.tasks import notification_dispatch_event_task

    publish_after_commit(notification_dispatch_event_task, event_key)


def notify(
    *,
    recipient: Customer | User,
    template_key: str,
    priority: str,
    event_key: str,
    context: dict,
    subject_type: str = "",
    subject_id: int | None = None,
    reference: str = "",
    link: str = "",
    now: datetime | None = None,
    fresh: bool = False,
) -> int:
    """Write the messages one cause owes one recipient — one per channel the priority, the
    recipient's addresses, preferences and quiet hours allow — in the caller's transaction, and
    dispatch them after it commits (low-priority ones wait for the beat sweep, a few seconds, so a
    request that only owes an inbox note or an email does not also queue a task).

    Idempotent per (event_key, channel, recipient): a cause reported twice (a duplicate webhook)
    writes nothing the second time. `fresh=True` says the key cannot have been used yet (it names a
    row the caller just wrote, e.g. a timeline event): the check before inserting is skipped and
    the unique constraint alone guards (a repeat is dropped silently, and counted in the return
    value as if written). `context` holds already-masked, already-formatted values; it is stored to
    render fallbacks and digests. Returns the number of rows written.
    """
    now = now or timezone.now()
    who = _recipient(recipient)
    locale = _locale_of(recipient)
    context = {**context, "reference": reference, "link": link}
    preference = _preference_of(recipient)
    plan = policy.plan(
        priority=priority,
        phone=_address(Channel.SMS, recipient),
        email=_address(Channel.EMAIL, recipient),
        preference=preference,
        now=now,
    )
    message = {
        **who,
        "priority": priority,
        "event_key": event_key,
        "subject_type": subject_type,
        "subject_id": subject_id,
        "reference": reference,
        "template_key": template_key,
        "locale": locale,
        "context": context,
        "link": link,
    }
    rows = [
        _row(message, channel=channel, address=_address(channel, recipient), next_attempt_at=not_before, now=now)
        for channel, not_before in plan
    ]
    if fresh:
        Notification.objects.bulk_create(rows, ignore_conflicts=True)
        written = len(rows)
    else:
        written = _insert_new(rows)
    if written and priority != Priority.LOW:
        _dispatch_after_commit(event_key)
    return written


def _insert_new(rows: list[Notification]) -> int:
    """Insert the rows whose (cause, channel, recipient) is not written yet; returns how many. The
    unique constraint settles a race between two writers (ON CONFLICT DO NOTHING)."""
    if not rows:
        return 0
    first = rows[0]
    taken = set(
        Notification.objects.filter(event_key=first.event_key, recipient_key=first.recipient_key).values_list(
            "channel", flat=True
        )
    )
    fresh = [row for row in rows if row.channel not in taken]
    Notification.objects.bulk_create(fresh, ignore_conflicts=True)
    return len(fresh)


# What the rows of one message share across channels (a fallback or a digest starts from these).
_MESSAGE_FIELDS = (
    "merchant_id",
    "recipient_type",
    "customer_id",
    "user_id",
    "recipient_key",
    "priority",
    "event_key",
    "subject_type",
    "subject_id",
    "reference",
    "template_key",
    "locale",
    "context",
    "link",
)


def _message_of(n: Notification) -> dict:
    return {field: getattr(n, field) for field in _MESSAGE_FIELDS}


def _row(
    message: dict, *, channel: str, address: str, next_attempt_at: datetime, now: datetime, **extra
) -> Notification:
    """One channel's row of a message: the shared fields, and the wording rendered for the channel."""
    rendered = render(
        key=message["template_key"],
        channel=channel,
        locale=message["locale"],
        recipient_key=message["recipient_key"],
        context=message["context"],
    )
    return Notification(
        **message,
        channel=channel,
        address=address,
        template_version=rendered.version,
        title=rendered.title,
        body=rendered.body,
        next_attempt_at=next_attempt_at,
        created_at=now,
        **extra,
    )


def _rows_like(n: Notification, channels: Iterable[str], *, now: datetime) -> list[Notification]:
    """New rows carrying `n`'s message over other channels (a fallback), rendered for each channel."""
    recipient = n.customer if n.customer_id else n.user
    message = _message_of(n)
    rows = []
    for channel in channels:
        address = _address(channel, recipient)
        if channel in (Channel.SMS, Channel.VOICE, Channel.EMAIL) and not address:
            continue
        rows.append(_row(message, channel=channel, address=address, next_attempt_at=now, now=now, fallback_of=n))
    return rows


def _fall_back(n: Notification, *, now: datetime) -> None:
    """After `n` failed or was not delivered: carry its message over the next channels (SMS → push
    + inbox, voice → SMS, email → inbox). Channels the cause already used are skipped by the
    once-per-cause constraint."""
    channels = policy.FALLBACKS.get(n.channel, ())
    if _insert_new(_rows_like(n, channels, now=now)):
        _dispatch_after_commit(n.event_key)


# --- dispatching ------------------------------------------------------------------------------


def _sms_sent_in_window(n: Notification, now: datetime) -> tuple[int, datetime]:
    """SMS to this recipient sent in the window, or claimed and being sent right now (by this very
    sweep, too), and when the first of them went out."""
    window = (
        Notification.objects.filter(recipient_key=n.recipient_key, channel=Channel.SMS)
        .filter(Q(sent_at__gt=now - settings.NOTIFY_SMS_WINDOW) | Q(status=S.SENDING))
        .exclude(pk=n.pk)
    )
    agg = window.aggregate(count=Count("id"), first=Min("sent_at"))
    return agg["count"], agg["first"] or now


def _fold_into_digest(n: Notification, *, first_sent: datetime, now: datetime) -> None:
    """Over the SMS rate limit: this message waits in one digest SMS sent when the window frees
    (the inbox row of the same cause already carries the details)."""
    due = first_sent + settings.NOTIFY_SMS_WINDOW
    key = f"digest:{n.recipient_key}:{due:%Y%m%d%H%M%S}"
    digest = Notification.objects.filter(event_key=key, channel=Channel.SMS, recipient_key=n.recipient_key).first()
    if digest is None:
        recipient = n.customer if n.customer_id else n.user
        message = {
            **_message_of(n),
            "event_key": key,
            "subject_type": "",
            "subject_id": None,
            "reference": "",
            "template_key": DIGEST_KEY,
            "context": {"count": 1},
        }
        digest = _row(
            message,
            channel=Channel.SMS,
            address=_address(Channel.SMS, recipient) or n.address,
            next_attempt_at=due,
            now=now,
        )
        digest.save(force_insert=True)
    n.digest = digest
    n.fold_into_digest()
    n.save(update_fields=["status", "digest", "updated_at"])


def _refresh_digest(n: Notification) -> None:
    count = n.digested.count()
    context = {**n.context, "count": count}
    rendered = render(
        key=DIGEST_KEY, channel=Channel.SMS, locale=n.locale, recipient_key=n.recipient_key, context=context
    )
    n.context, n.title, n.body, n.template_version = context, rendered.title, rendered.body, rendered.version


def _claim_locked(n: Notification, now: datetime) -> bool:
    """On a locked, due, queued row: apply the SMS rate limit, then claim it for sending."""
    if n.channel == Channel.SMS and n.priority != Priority.CRITICAL and n.template_key != DIGEST_KEY:
        count, first = _sms_sent_in_window(n, now)
        if count >= settings.NOTIFY_SMS_PER_WINDOW:
            _fold_into_digest(n, first_sent=first, now=now)
            return False
    fields = ["status", "attempts", "updated_at"]
    if n.template_key == DIGEST_KEY:
        _refresh_digest(n)
        fields += ["context", "title", "body", "template_version"]
    n.claim()
    n.attempts += 1
    n.save(update_fields=fields)
    return True


def _claim(ids_query, *, limit: int) -> list[Notification]:
    now = timezone.now()
    claimed = []
    with transaction.atomic():
        rows = list(
            ids_query.select_for_update(skip_locked=True, of=("self",))
            .filter(status=S.QUEUED, next_attempt_at__lte=now)
            .select_related("customer", "user")
            .order_by("next_attempt_at", "id")[:limit]
        )
        for n in rows:
            if _claim_locked(n, now):
                claimed.append(n)
    return claimed


def _backoff(attempts: int) -> timedelta:
    return backoff(attempts - 1, base=settings.NOTIFY_RETRY_BASE, cap=settings.NOTIFY_RETRY_CAP)


_RESULT_FIELDS = ["status", "provider", "provider_id", "sent_at", "delivered_at", "last_error", "updated_at"]


def _record_results(results: dict[int, SendResult]) -> None:
    """Record what the providers took, for a batch of rows, in one transaction (one lock, one
    UPDATE): a dispatch hands over a cause's SMS, push and inbox rows together."""
    now = timezone.now()
    with transaction.atomic():
        rows = list(Notification.objects.select_for_update().filter(pk__in=list(results)).order_by("pk"))
        changed = []
        for n in rows:
            if n.status != S.SENDING:
                continue  # a status callback got here first
            result = results[n.pk]
            n.provider, n.provider_id, n.sent_at, n.last_error = result.provider, result.provider_id, now, ""
            if result.delivered:
                n.mark_delivered()
                n.delivered_at = now
            else:
                n.mark_sent()
            n.updated_at = now
            changed.append(n)
        Notification.objects.bulk_update(changed, _RESULT_FIELDS)


def _record_error(pk: int, exc: ProviderError) -> Notification:
    now = timezone.now()
    with transaction.atomic():
        n = Notification.objects.select_for_update().get(pk=pk)
        if n.status != S.SENDING:
            return n
        n.last_error = str(exc)[:500]
        if exc.retryable and n.attempts < settings.NOTIFY_MAX_ATTEMPTS:
            n.requeue()
            n.next_attempt_at = now + _backoff(n.attempts)
            n.save(update_fields=["status", "last_error", "next_attempt_at", "updated_at"])
            return n
        n.mark_failed()
        n.failed_at = now
        n.save(update_fields=["status", "last_error", "failed_at", "updated_at"])
        _fall_back(n, now=now)
    return n


def _hand_over(claimed: list[Notification]) -> None:
    """Call the providers for claimed rows (outside any transaction) and record what happened:
    failures one by one (each may retry or fall back), successes together."""
    results: dict[int, SendResult] = {}
    providers: dict[str, Provider] = {}  # one client per channel for the batch (Twilio keeps its connection)
    for n in claimed:
        provider = providers.get(n.channel) or providers.setdefault(n.channel, provider_for(n.channel))
        try:
            results[n.pk] = provider.send(n)
        except ProviderError as exc:
            logger.warning("notifications: %s %s failed: %s", n.channel, n.pk, exc)
            _record_error(n.pk, exc)
    if results:
        _record_results(results)


def notification_dispatch_event(*, event_key: str) -> int:
    """Send the due messages of one cause (the task scheduled when they were written). Safe to run
    twice: a second run finds them claimed or sent. Returns how many were handed over."""
    claimed = _claim(Notification.objects.filter(event_key=event_key), limit=50)
    _hand_over(claimed)
    return len(claimed)


def _recover_stale(now: datetime, *, limit: int) -> int:
    """Rows left `sending` by a worker that died mid-send: ask the provider before sending again."""
    recovered = 0
    with transaction.atomic():
        stale = list(
            Notification.objects.select_for_update(skip_locked=True)
            .filter(status=S.SENDING, updated_at__lt=now - settings.NOTIFY_SENDING_LEASE)
            .order_by("updated_at")[:limit]
        )
        for n in stale:
            provider = provider_for(n.channel)
            try:
                sid = provider.find_sent(n) if provider.can_query else None
            except ProviderError:
                continue  # ask again on the next sweep
            if sid:
                n.provider, n.provider_id, n.sent_at = provider.name, sid, now
                n.mark_sent()
                n.save(update_fields=["status", "provider", "provider_id", "sent_at", "updated_at"])
            elif provider.can_query or n.channel in (Channel.PUSH, Channel.INBOX):
                n.requeue()  # not handed over (or harmless to repeat): send it now
                n.next_attempt_at = now
                n.save(update_fields=["status", "next_attempt_at", "updated_at"])
            else:
                n.last_error = "outcome unknown after an interrupted send; not repeated"
                n.mark_failed()
                n.failed_at = now
                n.save(update_fields=["status", "last_error", "failed_at", "updated_at"])
                _fall_back(n, now=now)
            recovered += 1
    return recovered


def notification_dispatch_due(*, limit: int = 200) -> int:
    """The beat sweep: recover interrupted sends, then send everything due (deferred by quiet
    hours, waiting for a retry, a digest whose window freed, or a row whose after-commit task was
    lost). Concurrent sweeps take disjoint rows (`SKIP LOCKED`)."""
    _recover_stale(timezone.now(), limit=limit)
    claimed = _claim(Notification.objects.all(), limit=limit)
    _hand_over(claimed)
    return len(claimed)


# --- delivery reports -------------------------------------------------------------------------

# Twilio message and call statuses → ours. Anything else (queued, ringing…) means "on its way".
_DELIVERED = {"delivered", "read", "completed"}
_UNDELIVERED = {"undelivered", "busy", "no-answer"}
_FAILED = {"failed", "canceled"}


def notification_apply_provider_status(
    *, provider: str, provider_id: str, status: str, payload: dict, notification_id: int | None = None
) -> bool:
    """Apply one delivery report. Deduplicated on (provider, id, status); states never move
    backwards (a late "sent" after "delivered" is recorded and ignored). Undelivered or failed
    messages fall back to the next channels. Returns False for a replayed report.

    `notification_id` is the row the callback URL names: a report that arrives while the dispatch
    has not yet recorded the sid (the row is still `sending`, without one) is applied to it, and
    the sid recorded there; the dispatch then finds the row moved on and leaves it.

    Raises NotFoundError for an id RefundGuard never sent (nothing is written)."""
    now = timezone.now()
    with transaction.atomic():
        n = Notification.objects.select_for_update().filter(provider=provider, provider_id=provider_id).first()
        early: list[str] = []
        if n is None and notification_id is not None:
            n = (
                Notification.objects.select_for_update()
                .filter(pk=notification_id, status=S.SENDING, provider_id="")
                .first()
            )
            if n is not None:
                n.provider, n.provider_id, n.sent_at = provider, provider_id, n.sent_at or now
                early = ["provider", "provider_id", "sent_at"]
        if n is None:
            raise NotFoundError(_("No notification was sent with this id."), code="unknown_sid")
        try:
            with transaction.atomic():
                ProviderStatusEvent.objects.create(
                    provider=provider, provider_id=provider_id, status=status[:32], notification=n, payload=payload
                )
        except IntegrityError:
            return False
        n.provider_status = status[:32]
        fields = ["provider_status", "updated_at", *early]
        if status in _DELIVERED and n.status in (S.SENDING, S.SENT):
            n.mark_delivered()
            n.delivered_at = now
            fields += ["status", "delivered_at"]
        elif status in _UNDELIVERED | _FAILED and n.status in (S.SENDING, S.SENT):
            if status in _UNDELIVERED:
                n.mark_undelivered()
            else:
                n.mark_failed()
            n.failed_at = now
            n.last_error = f"{provider}: {status} {payload.get('ErrorCode', '')}".strip()[:500]
            fields += ["status", "failed_at", "last_error"]
            n.save(update_fields=fields)
            _fall_back(n, now=now)
            return True
        elif n.status == S.SENDING:
            n.mark_sent()
            n.sent_at = n.sent_at or now
            fields += ["status", "sent_at"]
        n.save(update_fields=fields)
    return True


def notification_mark_shown(*, notification_id: int) -> bool:
    """A push message was relayed to an open page of its recipient (the WebSocket consumer, which
    knows the send succeeded): delivered. A push nobody had a page open for stays `sent`. Once per
    message; the relay can run before the dispatch records its hand-over, so `sending` counts too
    (the dispatch then leaves the row). Returns whether the row changed."""
    now = timezone.now()
    changed = Notification.objects.filter(
        pk=notification_id, channel=Channel.PUSH, status__in=(S.SENDING, S.SENT)
    ).update(
        status=S.DELIVERED,
        provider=PushProvider.name,
        sent_at=Coalesce("sent_at", Value(now)),
        delivered_at=now,
        updated_at=now,
    )
    return bool(changed)


# --- inbox ------------------------------------------------------------------------------------


def inbox_mark_read(*, customer: Customer, notification_ids: list[int] | None = None) -> int:
    """Mark a customer's inbox messages read (all unread ones when `notification_ids` is None).
    Returns how many changed; ids of other customers are ignored."""
    rows = Notification.objects.filter(customer=customer, channel=Channel.INBOX, read_at__isnull=True)
    if notification_ids is not None:
        rows = rows.filter(pk__in=notification_ids)
    return rows.update(read_at=timezone.now())


def preference_set(
    *,
    customer: Customer,
    disabled_channels: list[str] | None = None,
    quiet_start=None,
    quiet_end=None,
    time_zone: str | None = None,
) -> Preference:
    """Create or change a customer's notification preferences."""
    preference, _ = Preference.objects.get_or_create(customer=customer)
    if disabled_channels is not None:
        preference.disabled_channels = sorted(set(disabled_channels))
    preference.quiet_start, preference.quiet_end = quiet_start, quiet_end
    if time_zone:
        preference.time_zone = time_zone
    preference.save()
    return preference


# --- templates --------------------------------------------------------------------------------------

_TEMPLATE_FIELDS = ("key", "channel", "locale", "version", "subject", "body", "rollout_percent", "is_active")


def template_save(*, template: Template, before: dict | None = None) -> Template:
    """Save a template an operator added or edited (admin), with its audit row; `before` holds the old
    values of the fields that changed (None for a new template). Every process re-reads templates
    after commit."""
    is_new = template.pk is None
    with transaction.atomic():
        template.save()
        changed = _TEMPLATE_FIELDS if is_new else tuple(before or ())
        audit_record(
            action="template.create" if is_new else "template.change",
            target_type="template",
            target_id=template.pk,
            merchant_id=None,
            before={} if is_new else before,
            after={name: getattr(template, name) for name in changed},
        )
    transaction.on_commit(forget_templates)
    return template


def template_delete(*, template: Template) -> None:
    """Remove a template (the audit log keeps its last wording)."""
    with transaction.atomic():
        audit_record(
            action="template.delete",
            target_type="template",
            target_id=template.pk,
            merchant_id=None,
            before={name: getattr(template, name) for name in _TEMPLATE_FIELDS},
        )
        template.delete()
    transaction.on_commit(forget_templates)
