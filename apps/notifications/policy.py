"""Which channels a message goes to and when: priority first (from the withdrawal-notice practice in
the seed articles: risk holds and "fix your account" by SMS + push, delays by push + inbox, the rest
quietly), then the recipient's preferences and quiet hours, which a critical message ignores."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.conf import settings

from apps.notifications.models import Channel, Preference, Priority

# The inbox is the record a customer can always go back to, so every customer-facing plan keeps it;
# SMS is for what needs attention now.
CHANNELS_BY_PRIORITY: dict[str, tuple[str, ...]] = {
    Priority.CRITICAL: (Channel.SMS, Channel.VOICE, Channel.INBOX),
    Priority.HIGH: (Channel.SMS, Channel.PUSH, Channel.INBOX),
    Priority.MEDIUM: (Channel.PUSH, Channel.INBOX),
    Priority.LOW: (Channel.INBOX, Channel.EMAIL),
}

# When a channel fails or is reported undelivered, what is tried instead.
FALLBACKS: dict[str, tuple[str, ...]] = {
    Channel.SMS: (Channel.PUSH, Channel.INBOX),
    Channel.VOICE: (Channel.SMS, Channel.INBOX),
    Channel.EMAIL: (Channel.INBOX,),
}

# Channels that interrupt: held back during quiet hours. The inbox is written at once, silently.
INTERRUPTING = (Channel.SMS, Channel.VOICE, Channel.PUSH, Channel.EMAIL)


def _zone(preference: Preference | None) -> ZoneInfo:
    name = preference.time_zone if preference else settings.NOTIFY_DEFAULT_TIME_ZONE
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo(settings.NOTIFY_DEFAULT_TIME_ZONE)


def quiet_until(preference: Preference | None, now: datetime) -> datetime | None:
    """The end of the recipient's quiet hours if `now` falls inside them, else None. Hours may wrap
    midnight (22:00–08:00)."""
    start: time | None = preference.quiet_start if preference else None
    end: time | None = preference.quiet_end if preference else None
    if start is None or end is None or start == end:
        return None
    zone = _zone(preference)
    local = now.astimezone(zone)
    t = local.time().replace(tzinfo=None)
    wraps = start > end
    inside = (t >= start or t < end) if wraps else (start <= t < end)
    if not inside:
        return None
    end_day = local.date() + timedelta(days=1) if wraps and t >= start else local.date()
    return datetime.combine(end_day, end, tzinfo=zone)


def plan(
    *,
    priority: str,
    phone: str,
    email: str,
    preference: Preference | None,
    now: datetime,
) -> list[tuple[str, datetime]]:
    """(channel, not before) for one message: the priority's channels the recipient can be reached
    on, minus those they turned off, interrupting ones deferred to the end of quiet hours."""
    channels = [
        c
        for c in CHANNELS_BY_PRIORITY[priority]
        if not (c in (Channel.SMS, Channel.VOICE) and not phone) and not (c == Channel.EMAIL and not email)
    ]
    if priority == Priority.CRITICAL:
        return [(c, now) for c in channels]
    disabled = set(preference.disabled_channels) if preference else set()
    channels = [c for c in channels if c not in disabled or c == Channel.INBOX]
    if Channel.INBOX not in channels:
        channels.append(Channel.INBOX)
    quiet_end = quiet_until(preference, now)
    return [(c, quiet_end if quiet_end and c in INTERRUPTING else now) for c in channels]
