"""Sending reminders through the compliance gate, in-process (locmem sender, controllable clock)."""

from __future__ import annotations

import io
from datetime import UTC, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone

from cases import services as case_services
from cases.models import ContactAttempt
from compliance.audit import audit_verify
from compliance.models import AuditEvent
from reminders import services
from reminders.models import Notification, Reminder
from reminders.senders import LocmemSender
from tests import factories as f

from .conftest import cn

pytestmark = pytest.mark.django_db


def _reminder(acc, due_at, *, channel="sms", key=None, promise=None):
    return services.reminder_create(account=acc, kind="promise_due", channel=channel, due_at=due_at, key=key,
                                    promise=promise)


def test_cn_reminder_at_2130_deferred_to_0800_then_sent(test_clock, locmem_sender):
    acc = f.account(lender=f.lender(), jurisdiction="CN", zones=("Asia/Shanghai",))
    promise = case_services.promise_create(actor=f.user(), account=acc, amount=Decimal("300.00"),
                                           due_date=cn(2, 9).date())
    r = _reminder(acc, cn(1, 21, 30), promise=promise)
    test_clock.set(cn(1, 21, 30))

    assert services.reminder_send(reminder_id=r.pk) == "deferred"
    r.refresh_from_db()
    assert r.next_attempt_at == cn(2, 8, 0)
    # 21:30 is lawful in China (quiet hours start at 22:00) but outside our reminder hours (08:00-21:00).
    deferred = AuditEvent.objects.get(action="reminders.reminder.deferred")
    assert deferred.data["decision"]["violations"][0]["code"] == "REMINDER.SEND_WINDOW"
    assert locmem_sender.calls == [] and not ContactAttempt.objects.exists()

    test_clock.set(cn(2, 7, 59))  # still quiet hours: not due yet, nothing happens
    assert services.reminders_due() == []
    assert services.reminder_send(reminder_id=r.pk) == "deferred"

    test_clock.set(cn(2, 8, 0))
    assert services.reminders_due() == [r.pk]
    assert services.reminder_send(reminder_id=r.pk) == "sent"
    r.refresh_from_db()
    attempt = ContactAttempt.objects.get()
    assert (attempt.channel, attempt.outcome, attempt.source) == ("sms", "delivered", "reminder")
    assert attempt.occurred_at == cn(2, 8, 0) and r.contact_attempt_id == attempt.pk
    assert r.sent_at == cn(2, 8, 0)
    assert list(locmem_sender.outbox) == [r.idempotency_key]
    msg = locmem_sender.outbox[r.idempotency_key]
    assert msg.to == acc.borrower.phones[0] and "300.00" in msg.body and "TD" in msg.body  # zh opt-out
    assert audit_verify(record=False).ok


def test_cn_quiet_hours_from_the_gate_defer_to_0800(test_clock, locmem_sender, settings):
    settings.REMINDER_SEND_WINDOW = ""  # only the law: the gate itself refuses 22:30 in China
    r = _reminder(f.account(lender=f.lender()), cn(1, 22, 30))
    test_clock.set(cn(1, 22, 30))
    assert services.reminder_send(reminder_id=r.pk) == "deferred"
    r.refresh_from_db()
    assert r.next_attempt_at == cn(2, 8, 0)
    blocked = AuditEvent.objects.get(action="compliance.contact.blocked")
    assert [v["code"] for v in blocked.data["violations"]] == ["CN.QUIET_HOURS"]
    assert AuditEvent.objects.filter(action="reminders.reminder.deferred").count() == 1
    assert not ContactAttempt.objects.exists()


def test_send_window_in_borrower_zone(test_clock, locmem_sender):
    acc = f.account(lender=f.lender(), jurisdiction="US", zones=("America/New_York",))
    r = _reminder(acc, cn(1, 10))
    test_clock.set(cn(1, 10))  # 21:00 or 22:00 the previous evening in New York
    assert services.reminder_send(reminder_id=r.pk) == "deferred"
    r.refresh_from_db()
    local = r.next_attempt_at.astimezone(ZoneInfo("America/New_York"))
    assert (local.hour, local.minute) == (8, 0)


def test_cease_flag_cancels_with_audit(test_clock, locmem_sender):
    acc = f.account(lender=f.lender(), cease=True)
    r = _reminder(acc, cn(1, 10))
    test_clock.set(cn(1, 10))
    assert services.reminder_send(reminder_id=r.pk) == "cancelled"
    event = AuditEvent.objects.get(action="reminders.reminder.cancelled")
    assert event.account_id == acc.pk and event.data["key"] == r.idempotency_key
    assert event.data["decision"]["next_allowed_at"] is None
    assert AuditEvent.objects.filter(action="compliance.contact.blocked", account_id=acc.pk).exists()
    assert locmem_sender.calls == [] and not ContactAttempt.objects.exists()
    # Cancelled is final: running it again changes nothing.
    assert services.reminder_send(reminder_id=r.pk) == "cancelled"


def test_run_twice_sends_once(test_clock, locmem_sender):
    r = _reminder(f.account(lender=f.lender()), cn(1, 10))
    test_clock.set(cn(1, 10, 5))
    assert [services.reminder_send(reminder_id=r.pk) for _ in range(3)] == ["sent", "sent", "sent"]
    assert locmem_sender.calls == [r.idempotency_key]
    assert ContactAttempt.objects.count() == 1


def test_not_due_yet_does_nothing(test_clock, locmem_sender):
    r = _reminder(f.account(lender=f.lender()), cn(1, 10))
    test_clock.set(cn(1, 9, 59))
    assert services.reminder_send(reminder_id=r.pk) == "scheduled"
    assert locmem_sender.calls == []


def test_sender_failure_retried_with_backoff_then_failed(test_clock, locmem_sender, settings):
    settings.REMINDER_MAX_ATTEMPTS = 3
    settings.REMINDER_RETRY_BASE_SECONDS = 60
    r = _reminder(f.account(lender=f.lender()), cn(1, 10))
    locmem_sender.fail_next = 10
    at = cn(1, 10)
    waits = []
    for expected in ("scheduled", "scheduled", "failed"):
        test_clock.set(at)
        assert services.reminder_send(reminder_id=r.pk) == expected
        r.refresh_from_db()
        waits.append((r.next_attempt_at - at).total_seconds())
        at = r.next_attempt_at
    assert waits[:2] == [60, 120]  # exponential backoff
    assert r.attempts == 3 and "simulated provider failure" in r.last_error
    assert locmem_sender.outbox == {}
    # Each try passed the gate and is on record, marked failed (not delivered).
    assert list(ContactAttempt.objects.values_list("outcome", flat=True)) == ["failed"] * 3
    assert AuditEvent.objects.filter(action="reminders.reminder.failed", subject_id=str(r.pk)).count() == 1
    assert AuditEvent.objects.filter(action="reminders.reminder.retry_scheduled").count() == 2


def test_transient_failure_then_success(test_clock, locmem_sender):
    r = _reminder(f.account(lender=f.lender()), cn(1, 10))
    locmem_sender.fail_next = 1
    test_clock.set(cn(1, 10))
    assert services.reminder_send(reminder_id=r.pk) == "scheduled"
    r.refresh_from_db()
    test_clock.set(r.next_attempt_at)
    assert services.reminder_send(reminder_id=r.pk) == "sent"
    assert list(locmem_sender.outbox) == [r.idempotency_key]
    assert sorted(ContactAttempt.objects.values_list("outcome", flat=True)) == ["delivered", "failed"]


def _stuck_sending(r, *, started: bool, minutes_ago: int = 30):
    Reminder.objects.filter(pk=r.pk).update(
        state="sending", attempts=1, claimed_at=timezone.now() - timedelta(minutes=minutes_ago),
        send_started_at=timezone.now() - timedelta(minutes=minutes_ago) if started else None,
    )


def test_recovery_after_crash_once_provider_accepted_does_not_resend(test_clock, locmem_sender):
    r = _reminder(f.account(lender=f.lender()), cn(1, 10))
    test_clock.set(cn(1, 10))
    from reminders.senders import OutboundMessage

    LocmemSender().send(OutboundMessage(key=r.idempotency_key, channel="sms", to="x", body="b"))
    _stuck_sending(r, started=True)
    assert services.reminders_due() == [r.pk]
    assert services.reminder_send(reminder_id=r.pk) == "sent"
    assert locmem_sender.calls == [r.idempotency_key]  # only the original call
    assert AuditEvent.objects.get(action="reminders.reminder.sent").data["recovered"] is True


def test_recovery_after_crash_before_provider_sends_once(test_clock, locmem_sender):
    r = _reminder(f.account(lender=f.lender()), cn(1, 10))
    test_clock.set(cn(1, 10))
    _stuck_sending(r, started=False)
    assert services.reminder_send(reminder_id=r.pk) == "sent"
    assert locmem_sender.calls == [r.idempotency_key]


def test_recent_sending_claim_is_left_alone(test_clock, locmem_sender):
    r = _reminder(f.account(lender=f.lender()), cn(1, 10))
    test_clock.set(cn(1, 10))
    _stuck_sending(r, started=True, minutes_ago=0)
    assert services.reminders_due() == []
    assert services.reminder_send(reminder_id=r.pk) == "sending"
    assert locmem_sender.calls == []


def test_backend_without_lookup_is_at_most_once(test_clock, settings):
    settings.REMINDER_SMS_BACKEND = "reminders.senders.ConsoleSender"
    r = _reminder(f.account(lender=f.lender()), cn(1, 10))
    test_clock.set(cn(1, 10))
    _stuck_sending(r, started=True)
    assert services.reminder_send(reminder_id=r.pk) == "failed"
    r.refresh_from_db()
    assert "delivery unknown" in r.last_error


def test_email_through_django_mail(test_clock, settings, mailoutbox):
    settings.REMINDER_EMAIL_BACKEND = "reminders.senders.DjangoEmailSender"
    acc = f.account(lender=f.lender(), jurisdiction="US", zones=("America/New_York",))
    r = _reminder(acc, cn(1, 10), channel="email")
    test_clock.set(cn(1, 22))  # 10:00 in New York (EDT) / 09:00 (EST): lawful there
    assert services.reminder_send(reminder_id=r.pk) == "sent"
    assert len(mailoutbox) == 1
    mail = mailoutbox[0]
    assert mail.to == [acc.borrower.emails[0]] and mail.extra_headers["X-Idempotency-Key"] == r.idempotency_key
    assert "Reply STOP" in mail.body


def test_withdrawn_consent_cancels(test_clock, locmem_sender):
    acc = f.account(lender=f.lender())
    r = _reminder(acc, cn(1, 10))
    acc.borrower.sms_consent = False
    acc.borrower.save()
    test_clock.set(cn(1, 10))
    assert services.reminder_send(reminder_id=r.pk) == "cancelled"
    assert locmem_sender.calls == []


def test_console_sender_writes_message():
    from reminders.senders import ConsoleSender, OutboundMessage

    out = io.StringIO()
    ConsoleSender(stream=out).send(OutboundMessage(key="k1", channel="sms", to="138", body="hello"))
    assert "hello" in out.getvalue() and "k1" in out.getvalue()


def test_file_sender_is_idempotent_by_key(tmp_path):
    from reminders.senders import FileSender, OutboundMessage

    sender = FileSender(directory=tmp_path)
    msg = OutboundMessage(key="k1", channel="sms", to="138", body="hello")
    assert sender.lookup("k1") is None
    sender.send(msg)
    sender.send(OutboundMessage(key="k1", channel="sms", to="138", body="changed"))
    assert sender.lookup("k1") == "k1"
    assert [m["body"] for m in sender.messages()] == ["hello"]


def test_clock_offset(test_clock):
    from servicing import clock

    clock.set_clock(path=test_clock.path, offset_seconds=3600)
    assert abs((clock.now() - timezone.now()).total_seconds() - 3600) < 5
    test_clock.real()
    assert abs((clock.now() - timezone.now()).total_seconds()) < 5
    assert clock.now().tzinfo is not None and clock.now().utcoffset() == UTC.utcoffset(None)


def test_failed_send_in_eager_mode_does_not_requeue_itself(test_clock, locmem_sender, monkeypatch,
                                                           django_capture_on_commit_callbacks,
                                                           django_assert_max_num_queries):
    """Eager Celery ignores countdowns: a self re-queue would run at once, find the row not due, re-queue..."""
    from reminders.tasks import reminder_send_task

    r = _reminder(f.account(lender=f.lender()), cn(1, 10))
    test_clock.set(cn(1, 10))
    locmem_sender.fail_next = 10
    runs = []
    real_send = services.reminder_send

    def counting_send(**kwargs):
        runs.append(kwargs)
        if len(runs) > 3:  # stop a regression here instead of hanging the run
            raise RuntimeError("reminder_send_task re-queued itself")
        return real_send(**kwargs)

    monkeypatch.setattr(services, "reminder_send", counting_send)
    # One send is about 40 queries (gate, audit chain, claim); the old re-queue loop ran until RecursionError.
    with django_capture_on_commit_callbacks(execute=True) as callbacks, django_assert_max_num_queries(60):
        assert reminder_send_task.delay(r.pk).get() == "scheduled"
    assert len(runs) == 1 and callbacks == []
    r.refresh_from_db()
    assert (r.state, r.attempts) == ("scheduled", 1)
    # The per-minute sweep picks the row up once it is due again.
    assert services.reminders_due() == []
    test_clock.set(r.next_attempt_at)
    assert services.reminders_due() == [r.pk]


def test_failed_send_audits_the_contact_attempt_outcome_change(test_clock, locmem_sender, settings):
    settings.REMINDER_MAX_ATTEMPTS = 2
    acc = f.account(lender=f.lender())
    r = _reminder(acc, cn(1, 10))
    locmem_sender.fail_next = 10
    test_clock.set(cn(1, 10))
    assert services.reminder_send(reminder_id=r.pk) == "scheduled"
    r.refresh_from_db()
    attempt = ContactAttempt.objects.get()
    assert attempt.outcome == "failed"
    changed = AuditEvent.objects.get(action="cases.contact_attempt.outcome_changed")
    assert (changed.subject_type, changed.subject_id) == ("cases.contactattempt", str(attempt.pk))
    assert (changed.lender_id, changed.account_id, changed.borrower_id) == (acc.lender_id, acc.pk, acc.borrower_id)
    assert {k: changed.data[k] for k in ("attempt_id", "from", "to", "account_id", "borrower_id", "lender_id")} == {
        "attempt_id": attempt.pk, "from": "delivered", "to": "failed", "account_id": acc.pk,
        "borrower_id": acc.borrower_id, "lender_id": acc.lender_id}
    retry = AuditEvent.objects.get(action="reminders.reminder.retry_scheduled")
    assert retry.data["contact_attempt_id"] == attempt.pk

    test_clock.set(r.next_attempt_at)
    assert services.reminder_send(reminder_id=r.pk) == "failed"
    second = ContactAttempt.objects.exclude(pk=attempt.pk).get()
    assert AuditEvent.objects.get(action="reminders.reminder.failed").data["contact_attempt_id"] == second.pk
    assert AuditEvent.objects.filter(action="cases.contact_attempt.outcome_changed").count() == 2
    assert audit_verify(record=False).ok


def test_recovered_claim_audits_the_contact_attempt_outcome_change(test_clock, locmem_sender):
    acc = f.account(lender=f.lender())
    r = _reminder(acc, cn(1, 10))
    test_clock.set(cn(1, 10))
    attempt = case_services.contact_attempt_record(
        account=acc, actor=None, channel="sms", outcome="delivered", source="reminder", occurred_at=cn(1, 10))
    Reminder.objects.filter(pk=r.pk).update(contact_attempt=attempt)
    _stuck_sending(r, started=False)
    assert services.reminder_send(reminder_id=r.pk) == "sent"
    attempt.refresh_from_db()
    assert attempt.outcome == "failed"
    changed = AuditEvent.objects.get(action="cases.contact_attempt.outcome_changed")
    assert changed.data["attempt_id"] == attempt.pk and changed.data["from"] == "delivered"


def _in_app(acc, recipient, due_at):
    return services.reminder_create(account=acc, kind="promise_due", channel="in_app", due_at=due_at,
                                    recipient=recipient)


def test_in_app_sent_counts_its_attempt(test_clock):
    agent = f.user(role="agent")
    r = _in_app(f.account(lender=f.lender(), agent=agent), agent, cn(1, 10))
    test_clock.set(cn(1, 10))
    assert services.reminder_send(reminder_id=r.pk) == "sent"
    r.refresh_from_db()
    sent = AuditEvent.objects.get(action="reminders.reminder.sent", subject_id=str(r.pk))
    assert r.attempts == sent.data["attempts"] == 1
    assert Notification.objects.filter(user=agent, account_id=r.account_id).count() == 1


def test_in_app_reminder_cancelled_after_reassignment(test_clock):
    former, new = f.user(role="agent"), f.user(role="agent")
    acc = f.account(lender=f.lender(), agent=former)
    r = _in_app(acc, former, cn(1, 10))
    case_services.account_assign_bulk(actor=f.user(role="supervisor"), account_ids=[acc.pk], agent=new)
    test_clock.set(cn(1, 10))
    assert services.reminder_send(reminder_id=r.pk) == "cancelled"
    assert not Notification.objects.exists()
    event = AuditEvent.objects.get(action="reminders.reminder.cancelled", subject_id=str(r.pk))
    assert event.data["recipient_id"] == former.pk and "can no longer see" in event.data["reason"]
    r.refresh_from_db()
    assert "can no longer see" in r.last_error
    # A deactivated recipient sees nothing either; a supervisor still sees every account.
    inactive = f.user(role="agent")
    acc2 = f.account(lender=f.lender(), agent=inactive)
    gone = _in_app(acc2, inactive, cn(1, 10))
    inactive.is_active = False
    inactive.save(update_fields=["is_active"])
    assert services.reminder_send(reminder_id=gone.pk) == "cancelled"
    sup = f.user(role="supervisor")
    assert services.reminder_send(reminder_id=_in_app(acc, sup, cn(1, 10)).pk) == "sent"
    assert list(Notification.objects.values_list("user_id", flat=True)) == [sup.pk]


def test_an_opted_out_number_gets_no_reminder_through_the_gate(test_clock, locmem_sender):
    """The opt-out lives in the one gate (issue 10): a reminder to a number that replied STOP / 退订 is
    refused there, and the refusal cancels it (audited), like any outreach."""
    from cases.services import borrower_opt_out
    from compliance.models import AuditEvent

    acc = f.account(lender=f.lender())
    r = _reminder(acc, cn(1, 10))
    borrower_opt_out(borrower=acc.borrower, address=acc.borrower.phones[0], actor=None, source="sms-reply")
    test_clock.set(cn(1, 10))
    assert services.reminder_send(reminder_id=r.pk) == "cancelled"
    assert locmem_sender.calls == []
    blocked = AuditEvent.objects.get(action="compliance.contact.blocked", account_id=acc.pk)
    assert blocked.data["violations"][0]["code"].endswith("MESSAGE_CONSENT")
