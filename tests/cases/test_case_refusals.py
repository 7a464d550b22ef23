"""The case page's compliance answers (issue 12's agent items that rest on the gate): the live check
takes a back-dated time, a visit missing only its second collector says so, and a refusal offers a
callback at the next lawful time in one click."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.urls import reverse

from cases.models import Callback
from tests import factories as f

pytestmark = pytest.mark.django_db
SH = ZoneInfo("Asia/Shanghai")


@pytest.fixture
def client(client):
    client.cookies["django_language"] = "en"  # the assertions read the English text
    return client


def test_the_live_check_takes_a_back_dated_time(client):
    agent = f.user()
    acc = f.account(lender=f.lender(), agent=agent)
    client.force_login(agent)
    yesterday = (datetime.now(SH) - timedelta(days=1)).replace(hour=23, minute=0)
    for at in (yesterday.strftime("%Y-%m-%dT%H:%M"), yesterday.strftime("%Y-%m-%d %H:%M")):
        r = client.get(reverse("case-check", args=[acc.pk]), {"channel": "call", "at": at})
        assert r.status_code == 200 and 'data-allowed="0"' in r.content.decode()
    assert client.get(reverse("case-check", args=[acc.pk]), {"channel": "call", "at": "yesterday"}).status_code == 400


def test_a_visit_missing_only_its_second_collector_says_so(client, now_at):
    now_at(datetime(2027, 4, 14, 10, 0, tzinfo=SH))
    agent = f.user()
    acc = f.account(lender=f.lender(), agent=agent)
    client.force_login(agent)
    html = client.get(reverse("case-check", args=[acc.pk]), {"channel": "visit"}).content.decode()
    assert "Only the second collector is missing" in html and "No lawful time can be predicted" not in html
    acc.borrower.cease = True
    acc.borrower.save()
    html = client.get(reverse("case-check", args=[acc.pk]), {"channel": "visit"}).content.decode()
    assert "Only the second collector is missing" not in html and "No lawful time can be predicted" in html


def test_a_refusal_offers_a_callback_at_the_next_lawful_time(client, now_at):
    now_at(datetime(2027, 4, 14, 23, 0, tzinfo=SH))
    agent = f.user(username="refused_agent")
    agent.time_zone = "Asia/Shanghai"
    agent.save()
    acc = f.account(lender=f.lender(), agent=agent)
    client.force_login(agent)
    r = client.post(reverse("case-outreach", args=[acc.pk]),
                    {"channel": "call", "outcome": "no_answer", "direction": "outbound", "party": "borrower"})
    assert r.status_code == 409
    page = r.content.decode()
    box = page.split('id="refusal"')[1].split("</section>")[0]
    assert 'name="due_at" value="2027-04-15T08:00"' in box
    r = client.post(reverse("case-callback", args=[acc.pk]), {"due_at": "2027-04-15T08:00", "channel": "call"})
    assert r.status_code == 302
    assert Callback.objects.get(account=acc).due_at == datetime(2027, 4, 15, 8, 0, tzinfo=SH)
