"""Agent reminders (callbacks due, promises due today) show on the agent's queue page."""

import pytest
from django.utils import timezone

from reminders.models import Notification
from tests import factories as f

pytestmark = pytest.mark.django_db


def test_unread_notifications_on_queue(client):
    agent, other = f.user(role="agent"), f.user(role="agent")
    acc = f.account(lender=f.lender(), agent=agent)
    Notification.objects.create(key="cb-1", user=agent, account=acc, kind="callback_due", message="call back after lunch",
                                due_at=timezone.now())
    Notification.objects.create(key="cb-2", user=agent, account=acc, kind="promise_due", message="already seen",
                                read_at=timezone.now())
    Notification.objects.create(key="cb-3", user=other, account=acc, kind="promise_due", message="not yours")
    client.force_login(agent)
    html = client.get("/queue/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "call back after lunch" in html and acc.external_ref in html
    assert "already seen" not in html and "not yours" not in html
