"""The verification schedule of settled money (apps.common.polling.verify_next_check): each check
is due once, however often or late the poller asks, and nothing is due after the last one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from apps.common.polling import verify_next_check, verify_window_end

SINCE = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
CHECKS = tuple(timedelta(minutes=minutes) for minutes in (1, 15, 120, 1440, 4320))


def _checks_reached(*, tick: timedelta, lag: timedelta = timedelta(0)) -> list[datetime]:
    """Run a poller every `tick` (each poll `lag` after its tick) over the window and a day: the
    times at which a query was due, as a poller storing `verify_next_check` would make them."""
    due = verify_next_check(since=SINCE, now=SINCE, checks=CHECKS)
    asked = []
    now = SINCE
    while now < SINCE + CHECKS[-1] + timedelta(days=1):
        now += tick
        if due is not None and due <= now:
            asked.append(due)
            due = verify_next_check(since=SINCE, now=now + lag, checks=CHECKS)
    return asked


def test_a_frequent_poller_asks_once_per_check():
    assert _checks_reached(tick=timedelta(seconds=5)) == [SINCE + offset for offset in CHECKS]


def test_a_late_poller_asks_no_more_and_never_twice_for_one_check():
    asked = _checks_reached(tick=timedelta(minutes=10), lag=timedelta(minutes=3))

    assert len(asked) <= len(CHECKS)
    assert len(set(asked)) == len(asked)
    assert asked[-1] == SINCE + CHECKS[-1]  # the last check still happens


def test_nothing_is_due_after_the_last_check_or_without_an_arrival():
    assert verify_next_check(since=SINCE, now=SINCE + CHECKS[-1], checks=CHECKS) is None
    assert verify_next_check(since=None, now=SINCE, checks=CHECKS) is None
    assert verify_window_end(since=SINCE, checks=CHECKS) == SINCE + timedelta(hours=72)
