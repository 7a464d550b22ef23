"""Scheduling reminders in bulk (idempotent), agent notifications, and the broker-down path."""

from __future__ import annotations

import logging
from datetime import timedelta
from decimal import Decimal

import pytest

from cases import services as case_services
from cases.models import Callback, Instalment, RepaymentPlan
from compliance.models import AuditEvent
from reminders import services
from reminders.models import Notification, Reminder
from tests import factories as f

from .conftest import cn

pytestmark = pytest.mark.django_db


def test_schedule_promise_instalment_and_callback_reminders_idempotently(test_clock, locmem_sender):
    test_clock.set(cn(0, 6))
    agent = f.user(role="agent")
    lender = f.lender()
    acc = f.account(lender=lender, agent=agent)
    promise = case_services.promise_create(actor=agent, account=acc, amount=Decimal("100"), due_date=cn(1, 0).date())
    acc2 = f.account(lender=lender, agent=agent, sms_consent=False)  # email only
    plan = RepaymentPlan.objects.create(account=acc2, total_amount=Decimal("100"), currency="CNY")
    inst = Instalment.objects.create(plan=plan, seq=1, due_date=cn(0, 0).date(), amount=Decimal("100"))
    callback = Callback.objects.create(account=acc, agent=agent, due_at=cn(0, 15), note="call back after lunch")
    acc3 = f.account(lender=lender, status="closed")
    PromiseToPay = type(promise)
    PromiseToPay.objects.create(account=acc3, amount=Decimal("5"), currency="CNY", due_date=cn(1, 0).date())

    result = services.reminders_schedule()
    keys = set(Reminder.objects.values_list("idempotency_key", flat=True))
    d1 = cn(1, 0).date().isoformat()
    d0 = cn(0, 0).date().isoformat()
    assert {f"promise:{promise.pk}:{d1}:d-1:sms", f"promise:{promise.pk}:{d1}:d0:sms",
            f"promise:{promise.pk}:{d1}:agent:{agent.pk}", f"instalment:{inst.pk}:{d0}:d0:email",
            f"instalment:{inst.pk}:{d0}:agent:{agent.pk}"} <= keys
    assert sum(k.startswith("callback:") for k in keys) == 1
    assert not Reminder.objects.filter(account=acc3).exists()  # closed accounts get nothing
    assert result["created"] == len(keys) == 6
    assert AuditEvent.objects.filter(action="reminders.reminder.scheduled").count() == 6
    day_before = Reminder.objects.get(idempotency_key=f"promise:{promise.pk}:{d1}:d-1:sms")
    assert day_before.due_at == cn(0, 10) and day_before.state == "scheduled"

    # Again: nothing new, nothing audited twice.
    assert services.reminders_schedule()["created"] == 0
    assert AuditEvent.objects.filter(action="reminders.reminder.scheduled").count() == 6

    # At 15:00 everything due has gone out: borrower messages via the gate, agents as notifications.
    test_clock.set(cn(0, 15))
    for pk in services.reminders_due():
        services.reminder_send(reminder_id=pk)
    assert Reminder.objects.get(callback=callback).state == "sent"
    kinds = sorted(Notification.objects.filter(user=agent).values_list("kind", flat=True))
    assert kinds == ["callback_due", "instalment_due"]  # the promise is due tomorrow
    inst_r = Reminder.objects.get(idempotency_key=f"instalment:{inst.pk}:{d0}:d0:email")
    assert inst_r.state == "sent", inst_r.last_error
    assert list(locmem_sender.outbox) != []


def test_callback_reminder_cancelled_when_callback_done(test_clock):
    test_clock.set(cn(0, 9))
    agent = f.user(role="agent")
    acc = f.account(lender=f.lender(), agent=agent)
    callback = Callback.objects.create(account=acc, agent=agent, due_at=cn(0, 11))
    services.reminders_schedule(callbacks_only=True)
    r = Reminder.objects.get(callback=callback)
    assert r.due_at == cn(0, 11) - timedelta(minutes=10)
    Callback.objects.filter(pk=callback.pk).update(status="done")
    test_clock.set(cn(0, 11))
    assert services.reminder_send(reminder_id=r.pk) == "cancelled"
    assert not Notification.objects.exists()


def test_broker_down_web_logging_works_and_sweep_catches_up(transactional_db, test_clock, locmem_sender, client,
                                                            require_postgres, caplog):
    """With an unreachable broker, logging outreach still works; queued work waits in the DB."""
    from reminders.tasks import enqueue_send
    from servicing.celery import app

    test_clock.set(cn(0, 10))
    agent = f.user(role="agent")
    acc = f.account(lender=f.lender(), agent=agent)
    r = services.reminder_create(account=acc, kind="promise_due", channel="sms", due_at=cn(0, 9))
    old = (app.conf.broker_url, app.conf.broker_write_url, app._pool, app.amqp._producer_pool)
    # Nothing listens on port 1: the broker is down for this process (fresh connection pools).
    app.conf.broker_url = app.conf.broker_write_url = "redis://127.0.0.1:1/0"
    app._pool = app.amqp._producer_pool = None
    app.conf.CELERY_TASK_ALWAYS_EAGER = False
    try:
        client.force_login(agent)
        resp = client.post(f"/api/v1/accounts/{acc.pk}/contact-attempts/",
                           {"channel": "call", "outcome": "no_answer"}, content_type="application/json")
        assert resp.status_code == 201, resp.content
        with caplog.at_level(logging.WARNING, logger="reminders.tasks"):
            enqueue_send(r.pk)  # publishing fails: logged, not raised
        assert "the sweep will send it" in caplog.text
    finally:
        if app._pool is not None:
            app._pool.force_close_all()
        app.conf.broker_url, app.conf.broker_write_url, app._pool, app.amqp._producer_pool = old
        app.conf.CELERY_TASK_ALWAYS_EAGER = True
    assert Reminder.objects.get(pk=r.pk).state == "scheduled"
    # Broker back: the sweep finds the due row and sends it.
    test_clock.set(cn(0, 12))
    assert services.reminders_due() == [r.pk]
    assert services.reminder_send(reminder_id=r.pk) == "sent"

