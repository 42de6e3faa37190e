"""Celery entry points for risk: thin, scheduled in CELERY_BEAT_SCHEDULE. Each nightly job takes
effect once per UTC day (apps.common.periodic), however many beats fire it or workers receive it."""

from dataclasses import asdict

from celery import shared_task

from apps.common.periodic import DAY_SECONDS, periodic_run_once
from apps.risk.baselines import risk_baselines_refresh
from apps.risk.learning import risk_model_train


def _train(now) -> dict:
    result = risk_model_train(now=now)
    return {key: value for key, value in asdict(result).items() if key != "metrics"}


def _baselines(now) -> dict:
    return {"merchants": len(risk_baselines_refresh(now=now))}


@shared_task(ignore_result=True, acks_late=True)
def risk_model_train_task() -> dict | None:
    """Nightly: retrain the scoring model (keeps the active one when data is short or it validates
    worse); None when today's training already took place."""
    return periodic_run_once(job="risk.model_train", window_seconds=DAY_SECONDS, work=_train)


@shared_task(ignore_result=True, acks_late=True)
def risk_baselines_refresh_task() -> dict | None:
    """Nightly: recompute every merchant's refund baselines, once per day."""
    return periodic_run_once(job="risk.baselines_refresh", window_seconds=DAY_SECONDS, work=_baselines)
