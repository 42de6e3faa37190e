"""Celery entry points for risk: thin, safe to run twice. Scheduled in CELERY_BEAT_SCHEDULE."""

from dataclasses import asdict

from celery import shared_task

from apps.risk.baselines import risk_baselines_refresh
from apps.risk.learning import risk_model_train


@shared_task(ignore_result=True, acks_late=True)
def risk_model_train_task() -> dict:
    """Nightly: retrain the scoring model (keeps the active one when data is short or it validates worse)."""
    result = risk_model_train()
    return {key: value for key, value in asdict(result).items() if key != "metrics"}


@shared_task(ignore_result=True, acks_late=True)
def risk_baselines_refresh_task() -> int:
    """Nightly: recompute every merchant's refund baselines; returns how many merchants."""
    return len(risk_baselines_refresh())
