"""Choosing a plan never replaces the account's plan in force (active, or awaiting a supervisor's approval): the
service refuses it, not only the page that hides the options, so a stale tab or a hand-made POST changes nothing."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone

from borrowers import selectors, services
from cases.models import OverdueAccount, RepaymentPlan
from compliance.models import AuditEvent
from finance.models import Settlement
from tests.borrowers.test_actions import signed_in  # noqa: F401 - the signed-in borrower client

pytestmark = pytest.mark.django_db


def _m4(account) -> OverdueAccount:
    OverdueAccount.objects.filter(pk=account.pk).update(bucket="M4")  # 80 % floor: settlements on offer
    account.refresh_from_db()
    return account


def test_choosing_again_by_post_is_refused_and_the_first_plan_stands(signed_in, person):  # noqa: F811
    acc = _m4(person["a1"])
    url = reverse("borrowers:plan-choose")
    assert signed_in.post(url, {"choose-account": acc.pk, "choose-option": "settle-1"}).status_code == 302
    first = RepaymentPlan.objects.get(account=acc)
    settlement = Settlement.objects.get(plan=first)
    events = AuditEvent.objects.count()

    # The same page still open in another tab: the whole balance in 3 instead.
    r = signed_in.post(url, {"choose-account": acc.pk, "choose-option": "full-3"}, follow=True,
                       HTTP_ACCEPT_LANGUAGE="en")
    assert "already has a repayment plan" in r.content.decode()
    assert list(RepaymentPlan.objects.filter(account=acc)) == [first]
    first.refresh_from_db()
    settlement.refresh_from_db()
    assert first.status == RepaymentPlan.Status.ACTIVE and settlement.status == Settlement.Status.APPROVED
    assert AuditEvent.objects.count() == events  # nothing audited for the refused choice
    assert AuditEvent.objects.filter(action="borrowers.plan.chosen").count() == 1


def test_a_plan_awaiting_approval_is_not_replaced_either(client, person):
    acc = _m4(person["a1"])  # floor 960.00: 600.00 waits for a supervisor
    first = timezone.localdate() + timedelta(days=7)
    client.force_login(person["agent"])
    client.post(reverse("case-plan", args=[acc.pk]), {
        "plan-total_amount": "600.00", "inst-TOTAL_FORMS": "1", "inst-INITIAL_FORMS": "0", "inst-MIN_NUM_FORMS": "0",
        "inst-MAX_NUM_FORMS": "36", "inst-0-due_date": first.isoformat(), "inst-0-amount": "600.00"})
    pending = RepaymentPlan.objects.get(account=acc)
    assert pending.status == RepaymentPlan.Status.PENDING

    assert selectors.plan_options(account=acc, today=timezone.localdate()) == []
    with pytest.raises(ValidationError):
        services.borrower_plan_choose(person=acc.borrower.person, account_id=acc.pk, option="full-1",
                                      today=timezone.localdate())
    pending.refresh_from_db()
    assert pending.status == RepaymentPlan.Status.PENDING
    assert not AuditEvent.objects.filter(action="borrowers.plan.chosen").exists()


def test_a_broken_plan_does_not_stop_a_new_choice(person):
    acc = _m4(person["a1"])
    RepaymentPlan.objects.create(account=acc, total_amount=acc.balance, currency=acc.currency,
                                 status=RepaymentPlan.Status.BROKEN)
    plan = services.borrower_plan_choose(person=acc.borrower.person, account_id=acc.pk, option="full-3",
                                         today=timezone.localdate())
    assert plan.status == RepaymentPlan.Status.ACTIVE
