"""Celery tasks: thin, take ids, re-fetch, idempotent (the services hold the logic).

Beat (django-celery-beat, editable in the admin; seeded by migration 0002):
ageing daily, scheduling hourly, the sweep every minute. The sweep is what makes the broker
optional for correctness: reminders are rows, so anything missed while Redis was down is sent
on the first sweep after it is back.
"""

from __future__ import annotations

import logging

from celery import shared_task
from django.db import transaction

from cases import ageing

from . import services

log = logging.getLogger(__name__)


def enqueue_send(reminder_id: int) -> None:
    """Queue a send after the current transaction commits; a broker error is logged, never raised
    (the row stays due and the next sweep picks it up)."""

    def _publish():
        try:
            reminder_send_task.apply_async((reminder_id,), retry=False)
        except Exception as exc:  # noqa: BLE001 - broker down: the sweep catches up
            log.warning("could not queue reminder %s (%s); the sweep will send it", reminder_id, exc)

    transaction.on_commit(_publish)


@shared_task(acks_late=True)
def reminder_send_task(reminder_id: int) -> str:
    # A failed send leaves the row scheduled with a backoff; the per-minute sweep sends it when due.
    # No self re-queue with a countdown: eager mode ignores countdowns and would recurse.
    return services.reminder_send(reminder_id=reminder_id)


@shared_task(acks_late=True)
def reminders_sweep_task(limit: int = 1000) -> int:
    ids = services.reminders_due(limit=limit)
    for reminder_id in ids:
        enqueue_send(reminder_id)
    return len(ids)


@shared_task(acks_late=True)
def reminders_schedule_task() -> dict:
    return services.reminders_schedule()


@shared_task(acks_late=True)
def accounts_age_task() -> dict:
    return ageing.accounts_age()


@shared_task(acks_late=True)
def callbacks_notify_task() -> dict:
    """Agents' callbacks due soon become reminders (then notifications); frequent and cheap."""
    return services.reminders_schedule(callbacks_only=True)
