"""Supervisor console in a real browser: audit filter + export, dashboard chart, what-if replay."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from cases.services import ContactRefused, contact_attempt_record
from compliance.models import Policy
from tests import factories as f
from tests.e2e.conftest import login

pytestmark = pytest.mark.e2e


def _at(days: int, hour: int):
    return (timezone.localtime() - timedelta(days=days)).replace(hour=hour, minute=0, second=0, microsecond=0)


@pytest.fixture
def data(transactional_db, now_at):
    lender = f.lender()
    agent, other = f.user(role="agent", username="e2e_agent"), f.user(role="agent", username="e2e_other")
    sup = f.user(role="supervisor", username="e2e_sup")
    acc = f.account(lender=lender, agent=agent)
    contact_attempt_record(account=acc, actor=agent, channel="call", outcome="no_answer", occurred_at=_at(3, 10))
    contact_attempt_record(account=acc, actor=agent, channel="call", outcome="no_answer", occurred_at=_at(2, 10))
    # Outreach tried at 23:00 (then "now"): the gate refuses it before the act, and audits the refusal.
    now_at(_at(1, 23))
    for who in (agent, other):
        with pytest.raises(ContactRefused):
            contact_attempt_record(account=acc, actor=who, channel="call", outcome="no_answer")
    now_at(None)
    return {"agent": agent, "sup": sup}


def test_filter_refused_attempts_of_one_agent_and_export(page, data):
    login(page, "e2e_sup")
    page.goto(page.base_url + "/supervisor/audit/")
    page.select_option("#id_agent", label="e2e_agent")
    page.select_option("#id_outcome", value="refused")
    page.click("form.filters button[type=submit]")
    rows = page.locator("table.audit tbody tr[data-action]")
    assert rows.count() == 1
    assert rows.first.get_attribute("data-action") == "compliance.contact.blocked"
    assert "CN.QUIET_HOURS" in rows.first.inner_text()
    with page.expect_download() as info:
        page.click("text=Export CSV")
    text = Path(info.value.path()).read_text(encoding="utf-8-sig")
    lines = [line for line in text.splitlines() if line]
    assert len(lines) == 2 and "compliance.contact.blocked" in lines[1] and "e2e_agent" in lines[1]


def test_dashboard_shows_a_chart(page, data):
    login(page, "e2e_sup")
    page.goto(page.base_url + "/supervisor/")
    chart = page.locator("svg.chart").first
    chart.wait_for()
    assert page.locator("svg.chart rect.bar").count() >= 1
    assert "CN.QUIET_HOURS" in page.content()


def test_whatif_replay(page, data):
    base = Policy.objects.get(code="CN", version=1).rules
    import json

    rules = base["rules"] + [{
        "type": "frequency", "code": "CN.E2E.ONE_CALL", "citation": "e2e", "channels": ["call"],
        "count_channels": ["call"], "count_outcomes": ["no_answer"], "scope": "borrower", "period": "rolling",
        "days": 7, "max": 1, "label": "calls",
    }]
    login(page, "e2e_sup")
    page.goto(page.base_url + "/supervisor/policies/")
    page.click("a[href$='/policies/CN/draft/']")
    page.fill("#id_rules", json.dumps(rules))
    page.click("form.card button[type=submit]")
    page.wait_for_url("**/policies/version/**")
    page.fill("#id_days", "10")
    page.click("text=Run replay")
    page.locator("#whatif-result").wait_for()
    assert page.locator("[data-testid=draft-refused]").inner_text().strip() == "1"
    assert "CN.E2E.ONE_CALL" in page.locator("#whatif-result").inner_text()
