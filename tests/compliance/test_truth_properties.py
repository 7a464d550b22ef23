"""Property: for random histories written through the real services (outreach started and completed,
contacts logged now, contacts reported after the fact, on two lenders' records of one person and a
call about two debts), no started or completed attempt that is not flagged violates the policy in
force at its time, judged against every other unflagged attempt on *both* sides of it (but inbound
contacts reported after it: those are always recorded and no outreach could have known); and every
contact reported after the fact that broke a rule is flagged (and has its incident)."""

from __future__ import annotations

import itertools
import os
from dataclasses import replace
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cases import services
from cases.gate import borrower_facts, person_holds
from cases.models import Borrower, ContactAttempt
from compliance import rules
from compliance.models import Incident
from compliance.selectors import policy_in_force
from tests import factories as f

pytestmark = pytest.mark.django_db

START = {"CN": datetime(2027, 4, 14, 9, 0, tzinfo=ZoneInfo("Asia/Shanghai")),
         "US": datetime(2027, 4, 14, 9, 0, tzinfo=ZoneInfo("America/New_York"))}
ZONES = {"CN": ("Asia/Shanghai",), "US": ("America/New_York",)}
_ids = itertools.count(1)

CHANNELS = ["call", "call", "call", "sms", "visit"]
OUTCOMES = [o for o in rules.OUTCOMES if o != "unreported"]

ops = st.lists(
    st.one_of(
        st.tuples(st.just("start"), st.integers(0, 2), st.sampled_from(CHANNELS)),
        st.tuples(st.just("now"), st.integers(0, 2), st.sampled_from(CHANNELS), st.sampled_from(OUTCOMES)),
        st.tuples(st.just("report"), st.integers(0, 2), st.sampled_from(CHANNELS),
                  st.sampled_from([*OUTCOMES, *rules.CONVERSATION_OUTCOMES * 3]),  # conversations start waits
                  st.integers(10, 9 * 24 * 60), st.sampled_from(["outbound", "outbound", "inbound"])),
        st.tuples(st.just("complete"), st.integers(0, 5), st.sampled_from(OUTCOMES)),
    ),
    min_size=4, max_size=12,
)


def _world(jurisdiction: str):
    """One person placed by two lenders; lender A holds two of the person's debts."""
    national_id = f"P{next(_ids):08d}"
    agent, partner = f.user(), f.user()
    accounts = []
    for lender, debts in ((f.lender(), 2), (f.lender(), 1)):
        borrower = Borrower.objects.create(
            lender=lender, name="同一人", national_id=national_id, phones=["13800138000"], emails=["p@example.com"],
            jurisdiction=jurisdiction, time_zones=list(ZONES[jurisdiction]))
        accounts += [f.account(lender=lender, borrower=borrower, agent=agent) for _ in range(debts)]
    return agent, partner, accounts


def _attempt(a: ContactAttempt) -> rules.Attempt:
    return rules.Attempt(at=a.occurred_at, channel=a.channel, outcome=a.outcome, account_id=a.account_id,
                         party=a.party, direction=a.direction, phone=a.phone, accounts=tuple(a.other_accounts),
                         borrower_id=a.borrower_id)


@settings(max_examples=int(os.environ.get("TRUTH_EXAMPLES", "30")), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(jurisdiction=st.sampled_from(["CN", "US", "US"]), steps=ops, gaps=st.lists(st.integers(1, 600), min_size=16,
                                                                              max_size=16))
def test_no_unflagged_attempt_violates_the_policy_in_force_at_its_time(now_at, jurisdiction, steps, gaps):
    agent, partner, accounts = _world(jurisdiction)
    now = START[jurisdiction]
    started: list[ContactAttempt] = []
    reported: list[int] = []
    for step, gap in zip(steps, gaps, strict=False):
        now += timedelta(minutes=gap)
        now_at(now)
        kind, idx = step[0], step[1]
        account = accounts[idx] if kind != "complete" else None
        # a call about both of lender A's debts, now and then
        also = [accounts[1].pk] if kind != "complete" and idx == 0 and gap % 3 == 0 else []
        collector = partner if kind != "complete" and step[2] == "visit" and gap % 2 == 0 else None
        try:
            if kind == "start":
                started.append(services.contact_attempt_start(account=account, actor=agent, channel=step[2],
                                                              accounts=also, second_collector=collector))
            elif kind == "now":
                services.contact_attempt_record(account=account, actor=agent, channel=step[2], outcome=step[3],
                                                accounts=also, second_collector=collector)
            elif kind == "report":
                attempt = services.contact_attempt_record(
                    account=account, actor=agent, channel=step[2], outcome=step[3], direction=step[5],
                    occurred_at=now - timedelta(minutes=step[4]), accounts=also,
                    second_collector=collector if step[5] == "outbound" else None)
                reported.append(attempt.pk)
            elif started:
                services.contact_attempt_complete(attempt=started[idx % len(started)], actor=agent, outcome=step[2])
        except (services.ContactRefused, services.ValidationError):
            pass

    person = accounts[0].borrower.person_key
    stored = list(ContactAttempt.objects.filter(person_key=person).order_by("pk"))
    assert len({a.pk for a in stored if a.pk in reported}) == len(reported)  # nothing reported was dropped
    clean = [a for a in stored if not a.is_breach]
    for a in stored:
        if a.is_breach:
            assert a.pk in reported and a.breach  # only contacts that happened are stored as breaches
            assert Incident.objects.filter(attempt_id=a.pk).exists()
    for a in clean:
        if a.direction == "inbound":
            continue
        borrower = a.borrower
        policy = policy_in_force(code=borrower.jurisdiction, at=a.occurred_at, fresh=True)
        assert (policy.code, policy.version) == (a.policy_code, a.policy_version)
        # An inbound contact reported later is never refused and cannot be blamed on an outreach made
        # before it was on record; every *outreach* recorded later was itself judged against this one.
        others = [_attempt(o) for o in clean if o.pk != a.pk and not (o.direction == "inbound" and o.pk > a.pk)]
        proposal = rules.Proposal(
            at=a.occurred_at, channel=a.channel, account_id=a.account_id, accounts=tuple(a.other_accounts),
            party=a.party, phone=a.phone, collectors=2 if a.second_collector_id else 1, borrower_id=a.borrower_id,
            outcome="" if a.outcome == rules.PENDING else a.outcome,
            address=a.phone if a.channel == "sms" else (borrower.emails[0] if a.channel == "email" else ""),
        )
        decision = rules.evaluate(policy=policy, facts=borrower_facts(borrower=borrower,
                                                                      person_holds=person_holds(borrower=borrower)),
                                  history=others, proposal=proposal)
        assert decision.allowed, (a.pk, a.channel, a.outcome, a.occurred_at, decision.violations)
    # Every reported contact that broke a rule against what was recorded before it is flagged.
    for a in stored:
        if a.pk not in reported or a.direction == "inbound":
            continue
        before = [_attempt(o) for o in stored if o.pk < a.pk]
        policy = policy_in_force(code=a.borrower.jurisdiction, at=a.occurred_at, fresh=True)
        proposal = rules.Proposal(at=a.occurred_at, channel=a.channel, account_id=a.account_id,
                                  accounts=tuple(a.other_accounts), party=a.party, phone=a.phone,
                                  collectors=2 if a.second_collector_id else 1, borrower_id=a.borrower_id,
                                  outcome=a.outcome, address=a.phone if a.channel == "sms" else "")
        facts = borrower_facts(borrower=a.borrower, person_holds=person_holds(borrower=a.borrower))
        if a.channel == "email":
            proposal = replace(proposal, address=a.borrower.emails[0])
        # Outcomes only get less restrictive after the fact (a started call completes), so what breaks
        # a rule against today's outcomes broke it when it was stored.
        if not rules.evaluate(policy=policy, facts=facts, history=before, proposal=proposal).allowed:
            assert a.is_breach
