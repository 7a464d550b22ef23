"""Refusals read in the user's language: the case page's refusal box and the incident queue name the rule
and its citation in Chinese (the recorded English text stays available as the record)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import translation
from django.utils.translation import pgettext

from cases import services
from compliance.models import Incident
from compliance.rules.seeds import SEED_POLICIES
from tests import factories as f
from tests.cases.test_workspace import NIGHT
from tests.compliance.test_truth_gate import CN_MORNING, _person

pytestmark = pytest.mark.django_db

CN_HOURS_CITATION = next(r["citation"] for p in SEED_POLICIES if p["code"] == "CN" for r in p["rules"]
                         if r["code"] == "CN.QUIET_HOURS")


def test_case_page_refusal_cites_the_rule_in_chinese(client):
    agent = f.user(role="agent")
    acc = f.account(lender=f.lender(), agent=agent, zones=(NIGHT,))
    client.force_login(agent)
    r = client.post(reverse("case-outreach", args=[acc.pk]),
                    {"bar": "1", "channel": "call", "direction": "outbound", "party": "borrower",
                     "outcome": "no_answer"}, HTTP_ACCEPT_LANGUAGE="zh-hans")
    page = r.content.decode()
    assert r.status_code == 409 and "CN.QUIET_HOURS" in page  # refused: the borrower's night
    box = page.split('id="refusal"', 1)[1].split("</ul>", 1)[0]
    assert CN_HOURS_CITATION not in box
    with translation.override("zh-hans"):
        assert pgettext("policy", CN_HOURS_CITATION) in box
    en = client.post(reverse("case-outreach", args=[acc.pk]),
                     {"bar": "1", "channel": "call", "direction": "outbound", "party": "borrower",
                      "outcome": "no_answer"}, HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert CN_HOURS_CITATION in en


def test_incident_queue_names_rules_and_channels_in_chinese(now_at, client):
    now_at(CN_MORNING)
    agent, (acc,) = _person(f.lender())
    services.contact_attempt_record(account=acc, actor=agent, channel="call", outcome="no_answer",
                                    occurred_at=CN_MORNING - timedelta(hours=12))
    incident = Incident.objects.get()
    client.force_login(f.user(role="supervisor"))
    zh = client.get(reverse("supervisor-incidents"), HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    row = zh.split(f'id="incident-{incident.pk}"', 1)[1].split("</tr>", 1)[0]
    assert "电话" in row and ">call<" not in row
    assert "Outside the hours" not in row.split("<details", 1)[0]
    assert CN_HOURS_CITATION not in row
    # The record as stored (English, as audited) stays one click away.
    assert incident.violations[0]["message"] in row.split("<details", 1)[1]
    en = client.get(reverse("supervisor-incidents"), HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "Outside the hours the borrower may be contacted" in en and "Phone call" in en
