"""Money in the browser: a lender downloads a remittance statement from the portal; a supervisor approves a
settlement offered below the lender's floor."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from cases import services
from finance import services as finance
from finance import statements
from finance.models import Settlement
from tests import factories as f
from tests.e2e.conftest import login

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]


def test_lender_downloads_a_statement(page, monkeypatch):
    monkeypatch.setattr(statements, "SETTLE", timedelta(0))  # issue right after the payment (same process)
    lender = f.lender(code="stmt")
    agent = f.user()
    account = f.account(lender=lender, agent=agent, balance="500.00")
    services.payment_record(actor=agent, account=account, amount=Decimal("123.45"), paid_at=timezone.now(),
                            reference="BANK-E2E-1")
    (st,) = statements.statement_issue(actor=None, lender=lender)
    user = f.user(role="lender", lender=lender)
    login(page, user.username)
    page.click("#statements-link")
    page.wait_for_selector(f'tr[data-statement="{st.pk}"]')
    with page.expect_download() as info:
        page.click(f'tr[data-statement="{st.pk}"] a.statement-csv')
    body = _read(info.value.path())
    assert "BANK-E2E-1" in body and "123.45" in body
    with page.expect_download() as info:
        page.click(f'tr[data-statement="{st.pk}"] a.statement-pdf')
    assert info.value.suggested_filename.endswith(".pdf")
    with open(info.value.path(), "rb") as fh:
        assert fh.read(4) == b"%PDF"


def _read(path) -> str:
    with open(path, encoding="utf-8-sig") as fh:
        return fh.read()


def test_supervisor_approves_a_settlement_below_the_floor(page):
    lender = f.lender()
    agent = f.user()
    account = f.account(lender=lender, agent=agent, balance="1000.00")
    settlement = finance.settlement_offer(actor=agent, account=account, amount=Decimal("300.00"),
                                          instalments=[(timezone.localdate() + timedelta(days=7), Decimal("300.00"))])
    assert settlement.needs_approval
    supervisor = f.user(role="supervisor")
    login(page, supervisor.username)
    page.goto(page.base_url + "/finance/settlements/")
    row = f'#settlements-pending tr[data-settlement="{settlement.pk}"]'
    page.fill(f"{row} input[name=note]", "hardship, documented")
    page.click(f"{row} button[value=approve]")
    page.wait_for_load_state("networkidle")
    assert page.locator(row).count() == 0
    assert account.external_ref in page.inner_text("#settlements-recent")
    settlement.refresh_from_db()
    assert settlement.status == Settlement.Status.APPROVED and settlement.decided_by == supervisor
    assert settlement.plan is not None
