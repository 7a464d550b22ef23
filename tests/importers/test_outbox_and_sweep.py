"""Placement jobs through the outbox (a broker outage delays a job, never fails the upload) and the
sweep that recovers batches whose worker died. Real PostgreSQL, real Redis, a real worker."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone, translation
from rest_framework.test import APIClient

from cases.importers import dispatch
from cases.importers.pipelines.postgres import LOCK_BATCH_RUN
from cases.importers.selectors import batch_progress, placement_batches_for_user
from cases.importers.services import placement_batch_create, placement_batch_process
from cases.models import OverdueAccount, PlacementBatch, PlacementJob
from compliance.audit import audit_verify
from compliance.models import AuditEvent
from tests import factories as f

from .conftest import fixture_file
from .test_worker import wait_done

CLOSED_PORT_BROKER = "redis://127.0.0.1:1/0"  # nothing listens on port 1: connection refused at once


@pytest.fixture
def lender_user(db):
    return f.user(role="lender", lender=f.lender())


@pytest.fixture
def broker_down():
    """The test process's broker URL points at a closed port (the worker, if any, keeps the real one)."""
    from servicing.celery import app

    real = app.conf.CELERY_BROKER_URL
    app.conf.CELERY_BROKER_URL = CLOSED_PORT_BROKER
    app.conf.CELERY_TASK_ALWAYS_EAGER = False
    yield real
    app.conf.CELERY_BROKER_URL = real


@pytest.mark.worker
@pytest.mark.postgres
def test_broker_down_upload_answers_202_at_once_and_runs_when_the_broker_is_back(
        shared_media, celery_worker, broker_down):
    from servicing.celery import app

    user = f.user(role="lender", lender=f.lender())
    client = APIClient()
    client.force_authenticate(user)
    t0 = time.monotonic()
    r = client.post("/api/v1/placements/", {"file": fixture_file("placements_utf8.csv")}, format="multipart")
    elapsed = time.monotonic() - t0
    assert r.status_code == 202, r.content
    assert elapsed < 3, f"the upload took {elapsed:.1f} s with the broker down"
    assert (r.data["state"], r.data["queued"]) == ("pending", True)
    batch = PlacementBatch.objects.get(pk=r.data["id"])
    job = PlacementJob.objects.get(batch=batch)
    # One quick try after commit failed; the job waits in the outbox, and the portal says so.
    assert job.sent_at is None and job.attempts == 1 and "Connection refused" in job.last_error
    with translation.override("en"):
        progress = batch_progress(batch=placement_batches_for_user(user=user).get(pk=batch.pk))
    assert progress["state"] == "queued" and "queued" in progress["message"]
    portal = APIClient()
    portal.force_login(user)
    page = portal.get(f"/portal/batches/{batch.pk}/", HTTP_ACCEPT_LANGUAGE="en")
    assert page.status_code == 200 and 'data-state="queued"' in page.content.decode()
    # The sweep while the broker is still down: nothing sent, nothing lost.
    assert dispatch.placement_sweep()["sent"] == 0
    assert PlacementJob.objects.get(pk=job.pk).sent_at is None

    app.conf.CELERY_BROKER_URL = broker_down  # Redis is back
    assert dispatch.placement_sweep()["sent"] == 1
    assert PlacementJob.objects.get(pk=job.pk).sent_at is not None
    d = wait_done(client, batch.pk)
    assert (d["state"], d["queued"], d["created_count"]) == ("applied", False, 4)
    assert OverdueAccount.objects.filter(lender=user.lender).count() == 4
    assert dispatch.placement_sweep()["sent"] == 0  # sent once only


@pytest.mark.postgres
def test_a_job_is_sent_once_even_if_the_sweep_and_the_commit_hook_race(require_postgres, transactional_db, broker_down):
    # While one sender holds the row (publishing), the other skips it instead of publishing twice.
    user = f.user(role="lender", lender=f.lender())
    batch = placement_batch_create(actor=user, file=fixture_file("placements_utf8.csv"), language="en")
    job = PlacementJob.objects.get(batch=batch)
    assert job.attempts == 1 and job.sent_at is None  # the after-commit try, broker down
    other = connection.copy()
    try:
        with other.cursor() as cur:
            cur.execute("BEGIN")
            cur.execute("SELECT id FROM cases_placementjob WHERE id = %s FOR UPDATE", [job.pk])
            assert dispatch.placement_job_send(job_id=job.pk) is False
            assert dispatch.placement_jobs_dispatch() == {"waiting": 1, "sent": 0}
            cur.execute("ROLLBACK")
    finally:
        other.close()
    assert PlacementJob.objects.get(pk=job.pk).attempts == 1  # skipped, not tried again


def _stale(batch: PlacementBatch, state: str, minutes: int = 60) -> None:
    long_ago = timezone.now() - timedelta(minutes=minutes)
    PlacementBatch.objects.filter(pk=batch.pk).update(state=state, started_at=long_ago, heartbeat_at=long_ago)
    PlacementJob.objects.filter(batch=batch).update(sent_at=long_ago)


@pytest.mark.postgres
def test_a_batch_left_processing_by_a_dead_worker_is_requeued_then_applied(require_postgres, lender_user, settings):
    settings.PLACEMENT_STALE_SECONDS = 600
    batch = placement_batch_create(actor=lender_user, file=fixture_file("placements_utf8.csv"), language="en")
    _stale(batch, "processing")
    fresh = placement_batch_create(actor=lender_user, file=fixture_file("placements_bom.csv"), language="en")
    _stale(fresh, "applying", minutes=1)  # a live run's recent heartbeat: left alone

    assert dispatch.placement_batches_sweep() == {"requeued": 1, "failed": 0}
    batch.refresh_from_db()
    assert (batch.state, batch.requeue_count, batch.heartbeat_at) == ("pending", 1, None)
    assert PlacementJob.objects.filter(batch=batch, sent_at__isnull=True).count() == 1
    event = AuditEvent.objects.get(action="cases.placement.requeued", subject_id=str(batch.pk))
    assert (event.data["from"], event.data["requeues"]) == ("processing", 1)
    assert PlacementBatch.objects.get(pk=fresh.pk).state == "applying"
    # The re-queued job runs (eager here) and the batch completes.
    assert dispatch.placement_jobs_dispatch()["sent"] == 1
    batch.refresh_from_db()
    assert (batch.state, batch.created_count) == ("applied", 4)
    assert audit_verify(record=False).ok


@pytest.mark.postgres
def test_a_batch_whose_run_still_holds_its_lock_is_not_requeued(require_postgres, lender_user, settings):
    # A long apply statement sends no heartbeat; its session still holds the batch's run lock.
    batch = placement_batch_create(actor=lender_user, file=fixture_file("placements_utf8.csv"), language="en")
    _stale(batch, "applying")
    other = connection.copy()
    try:
        with other.cursor() as cur:
            cur.execute("SELECT pg_advisory_lock(%s, %s::integer)", [LOCK_BATCH_RUN, batch.pk])
        assert dispatch.placement_batches_sweep() == {"requeued": 0, "failed": 0}
        assert PlacementBatch.objects.get(pk=batch.pk).state == "applying"
        with other.cursor() as cur:  # the run ends (explicitly: a closed session's locks go a moment later)
            cur.execute("SELECT pg_advisory_unlock(%s, %s::integer)", [LOCK_BATCH_RUN, batch.pk])
    finally:
        other.close()
    assert dispatch.placement_batches_sweep() == {"requeued": 1, "failed": 0}


@pytest.mark.postgres
def test_after_max_requeues_the_batch_fails_visibly_and_stays_failed(require_postgres, lender_user, settings):
    settings.PLACEMENT_MAX_REQUEUES = 2
    batch = placement_batch_create(actor=lender_user, file=fixture_file("placements_utf8.csv"), language="en")
    for n in (1, 2):
        _stale(batch, "processing")
        assert dispatch.placement_batches_sweep() == {"requeued": 1, "failed": 0}
        assert PlacementBatch.objects.get(pk=batch.pk).requeue_count == n
    _stale(batch, "applying")
    assert dispatch.placement_batches_sweep() == {"requeued": 0, "failed": 1}
    batch.refresh_from_db()
    assert batch.state == "failed" and "stopped 3 times" in batch.error_message and batch.finished_at
    assert AuditEvent.objects.filter(action="cases.placement.failed", subject_id=str(batch.pk)).exists()
    # A late re-delivery of the old message does not run it again.
    assert placement_batch_process(batch_id=batch.pk).state == "failed"
    assert OverdueAccount.objects.count() == 0
    assert dispatch.placement_batches_sweep() == {"requeued": 0, "failed": 0}


@pytest.mark.postgres
def test_a_pending_batch_whose_message_was_lost_gets_its_job_again(require_postgres, lender_user):
    batch = placement_batch_create(actor=lender_user, file=fixture_file("placements_utf8.csv"), language="en")
    long_ago = timezone.now() - timedelta(hours=1)
    PlacementBatch.objects.filter(pk=batch.pk).update(created_at=long_ago)
    PlacementJob.objects.filter(batch=batch).update(sent_at=long_ago)  # sent, then lost in the broker
    assert dispatch.placement_batches_sweep() == {"requeued": 1, "failed": 0}
    assert PlacementBatch.objects.get(pk=batch.pk).requeue_count == 0  # waiting is not a failure
    assert PlacementJob.objects.filter(batch=batch, sent_at__isnull=True).count() == 1
    assert dispatch.placement_batches_sweep() == {"requeued": 0, "failed": 0}  # its new job is waiting


def test_the_sweep_is_in_the_beat_schedule(db):
    # Seeded by the migration (run here again: transactional tests flush seeded rows).
    import importlib

    from django.apps import apps
    from django_celery_beat.models import PeriodicTask

    from cases import tasks

    importlib.import_module("cases.migrations.0006_placement_hardening").add_sweep(apps, None)
    task = PeriodicTask.objects.get(task="cases.tasks.placement_sweep_task")
    assert task.enabled and task.interval.every == 60
    assert task.task == tasks.placement_sweep_task.name
