"""Property-based checks: next_allowed_at is exact, results ignore history order, data round-trips."""

from __future__ import annotations

import copy
import os
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from compliance.rules import (
    CHANNELS,
    HOLD_FLAGS,
    OUTCOMES,
    PENDING,
    POLICY_UPDATES,
    SEED_POLICIES,
    Attempt,
    BorrowerFacts,
    Policy,
    Proposal,
    evaluate,
)

MINUTE = timedelta(minutes=1)

ZONES = [
    "America/New_York",
    "America/Los_Angeles",
    "Pacific/Honolulu",
    "Asia/Shanghai",
    "Australia/Sydney",
    "Australia/Lord_Howe",  # 30-minute DST shift
    "Europe/London",
    "America/St_Johns",  # half-hour offset
]

# Minute-aligned anchors: DST changes in the zones above, AU public holidays, ordinary days.
ANCHORS = [
    datetime(2025, 3, 9, 7, 0, tzinfo=UTC),  # US spring forward
    datetime(2025, 11, 2, 6, 0, tzinfo=UTC),  # US fall back
    datetime(2025, 10, 4, 16, 0, tzinfo=UTC),  # Sydney DST starts
    datetime(2025, 4, 5, 16, 0, tzinfo=UTC),  # Sydney DST ends
    datetime(2025, 10, 4, 15, 0, tzinfo=UTC),  # Lord Howe DST starts
    datetime(2025, 3, 30, 1, 0, tzinfo=UTC),  # London spring forward
    datetime(2025, 12, 25, 0, 0, tzinfo=UTC),  # Christmas
    datetime(2027, 12, 26, 0, 0, tzinfo=UTC),  # AU substitute days
    datetime(2026, 7, 15, 12, 0, tzinfo=UTC),  # nothing special
]

CHOICES_OF_CHANNEL = ["call", "call", "call", *CHANNELS]
CHOICES_OF_PARTY = ["borrower"] * 4 + ["third_party"]
CHOICES_OF_DIRECTION = ["outbound"] * 6 + ["inbound"]
PHONES = ["+15550001", "+15550002", ""]


@st.composite
def policies(draw) -> Policy:
    data = copy.deepcopy(draw(st.sampled_from([*SEED_POLICIES, *POLICY_UPDATES])))
    if draw(st.booleans()):  # a supervisor's edited numbers
        for rule in data["rules"]:
            if rule["type"] == "frequency":
                rule["max"] = draw(st.integers(0, 8)) if draw(st.integers(0, 9)) == 0 else draw(st.integers(1, 4))
                if rule["period"] == "rolling":
                    rule["days"] = draw(st.integers(1, 10))
            elif rule["type"] == "cooldown":
                rule["days"] = draw(st.integers(1, 10))
            elif rule["type"] == "time_window" and draw(st.booleans()):
                start = draw(st.integers(0, 95)) * 15
                end = draw(st.integers(start // 15 + 1, 96)) * 15
                days = draw(st.lists(st.sampled_from(["mon", "tue", "wed", "thu", "fri", "sat", "sun"]),
                                     min_size=1, unique=True))
                rule["windows"] = [{"days": days, "start": f"{start // 60:02d}:{start % 60:02d}",
                                    "end": f"{end // 60:02d}:{end % 60:02d}"}]
    return Policy.from_dict(data)


@st.composite
def proposal_times(draw) -> datetime:
    if draw(st.booleans()):
        return draw(st.sampled_from(ANCHORS)) + draw(st.integers(-3 * 1440, 3 * 1440)) * MINUTE
    return datetime(2024, 1, 1, tzinfo=UTC) + draw(st.integers(0, 5 * 365 * 1440)) * MINUTE


@st.composite
def scenarios(draw):
    policy = draw(policies())
    # no known zone now and then: the jurisdiction's zones apply
    zones = tuple(draw(st.lists(st.sampled_from(ZONES), min_size=0 if draw(st.integers(0, 5)) == 0 else 1,
                                max_size=2, unique=True)))
    holds = frozenset({draw(st.sampled_from(HOLD_FLAGS))}) if draw(st.integers(0, 19)) == 0 else frozenset()
    person_holds = frozenset({draw(st.sampled_from(HOLD_FLAGS))}) if draw(st.integers(0, 19)) == 0 else frozenset()
    consented = frozenset(draw(st.lists(st.sampled_from(["sms", "email"]), unique=True)))
    opted_out = frozenset({draw(st.sampled_from(PHONES))}) if draw(st.integers(0, 9)) == 0 else frozenset()
    facts = BorrowerFacts(time_zones=zones, holds=holds, after_hours_consent=draw(st.booleans()),
                          person_holds=person_holds, consented=consented, opted_out=opted_out)
    at = draw(proposal_times())
    # shown in a random zone: the engine must not care
    at = at.astimezone(draw(st.sampled_from([UTC, *[ZoneInfo(z) for z in ZONES]])))
    dense = draw(st.booleans())  # many borrower calls in the last days: caps bite
    # Negative offsets: attempts after the proposal (a back-dated entry, a colleague's call a moment later).
    if dense:
        offsets = st.one_of(st.integers(-60, 1440), st.integers(-2 * 1440, 8 * 1440))
        channels, parties, directions = ["call"] * 5 + ["sms"], ["borrower"], ["outbound"]
    else:
        offsets = st.one_of(st.integers(0, 1440), st.integers(-8 * 1440, 8 * 1440), st.integers(0, 40 * 1440))
        channels, parties, directions = CHOICES_OF_CHANNEL, CHOICES_OF_PARTY, CHOICES_OF_DIRECTION
    history = draw(
        st.lists(
            st.builds(
                lambda minutes, channel, outcome, account, party, direction, phone, more, borrower: Attempt(
                    at=at - minutes * MINUTE, channel=channel, outcome=outcome, account_id=account,
                    party=party, direction=direction, phone=phone, accounts=more, borrower_id=borrower,
                ),
                offsets,
                st.sampled_from(channels),
                st.sampled_from([*OUTCOMES, PENDING]),
                st.integers(1, 2),
                st.sampled_from(parties),
                st.sampled_from(directions),
                st.sampled_from(PHONES),
                st.sampled_from([(), (), (), (1, 2), (3,)]),  # a call about several debts
                st.sampled_from([0, 0, 0, 7]),  # 7: another lender's record of the same person
            ),
            min_size=8 if dense else 0,
            max_size=30,
        )
    )
    proposal = Proposal(
        at=at,
        channel=draw(st.sampled_from(CHOICES_OF_CHANNEL)),
        account_id=draw(st.integers(1, 2)),
        party=draw(st.sampled_from(CHOICES_OF_PARTY)),
        direction=draw(st.sampled_from(["outbound"] * 9 + ["inbound"])),
        phone=draw(st.sampled_from(PHONES)),
        outcome=draw(st.sampled_from(["", "", "", *OUTCOMES])),  # known when reported after the fact
        accounts=draw(st.sampled_from([(), (), (2,), (3,)])),
    )
    return policy, facts, history, proposal


def _allowed(policy, facts, history, proposal, at) -> bool:
    return evaluate(policy=policy, facts=facts, history=history, proposal=replace(proposal, at=at)).allowed


EXAMPLES = int(os.environ.get("RULES_EXAMPLES", "200"))  # e.g. RULES_EXAMPLES=3000 for a longer soak


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios(), st.randoms(use_true_random=False))
def test_next_allowed_at_is_exact(scenario, rnd):
    policy, facts, history, proposal = scenario
    d = evaluate(policy=policy, facts=facts, history=history, proposal=proposal)
    at = proposal.at.astimezone(UTC)  # (aware arithmetic in a local zone would be wall-clock arithmetic)
    assert (d.policy_code, d.policy_version) == (policy.code, policy.version)
    # (1) allowed <=> no violations, and then next_allowed_at is the proposal time
    assert d.allowed == (not d.violations)
    if d.allowed:
        assert d.next_allowed_at == at
    for v in d.violations:
        event(f"violation {v.code.split('.')[0] if v.code.startswith('HOLD') else v.code}")
    if d.next_allowed_at is None:
        event("refused, no next time" if d.violations else "allowed")
        return
    nxt = d.next_allowed_at
    gap_hours = (nxt - at) / timedelta(hours=1)
    event("allowed" if d.allowed else "next < 1h" if gap_hours < 1 else "next < 3d" if gap_hours < 72 else "next >= 3d")
    # (2) it is aware UTC, not before the proposal, minute-aligned, and allowed
    assert nxt.utcoffset() == timedelta(0) and nxt >= at
    assert nxt.second == 0 and nxt.microsecond == 0
    assert _allowed(policy, facts, history, proposal, nxt)
    # (3) no earlier whole minute is allowed
    gap = (nxt - at) // MINUTE
    exhaustive = gap <= 3 * 1440
    minutes = range(gap) if exhaustive else sorted({*rnd.sample(range(gap), 300), *range(gap - 120, gap)})
    for m in minutes:
        assert not _allowed(policy, facts, history, proposal, at + m * MINUTE), (at + m * MINUTE, nxt)


@settings(max_examples=200, deadline=None)
@given(scenarios(), st.randoms(use_true_random=False))
def test_result_does_not_depend_on_history_order(scenario, rnd):
    policy, facts, history, proposal = scenario
    shuffled = list(history)
    rnd.shuffle(shuffled)
    first = evaluate(policy=policy, facts=facts, history=history, proposal=proposal)
    assert evaluate(policy=policy, facts=facts, history=tuple(shuffled), proposal=proposal) == first


@settings(max_examples=100, deadline=None)
@given(policies())
def test_policy_data_round_trips(policy):
    assert Policy.from_dict(policy.to_dict()) == policy
    assert Policy.from_dict(policy.to_dict()).to_dict() == policy.to_dict()
