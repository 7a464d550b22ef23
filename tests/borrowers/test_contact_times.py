"""The borrower states the times that suit them on the page; every lender's gate honours them for the person."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from django.urls import reverse

from cases import services as case_services
from cases.models import Borrower, ContactAttempt
from compliance.models import AuditEvent
from tests import factories as f
from tests.borrowers.test_actions import signed_in  # noqa: F401 - the signed-in borrower client

pytestmark = pytest.mark.django_db


def _prefs(**extra):
    return {"prefs-sms_consent": "on", "prefs-email_consent": "on", **extra}


def test_stated_times_reach_every_record_of_the_person_and_the_gate(signed_in, person, now_at):  # noqa: F811
    r = signed_in.post(reverse("borrowers:preferences"), _prefs(**{
        "prefs-contact_from": "18:00", "prefs-contact_to": "21:00", "prefs-contact_days": ["mon", "tue", "wed"]}))
    assert r.status_code == 302
    for acc in (person["a1"], person["a2"]):  # both lenders' records of the person
        b = Borrower.objects.get(pk=acc.borrower_id)
        assert b.contact_windows == [{"days": ["mon", "tue", "wed"], "start": "18:00", "end": "21:00"}]
        assert AuditEvent.objects.filter(action="cases.borrower.contact_times_changed", account_id=acc.pk).exists()
    assert Borrower.objects.get(pk=person["stranger"].borrower_id).contact_windows == []

    acc = person["a2"]
    zone = ZoneInfo(acc.borrower.time_zones[0])
    now_at(datetime(2027, 4, 14, 10, 0, tzinfo=zone))  # a Wednesday morning: policy hours, not the borrower's
    with pytest.raises(case_services.ContactRefused) as refused:
        case_services.contact_attempt_record(account=acc, actor=person["agent"], channel="call", outcome="no_answer")
    decision = refused.value.decision
    assert [v.code for v in decision.violations] == ["BORROWER.CONVENIENT_TIMES"]
    assert decision.next_allowed_at == datetime(2027, 4, 14, 18, 0, tzinfo=zone)
    assert not ContactAttempt.objects.filter(account=acc).exists()
    assert AuditEvent.objects.filter(action="compliance.contact.blocked", account_id=acc.pk).exists()

    now_at(datetime(2027, 4, 14, 19, 0, tzinfo=zone))
    case_services.contact_attempt_record(account=acc, actor=person["agent"], channel="call", outcome="no_answer")
    now_at(datetime(2027, 4, 15, 19, 0, tzinfo=zone))  # Thursday: not one of the stated days
    with pytest.raises(case_services.ContactRefused):
        case_services.contact_attempt_record(account=acc, actor=person["agent"], channel="sms", outcome="delivered")


def test_the_agent_sees_the_times_and_the_borrower_can_clear_them(signed_in, person, client):  # noqa: F811
    signed_in.post(reverse("borrowers:preferences"), _prefs(**{"prefs-contact_from": "09:00",
                                                               "prefs-contact_to": "12:00"}))
    page = signed_in.get(reverse("borrowers:home")).content.decode()
    assert 'value="09:00"' in page and 'value="12:00"' in page
    client.force_login(person["agent"])
    case = client.get(reverse("case-detail", args=[person["a1"].pk]), HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    assert 'id="convenient-times"' in case and "09:00–12:00" in case and "借款人方便联系的时间" in case
    times = case.split('id="convenient-times"', 1)[1].split("</dd>", 1)[0]
    assert "周一" in times and "周日" in times and "mon" not in times  # every day: no days were ticked
    signed_in.post(reverse("borrowers:preferences"), _prefs())  # both empty: no preference
    assert Borrower.objects.get(pk=person["a1"].borrower_id).contact_windows == []


@pytest.mark.parametrize(("start", "end"), [("18:00", ""), ("21:00", "18:00"), ("18:00", "18:30")])
def test_bad_times_are_refused_and_nothing_changes(signed_in, person, start, end):  # noqa: F811
    r = signed_in.post(reverse("borrowers:preferences"),
                       _prefs(**{"prefs-contact_from": start, "prefs-contact_to": end}), follow=True,
                       HTTP_ACCEPT_LANGUAGE="en")
    assert "Give both times" in r.content.decode() or "at least an hour" in r.content.decode()
    assert Borrower.objects.get(pk=person["a1"].borrower_id).contact_windows == []


def test_an_agent_records_the_times_the_borrower_gave_on_the_phone(client, person):
    client.force_login(person["agent"])
    acc = person["a1"]
    r = client.post(reverse("case-contact-times", args=[acc.pk]),
                    {"times-contact_from": "19:00", "times-contact_to": "21:30", "times-contact_days": ["sat", "sun"]})
    assert r.status_code == 302
    for a in (person["a1"], person["a2"]):  # the person, whichever lender placed them
        assert Borrower.objects.get(pk=a.borrower_id).contact_windows == [
            {"days": ["sat", "sun"], "start": "19:00", "end": "21:30"}]
    e = AuditEvent.objects.get(action="cases.borrower.contact_times_changed", account_id=acc.pk)
    assert e.actor_id == person["agent"].pk and e.data["after"][0]["start"] == "19:00"
    # A bad entry is refused on the case page and changes nothing.
    r = client.post(reverse("case-contact-times", args=[acc.pk]), {"times-contact_from": "19:00"},
                    HTTP_ACCEPT_LANGUAGE="en")
    assert r.status_code == 400 and "Give both times" in r.content.decode()
    assert Borrower.objects.get(pk=acc.borrower_id).contact_windows[0]["start"] == "19:00"
    # Another agent's account (not theirs): 404, nothing written.
    other = f.account(lender=person["l1"], agent=f.user(role="agent"))
    assert client.post(reverse("case-contact-times", args=[other.pk]),
                       {"times-contact_from": "", "times-contact_to": ""}).status_code == 404
