"""The times that suit a borrower are the person's, read by the gate from every record of the person like
holds: a record another lender places after the times were stated must not let that lender call outside them."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from cases import gate, services
from cases.models import Borrower, ContactAttempt
from tests import factories as f
from tests.borrowers.conftest import with_id

pytestmark = pytest.mark.django_db

SH = ZoneInfo("Asia/Shanghai")
EVENINGS = [{"days": ["mon", "tue", "wed", "thu", "fri"], "start": "18:00", "end": "21:00"}]


@pytest.fixture
def later_record(now_at):
    """The person states evenings on lender 1's record; lender 2 places the same person afterwards."""
    agent = f.user(role="agent")
    first = f.account(lender=f.lender(), agent=agent, zones=("Asia/Shanghai",))
    with_id(first.borrower)
    services.contact_times_set(borrower=first.borrower, windows=EVENINGS, actor=agent)
    later = f.account(lender=f.lender(), agent=agent, zones=("Asia/Shanghai",))
    with_id(later.borrower)
    assert Borrower.objects.get(pk=later.borrower_id).contact_windows == []  # its own record knows nothing
    now_at(datetime(2027, 4, 14, 10, 0, tzinfo=SH))  # a Wednesday morning: policy hours, not the person's
    later.borrower.refresh_from_db()
    return {"agent": agent, "later": later}


def test_the_gate_refuses_the_later_lender_outside_the_persons_times(later_record):
    later = later_record["later"]
    at = datetime(2027, 4, 14, 10, 0, tzinfo=SH)
    decision = gate.contact_check(account=later, channel="call", at=at)
    assert [v.code for v in decision.violations] == ["BORROWER.CONVENIENT_TIMES"]
    assert decision.next_allowed_at == datetime(2027, 4, 14, 18, 0, tzinfo=SH)
    bulk = gate.contact_check_bulk(accounts=[later], channels=("call", "sms"), at=at)
    assert all(not d.allowed for d in bulk.values())
    with pytest.raises(services.ContactRefused) as refused:
        services.contact_attempt_record(account=later, actor=later_record["agent"], channel="call",
                                        outcome="no_answer")
    assert [v.code for v in refused.value.decision.violations] == ["BORROWER.CONVENIENT_TIMES"]
    assert not ContactAttempt.objects.filter(account=later).exists()
    # Inside the person's times the later lender may call.
    assert gate.contact_check(account=later, channel="call", at=datetime(2027, 4, 14, 19, 0, tzinfo=SH)).allowed


def test_no_stated_times_anywhere_leaves_the_policy_hours_alone(later_record):
    later = later_record["later"]
    services.contact_times_set(borrower=later.borrower, windows=[], actor=later_record["agent"])
    later.borrower.refresh_from_db()
    assert gate.contact_check(account=later, channel="call", at=datetime(2027, 4, 14, 10, 0, tzinfo=SH)).allowed
