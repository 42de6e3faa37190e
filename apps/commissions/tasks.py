"""Celery entry points for commissions: thin, safe to run twice (each service moves only rows still
in the state it expects; postings are idempotent by reference)."""

from celery import shared_task

from apps.commissions.services import commission_abuse_scan, commission_mature, commission_settle


@shared_task(ignore_result=True)
def commission_mature_task() -> None:
    commission_mature()


@shared_task(ignore_result=True)
def commission_settle_task() -> None:
    commission_settle()


@shared_task(ignore_result=True)
def commission_abuse_scan_task() -> None:
    commission_abuse_scan()
