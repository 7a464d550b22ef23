"""Celery tasks: thin wrappers that take ids, re-fetch and call services."""

from celery import shared_task

from . import services


@shared_task(acks_late=True)
def account_age_task(account_id: int) -> dict:
    account = services.account_age(account_id=account_id)
    return {"account_id": account.pk, "days_past_due": account.days_past_due, "bucket": account.bucket}


@shared_task(bind=True, acks_late=True, max_retries=60)
def placement_batch_process_task(self, batch_id: int) -> dict:
    """Validate and apply one uploaded placement/recall file (cases.importers.services)."""
    from .importers.services import placement_batch_process

    batch = placement_batch_process(batch_id=batch_id)
    if getattr(batch, "run_busy", False) and not self.request.is_eager:
        # Another run holds the batch, e.g. the session of a killed worker still finishing its last
        # statement: come back, rather than leave the batch "applying" with nobody on it.
        raise self.retry(countdown=60)
    return {"batch_id": batch.pk, "state": batch.state, "created": batch.created_count,
            "updated": batch.updated_count, "unchanged": batch.unchanged_count, "errors": batch.error_count}


@shared_task(acks_late=True)
def placement_sweep_task() -> dict:
    """Beat, every minute: send the placement jobs still in the outbox, recover stuck batches."""
    from .importers.dispatch import placement_sweep

    return placement_sweep()


@shared_task(acks_late=True)
def contact_attempts_close_unreported_task() -> dict:
    """Beat, every minute: started outreach left open 30 minutes closes as unreported (still counted)."""
    return {"closed": services.contact_attempts_close_unreported()}
