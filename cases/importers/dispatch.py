"""Placement jobs through a transactional outbox, and the sweep that keeps batches from being stuck.

- ``job_enqueue`` writes a PlacementJob row in the caller's transaction (the one that creates or
  re-queues the batch) and, after commit, tries one publish with a short timeout. A broker outage
  therefore neither blocks nor fails the upload: the row waits.
- ``placement_sweep`` (Celery beat, every minute: ``cases.tasks.placement_sweep_task``) sends the
  jobs still waiting, and recovers batches whose worker died: a batch "processing" or "applying"
  whose heartbeat is older than PLACEMENT_STALE_SECONDS, and that no run holds (PostgreSQL: the
  batch's run lock is free), is re-queued (it is resumable, see PlacementBatchPart), and after
  PLACEMENT_MAX_REQUEUES re-queues failed with a message. A batch whose job was sent long ago but
  that never started (the message was lost) gets its job sent again.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Exists, F, OuterRef, Q
from django.db.models.functions import Coalesce
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from cases.models import PlacementBatch, PlacementJob
from compliance.audit import audit_log

from .pipelines import postgres

log = logging.getLogger(__name__)

RUNNING = (PlacementBatch.State.PROCESSING, PlacementBatch.State.APPLYING)


def job_enqueue(*, batch: PlacementBatch) -> PlacementJob:
    """The batch's job as an outbox row, in the caller's transaction; one publish is tried after commit."""
    job = PlacementJob.objects.create(batch=batch)
    transaction.on_commit(lambda: placement_job_send(job_id=job.pk))
    return job


def _publish(batch_id: int) -> None:
    from cases.tasks import placement_batch_process_task as task

    timeout = settings.PLACEMENT_DISPATCH_TIMEOUT
    # A connection of our own with short timeouts and no retries: Celery's defaults retry the
    # connection and the publish for ~20 s, which is what kept requests hanging while Redis was down.
    options = {"socket_connect_timeout": timeout, "socket_timeout": timeout, "max_retries": 0}
    with task.app.connection_for_write(connect_timeout=timeout, transport_options=options) as conn:
        # ignore_result: nobody reads this task's result, and subscribing to the result backend (Redis too)
        # would retry its own connection for ~20 s.
        task.apply_async((batch_id,), connection=conn, retry=False, ignore_result=True)


def placement_job_send(*, job_id: int) -> bool:
    """Hand one waiting job to the broker. True if sent; False if already sent, taken by another
    sender, or the broker could not be reached (the row then waits for the sweep)."""
    return _send(job_id) == "sent"


def _send(job_id: int) -> str:
    """Outcome: "sent", "skipped" (sent already, or another sender holds it) or "failed" (broker error)."""
    from cases.tasks import placement_batch_process_task as task

    if task.app.conf.task_always_eager:
        # No broker (the embedded run): the task runs here, outside any lock on the job row.
        claimed = PlacementJob.objects.filter(pk=job_id, sent_at__isnull=True).update(sent_at=timezone.now())
        if claimed:
            task.delay(PlacementJob.objects.values_list("batch_id", flat=True).get(pk=job_id))
        return "sent" if claimed else "skipped"
    with transaction.atomic():
        # Locked while publishing, so the sweep and the on-commit send never publish it twice.
        job = PlacementJob.objects.select_for_update(skip_locked=True).filter(pk=job_id, sent_at__isnull=True).first()
        if job is None:
            return "skipped"
        try:
            _publish(job.batch_id)
        except Exception as exc:  # noqa: BLE001 - any broker error: the job stays queued for the sweep
            log.warning("placement job %s (batch %s) not sent: %s", job.pk, job.batch_id, exc)
            PlacementJob.objects.filter(pk=job.pk).update(attempts=F("attempts") + 1,
                                                         last_error=f"{exc.__class__.__name__}: {exc}"[:500])
            return "failed"
        PlacementJob.objects.filter(pk=job.pk).update(sent_at=timezone.now(), attempts=F("attempts") + 1)
    return "sent"


def placement_jobs_dispatch(*, limit: int = 500) -> dict:
    """Send the jobs still waiting, oldest first; stops at the first broker error (it is down)."""
    sent = 0
    ids = list(PlacementJob.objects.filter(sent_at__isnull=True).order_by("created_at", "pk")
               .values_list("pk", flat=True)[:limit])
    for job_id in ids:
        outcome = _send(job_id)
        sent += outcome == "sent"
        if outcome == "failed":
            break
    return {"waiting": len(ids), "sent": sent}


def _run_is_alive(batch_id: int) -> bool:
    """PostgreSQL: a run holds the batch's advisory lock for as long as its session lives (a long
    apply statement sends no heartbeat, but holds the lock). Elsewhere only the heartbeat tells."""
    if connection.vendor != "postgresql":
        return False
    with postgres.batch_run_lock(batch_id=batch_id) as acquired:
        return not acquired


def placement_batches_sweep(*, now=None) -> dict:
    """Re-queue (or, past PLACEMENT_MAX_REQUEUES, fail) the batches whose worker is gone."""
    now = now or timezone.now()
    stale = now - timedelta(seconds=settings.PLACEMENT_STALE_SECONDS)
    unsent = PlacementJob.objects.filter(batch_id=OuterRef("pk"), sent_at__isnull=True)
    last_sent = PlacementJob.objects.filter(batch_id=OuterRef("pk"), sent_at__gte=stale)
    candidates = list(
        PlacementBatch.objects.annotate(beat=Coalesce("heartbeat_at", "started_at", "created_at"))
        .filter(Q(state__in=RUNNING, beat__lt=stale)
                # Waiting long after its job was sent: the message was lost (a broker flushed, say).
                | Q(state=PlacementBatch.State.PENDING, beat__lt=stale))
        .exclude(Exists(unsent)).exclude(Exists(last_sent)).order_by("pk").values_list("pk", flat=True)[:200]
    )
    requeued = failed = 0
    for batch_id in candidates:
        if _run_is_alive(batch_id):
            continue
        outcome = _recover(batch_id=batch_id, stale=stale)
        requeued += outcome == "requeued"
        failed += outcome == "failed"
    return {"requeued": requeued, "failed": failed}


def _recover(*, batch_id: int, stale) -> str | None:
    from . import services

    with transaction.atomic():
        batch = PlacementBatch.objects.select_for_update(of=("self",)).select_related("uploaded_by").filter(pk=batch_id).first()
        if batch is None:
            return None
        beat = batch.heartbeat_at or batch.started_at or batch.created_at
        if batch.state not in (*RUNNING, PlacementBatch.State.PENDING) or beat >= stale:
            return None  # it moved on meanwhile
        if batch.state == PlacementBatch.State.PENDING:
            # Never started: send its job again. Not counted: in a long queue behind a big file a
            # batch waits for a while, and running the job twice is harmless (the task is idempotent).
            job_enqueue(batch=batch)
            return "requeued"
        if batch.requeue_count >= settings.PLACEMENT_MAX_REQUEUES:
            with translation.override(batch.options.get("language") or "zh-hans"):
                message = _("Processing this file stopped %(n)s times without finishing (the worker was lost); it was "
                            "given up. Upload the file again, or split it into smaller files.") % {"n": batch.requeue_count + 1}
            services._finish(batch, state=PlacementBatch.State.FAILED, message=message)
            return "failed"
        before = batch.state
        batch.requeue_count += 1
        batch.state = PlacementBatch.State.PENDING
        batch.heartbeat_at = None
        batch.save(update_fields=["requeue_count", "state", "heartbeat_at"])
        audit_log(action="cases.placement.requeued", actor=None, actor_label="placement sweep",
                  lender_id=batch.lender_id, subject=batch,
                  data={"from": before, "to": batch.state, "requeues": batch.requeue_count,
                        "last_heartbeat": beat.isoformat()})
        job_enqueue(batch=batch)
    return "requeued"


def placement_sweep() -> dict:
    """The periodic job: recover stuck batches, then send every waiting job (theirs included)."""
    result = placement_batches_sweep()
    result.update(placement_jobs_dispatch())
    return result
