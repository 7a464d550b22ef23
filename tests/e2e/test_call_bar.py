"""Issue 12, agent items in real headless Chromium (PostgreSQL): the call bar worked with the keyboard
only, and the queue and case pages at phone width without sideways scrolling."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from cases.models import ContactAttempt, Payment, PromiseToPay
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
        "day2": f.account(lender=lender, agent=agent, zones=(zone_at_local_hour(12),), due_days_ago=60),
        "night": f.account(lender=lender, agent=agent, zones=(zone_at_local_hour(3),), due_days_ago=120),
    }


def test_agent_logs_a_call_a_promise_and_a_payment_with_the_keyboard_only(page, desk):
    login(page, desk["agent"].username)
    acc = desk["day"]
    page.goto(f"{page.base_url}/cases/{acc.pk}/")
    page.wait_for_selector("#call-bar-form")
    kb = page.keyboard
    # From here on: keys only. 5 = right-party contact on a call; the note takes the focus.
    kb.press("5")
    kb.type("E2E keyboard call")
    with page.expect_navigation():
        kb.press("Control+Enter")
    page.wait_for_selector(".timeline-list >> text=E2E keyboard call")
    attempt = ContactAttempt.objects.get(account=acc)
    assert (attempt.channel, attempt.outcome) == ("call", "right_party_contact")

    # Promise to pay: Alt+P opens the panel on its amount; the date is typed as the en-US picker reads it.
    kb.press("Alt+p")
    kb.type("120.00")
    kb.press("Tab")
    kb.type((timezone.localdate() + timedelta(days=3)).strftime("%m%d%Y"))
    with page.expect_navigation():
        kb.press("Control+Enter")
    page.wait_for_selector(".timeline-list >> text=Promise to pay")
    promise = PromiseToPay.objects.get(account=acc)
    assert promise.amount == Decimal("120.00") and promise.due_date == timezone.localdate() + timedelta(days=3)

    # Payment: Alt+Y, the amount (time and method have defaults), Ctrl+Enter.
    kb.press("Alt+y")
    kb.type("50.00")
    with page.expect_navigation():
        kb.press("Control+Enter")
    page.wait_for_selector(".timeline-list >> text=50.00")
    assert Payment.objects.get(account=acc).amount == Decimal("50.00")

    # Save & next: 2 = busy, Alt+N; the night account is skipped (not callable now).
    kb.press("Escape")
    kb.press("2")
    with page.expect_navigation():
        kb.press("Alt+n")
    assert page.url.rstrip("/").endswith(f"/cases/{desk['day2'].pk}")
    assert ContactAttempt.objects.filter(account=acc, outcome="busy").count() == 1


def test_outcome_buttons_follow_the_channel(page, desk):
    login(page, desk["agent"].username)
    page.goto(f"{page.base_url}/cases/{desk['day'].pk}/")
    bar = page.locator("#call-bar-form")
    visible = bar.locator(".outcome-btn:visible")
    texts = visible.all_inner_texts()
    assert len(texts) == 8 and "Busy" in texts[1] and not any("Delivered" in t for t in texts)
    page.select_option("#bar-channel", "letter")
    texts = visible.all_inner_texts()
    assert len(texts) == 2 and "Delivered (sent)" in texts[0] and not any("Busy" in t for t in texts)
    assert bar.locator("input[name=outcome]:checked").count() == 0


def test_refusal_shows_next_to_the_call_bar(page, desk):
    login(page, desk["agent"].username)
    page.goto(f"{page.base_url}/cases/{desk['night'].pk}/")
    page.wait_for_selector("#call-bar-form")
    page.keyboard.press("1")
    with page.expect_navigation():
        page.keyboard.press("Control+Enter")
    refusal = page.locator("#call-bar #refusal")
    refusal.wait_for()
    assert "CN.QUIET_HOURS" in refusal.inner_text()
    assert not ContactAttempt.objects.filter(account=desk["night"]).exists()


@pytest.fixture(params=["en-US", "zh-CN"])
def phone(request, browser, live_server, require_postgres):
    context = browser.new_context(locale=request.param, viewport={"width": 390, "height": 844}, timezone_id="Asia/Shanghai",
                                  is_mobile=True, has_touch=True)
    context.set_default_timeout(15_000)
    pg = context.new_page()
    pg.base_url = live_server.url  # type: ignore[attr-defined]
    yield pg
    context.close()


def test_no_sideways_scrolling_at_phone_width(phone, desk):
    login(phone, desk["agent"].username)
    for path in ("/queue/", f"/cases/{desk['day'].pk}/", f"/cases/{desk['night'].pk}/"):
        phone.goto(phone.base_url + path)
        phone.wait_for_load_state("networkidle")
        width = phone.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, (path, width)
        if path == "/queue/":
            # The wide queue table scrolls inside its container, not the page.
            wrap = phone.locator(".table-wrap").first
            assert wrap.evaluate("el => el.scrollWidth > el.clientWidth")
