"""Reminders through a real Celery worker (Redis broker, PostgreSQL), with the clock shared by file."""

from __future__ import annotations

import pytest

from cases.models import ContactAttempt
from compliance.models import AuditEvent
from reminders import services
from reminders.models import Reminder
from reminders.tasks import reminder_send_task, reminders_sweep_task
from tests import factories as f

from .conftest import cn, wait_for
from .crashing import calls

pytestmark = pytest.mark.worker


def _state(r):
    return Reminder.objects.get(pk=r.pk).state


def _sweep():
    return reminders_sweep_task.delay().get(timeout=60)


def test_cn_2130_deferred_to_0800_and_sent_then(test_clock, outbox, start_worker):
    acc = f.account(lender=f.lender(), jurisdiction="CN", zones=("Asia/Shanghai",))
    r = services.reminder_create(account=acc, kind="promise_due", channel="sms", due_at=cn(1, 21, 30))
    test_clock.set(cn(1, 21, 30))
    start_worker()

    assert _sweep() == 1
    wait_for(lambda: _state(r) == "deferred")
    r.refresh_from_db()
    assert r.next_attempt_at == cn(2, 8, 0)
    assert calls(outbox) == []

    test_clock.set(cn(2, 7, 59))
    assert _sweep() == 0
    assert _state(r) == "deferred" and calls(outbox) == []

    test_clock.set(cn(2, 8, 0))
    assert _sweep() == 1
    wait_for(lambda: _state(r) == "sent")
    assert calls(outbox) == [r.idempotency_key]
    assert ContactAttempt.objects.get().occurred_at == cn(2, 8, 0)


def test_cease_gets_no_reminder_and_cancellation_is_audited(test_clock, outbox, start_worker):
    acc = f.account(lender=f.lender(), cease=True)
    r = services.reminder_create(account=acc, kind="promise_due", channel="sms", due_at=cn(1, 10))
    test_clock.set(cn(1, 10))
    start_worker()
    assert _sweep() == 1
    wait_for(lambda: _state(r) == "cancelled")
    assert AuditEvent.objects.filter(action="reminders.reminder.cancelled", subject_id=str(r.pk)).exists()
    assert calls(outbox) == [] and not ContactAttempt.objects.exists()


@pytest.mark.parametrize("crash_point", ["after", "before"])
def test_worker_killed_mid_send_then_retried_sends_exactly_once(test_clock, outbox, start_worker, tmp_path, crash_point):
    r = services.reminder_create(account=f.account(lender=f.lender()), kind="promise_due", channel="sms",
                                 due_at=cn(1, 10))
    test_clock.set(cn(1, 10))
    marker = tmp_path / "crash"
    marker.write_text(crash_point)
    first = start_worker(REMINDER_CRASH_MARKER=str(marker))
    reminder_send_task.delay(r.pk)
    assert first["process"].wait(timeout=60) == 1  # killed inside send()
    assert _state(r) == "sending"
    assert calls(outbox) == ([r.idempotency_key] if crash_point == "after" else [])

    marker.unlink()
    start_worker(REMINDER_STALE_SENDING_SECONDS="1")
    wait_for(lambda: _sweep() >= 0 and _state(r) == "sent", timeout=60, interval=1.0)
    assert calls(outbox) == [r.idempotency_key]  # exactly one message handed to the provider
    assert ContactAttempt.objects.filter(outcome="delivered").count() == 1
    # Running the task again changes nothing.
    assert reminder_send_task.delay(r.pk).get(timeout=60) == "sent"
    assert calls(outbox) == [r.idempotency_key]
