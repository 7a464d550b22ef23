"""Issue 14: the borrower chooses a repayment plan from the options the lender's terms allow (agreed at once),
and staff see when a plan they made waits for a supervisor (issue 13: plans for less are settlements)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse
from django.utils import timezone

from borrowers import selectors
from borrowers.dates import add_months
from borrowers.models import PlanProposal
from cases.models import OverdueAccount, RepaymentPlan
from compliance.models import AuditEvent
from finance import services as finance
from finance.models import Settlement
from tests.borrowers.test_actions import signed_in  # noqa: F401 - the signed-in borrower client

pytestmark = pytest.mark.django_db


def _bucket(account, bucket: str) -> OverdueAccount:
    OverdueAccount.objects.filter(pk=account.pk).update(bucket=bucket)
    account.refresh_from_db()
    return account


def test_options_follow_the_lenders_terms_and_add_up(person):
    acc = _bucket(person["a1"], "M4")  # 1,200.00; default terms: 80 % floor for M4, at most 6 instalments
    today = timezone.localdate()
    options = {o.key: o for o in selectors.plan_options(account=acc, today=today)}
    assert sorted(options) == ["full-1", "full-3", "full-6", "settle-1", "settle-3"]
    for o in options.values():
        assert sum(a for _d, a in o.instalments) == o.total  # to the cent
        assert o.instalments[0][0] == today + timedelta(days=selectors.FIRST_INSTALMENT_DAYS)
        assert [d for d, _a in o.instalments] == [add_months(o.instalments[0][0], i) for i in range(o.count)]
        check = finance.settlement_check(account=acc, amount=o.total, instalments=o.count)
        assert o.total == acc.balance or not check.needs_approval  # each is within the terms
    assert options["settle-1"].total == Decimal("960.00") and options["settle-1"].settle
    assert options["full-3"].total == Decimal("1200.00")

    # A lender's own terms: 50 % for M4, up to 12 instalments.
    finance.settlement_rule_publish(actor=None, lender_id=acc.lender_id, min_percent={"M4": 50},
                                    default_min_percent=Decimal("100"), max_instalments=12,
                                    effective_from=timezone.now() - timedelta(minutes=1))
    options = {o.key: o for o in selectors.plan_options(account=acc, today=today)}
    assert "full-12" in options and options["settle-3"].total == Decimal("600.00")
    # A bucket without a discount: the whole balance only.
    assert all(not o.settle for o in selectors.plan_options(account=_bucket(acc, "M0"), today=today))


def test_no_options_for_a_disputed_or_closed_account(person):
    acc = person["a1"]
    OverdueAccount.objects.filter(pk=acc.pk).update(status=OverdueAccount.Status.DISPUTE)
    acc.refresh_from_db()
    assert selectors.plan_options(account=acc, today=timezone.localdate()) == []
    OverdueAccount.objects.filter(pk=acc.pk).update(status=OverdueAccount.Status.CLOSED)
    acc.refresh_from_db()
    assert selectors.plan_options(account=acc, today=timezone.localdate()) == []


def test_the_borrower_chooses_a_settlement_and_it_is_agreed_at_once(signed_in, person):  # noqa: F811
    acc = _bucket(person["a1"], "M4")
    page = signed_in.get(reverse("borrowers:home"), HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    assert f'class="plan-choices" data-account="{acc.pk}"' in page and 'value="settle-1"' in page
    assert "960.00" in page and "1,200.00" in page  # amounts with separators in Chinese too
    r = signed_in.post(reverse("borrowers:plan-choose"), {"choose-account": acc.pk, "choose-option": "settle-1"})
    assert r.status_code == 302
    plan = RepaymentPlan.objects.get(account=acc)
    assert plan.status == RepaymentPlan.Status.ACTIVE and plan.total_amount == Decimal("960.00")
    settlement = Settlement.objects.get(plan=plan)
    assert settlement.status == Settlement.Status.APPROVED and not settlement.needs_approval
    e = AuditEvent.objects.get(action="borrowers.plan.chosen", account_id=acc.pk)
    assert (e.actor_label, e.data["option"], e.data["settlement"]) == ("borrower", "settle-1", True)
    acc.refresh_from_db()
    assert acc.status == OverdueAccount.Status.PLAN
    # On a plan now: no more options for that account.
    page = signed_in.get(reverse("borrowers:home")).content.decode()
    assert f'class="plan-choices" data-account="{acc.pk}"' not in page


def test_an_option_the_terms_do_not_offer_or_another_persons_account_is_refused(signed_in, person):  # noqa: F811
    acc = _bucket(person["a1"], "M4")
    r = signed_in.post(reverse("borrowers:plan-choose"), {"choose-account": acc.pk, "choose-option": "settle-24"},
                       follow=True, HTTP_ACCEPT_LANGUAGE="en")
    assert "no longer offered" in r.content.decode()
    stranger = person["stranger"]
    signed_in.post(reverse("borrowers:plan-choose"), {"choose-account": stranger.pk, "choose-option": "full-1"})
    assert not RepaymentPlan.objects.filter(account__in=[acc, stranger]).exists()
    assert not AuditEvent.objects.filter(action="borrowers.plan.chosen").exists()


def test_staff_are_told_when_the_plan_they_made_waits_for_approval(client, person):
    acc = _bucket(person["a1"], "M4")  # floor 80 %: 960.00
    first = timezone.localdate() + timedelta(days=7)
    client.force_login(person["agent"])
    data = {"plan-total_amount": "600.00", "inst-TOTAL_FORMS": "1", "inst-INITIAL_FORMS": "0",
            "inst-MIN_NUM_FORMS": "0", "inst-MAX_NUM_FORMS": "36",
            "inst-0-due_date": first.isoformat(), "inst-0-amount": "600.00"}
    r = client.post(reverse("case-plan", args=[acc.pk]), data, HTTP_ACCEPT_LANGUAGE="en")
    assert r.status_code == 302
    assert any("waits for a supervisor's approval" in str(m) for m in get_messages(r.wsgi_request))

    proposal = PlanProposal.objects.create(account=person["a2"], total_amount=Decimal("100.00"),
                                           currency="CNY", instalments=[{"due_date": first.isoformat(),
                                                                         "amount": "100.00"}])
    r = client.post(reverse("borrowers:proposal-accept", args=[proposal.pk]), HTTP_ACCEPT_LANGUAGE="en")
    assert any("waits for a supervisor's approval" in str(m) for m in get_messages(r.wsgi_request))
    proposal.refresh_from_db()
    assert proposal.plan.status == RepaymentPlan.Status.PENDING
