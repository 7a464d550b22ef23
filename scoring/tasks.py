"""Celery tasks: thin, take ids, idempotent (re-scoring gives the same rows for the same history)."""

from __future__ import annotations

import logging

from celery import shared_task
from django.db import transaction

from . import services

log = logging.getLogger(__name__)


@shared_task(acks_late=True)
def scores_refresh_task(lender_id: int | None = None) -> dict:
    """Daily (beat): every open account re-scored with the model in use."""
    return services.scores_refresh(lender_id=lender_id)


@shared_task(acks_late=True)
def account_score_refresh_task(account_id: int) -> None:
    services.account_score_refresh(account_id=account_id)


def account_score_refresh_enqueue(account_id: int) -> None:
    """For the hook after an outcome is recorded: queue a re-score once the outcome commits.

    A broker error is logged, never raised (the outcome is recorded; the daily refresh catches up)."""

    def _publish():
        try:
            account_score_refresh_task.apply_async((account_id,), retry=False)
        except Exception as exc:  # noqa: BLE001 - broker down: the daily run re-scores it
            log.warning("could not queue the re-score of account %s (%s)", account_id, exc)

    transaction.on_commit(_publish)


@shared_task(acks_late=True)
def strategy_steps_run_task() -> dict:
    """Daily (beat): due strategy steps for every lender's accounts, each through the compliance gate."""
    from . import strategy_services

    return strategy_services.strategy_steps_run()
