"""The daily beat entry and the per-outcome hook: tasks re-fetch by id and call the services."""

from __future__ import annotations

import pytest

from compliance.models import AuditEvent
from scoring.models import AccountScore
from scoring.tasks import account_score_refresh_enqueue, scores_refresh_task
from tests import factories as f

pytestmark = pytest.mark.django_db


def test_beat_schedules_the_daily_refresh_and_the_strategy_run():
    # Seeded by the migration (run here again: transactional tests flush seeded rows); idempotent.
    import importlib

    from django.apps import apps
    from django_celery_beat.models import PeriodicTask

    migration = importlib.import_module("scoring.migrations.0002_beat_schedule")
    migration.forwards(apps, None)
    migration.forwards(apps, None)
    assert PeriodicTask.objects.filter(task="scoring.tasks.scores_refresh_task").count() == 1
    tasks = set(PeriodicTask.objects.filter(enabled=True).values_list("task", flat=True))
    assert {"scoring.tasks.scores_refresh_task", "scoring.tasks.strategy_steps_run_task"} <= tasks


def test_daily_task_scores_open_accounts_and_drops_closed_ones(require_postgres):
    lender = f.lender()
    open_acc = f.account(lender=lender)
    closed = f.account(lender=lender)
    scores_refresh_task.delay().get()
    assert AccountScore.objects.filter(account__in=[open_acc, closed]).count() == 2
    closed.status = "paid"
    closed.save(update_fields=["status"])
    counts = scores_refresh_task.delay().get()
    assert counts["removed"] == 1 and not AccountScore.objects.filter(account=closed).exists()
    assert AuditEvent.objects.filter(action="scoring.scores.refreshed").count() == 2


def test_outcome_hook_rescores_after_commit(require_postgres, django_capture_on_commit_callbacks):
    acc = f.account(lender=f.lender())
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        account_score_refresh_enqueue(acc.pk)
    assert not AccountScore.objects.filter(account=acc).exists()  # nothing before the outcome commits
    for callback in callbacks:
        callback()
    assert AccountScore.objects.get(account=acc).method == "rules"


def test_full_refresh_outside_a_transaction_pipelines_every_batch(transactional_db, require_postgres):
    from scoring import services

    lender = f.lender()
    accounts = [f.account(lender=lender) for _ in range(7)]
    counts = services.scores_refresh(batch_size=3)  # 3 batches through the writer thread
    assert counts["scored"] == 7
    assert set(AccountScore.objects.values_list("account_id", flat=True)) == {a.pk for a in accounts}
