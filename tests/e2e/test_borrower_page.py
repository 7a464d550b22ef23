"""The borrower page on a phone (390×844) in headless Chromium against the live server (PostgreSQL):
link + ID factor, balances, plan proposal, dispute with a file, SMS opt-out; then the agent's timeline."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from borrowers.models import Dispute, PlanProposal
from borrowers.services import access_link_issue
from cases.models import Borrower
from tests import factories as f
from tests.borrowers.conftest import with_id
from tests.cases.test_workspace import zone_at_local_hour
from tests.e2e.conftest import ARTIFACTS, login

pytestmark = pytest.mark.e2e
PDF = b"%PDF-1.4\n% receipt of payment\n"


@pytest.fixture
def phone(request, browser, live_server, require_postgres):
    context = browser.new_context(locale="en-US", viewport={"width": 390, "height": 844}, is_mobile=True,
                                  has_touch=True, timezone_id="Asia/Shanghai")
    context.set_default_timeout(15_000)
    pg = context.new_page()
    pg.base_url = live_server.url  # type: ignore[attr-defined]
    yield pg
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed:
        ARTIFACTS.mkdir(exist_ok=True)
        pg.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"), full_page=True)
    context.close()


def test_borrower_self_service_on_a_phone_then_agent_timeline(phone, browser, live_server, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    agent = f.user(role="agent")
    day = zone_at_local_hour(12)
    account = f.account(lender=f.lender(), agent=agent, zones=(day,), balance="1500.00")
    other = f.account(lender=f.lender(), agent=agent, zones=(day,), balance="300.00")
    with_id(account.borrower)
    with_id(other.borrower)  # the same person at another lender
    _row, raw = access_link_issue(borrower=account.borrower, actor=None)

    page = phone
    page.goto(f"{page.base_url}/b/l/{raw}/")
    page.fill("#id_factor", "1234")  # wrong first
    page.click("#access-form button[type=submit]")
    page.wait_for_selector("#access-failed")
    page.fill("#id_factor", "002X")
    page.click("#access-form button[type=submit]")
    page.wait_for_selector("#h-accounts")

    # Both lenders' accounts of the person, with balances, and the rules in plain words.
    card = page.locator(f"section.account[data-account='{account.pk}']")
    assert "1,500.00 CNY" in card.locator(".balance").inner_text()
    assert "300.00 CNY" in page.locator(f"section.account[data-account='{other.pk}'] .balance").inner_text()
    assert "22:00" in page.locator("#protections").inner_text()
    # Mobile first: nothing wider than the phone's screen.
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")

    # Propose a plan.
    page.click("#panel-plan summary")
    page.select_option("#id_plan-account", str(account.pk))
    page.fill("#id_plan-count", "3")
    page.fill("#id_plan-amount", "400.00")
    page.fill("#id_plan-first_date", (timezone.localdate() + timedelta(days=7)).isoformat())
    page.click("#panel-plan button[type=submit]")
    page.wait_for_selector(".messages >> text=Your plan proposal was sent")
    assert PlanProposal.objects.get(account=account).total_amount == 1200

    # Raise a dispute with a file.
    page.click("#panel-dispute summary")
    page.select_option("#id_dispute-account", str(account.pk))
    page.select_option("#id_dispute-reason", "amount_wrong")
    page.fill("#id_dispute-text", "I paid 300 in May; receipt attached.")
    page.set_input_files("#id_dispute-evidence", files=[{"name": "receipt.pdf", "mimeType": "application/pdf",
                                                          "buffer": PDF}])
    page.click("#panel-dispute button[type=submit]")
    page.wait_for_selector(".messages >> text=Your dispute is recorded")
    dispute = Dispute.objects.get(account=account)
    assert dispute.evidence.get().original_name == "receipt.pdf"
    assert Borrower.objects.get(pk=account.borrower_id).dispute

    # Opt out of SMS.
    page.click("#panel-contact summary")
    page.click("#stop-sms")
    page.wait_for_selector(".messages >> text=we will send no more text messages")
    assert Borrower.objects.get(pk=account.borrower_id).opted_out

    # The agent sees each of them on the account's timeline.
    desk = browser.new_context(locale="en-US", viewport={"width": 1366, "height": 800}, timezone_id="Asia/Shanghai")
    try:
        agent_page = desk.new_page()
        agent_page.base_url = live_server.url  # type: ignore[attr-defined]
        login(agent_page, agent.username)
        agent_page.goto(f"{live_server.url}/cases/{account.pk}/")
        timeline = agent_page.locator(".timeline-list")
        timeline.wait_for()
        text = timeline.inner_text()
        for label in ("Borrower proposed a repayment plan", "Borrower raised a dispute (hold on)",
                      "Borrower opted out online"):
            assert label in text, label
    finally:
        desk.close()
