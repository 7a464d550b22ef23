"""Plans for less than the balance are settlements and follow the same rules (issue 13): within the lender's
terms (floor for the bucket, maximum instalments) the plan is active at once with its settlement approved; outside
them it waits in the supervisors' settlement queue (approve: active; decline: cancelled; audited). Paid, the account
is settled and the rest written off. A plan for the full balance is unchanged. Every caller takes the same path."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone

from borrowers import services as borrower_services
from borrowers.models import PlanProposal
from cases import services
from cases.models import Instalment, OverdueAccount, RepaymentPlan
from compliance.audit import audit_verify
from compliance.models import AuditEvent
from finance import selectors as finance_selectors
from finance import services as finance
from finance.models import AccountBalance, Settlement
from tests.finance.conftest import m2_world, parts_set

pytestmark = pytest.mark.django_db


@pytest.fixture
def world():
    """An M2 account of 1000: the platform's default terms (no published rule) set a 90 % floor, 6 instalments."""
    return m2_world()


def day(n: int):
    return timezone.localdate() + timedelta(days=n)


def plan(world, total: str, parts: list[str], *, actor=None) -> RepaymentPlan:
    return services.repayment_plan_create(
        actor=actor or world["agent"], account=world["account"], total_amount=Decimal(total),
        instalments=[(day(7 + 30 * i), Decimal(a)) for i, a in enumerate(parts)])


def pay(world, amount: str):
    return services.payment_record(actor=world["agent"], account=world["account"], amount=Decimal(amount),
                                   paid_at=timezone.now())


def actions(account) -> list[str]:
    return list(AuditEvent.objects.filter(account_id=account.pk).order_by("id").values_list("action", flat=True))


def test_terms_in_force_without_a_published_rule_are_the_platform_defaults(world):
    terms = finance.settlement_terms_in_force(lender_id=world["lender"].pk)
    assert (terms.version, terms.max_instalments) == (0, 6)
    assert terms.floor_percent("M2") == Decimal("90") and terms.floor_percent("M7+") == Decimal("60")
    assert terms.floor_percent("M0") == Decimal("100")  # not yet aged: no discount without a supervisor


def test_at_or_above_the_floor_the_plan_is_active_and_its_settlement_approved(world):
    p = plan(world, "900.00", ["450.00", "450.00"])
    acc = world["account"]
    acc.refresh_from_db()
    assert p.status == RepaymentPlan.Status.ACTIVE and acc.status == OverdueAccount.Status.PLAN
    s = Settlement.objects.get(plan=p)
    assert (s.status, s.needs_approval, s.amount, s.percent, s.floor_percent, s.bucket, s.rule_version) == (
        Settlement.Status.APPROVED, False, Decimal("900.00"), Decimal("90.00"), Decimal("90"), "M2", 0)
    assert s.approved_at is not None and s.max_instalments == 6 and s.offered_by == world["agent"]
    assert [i["amount"] for i in s.instalments] == ["450.00", "450.00"]
    assert actions(acc) == ["cases.repayment_plan.created", "finance.settlement.offered", "finance.settlement.approved"]
    offered = AuditEvent.objects.get(action="finance.settlement.offered")
    assert offered.data["source"] == "plan" and offered.data["plan_id"] == p.pk
    assert offered.data["needs_approval"] is False and offered.data["floor_amount"] == "900.00"
    assert AuditEvent.objects.get(action="finance.settlement.approved").data["automatic"] is True
    assert not finance_selectors.settlements_pending().filter(account=acc).exists()


def test_all_instalments_paid_settles_the_account_and_writes_off_the_rest(world):
    acc = world["account"]
    parts_set(acc, principal="800", interest="150", fees="50")
    p = plan(world, "900.00", ["450.00", "450.00"])
    pay(world, "450.00")
    acc.refresh_from_db()
    assert acc.status == OverdueAccount.Status.PLAN and acc.balance == Decimal("550.00")
    pay(world, "450.00")
    acc.refresh_from_db()
    p.refresh_from_db()
    s = Settlement.objects.get(plan=p)
    assert p.status == RepaymentPlan.Status.COMPLETED
    assert (acc.status, acc.balance) == (OverdueAccount.Status.SETTLED, Decimal("0"))
    # fees 50 + interest 150 + principal 700 paid; principal 100 left is written off and reported.
    assert s.status == Settlement.Status.SETTLED and s.written_off == Decimal("100.00")
    assert s.written_off_parts["principal"] == "100.00"
    assert AccountBalance.objects.get(account=acc).total == 0
    assert AuditEvent.objects.get(action="finance.settlement.settled", account_id=acc.pk).data["written_off"] == "100.00"
    assert audit_verify(record=False).ok


def test_below_the_floor_the_plan_waits_and_a_supervisor_approves_it(world):
    acc = world["account"]
    p = plan(world, "600.00", ["300.00", "300.00"])
    acc.refresh_from_db()
    assert p.status == RepaymentPlan.Status.PENDING
    assert acc.status == OverdueAccount.Status.ASSIGNED  # no plan in force yet
    s = Settlement.objects.get(plan=p)
    assert (s.status, s.needs_approval, s.below_floor, s.over_max_instalments) == (
        Settlement.Status.PENDING, True, True, False)
    assert list(finance_selectors.settlements_pending()) == [s]
    created = AuditEvent.objects.get(action="cases.repayment_plan.created", subject_id=str(p.pk))
    assert created.data["status"] == "pending"
    assert AuditEvent.objects.get(action="finance.settlement.offered").data["below_floor"] is True

    # A waiting plan is not paid: a payment only reduces the balance.
    pay(world, "100.00")
    assert set(Instalment.objects.filter(plan=p).values_list("paid_amount", flat=True)) == {Decimal("0")}

    with pytest.raises(PermissionError):
        finance.settlement_approve(actor=world["agent"], settlement=s)
    s = finance.settlement_approve(actor=world["supervisor"], settlement=s, note="hardship")
    p.refresh_from_db()
    acc.refresh_from_db()
    assert s.status == Settlement.Status.APPROVED and s.plan_id == p.pk and s.decided_by == world["supervisor"]
    assert p.status == RepaymentPlan.Status.ACTIVE and acc.status == OverdueAccount.Status.PLAN
    approved = AuditEvent.objects.get(action="cases.repayment_plan.approved", subject_id=str(p.pk))
    assert approved.actor_id == world["supervisor"].pk
    assert AuditEvent.objects.get(action="finance.settlement.approved").data["note"] == "hardship"
    with pytest.raises(ValidationError):  # decided once
        finance.settlement_decline(actor=world["supervisor"], settlement=s)
    # Approved, it is paid like any settlement: 600 after approval settles the account (100 before did not count).
    pay(world, "300.00")
    pay(world, "300.00")
    acc.refresh_from_db()
    s.refresh_from_db()
    assert (acc.status, acc.balance, s.written_off) == (OverdueAccount.Status.SETTLED, Decimal("0"), Decimal("300.00"))
    assert audit_verify(record=False).ok


def test_a_supervisor_declines_the_waiting_plan_and_the_active_plan_stays(world):
    acc = world["account"]
    full = plan(world, "1000.00", ["500.00", "500.00"])
    p = plan(world, "500.00", ["500.00"])
    full.refresh_from_db()
    assert p.status == RepaymentPlan.Status.PENDING and full.status == RepaymentPlan.Status.ACTIVE
    s = finance.settlement_decline(actor=world["supervisor"], settlement=Settlement.objects.get(plan=p),
                                   note="too low")
    p.refresh_from_db()
    full.refresh_from_db()
    acc.refresh_from_db()
    assert s.status == Settlement.Status.DECLINED and p.status == RepaymentPlan.Status.CANCELLED
    assert full.status == RepaymentPlan.Status.ACTIVE and acc.status == OverdueAccount.Status.PLAN
    declined = AuditEvent.objects.get(action="cases.repayment_plan.declined", subject_id=str(p.pk))
    assert declined.actor_id == world["supervisor"].pk and declined.data["note"] == "too low"
    assert AuditEvent.objects.get(action="finance.settlement.declined").data["note"] == "too low"
    with pytest.raises(ValidationError):
        finance.settlement_approve(actor=world["supervisor"], settlement=s)


def test_approving_replaces_the_active_plan_and_withdraws_the_settlement_it_paid(world):
    acc = world["account"]
    first = plan(world, "950.00", ["950.00"])  # within the terms: active, settlement approved
    waiting = plan(world, "700.00", ["700.00"])  # below the floor: the first plan stays in force meanwhile
    first.refresh_from_db()
    assert first.status == RepaymentPlan.Status.ACTIVE and waiting.status == RepaymentPlan.Status.PENDING
    old, new = Settlement.objects.get(plan=first), Settlement.objects.get(plan=waiting)
    assert (old.status, new.status) == (Settlement.Status.APPROVED, Settlement.Status.PENDING)
    with pytest.raises(ValidationError):  # an offer on top of an open settlement is still refused
        finance.settlement_offer(actor=world["agent"], account=acc, amount=Decimal("950.00"),
                                 instalments=[(day(3), Decimal("950.00"))])
    finance.settlement_approve(actor=world["supervisor"], settlement=new)
    first.refresh_from_db()
    waiting.refresh_from_db()
    old.refresh_from_db()
    assert first.status == RepaymentPlan.Status.CANCELLED and waiting.status == RepaymentPlan.Status.ACTIVE
    assert old.status == Settlement.Status.WITHDRAWN and old.decided_by == world["supervisor"]
    withdrawn = AuditEvent.objects.get(action="finance.settlement.withdrawn", subject_id=str(old.pk))
    assert withdrawn.data["replaced_by_plan"] == waiting.pk and withdrawn.data["status_from"] == "approved"
    assert AuditEvent.objects.get(action="cases.repayment_plan.approved").data["replaced_plans"] == [first.pk]


def test_a_newer_plan_supersedes_one_waiting_for_approval(world):
    waiting = plan(world, "600.00", ["600.00"])
    s = Settlement.objects.get(plan=waiting)
    newer = plan(world, "1000.00", ["1000.00"])  # the full balance: no settlement
    waiting.refresh_from_db()
    s.refresh_from_db()
    assert waiting.status == RepaymentPlan.Status.CANCELLED and newer.status == RepaymentPlan.Status.ACTIVE
    assert s.status == Settlement.Status.WITHDRAWN
    created = AuditEvent.objects.get(action="cases.repayment_plan.created", subject_id=str(newer.pk))
    assert created.data["superseded_plans"] == [waiting.pk] and created.data["withdrawn_settlements"] == [s.pk]
    with pytest.raises(ValidationError):  # no longer waiting
        finance.settlement_approve(actor=world["supervisor"], settlement=s)
    assert not Settlement.objects.filter(plan=newer).exists()


def test_more_instalments_than_the_lender_allows_needs_approval(world):
    seven = ["135.00"] * 6 + ["140.00"]  # 950: above the 90 % floor, but 7 instalments of at most 6
    p = plan(world, "950.00", seven)
    s = Settlement.objects.get(plan=p)
    assert p.status == RepaymentPlan.Status.PENDING
    assert (s.below_floor, s.over_max_instalments, s.max_instalments) == (False, True, 6)
    assert AuditEvent.objects.get(action="finance.settlement.offered").data["over_max_instalments"] is True
    six = plan(world, "950.00", ["150.00"] * 5 + ["200.00"])
    assert six.status == RepaymentPlan.Status.ACTIVE
    assert Settlement.objects.get(plan=six).status == Settlement.Status.APPROVED

    # The lender's published terms apply instead of the defaults.
    finance.settlement_rule_publish(actor=None, lender_id=world["lender"].pk, min_percent={"M2": 50},
                                    default_min_percent=Decimal("100"), max_instalments=2,
                                    effective_from=timezone.now() - timedelta(hours=1))
    three = plan(world, "600.00", ["200.00", "200.00", "200.00"])
    two = Settlement.objects.get(plan=three)
    assert three.status == RepaymentPlan.Status.PENDING and two.rule_version == 1 and two.over_max_instalments
    assert plan(world, "600.00", ["300.00", "300.00"]).status == RepaymentPlan.Status.ACTIVE


def test_a_plan_for_the_full_balance_is_unchanged(world):
    acc = world["account"]
    OverdueAccount.objects.filter(pk=acc.pk).update(bucket="M0")  # a 100 % floor: any discount needs approval
    p = plan(world, "1000.00", ["100.00"] * 9 + ["100.00"])  # ten instalments: no settlement limit applies
    acc.refresh_from_db()
    assert p.status == RepaymentPlan.Status.ACTIVE and acc.status == OverdueAccount.Status.PLAN
    assert not Settlement.objects.filter(account=acc).exists()
    assert actions(acc) == ["cases.repayment_plan.created"]
    for _ in range(10):
        pay(world, "100.00")
    acc.refresh_from_db()
    p.refresh_from_db()
    assert p.status == RepaymentPlan.Status.COMPLETED and acc.status == OverdueAccount.Status.PAID


def test_approval_is_refused_once_the_first_instalment_date_has_passed_and_nothing_changes(world):
    p = plan(world, "600.00", ["600.00"])
    Instalment.objects.filter(plan=p).update(due_date=day(-1))
    s = Settlement.objects.get(plan=p)
    with pytest.raises(ValidationError):
        finance.settlement_approve(actor=world["supervisor"], settlement=s)
    p.refresh_from_db()
    s.refresh_from_db()
    assert p.status == RepaymentPlan.Status.PENDING and s.status == Settlement.Status.PENDING
    assert not AuditEvent.objects.filter(action__in=["finance.settlement.approved",
                                                     "cases.repayment_plan.approved"]).exists()


def test_a_settlement_offer_still_makes_its_plan_when_approved(world):
    s = finance.settlement_offer(actor=world["agent"], account=world["account"], amount=Decimal("800.00"),
                                 instalments=[(day(5), Decimal("800.00"))])
    assert s.status == Settlement.Status.PENDING and s.plan is None
    s = finance.settlement_approve(actor=world["supervisor"], settlement=s)
    assert s.plan.status == RepaymentPlan.Status.ACTIVE
    assert Settlement.objects.filter(account=world["account"]).count() == 1  # the plan made no second settlement


def test_the_workspace_form_makes_a_waiting_plan_and_the_case_page_says_so(world, client):
    acc = world["account"]
    client.force_login(world["agent"])
    data = {"plan-total_amount": "600.00", "inst-TOTAL_FORMS": "2", "inst-INITIAL_FORMS": "0",
            "inst-MIN_NUM_FORMS": "0", "inst-MAX_NUM_FORMS": "36",
            "inst-0-due_date": day(7).isoformat(), "inst-0-amount": "300.00",
            "inst-1-due_date": day(37).isoformat(), "inst-1-amount": "300.00"}
    assert client.post(reverse("case-plan", args=[acc.pk]), data).status_code == 302
    p = RepaymentPlan.objects.get(account=acc)
    assert p.status == RepaymentPlan.Status.PENDING
    html = client.get(reverse("case-detail", args=[acc.pk]), HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert 'id="plan-awaiting-approval"' in html and "not active until a supervisor approves it" in html
    assert "below the floor of 90" in html
    zh = client.get(reverse("case-detail", args=[acc.pk]), HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    assert 'id="plan-awaiting-approval"' in zh

    client.force_login(world["supervisor"])
    queue = client.get(reverse("finance:settlements"), HTTP_ACCEPT_LANGUAGE="en").content.decode()
    s = Settlement.objects.get(plan=p)
    assert f'data-settlement="{s.pk}"' in queue and 'data-kind="plan"' in queue and "data-below-floor" in queue
    r = client.post(reverse("finance:settlement-decide", args=[s.pk]), {"decision": "decline", "note": "no"})
    assert r.status_code == 302
    p.refresh_from_db()
    assert p.status == RepaymentPlan.Status.CANCELLED


def test_an_accepted_borrower_proposal_for_less_takes_the_same_path(world):
    acc = world["account"]
    proposal = PlanProposal.objects.create(
        account=acc, total_amount=Decimal("600.00"), currency=acc.currency,
        instalments=[{"due_date": day(3).isoformat(), "amount": "300.00"},
                     {"due_date": day(33).isoformat(), "amount": "300.00"}])
    proposal = borrower_services.plan_proposal_accept(actor=world["agent"], proposal=proposal)
    assert proposal.plan.status == RepaymentPlan.Status.PENDING
    s = Settlement.objects.get(plan=proposal.plan)
    assert s.status == Settlement.Status.PENDING and s.offered_by == world["agent"]
    finance.settlement_approve(actor=world["supervisor"], settlement=s)
    proposal.plan.refresh_from_db()
    assert proposal.plan.status == RepaymentPlan.Status.ACTIVE
