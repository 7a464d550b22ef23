"""Delivery receipts for reminders (no MessageDelivery row: the reminder holds the provider's id): "failed" is
final, a repeat changes nothing and is not audited twice, and the lookup uses an index."""

from __future__ import annotations

import pytest
from django.db import connection

from borrowers.receipts import delivery_receipt_apply
from cases.models import ContactAttempt
from compliance.models import AuditEvent
from reminders import services
from reminders.models import Reminder
from tests import factories as f

from .conftest import cn

pytestmark = pytest.mark.django_db


@pytest.fixture
def sent(test_clock, locmem_sender):
    acc = f.account(lender=f.lender(), jurisdiction="CN", zones=("Asia/Shanghai",))
    r = services.reminder_create(account=acc, kind="promise_due", channel="sms", due_at=cn(1, 10))
    test_clock.set(cn(1, 10))
    assert services.reminder_send(reminder_id=r.pk) == "sent"
    r.refresh_from_db()
    return r


def _receipts() -> int:
    return AuditEvent.objects.filter(action="borrowers.message.receipt").count()


def test_failed_is_final_and_repeats_change_nothing(sent):
    pid = sent.provider_message_id
    assert delivery_receipt_apply(channel="sms", provider_message_id=pid, status="undelivered") is True
    attempt = ContactAttempt.objects.get(pk=sent.contact_attempt_id)
    assert attempt.outcome == "failed" and _receipts() == 1
    # The same receipt again, then a late "delivered": nothing changes, nothing more is audited.
    assert delivery_receipt_apply(channel="sms", provider_message_id=pid, status="failed") is False
    assert delivery_receipt_apply(channel="sms", provider_message_id=pid, status="delivered") is False
    attempt.refresh_from_db()
    assert attempt.outcome == "failed" and _receipts() == 1


def test_the_reminder_lookup_by_provider_id_is_indexed(require_postgres, sent):
    qs = Reminder.objects.filter(channel="sms", provider_message_id=sent.provider_message_id)
    with connection.cursor() as cursor:
        cursor.execute("SET enable_seqscan = off")
        plan = qs.explain()
        cursor.execute("RESET enable_seqscan")
    assert "reminder_provider_id_idx" in plan
