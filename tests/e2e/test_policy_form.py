"""A supervisor edits a policy value in the form, sees the diff, saves a draft, and drills into the
attempts the what-if replay says it would decide differently (real Chromium, PostgreSQL)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from cases.services import contact_attempt_record
from compliance.models import Policy
from tests import factories as f
from tests.e2e.conftest import login

pytestmark = pytest.mark.e2e


def _at(days: int, hour: int):
    return (timezone.localtime() - timedelta(days=days)).replace(hour=hour, minute=0, second=0, microsecond=0)


@pytest.fixture
def data(transactional_db):
    lender = f.lender()
    agent = f.user(role="agent", username="e2e_agent")
    f.user(role="supervisor", username="e2e_sup")
    acc = f.account(lender=lender, agent=agent)
    # Two unanswered calls to the same number on one day: lawful now (6 a day), not under a cap of 1.
    for hour in (10, 11):
        contact_attempt_record(account=acc, actor=agent, channel="call", outcome="no_answer", occurred_at=_at(3, hour))
    return {"account": acc}


def test_edit_value_diff_save_and_whatif_drilldown(page, data):
    before = Policy.objects.filter(code="CN").count()
    login(page, "e2e_sup")
    page.goto(page.base_url + "/supervisor/policies/")
    page.click("a[href$='/policies/CN/draft/']")
    cap = page.locator("fieldset[data-code='CN.UNANSWERED_PER_NUMBER'] input[name$='__max']")
    assert cap.input_value() == "6"
    cap.fill("1")
    page.click("#policy-form button[value=preview]")
    diff = page.locator("#policy-diff tr[data-rule='CN.UNANSWERED_PER_NUMBER']")
    diff.wait_for()
    assert "max" in diff.inner_text() and "1" in diff.locator("strong").inner_text()
    assert Policy.objects.filter(code="CN").count() == before  # a preview saves nothing

    page.click("#policy-form button[value=save]")
    page.wait_for_url("**/policies/version/**")
    assert page.locator("#policy-diff tr[data-rule='CN.UNANSWERED_PER_NUMBER']").count() == 1
    draft = Policy.objects.filter(code="CN").order_by("-version").first()
    assert draft.status == "draft" and Policy.objects.filter(code="CN").count() == before + 1

    page.fill("#id_days", "10")
    page.click("#whatif-form button[type=submit]")
    rows = page.locator("#whatif-changed tbody tr")
    rows.first.wait_for()
    assert rows.count() == 1
    row = rows.first.inner_text()
    assert data["account"].external_ref in row and "CN.UNANSWERED_PER_NUMBER" in row
    page.screenshot(path="tests/e2e/artifacts/policy_whatif.png", full_page=True)
