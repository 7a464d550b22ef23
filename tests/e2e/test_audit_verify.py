"""Supervisor audit log in the browser (issue 12): search by an account's reference, names instead of ids,
the event detail, and *Verify chain* run as a background job (eager here, as in the embedded run)."""

from __future__ import annotations

import pytest

from cases.models import Lender
from compliance.audit import audit_log
from compliance.models import AuditVerification
from tests import factories as f
from tests.e2e.conftest import login

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]


def test_supervisor_filters_by_reference_and_verifies_the_chain(page):
    lender = Lender.objects.create(name="和信消费金融", code="hexin", status="active")
    agent = f.user(role="agent", username="e2e_agent")
    f.user(role="supervisor", username="e2e_sup")
    acc, other = f.account(lender=lender, agent=agent), f.account(lender=lender, agent=agent)
    for a in (acc, other):
        audit_log(action="cases.note.added", actor=agent, lender_id=lender.pk, account_id=a.pk,
                  borrower_id=a.borrower_id, data={"body": f"called about {a.external_ref}"})

    login(page, "e2e_sup")
    page.goto(page.base_url + "/supervisor/audit/")
    page.fill("#id_ref", acc.external_ref)
    page.click("#audit-filters button[type=submit]")
    rows = page.locator("#audit-events tbody tr[data-action]")
    assert rows.count() == 1 and page.get_attribute("#audit-count", "data-count") == "1"
    text = rows.first.inner_text()
    assert "Note added" in text and acc.external_ref in text and "和信消费金融" in text and "e2e_agent" in text
    assert acc.borrower.name in text

    rows.first.locator("td a").first.click()
    page.wait_for_url("**/audit/event/*/")
    assert f"called about {acc.external_ref}" in page.inner_text("#audit-event-data")
    page.go_back()

    assert not AuditVerification.objects.exists()
    page.click("#verify-chain")
    page.wait_for_load_state("networkidle")
    assert page.locator("[data-testid=verification] .badge.ok").inner_text() == "intact"
    assert AuditVerification.objects.get().ok
    assert page.input_value("#id_ref") == acc.external_ref  # the filters survive the verify round trip
    page.click("#audit-reset")
    assert page.input_value("#id_ref") == ""
    assert page.locator("#audit-events tbody tr[data-action]").count() >= 3  # the verify request is audited too
