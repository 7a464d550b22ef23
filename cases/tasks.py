"""Celery tasks: thin wrappers that take ids, re-fetch and call services."""

from celery import shared_task

from . import services


@shared_task(acks_late=True)
def account_age_task(account_id: int) -> dict:
    account = services.account_age(account_id=account_id)
    return {"account_id": account.pk, "days_past_due": account.days_past_due, "bucket": account.bucket}
