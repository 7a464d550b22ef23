from __future__ import annotations

import pytest

from cases.models import Borrower
from reminders.senders import LocmemSender
from tests import factories as f
from tests.cases.test_workspace import zone_at_local_hour

NATIONAL_ID = "11010519491231002X"


def with_id(borrower: Borrower, national_id: str = NATIONAL_ID) -> Borrower:
    # The factory leaves the ID empty; person_key is computed by the database from it.
    Borrower.objects.filter(pk=borrower.pk).update(national_id=national_id)
    borrower.refresh_from_db()
    return borrower


@pytest.fixture
def person(db):
    """One natural person with an account at two lenders (same national ID), plus a stranger."""
    day = zone_at_local_hour(12)
    agent = f.user(role="agent")
    l1, l2 = f.lender(), f.lender()
    a1 = f.account(lender=l1, agent=agent, zones=(day,), balance="1200.00")
    a2 = f.account(lender=l2, agent=agent, zones=(day,), balance="800.00")
    with_id(a1.borrower)
    with_id(a2.borrower)
    stranger = f.account(lender=l1, agent=agent, zones=(day,))
    with_id(stranger.borrower, "110105198001010011")
    return {"agent": agent, "a1": a1, "a2": a2, "stranger": stranger, "l1": l1, "l2": l2}


@pytest.fixture
def outbox(settings):
    """Messages handed to the in-memory SMS/email sender, emptied before and after the test."""
    settings.REMINDER_SMS_BACKEND = settings.REMINDER_EMAIL_BACKEND = "reminders.senders.LocmemSender"
    LocmemSender.outbox.clear()
    LocmemSender.fail_next = 0
    yield LocmemSender.outbox
    LocmemSender.outbox.clear()
    LocmemSender.fail_next = 0
