"""Issue 10 through the database: the gate governs the outreach itself (start, then complete), a
contact that happened is always stored (a breach flagged, an incident opened), and caps and holds
reach the person across lenders. Each test failed on the code before it."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse
from rest_framework.test import APIClient

from cases import services
from cases.models import Borrower, ContactAttempt, ContactAttemptAccount
from compliance.models import AuditEvent, Incident
from tests import factories as f

pytestmark = pytest.mark.django_db

SH = ZoneInfo("Asia/Shanghai")
NY = ZoneInfo("America/New_York")
#: Wednesday mornings after the December 2026 policy versions (CN v3, US v2).
CN_MORNING = datetime(2027, 4, 14, 10, 0, tzinfo=SH)
NY_MORNING = datetime(2027, 4, 14, 10, 0, tzinfo=NY)


def _person(*lenders, jurisdiction="CN", zones=("Asia/Shanghai",), national_id="110101199003074514", **flags):
    """The same natural person placed by each lender: one Borrower per lender, one national ID."""
    agent = f.user()
    accounts = []
    for lender in lenders:
        borrower = Borrower.objects.create(
            lender=lender, name="张三", national_id=national_id, phones=["13800138000"], emails=["zs@example.com"],
            jurisdiction=jurisdiction, time_zones=list(zones), **flags)
        accounts.append(f.account(lender=lender, borrower=borrower, agent=agent))
    return agent, accounts


# ---- the record is the truth -------------------------------------------------------------------


def test_a_back_dated_contact_that_broke_a_rule_is_stored_as_a_breach_with_an_incident(now_at):
    now_at(CN_MORNING)
    agent, (acc,) = _person(f.lender())
    late = CN_MORNING - timedelta(days=1) + timedelta(hours=13)  # yesterday 23:00: quiet hours
    attempt = services.contact_attempt_record(account=acc, actor=agent, channel="call", outcome="right_party_contact",
                                              occurred_at=late, notes="borrower called back late")
    assert attempt.pk and attempt.is_breach and attempt.state == "completed"
    assert [v["code"] for v in attempt.breach] == ["CN.QUIET_HOURS"]
    incident = Incident.objects.get(attempt_id=attempt.pk)
    assert incident.status == "open" and incident.violations[0]["code"] == "CN.QUIET_HOURS"
    assert (incident.policy_code, incident.policy_version) == ("CN", 3)
    recorded = AuditEvent.objects.get(action="cases.contact_attempt.recorded")
    assert recorded.data["breach"][0]["code"] == "CN.QUIET_HOURS"
    assert AuditEvent.objects.filter(action="compliance.incident.opened", subject_id=str(incident.pk)).exists()
    assert not AuditEvent.objects.filter(action="compliance.contact.blocked").exists()
    # The breach counts toward later caps: it was a conversation, so it uses one of the day's three.
    assert attempt in ContactAttempt.objects.filter(person_key=acc.borrower.person_key)


def test_the_api_answers_201_with_the_breach_and_409_for_present_outreach(now_at):
    now_at(CN_MORNING.replace(hour=23))
    agent, (acc,) = _person(f.lender())
    api = APIClient()
    api.force_authenticate(agent)
    url = f"/api/v1/accounts/{acc.pk}/contact-attempts/"
    refused = api.post(url, {"channel": "call", "outcome": "no_answer"}, format="json")
    assert refused.status_code == 409 and refused.data["violations"][0]["code"] == "CN.QUIET_HOURS"
    assert not ContactAttempt.objects.exists()
    past = (CN_MORNING.replace(hour=23) - timedelta(hours=1)).isoformat()  # 22:00, an hour ago
    stored = api.post(url, {"channel": "call", "outcome": "no_answer", "occurred_at": past}, format="json")
    assert stored.status_code == 201, stored.content
    assert stored.data["breach"][0]["code"] == "CN.QUIET_HOURS" and stored.data["state"] == "completed"
    ok = api.post(url, {"channel": "call", "outcome": "right_party_contact", "direction": "inbound"}, format="json")
    assert ok.status_code == 201 and ok.data["breach"] == []


# ---- start, then complete ------------------------------------------------------------------------


def test_start_counts_at_once_shows_the_number_and_completes(now_at, client):
    now_at(CN_MORNING)
    agent, (acc,) = _person(f.lender())
    attempt = services.contact_attempt_start(account=acc, actor=agent, channel="call")
    assert (attempt.state, attempt.outcome, attempt.phone) == ("started", "pending", "+8613800138000")
    started = AuditEvent.objects.get(action="cases.contact_attempt.started")
    assert started.data["target"] == "+86****8000"  # the log never holds the full number
    # The number appears on the case page only for the agent's started outreach.
    client.force_login(agent)
    page = client.get(reverse("case-detail", args=[acc.pk])).content.decode()
    assert "+8613800138000" in page and 'id="started-' in page
    # Three started calls fill CN's per-person conversation cap (each may become a conversation).
    for minute in (1, 2):
        now_at(CN_MORNING + timedelta(minutes=minute))
        services.contact_attempt_start(account=acc, actor=agent, channel="call")
    now_at(CN_MORNING + timedelta(minutes=3))
    with pytest.raises(services.ContactRefused) as refused:
        services.contact_attempt_start(account=acc, actor=agent, channel="call")
    assert "CN.CONVERSATIONS_PER_DAY" in {v.code for v in refused.value.decision.violations}
    # Completing one as unanswered frees a conversation slot.
    services.contact_attempt_complete(attempt=attempt, actor=agent, outcome="no_answer")
    attempt.refresh_from_db()
    assert (attempt.state, attempt.outcome) == ("completed", "no_answer")
    assert services.contact_attempt_start(account=acc, actor=agent, channel="call").state == "started"
    with pytest.raises(ValidationError):
        services.contact_attempt_complete(attempt=attempt, actor=agent, outcome="busy")  # already completed


def test_the_web_start_and_complete(now_at, client):
    now_at(CN_MORNING)
    agent, (acc,) = _person(f.lender())
    client.force_login(agent)
    page = client.get(reverse("case-detail", args=[acc.pk])).content.decode()
    assert "+8613800138000" not in page and "13800138000" not in page  # masked until the gate allows
    r = client.post(reverse("case-outreach-start", args=[acc.pk]), {"start-channel": "call", "start-party": "borrower"})
    assert r.status_code == 302, r.content.decode()[:2000]
    attempt = ContactAttempt.objects.get()
    r = client.post(reverse("case-outreach-complete", args=[acc.pk, attempt.pk]),
                    {f"a{attempt.pk}-attempt": attempt.pk, f"a{attempt.pk}-outcome": "promise",
                     f"a{attempt.pk}-notes": "will pay Friday"})
    assert r.status_code == 302
    attempt.refresh_from_db()
    assert (attempt.state, attempt.outcome, attempt.notes) == ("completed", "promise", "will pay Friday")
    acc.refresh_from_db()
    assert acc.status == "in_contact"


def test_the_api_start_and_complete_and_scoping(now_at):
    now_at(CN_MORNING)
    agent, (acc,) = _person(f.lender())
    api = APIClient()
    api.force_authenticate(agent)
    started = api.post(f"/api/v1/accounts/{acc.pk}/outreach/", {"channel": "call"}, format="json")
    assert started.status_code == 201 and started.data["target"] == "+8613800138000"
    other = APIClient()
    other.force_authenticate(f.user())
    url = f"/api/v1/contact-attempts/{started.data['id']}/complete/"
    assert other.post(url, {"outcome": "no_answer"}, format="json").status_code == 404
    done = api.post(url, {"outcome": "voicemail"}, format="json")
    assert done.status_code == 200 and done.data["state"] == "completed" and done.data["outcome"] == "voicemail"
    assert api.post(url, {"outcome": "pending"}, format="json").status_code == 400


def test_a_started_attempt_left_open_closes_as_unreported_and_still_counts(now_at):
    now_at(NY_MORNING)
    agent, (acc,) = _person(f.lender(), jurisdiction="US", zones=("America/New_York",), national_id="")
    attempt = services.contact_attempt_start(account=acc, actor=agent, channel="call")
    now_at(NY_MORNING + timedelta(minutes=29))
    assert services.contact_attempts_close_unreported() == 0
    now_at(NY_MORNING + timedelta(minutes=31))
    assert services.contact_attempts_close_unreported() == 1
    attempt.refresh_from_db()
    assert (attempt.state, attempt.outcome) == ("unreported", "unreported")
    assert AuditEvent.objects.filter(action="cases.contact_attempt.unreported", subject_id=str(attempt.pk)).exists()
    # Reg F counts it as placed: with six more calls the seventh-in-seven cap is reached.
    for hour in range(1, 7):
        now_at(NY_MORNING + timedelta(hours=hour))
        services.contact_attempt_record(account=acc, actor=agent, channel="call", outcome="no_answer")
    now_at(NY_MORNING + timedelta(hours=8))
    with pytest.raises(services.ContactRefused) as refused:
        services.contact_attempt_record(account=acc, actor=agent, channel="call", outcome="no_answer")
    assert [v.code for v in refused.value.decision.violations] == ["US.REGF.CALL_FREQUENCY"]


# ---- scopes beyond one lender --------------------------------------------------------------------


def test_cn_daily_conversations_count_the_person_across_two_lenders(now_at):
    now_at(CN_MORNING)
    agent, (a, b) = _person(f.lender(), f.lender())
    assert a.borrower.person_key == b.borrower.person_key == "id:110101199003074514"
    for minute, account in ((0, a), (5, b), (10, a)):
        now_at(CN_MORNING + timedelta(minutes=minute))
        services.contact_attempt_record(account=account, actor=agent, channel="call", outcome="right_party_contact")
    now_at(CN_MORNING + timedelta(minutes=15))
    with pytest.raises(services.ContactRefused) as refused:
        services.contact_attempt_record(account=b, actor=agent, channel="call", outcome="right_party_contact")
    assert "CN.CONVERSATIONS_PER_DAY" in {v.code for v in refused.value.decision.violations}


def test_a_cease_on_one_lenders_record_reaches_the_other(now_at):
    now_at(CN_MORNING)
    agent, (a, b) = _person(f.lender(), f.lender())
    Borrower.objects.filter(pk=a.borrower_id).update(cease=True)
    with pytest.raises(services.ContactRefused) as refused:
        services.contact_attempt_start(account=b, actor=agent, channel="sms")
    assert [v.code for v in refused.value.decision.violations] == ["HOLD.CEASE"]
    # A dispute is about one debt: it stays with its lender's record.
    Borrower.objects.filter(pk=a.borrower_id).update(cease=False, dispute=True)
    assert services.contact_attempt_start(account=b, actor=agent, channel="sms").state == "started"


def test_numbers_compare_in_e164(now_at):
    now_at(CN_MORNING)
    agent, (acc,) = _person(f.lender())
    for k, spelling in enumerate(["138 0013 8000", "+8613800138000", "13800138000", "+86 138-0013-8000",
                                  "0086 13800138000", "138-0013-8000"]):
        now_at(CN_MORNING + timedelta(minutes=k))
        services.contact_attempt_record(account=acc, actor=agent, channel="call", outcome="no_answer", phone=spelling)
    assert set(ContactAttempt.objects.values_list("phone", flat=True)) == {"+8613800138000"}
    now_at(CN_MORNING + timedelta(minutes=10))
    with pytest.raises(services.ContactRefused) as refused:
        services.contact_attempt_record(account=acc, actor=agent, channel="call", outcome="no_answer",
                                        phone="(138) 0013 8000")
    assert "CN.UNANSWERED_PER_NUMBER" in {v.code for v in refused.value.decision.violations}
    with pytest.raises(ValidationError):
        services.contact_attempt_record(account=acc, actor=agent, channel="call", outcome="no_answer", phone="12")


def test_one_call_about_two_debts_counts_for_both(now_at):
    now_at(NY_MORNING)
    agent = f.user()
    lender = f.lender()
    first = f.account(lender=lender, agent=agent, jurisdiction="US", zones=("America/New_York",))
    second = f.account(lender=lender, agent=agent, borrower=first.borrower)
    elsewhere = f.account(lender=f.lender(), agent=agent, jurisdiction="US", zones=("America/New_York",))
    with pytest.raises(ValidationError):
        services.contact_attempt_record(account=first, actor=agent, channel="call", outcome="no_answer",
                                        accounts=[elsewhere.pk])
    for hour in range(7):
        now_at(NY_MORNING + timedelta(hours=hour))
        services.contact_attempt_record(account=first, actor=agent, channel="call", outcome="no_answer",
                                        accounts=[second.pk])
    assert ContactAttemptAccount.objects.filter(account=second).count() == 7
    now_at(NY_MORNING + timedelta(hours=8))
    with pytest.raises(services.ContactRefused) as refused:
        services.contact_attempt_record(account=second, actor=agent, channel="call", outcome="no_answer")
    assert [v.code for v in refused.value.decision.violations] == ["US.REGF.CALL_FREQUENCY"]


def test_an_inbound_conversation_starts_the_seven_day_wait(now_at):
    now_at(NY_MORNING)
    agent = f.user()
    acc = f.account(lender=f.lender(), agent=agent, jurisdiction="US", zones=("America/New_York",))
    services.contact_attempt_record(account=acc, actor=agent, channel="call", outcome="right_party_contact",
                                    direction="inbound")
    now_at(NY_MORNING + timedelta(days=2))
    with pytest.raises(services.ContactRefused) as refused:
        services.contact_attempt_start(account=acc, actor=agent, channel="call")
    assert [v.code for v in refused.value.decision.violations] == ["US.REGF.POST_CONVERSATION"]
    assert refused.value.decision.next_allowed_at == NY_MORNING + timedelta(days=7)


def test_unknown_time_zone_is_never_the_servers(now_at):
    ten_pm_new_york = datetime(2027, 4, 14, 22, 0, tzinfo=NY)  # 10:00 in Shanghai, the server's zone
    now_at(ten_pm_new_york)
    agent = f.user()
    acc = f.account(lender=f.lender(), agent=agent, jurisdiction="US", zones=())
    with pytest.raises(services.ContactRefused) as refused:
        services.contact_attempt_start(account=acc, actor=agent, channel="call")
    assert [v.code for v in refused.value.decision.violations] == ["US.FDCPA.TIME_OF_DAY"]


# ---- consent and opt-out for agent outreach too --------------------------------------------------


def test_sms_opt_out_and_consent_bind_agent_outreach(now_at):
    now_at(CN_MORNING)
    agent, (acc,) = _person(f.lender())
    services.borrower_opt_out(borrower=acc.borrower, address="138 0013 8000", actor=None, source="sms-reply")
    acc.borrower.refresh_from_db()
    assert acc.borrower.opted_out == ["+8613800138000"]
    with pytest.raises(services.ContactRefused) as refused:
        services.contact_attempt_start(account=acc, actor=agent, channel="sms")
    assert [v.code for v in refused.value.decision.violations] == ["CN.MESSAGE_CONSENT"]
    assert services.contact_attempt_start(account=acc, actor=agent, channel="email").state == "started"
    Borrower.objects.filter(pk=acc.borrower_id).update(email_consent=False)
    with pytest.raises(services.ContactRefused):
        services.contact_attempt_start(account=acc, actor=agent, channel="email")
    assert AuditEvent.objects.filter(action="cases.borrower.opted_out").count() == 1


# ---- supervisors: the incident queue and the what-if replay --------------------------------------


def test_supervisor_reviews_incidents_and_the_replay_counts_breaches(now_at, client):
    from compliance.models import Policy
    from supervision import services as compliance_services

    now_at(CN_MORNING)
    agent, (acc,) = _person(f.lender())
    late = CN_MORNING - timedelta(hours=12)  # 22:00 last night
    services.contact_attempt_record(account=acc, actor=agent, channel="call", outcome="no_answer", occurred_at=late)
    incident = Incident.objects.get()
    sup = f.user(role="supervisor")
    client.force_login(sup)
    page = client.get(reverse("supervisor-incidents")).content.decode()
    assert f'id="incident-{incident.pk}"' in page and "CN.QUIET_HOURS" in page
    assert client.get(reverse("supervisor-incidents")).status_code == 200
    client.force_login(agent)
    assert client.get(reverse("supervisor-incidents")).status_code == 403
    client.force_login(sup)
    r = client.post(reverse("supervisor-incident-review", args=[incident.pk]), {"status": "closed", "resolution": ""})
    incident.refresh_from_db()
    assert r.status_code == 302 and incident.status == "open"  # closing needs a resolution
    client.post(reverse("supervisor-incident-review", args=[incident.pk]),
                {"status": "closed", "resolution": "Agent coached on quiet hours."})
    incident.refresh_from_db()
    assert (incident.status, incident.reviewed_by) == ("closed", sup)
    assert AuditEvent.objects.filter(action="compliance.incident.reviewed", subject_id=str(incident.pk)).exists()
    result = compliance_services.policy_whatif_replay(policy=Policy.objects.get(code="CN", version=3), days=7,
                                                      now=CN_MORNING)
    assert result.breaches == 1 and result.attempts == 1 and result.draft.by_rule == {"CN.QUIET_HOURS": 1}


def test_the_timeline_shows_breaches_and_calls_about_this_debt(now_at, client):
    now_at(CN_MORNING)
    agent = f.user()
    lender = f.lender()
    first = f.account(lender=lender, agent=agent)
    second = f.account(lender=lender, agent=agent, borrower=first.borrower)
    services.contact_attempt_record(account=first, actor=agent, channel="call", outcome="no_answer",
                                    accounts=[second.pk], notes="about both debts")
    services.contact_attempt_record(account=second, actor=agent, channel="call", outcome="no_answer",
                                    occurred_at=CN_MORNING - timedelta(hours=11))  # 23:00 last night
    client.force_login(agent)
    page = client.get(reverse("case-detail", args=[second.pk])).content.decode()
    timeline = page.split('id="timeline"')[1]
    assert "about both debts" in timeline and "CN.QUIET_HOURS" in timeline
