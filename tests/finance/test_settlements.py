"""Settlements: per-lender floors by bucket and instalment limits (versioned), supervisor approval below the
floor, and when paid the account is settled with the remainder written off (undone if that payment bounces)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from cases import services
from cases.models import OverdueAccount, RepaymentPlan
from compliance.models import AuditEvent
from finance import services as finance
from finance.models import AccountBalance, Settlement
from tests import factories as f
from tests.finance.conftest import m2_world, parts_set

pytestmark = pytest.mark.django_db


@pytest.fixture
def world():
    return m2_world()


def soon(days: int = 5):
    return timezone.localdate() + timedelta(days=days)


def test_an_offer_at_the_default_floor_is_approved_at_once_with_a_plan(world):
    s = finance.settlement_offer(actor=world["agent"], account=world["account"], amount=Decimal("900.00"),
                                 instalments=[(soon(), Decimal("450.00")), (soon(35), Decimal("450.00"))])
    assert (s.needs_approval, s.status, s.floor_percent, s.percent) == (False, "approved", Decimal("90"), Decimal("90.00"))
    assert s.plan.status == RepaymentPlan.Status.ACTIVE and s.plan.total_amount == Decimal("900.00")
    assert AuditEvent.objects.filter(action="finance.settlement.approved", subject_id=str(s.pk)).count() == 1


def test_below_the_floor_waits_for_a_supervisor_who_approves_or_declines(world):
    s = finance.settlement_offer(actor=world["agent"], account=world["account"], amount=Decimal("899.99"),
                                 instalments=[(soon(), Decimal("899.99"))])
    assert s.needs_approval and s.status == Settlement.Status.PENDING and s.plan is None
    with pytest.raises(PermissionError):
        finance.settlement_approve(actor=world["agent"], settlement=s)
    s = finance.settlement_approve(actor=world["supervisor"], settlement=s, note="hardship")
    assert s.status == Settlement.Status.APPROVED and s.plan is not None and s.decided_by == world["supervisor"]
    event = AuditEvent.objects.get(action="finance.settlement.approved", subject_id=str(s.pk))
    assert event.data["note"] == "hardship"
    with pytest.raises(ValidationError):  # decided once
        finance.settlement_decline(actor=world["supervisor"], settlement=s)

    other = f.account(lender=world["lender"], balance="500.00")
    d = finance.settlement_offer(actor=world["agent"], account=other, amount=Decimal("100.00"),
                                 instalments=[(soon(), Decimal("100.00"))])
    d = finance.settlement_decline(actor=world["supervisor"], settlement=d, note="too low")
    assert d.status == Settlement.Status.DECLINED and d.plan is None
    assert not RepaymentPlan.objects.filter(account=other).exists()


def test_the_lenders_rule_version_sets_floor_and_instalment_limit(world):
    finance.settlement_rule_publish(actor=None, lender_id=world["lender"].pk, min_percent={"M2": 50},
                                    default_min_percent=Decimal("100"), max_instalments=2,
                                    effective_from=timezone.now() - timedelta(hours=1))
    # More instalments than the lender allows: above the floor, but it waits for a supervisor (as a plan would).
    long = finance.settlement_offer(actor=world["agent"], account=world["account"], amount=Decimal("600.00"),
                                    instalments=[(soon(d), Decimal("200.00")) for d in (1, 31, 61)])
    assert (long.needs_approval, long.status, long.max_instalments) == (True, Settlement.Status.PENDING, 2)
    finance.settlement_decline(actor=world["supervisor"], settlement=long, note="fewer instalments, please")
    s = finance.settlement_offer(actor=world["agent"], account=world["account"], amount=Decimal("600.00"),
                                 instalments=[(soon(), Decimal("600.00"))])
    assert (s.needs_approval, s.rule_version, s.floor_percent) == (False, 1, Decimal("50"))
    with pytest.raises(ValidationError):  # one open settlement per account
        finance.settlement_offer(actor=world["agent"], account=world["account"], amount=Decimal("700.00"),
                                 instalments=[(soon(), Decimal("700.00"))])


def test_an_offer_must_be_below_the_balance(world):
    with pytest.raises(ValidationError):
        finance.settlement_offer(actor=world["agent"], account=world["account"], amount=Decimal("1000.00"),
                                 instalments=[(soon(), Decimal("1000.00"))])


def test_paid_in_full_settles_and_writes_off_the_rest_and_a_bounce_reopens_it(world):
    acc, agent = world["account"], world["agent"]
    parts_set(acc, principal="800", interest="150", fees="50")
    finance.settlement_offer(actor=agent, account=acc, amount=Decimal("950.00"),
                             instalments=[(soon(), Decimal("500.00")), (soon(35), Decimal("450.00"))])
    services.payment_record(actor=agent, account=acc, amount=Decimal("500.00"), paid_at=timezone.now())
    acc.refresh_from_db()
    assert acc.status == OverdueAccount.Status.PLAN and acc.balance == Decimal("500.00")
    last = services.payment_record(actor=agent, account=acc, amount=Decimal("450.00"), paid_at=timezone.now())
    acc.refresh_from_db()
    s = Settlement.objects.get(account=acc)
    assert acc.status == OverdueAccount.Status.SETTLED and acc.balance == 0
    # fees 50 + interest 150 + principal 300 paid first; principal 50 left is written off.
    assert s.status == Settlement.Status.SETTLED and s.written_off == Decimal("50.00")
    assert s.written_off_parts["principal"] == "50.00"
    assert AccountBalance.objects.get(account=acc).total == 0
    assert AuditEvent.objects.get(action="finance.settlement.settled").data["written_off"] == "50.00"

    finance.payment_reverse(payment=last, actor=agent, reason="bounced")
    acc.refresh_from_db()
    s.refresh_from_db()
    assert acc.balance == Decimal("500.00") == AccountBalance.objects.get(account=acc).total
    assert s.status == Settlement.Status.APPROVED and s.written_off == 0
    assert acc.status == OverdueAccount.Status.PLAN


def test_queue_page_and_decision_view(world, client):
    s = finance.settlement_offer(actor=world["agent"], account=world["account"], amount=Decimal("500.00"),
                                 instalments=[(soon(), Decimal("500.00"))])
    client.force_login(world["agent"])
    assert client.get("/finance/settlements/").status_code == 403
    client.force_login(world["supervisor"])
    page = client.get("/finance/settlements/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert f'data-settlement="{s.pk}"' in page and world["account"].external_ref in page
    r = client.post(f"/finance/settlements/{s.pk}/decide/", {"decision": "approve", "note": "ok"})
    assert r.status_code == 302
    s.refresh_from_db()
    assert s.status == Settlement.Status.APPROVED


def test_agent_offers_from_the_case_page_and_cannot_reach_another_agents_account(world, client):
    client.force_login(world["agent"])
    r = client.post(f"/finance/accounts/{world['account'].pk}/settlement/",
                    {"amount": "400.00", "instalments": "3", "first_due_date": soon().isoformat()})
    assert r.status_code == 302
    s = Settlement.objects.get(account=world["account"])
    assert s.needs_approval and [i["amount"] for i in s.instalments] == ["133.33", "133.33", "133.34"]
    html = client.get(f"/cases/{world['account'].pk}/").content.decode()
    assert 'id="settlement-status"' in html and 'data-status="pending"' in html
    stranger = f.account(lender=world["lender"], agent=f.user(role="agent"))
    assert client.post(f"/finance/accounts/{stranger.pk}/settlement/",
                       {"amount": "1.00", "instalments": "1", "first_due_date": soon().isoformat()}).status_code == 404
