"""Agent workspace in real headless Chromium against the live server (PostgreSQL)."""

from __future__ import annotations

from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone

from cases.models import ContactAttempt, PromiseToPay
from cases.views.presenters import agent_zone
from tests import factories as f
from tests.cases.test_workspace import zone_at_local_hour
from tests.e2e.conftest import login

pytestmark = pytest.mark.e2e


@pytest.fixture
def desk(transactional_db):
    lender = f.lender()
    agent = f.user(role="agent")
    return {
        "agent": agent,
        "day": f.account(lender=lender, agent=agent, zones=(zone_at_local_hour(12),), due_days_ago=90),
        "night": f.account(lender=lender, agent=agent, zones=(zone_at_local_hour(3),), due_days_ago=30),
    }


def test_agent_works_a_case_end_to_end(page, desk):
    base = page.base_url
    login(page, desk["agent"].username)
    # Roles route home: an agent lands on the queue.
    assert page.url.endswith("/queue/")
    page.wait_for_selector("h1:has-text('Work queue')")
    rows = page.locator("table.queue tbody tr")
    assert rows.count() == 2
    day_row = page.locator(f"tr[data-account='{desk['day'].pk}']")
    night_row = page.locator(f"tr[data-account='{desk['night'].pk}']")
    assert "Allowed now" in day_row.inner_text()
    assert "Not now" in night_row.inner_text()

    # Open a case, log a call, see it on the timeline.
    day_row.locator("a", has_text=desk["day"].external_ref).click()
    page.wait_for_selector("#call-bar-form")
    page.click("#panel-outreach summary")  # the full log form stays below the call bar, collapsed
    page.wait_for_selector("#live-check .decision[data-allowed='1']")
    page.select_option("#id_outcome", "no_answer")
    page.fill("#id_notes", "E2E: rang, no answer")
    page.click("#outreach-form button[type=submit]")
    page.wait_for_selector(".timeline-list >> text=E2E: rang, no answer")
    assert "No answer" in page.locator(".timeline-list").inner_text()
    assert ContactAttempt.objects.filter(account=desk["day"], outcome="no_answer").count() == 1
    page.click("#panel-outreach summary")

    # A back-dated time in the live check: judged at that time, not "Enter a valid date and time".
    # 23:00 yesterday in the *borrower's* zone (their quiet hours whatever the hour of the run), typed in the
    # agent's zone as the form expects.
    borrower_zone = ZoneInfo(desk["day"].borrower.time_zones[0])
    late = (timezone.now().astimezone(borrower_zone) - timedelta(days=1)).replace(hour=23, minute=0, second=0)
    page.fill("#id_occurred_at", late.astimezone(agent_zone(desk["agent"])).strftime("%Y-%m-%dT%H:%M"))
    page.dispatch_event("#id_occurred_at", "change")
    page.wait_for_selector("#live-check .decision[data-allowed='0']")
    assert "CN.QUIET_HOURS" in page.locator("#live-check").inner_text()
    page.fill("#id_occurred_at", "")
    page.dispatch_event("#id_occurred_at", "change")
    page.wait_for_selector("#live-check .decision[data-allowed='1']")

    # Start an outreach: the gate first, then the full number with the outcome form (issue 10).
    phone = desk["day"].borrower.phones[0]
    assert phone not in page.locator("#pii-phones").inner_text()
    page.click("#start-form button[type=submit]")
    started = page.locator(".card.started")
    started.wait_for()
    assert started.locator(".target").inner_text().endswith(phone[-8:])
    started.locator("select").select_option("voicemail")
    started.locator("button[type=submit]").click()
    page.wait_for_selector(".timeline-list >> text=Voicemail")
    assert ContactAttempt.objects.get(account=desk["day"], outcome="voicemail").state == "completed"

    # Record a promise on the same case.
    page.click("#panel-promise summary")
    page.fill("#id_amount", "250.00")
    page.fill("#id_due_date", (timezone.localdate() + timedelta(days=3)).isoformat())
    page.click("#panel-promise button[type=submit]")
    page.wait_for_selector(".timeline-list >> text=Promise to pay")
    assert "250.00" in page.locator(".timeline-list").inner_text()
    assert PromiseToPay.objects.get(account=desk["day"]).amount == 250

    # A call outside the borrower's hours: live check while changing channel, then the refusal on submit.
    page.goto(f"{base}/cases/{desk['night'].pk}/")
    page.click("#panel-outreach summary")
    page.wait_for_selector("#live-check .decision[data-allowed='0']")
    page.select_option("#id_channel", "letter")
    page.wait_for_selector("#live-check .decision[data-allowed='1']")
    page.select_option("#id_channel", "call")
    page.wait_for_selector("#live-check .decision[data-allowed='0']")
    assert "CN.QUIET_HOURS" in page.locator("#live-check").inner_text()
    page.select_option("#id_outcome", "no_answer")
    page.click("#outreach-form button[type=submit]")
    refusal = page.locator("#refusal")
    refusal.wait_for()
    text = refusal.inner_text()
    assert "nothing was recorded" in text and "Next lawful time" in text and "08:00" in text
    assert not ContactAttempt.objects.filter(account=desk["night"]).exists()

    # Switch the language to 中文: the queue is translated.
    page.goto(f"{base}/queue/")
    with page.expect_navigation():
        page.select_option("#lang-select", "zh-hans")
    page.wait_for_selector("h1:has-text('工作队列')")
    body = page.locator("main").inner_text()
    assert "现在允许" in body and "现在不可" in body and "Work queue" not in body

    # ... and so is the compliance explanation of a refusal, down to its details.
    page.goto(f"{base}/cases/{desk['night'].pk}/")
    page.click("#panel-outreach summary")
    page.wait_for_selector("#live-check .decision[data-allowed='0']")
    page.locator("#live-check details summary").first.click()
    explained = page.locator("#live-check").inner_text()
    assert "借款人当地时间将是" in explained and "仅允许在当地时间" in explained, explained
    assert "It would be" not in explained
