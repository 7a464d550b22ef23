"""CN field visits need two collectors (policy CN v2): the service, the web form and the API."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse
from rest_framework.test import APIClient

from cases import services
from cases.models import ContactAttempt
from compliance.models import AuditEvent
from tests import factories as f

pytestmark = pytest.mark.django_db


@pytest.fixture
def visit(now_at):
    lender = f.lender()
    agent, partner = f.user(role="agent"), f.user(role="agent")
    account = f.account(lender=lender, agent=agent, jurisdiction="CN", zones=("Asia/Shanghai",))
    # "Now" is a weekday morning under CN v3: a visit logged at this time is outreach made now,
    # which the gate judges before the act.
    at = now_at(datetime(2027, 4, 14, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai")))
    return {"account": account, "agent": agent, "partner": partner, "at": at}


def test_a_visit_alone_is_refused_and_audited_with_the_rule(visit):
    with pytest.raises(services.ContactRefused) as refused:
        services.contact_attempt_record(account=visit["account"], actor=visit["agent"], channel="visit",
                                        outcome="right_party_contact", occurred_at=visit["at"])
    d = refused.value.decision
    assert [v.code for v in d.violations] == ["CN.VISIT_TWO_COLLECTORS"] and d.next_allowed_at is None
    assert (d.policy_code, d.policy_version) == ("CN", 3)
    assert not ContactAttempt.objects.exists()
    blocked = AuditEvent.objects.get(action="compliance.contact.blocked")
    assert blocked.data["violations"][0]["code"] == "CN.VISIT_TWO_COLLECTORS"


def test_a_visit_with_a_second_collector_is_recorded_with_both(visit):
    attempt = services.contact_attempt_record(
        account=visit["account"], actor=visit["agent"], channel="visit", outcome="right_party_contact",
        occurred_at=visit["at"], second_collector=visit["partner"])
    assert (attempt.agent, attempt.second_collector, attempt.policy_version) == (visit["agent"], visit["partner"], 3)
    recorded = AuditEvent.objects.get(action="cases.contact_attempt.recorded")
    assert recorded.data["second_collector"] == visit["partner"].username


@pytest.mark.parametrize("case", ["self", "inactive", "lender user", "not a visit"])
def test_the_second_collector_is_checked(visit, case):
    partner, channel = visit["partner"], "visit"
    if case == "self":
        partner = visit["agent"]
    elif case == "inactive":
        partner.is_active = False
        partner.save()
    elif case == "lender user":
        partner = f.user(role="lender", lender=visit["account"].lender)
    else:
        channel = "call"
    with pytest.raises(ValidationError) as err:
        services.contact_attempt_record(account=visit["account"], actor=visit["agent"], channel=channel,
                                        outcome="right_party_contact", occurred_at=visit["at"], second_collector=partner)
    assert "second_collector" in err.value.message_dict
    assert not ContactAttempt.objects.exists() and not AuditEvent.objects.filter(action__startswith="compliance.contact").exists()


def test_the_case_page_offers_and_checks_the_second_collector(client, visit):
    from tests.cases.test_workspace import zone_at_local_hour

    client.force_login(visit["agent"])
    # A CN borrower where it is midday at the frozen "now" (not the real one: the page, the live
    # check and the gate all read the service clock), so that only the team rule can refuse a visit.
    noon = zone_at_local_hour(12, now=visit["at"])
    account = f.account(lender=visit["account"].lender, agent=visit["agent"], jurisdiction="CN", zones=(noon,))
    page = client.get(reverse("case-detail", args=[account.pk])).content.decode()
    select = page.split('name="second_collector"')[1].split("</select>")[0]
    assert visit["partner"].username in select and f'value="{visit["agent"].pk}"' not in select
    check = client.get(reverse("case-check", args=[account.pk]), {"channel": "visit"}).content.decode()
    assert "CN.VISIT_TWO_COLLECTORS" in check
    check = client.get(reverse("case-check", args=[account.pk]),
                       {"channel": "visit", "second_collector": visit["partner"].pk}).content.decode()
    assert "CN.VISIT_TWO_COLLECTORS" not in check and 'data-allowed="1"' in check
    outreach = {"channel": "visit", "outcome": "right_party_contact", "direction": "outbound", "party": "borrower"}
    alone = client.post(reverse("case-outreach", args=[account.pk]), outreach)
    assert alone.status_code == 409
    assert alone.context["refusal"]["violations"][0]["code"] == "CN.VISIT_TWO_COLLECTORS"
    response = client.post(reverse("case-outreach", args=[account.pk]),
                           {**outreach, "second_collector": visit["partner"].pk})
    assert response.status_code == 302
    assert ContactAttempt.objects.get(account=account).second_collector == visit["partner"]


def test_the_api_takes_the_second_collector(visit):
    api = APIClient()
    api.force_authenticate(visit["agent"])
    url = f"/api/v1/accounts/{visit['account'].pk}/"
    body = {"channel": "visit", "outcome": "right_party_contact", "occurred_at": visit["at"].isoformat()}
    refused = api.post(url + "contact-attempts/", body, format="json")
    assert refused.status_code == 409 and refused.data["violations"][0]["code"] == "CN.VISIT_TWO_COLLECTORS"
    assert api.get(url + "contact-check/", {"channel": "visit", "collectors": 2,
                                             "at": visit["at"].isoformat()}).data["allowed"] is True
    created = api.post(url + "contact-attempts/", {**body, "second_collector": visit["partner"].pk}, format="json")
    assert created.status_code == 201 and created.data["second_collector"] == visit["partner"].pk
    bad = api.post(url + "contact-attempts/", {**body, "second_collector": visit["agent"].pk}, format="json")
    assert bad.status_code == 400 and "second_collector" in bad.data
