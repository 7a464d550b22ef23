"""Supervisor reminder page (filters, actions) and agent notifications (scoped)."""

from __future__ import annotations

import pytest

from reminders import services
from reminders.models import Notification, Reminder
from tests import factories as f

from .conftest import cn

pytestmark = pytest.mark.django_db


@pytest.fixture
def reminders_set(test_clock, locmem_sender):
    test_clock.set(cn(1, 10))
    lender = f.lender()
    ok = services.reminder_create(account=f.account(lender=lender), kind="promise_due", channel="sms", due_at=cn(1, 10))
    ceased = services.reminder_create(account=f.account(lender=lender, cease=True), kind="instalment_due",
                                      channel="sms", due_at=cn(1, 10))
    late = services.reminder_create(account=f.account(lender=lender), kind="promise_due", channel="email",
                                    due_at=cn(1, 10))
    locmem_sender.fail_next = 100
    services.reminder_send(reminder_id=ceased.pk)
    Reminder.objects.filter(pk=late.pk).update(state="failed", last_error="SendError: provider down", attempts=5)
    return {"ok": ok, "ceased": ceased, "failed": late}


def test_supervisor_sees_and_filters_reminders(client, reminders_set):
    client.force_login(f.user(role="supervisor"))
    page = client.get("/reminders/").content.decode()
    for r in reminders_set.values():
        assert r.idempotency_key in page
    failed = client.get("/reminders/?state=failed").content.decode()
    assert reminders_set["failed"].idempotency_key in failed and reminders_set["ok"].idempotency_key not in failed
    assert "provider down" in failed
    cancelled = client.get("/reminders/?kind=instalment_due").content.decode()
    assert reminders_set["ceased"].idempotency_key in cancelled and reminders_set["ok"].idempotency_key not in cancelled
    assert 'data-count="failed">1<' in failed


def test_supervisor_requeues_failed_reminder(client, reminders_set):
    client.force_login(f.user(role="supervisor"))
    r = reminders_set["failed"]
    resp = client.post(f"/reminders/{r.pk}/requeue/", {"next": "https://evil.example/"})
    assert resp.status_code == 302 and resp["Location"] == "/reminders/"
    r.refresh_from_db()
    assert (r.state, r.attempts) == ("scheduled", 0)


def test_agent_cannot_see_reminder_console(client, reminders_set):
    client.force_login(f.user(role="agent"))
    assert client.get("/reminders/").status_code == 403
    assert client.post(f"/reminders/{reminders_set['failed'].pk}/requeue/").status_code == 403


def test_agent_notifications_and_mark_read(client):
    agent, other = f.user(role="agent"), f.user(role="agent")
    acc = f.account(lender=f.lender(), agent=agent)
    mine = Notification.objects.create(key="n1", user=agent, account=acc, kind="callback_due", message="call back")
    theirs = Notification.objects.create(key="n2", user=other, account=acc, kind="promise_due", message="secret")
    client.force_login(agent)
    html = client.get("/reminders/notifications/").content.decode()
    assert "call back" in html and "secret" not in html and acc.external_ref in html
    assert client.post(f"/reminders/notifications/{theirs.pk}/read/").status_code == 404
    assert client.post(f"/reminders/notifications/{mine.pk}/read/").status_code == 302
    mine.refresh_from_db()
    theirs.refresh_from_db()
    assert mine.read_at is not None and theirs.read_at is None


def test_console_access_anonymous_and_inactive(client, reminders_set):
    r = reminders_set["failed"]
    for url in ("/reminders/", f"/reminders/{r.pk}/requeue/", f"/reminders/{r.pk}/cancel/"):
        resp = client.post(url) if url != "/reminders/" else client.get(url)
        assert resp.status_code == 302 and resp["Location"].startswith("/accounts/login/"), url
    # The auth backend already drops inactive users from the session; the decorator checks again
    # (a backend that allows inactive users must not open the console).
    from django.core.exceptions import PermissionDenied
    from django.test import RequestFactory

    from reminders import views

    sup = f.user(role="supervisor")
    sup.is_active = False
    for view, request in ((views.reminder_list, RequestFactory().get("/reminders/")),
                          (views.reminder_requeue, RequestFactory().post(f"/reminders/{r.pk}/requeue/"))):
        request.user = sup
        with pytest.raises(PermissionDenied):
            view(request, **({"pk": r.pk} if view is views.reminder_requeue else {}))
    r.refresh_from_db()
    assert r.state == "failed"


def test_supervisor_cancels_and_sees_errors(client, reminders_set):
    client.force_login(f.user(role="supervisor"))
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "en"
    ok = reminders_set["ok"]
    resp = client.post(f"/reminders/{ok.pk}/cancel/", {"next": "/reminders/?state=cancelled"}, follow=True)
    assert resp.redirect_chain[-1][0] == "/reminders/?state=cancelled"
    assert "The reminder was cancelled." in resp.content.decode()
    ok.refresh_from_db()
    assert ok.state == "cancelled"
    again = client.post(f"/reminders/{ok.pk}/cancel/", follow=True).content.decode()
    assert "Only scheduled or deferred reminders can be cancelled." in again
    requeued = client.post(f"/reminders/{reminders_set['failed'].pk}/requeue/", follow=True).content.decode()
    assert "The reminder will be sent again (after the compliance check)." in requeued
    assert client.get(f"/reminders/{ok.pk}/cancel/").status_code == 405
