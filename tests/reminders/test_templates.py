"""Borrower reminders use the lender's message template in the borrower's language (else the built-in text),
with money grouped by thousands and carrying its currency, and dates localised; the gate is unchanged."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.utils import formats, translation

from borrowers.messages import message_template_save
from borrowers.models import MessageTemplate
from cases import services as case_services
from cases.models import ContactAttempt
from compliance.models import AuditEvent
from reminders import services
from tests import factories as f

from .conftest import cn

pytestmark = pytest.mark.django_db

ZH_PROMISE = "{name}您好，您承诺于{due_date}支付的{amount}（账户{ref}，{lender}）请按时还款。"
EN_PROMISE = "Hello {name}, your payment of {amount} on account {ref} is due on {due_date}. {lender}"


@pytest.fixture
def boss():
    return f.user(role="supervisor")


def _local_date(day, language: str) -> str:
    with translation.override(language):
        return formats.date_format(day, "DATE_FORMAT")


def _promise_reminder(acc, *, amount="12345.60", send_at=None, channel="sms"):
    promise = case_services.promise_create(actor=f.user(), account=acc, amount=Decimal(amount),
                                           due_date=cn(2, 9).date())
    reminder = services.reminder_create(account=acc, kind="promise_due", channel=channel,
                                        due_at=send_at or cn(1, 10), promise=promise)
    return promise, reminder


def _both_templates(boss, lender):
    message_template_save(actor=boss, lender=lender, kind="promise_due", language="zh-hans", subject="",
                          body=ZH_PROMISE)
    message_template_save(actor=boss, lender=lender, kind="promise_due", language="en",
                          subject="{lender}: payment due {due_date}", body=EN_PROMISE)


def test_zh_borrower_gets_the_lenders_chinese_template(test_clock, locmem_sender, boss):
    lender = f.lender()
    _both_templates(boss, lender)
    acc = f.account(lender=lender, balance="20000.00", jurisdiction="CN", zones=("Asia/Shanghai",))
    promise, r = _promise_reminder(acc)
    test_clock.set(cn(1, 10))

    assert services.reminder_send(reminder_id=r.pk) == "sent"
    body = locmem_sender.outbox[r.idempotency_key].body
    day = promise.due_date
    assert body.startswith(f"{acc.borrower.name}您好，您承诺于{day.year}年{day.month}月{day.day}日支付的12,345.60 CNY"
                           f"（账户{acc.external_ref}，{lender.name}）请按时还款。")
    assert "退订" in body  # the opt-out the template lacked is added, in the borrower's language
    # Through the gate exactly as before: one recorded borrower contact, tied to the reminder.
    attempt = ContactAttempt.objects.get()
    r.refresh_from_db()
    assert (attempt.party, attempt.source, r.contact_attempt_id) == ("borrower", "reminder", attempt.pk)


def test_english_borrower_gets_the_english_template_with_subject(test_clock, settings, mailoutbox, boss):
    settings.REMINDER_EMAIL_BACKEND = "reminders.senders.DjangoEmailSender"
    lender = f.lender()
    _both_templates(boss, lender)
    acc = f.account(lender=lender, balance="2000000.00", currency="USD", jurisdiction="US",
                    zones=("America/New_York",))
    promise, r = _promise_reminder(acc, amount="1234567.89", channel="email")
    test_clock.set(cn(1, 22))  # 10:00 / 09:00 in New York: lawful there

    assert services.reminder_send(reminder_id=r.pk) == "sent"
    mail = mailoutbox[0]
    date_en = _local_date(promise.due_date, "en")
    assert mail.body.startswith(f"Hello {acc.borrower.name}, your payment of 1,234,567.89 USD on account "
                                f"{acc.external_ref} is due on {date_en}. {lender.name}")
    assert mail.body.endswith("Reply STOP to opt out.")
    assert mail.subject == f"{lender.name}: payment due {date_en}"


def test_without_a_template_in_the_borrowers_language_the_built_in_text_is_used(test_clock, locmem_sender, boss):
    lender = f.lender()
    message_template_save(actor=boss, lender=lender, kind="promise_due", language="en", subject="", body=EN_PROMISE)
    other = f.lender()  # another lender's Chinese template is never used
    message_template_save(actor=boss, lender=other, kind="promise_due", language="zh-hans", subject="",
                          body=ZH_PROMISE)
    acc = f.account(lender=lender, balance="20000.00", jurisdiction="CN", zones=("Asia/Shanghai",))
    promise, r = _promise_reminder(acc)
    test_clock.set(cn(1, 10))

    assert services.reminder_send(reminder_id=r.pk) == "sent"
    body = locmem_sender.outbox[r.idempotency_key].body
    assert "您好" not in body and "Hello" not in body
    assert lender.name in body and acc.external_ref in body and "12,345.60" in body and "CNY" in body
    day = promise.due_date
    assert f"{day.year}年{day.month}月{day.day}日" in body  # the built-in text's date is localised too
    assert "TD" in body


def test_instalment_reminder_uses_its_template(test_clock, locmem_sender, boss):
    lender = f.lender()
    message_template_save(actor=boss, lender=lender, kind="instalment_due", language="zh-hans", subject="",
                          body="{lender}：第{seq}期{amount}将于{due_date}到期，回复TD退订。")
    acc = f.account(lender=lender, balance="30000.00")
    day1, day2 = cn(2, 9).date(), cn(40, 9).date()
    plan = case_services.repayment_plan_create(actor=f.user(), account=acc, total_amount=Decimal("25000.00"),
                                               instalments=[(day1, Decimal("12500.00")), (day2, Decimal("12500.00"))])
    inst = plan.instalments.order_by("seq").first()
    r = services.reminder_create(account=acc, kind="instalment_due", channel="sms", due_at=cn(1, 10), instalment=inst)
    test_clock.set(cn(1, 10))

    assert services.reminder_send(reminder_id=r.pk) == "sent"
    body = locmem_sender.outbox[r.idempotency_key].body
    assert body == f"{lender.name}：第{inst.seq}期12,500.00 CNY将于{day1.year}年{day1.month}月{day1.day}日到期，回复TD退订。"


@pytest.mark.parametrize(("body", "why"), [
    ("Hi {name}, pay {amount} by {due_date} {secret}", "Unknown variables: secret"),
    ("Hi {name}, pay {amount} by {due_date}, call {callback_number}", "Unknown variables: callback_number"),
    ("Hi {name}, instalment {seq}: {amount} by {due_date}", "Unknown variables: seq"),  # instalments only
    ("Hi {name}, please pay {amount}", "must use: due_date"),
    ("Hi {name}, pay {amount:>12} by {due_date}", "malformed"),
    ("Hi {name.upper}, pay {amount} by {due_date}", "malformed"),
])
def test_reminder_templates_with_unknown_or_missing_variables_are_refused(boss, body, why):
    with translation.override("en"), pytest.raises(ValidationError) as exc:
        message_template_save(actor=boss, lender=f.lender(), kind="promise_due", language="en", subject="",
                              body=body)
    assert why in " ".join(exc.value.messages)
    assert not MessageTemplate.objects.exists()
    assert not AuditEvent.objects.filter(action="borrowers.template.saved").exists()


def test_a_hold_still_stops_the_reminder_at_the_gate_with_a_template(test_clock, locmem_sender, boss):
    lender = f.lender()
    _both_templates(boss, lender)
    acc = f.account(lender=lender, balance="20000.00", dispute=True)
    _promise, r = _promise_reminder(acc)
    test_clock.set(cn(1, 10))

    assert services.reminder_send(reminder_id=r.pk) == "cancelled"
    assert locmem_sender.calls == [] and not ContactAttempt.objects.exists()
    blocked = AuditEvent.objects.get(action="compliance.contact.blocked", account_id=acc.pk)
    assert blocked.data["violations"]
    assert AuditEvent.objects.get(action="reminders.reminder.cancelled").data["decision"]["next_allowed_at"] is None


def test_a_stored_template_that_no_longer_renders_falls_back_to_the_built_in_text(test_clock, locmem_sender):
    lender = f.lender()
    # Written around the service (e.g. by hand in the database): the variable check at send time catches it.
    MessageTemplate.objects.create(lender=lender, kind="promise_due", language="zh-hans", body="{amount} {secret}")
    acc = f.account(lender=lender, balance="20000.00")
    _promise, r = _promise_reminder(acc)
    test_clock.set(cn(1, 10))

    assert services.reminder_send(reminder_id=r.pk) == "sent"
    body = locmem_sender.outbox[r.idempotency_key].body
    assert "secret" not in body and acc.external_ref in body and "12,345.60" in body
