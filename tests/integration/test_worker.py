"""A real Celery worker process, fed through Redis, runs tasks against the PostgreSQL test database."""

import pytest

from cases.models import OverdueAccount
from cases.tasks import account_age_task
from compliance.models import AuditEvent
from tests import factories as f


@pytest.mark.worker
def test_worker_ages_account(celery_worker):
    acc = f.account(lender=f.lender(), due_days_ago=75)
    assert acc.bucket == "M0"
    result = account_age_task.delay(acc.pk)
    assert result.get(timeout=60) == {"account_id": acc.pk, "days_past_due": 75, "bucket": "M3"}
    acc.refresh_from_db()
    assert (acc.days_past_due, acc.bucket) == (75, "M3")
    assert AuditEvent.objects.filter(action="cases.account.aged", account_id=acc.pk).exists()
    # It really went through the worker process, not in-process.
    assert "account_age_task" in celery_worker["log"].read_text()
    assert OverdueAccount.objects.count() == 1
