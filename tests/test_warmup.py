"""A web worker's warm-up (refundguard/warmup.py, run by gunicorn.conf.py): it does the first
request's one-off work, writes nothing, and a failing step never stops a worker."""

from __future__ import annotations

import logging
import runpy
from pathlib import Path

import pytest
from django.urls import get_resolver

from refundguard import warmup
from refundguard.celery import app

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[1]


def test_warm_up_builds_what_the_first_request_would(django_assert_num_queries):
    resolver = get_resolver()
    resolver._populated = False

    with django_assert_num_queries(0):
        seconds = warmup.warm_up()

    assert seconds >= 0
    assert resolver._populated
    assert app.finalized
    assert "apps.refunds.tasks.refund_submit_task" in app.tasks


def test_a_failing_step_is_logged_and_the_rest_still_run(monkeypatch, caplog):
    ran = []

    def broken() -> None:
        raise ConnectionError("redis is not answering yet")

    def after() -> None:
        ran.append("after")

    monkeypatch.setattr(warmup, "STEPS", (broken, after))
    with caplog.at_level(logging.WARNING, logger="refundguard.warmup"):
        warmup.warm_up()

    assert ran == ["after"]
    assert "warm-up step broken failed" in caplog.text


def test_gunicorn_config_warms_each_worker(monkeypatch):
    calls = []
    monkeypatch.setattr(warmup, "warm_up", lambda: calls.append("warm") or 0.012)
    config = runpy.run_path(str(ROOT / "gunicorn.conf.py"))

    class Log:
        def __init__(self) -> None:
            self.lines: list[str] = []

        def info(self, message: str, *args) -> None:
            self.lines.append(message % args)

    class Worker:
        pid = 4242
        log = Log()

    config["post_worker_init"](Worker())

    assert calls == ["warm"]
    assert Worker.log.lines == ["worker 4242 warmed up in 12 ms"]
