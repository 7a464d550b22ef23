"""The borrower's own convenient times (Reg F 1006.6(b)(1)(i): no contact at a time known to be inconvenient):
one more time-window rule on top of the policy's hours, for every jurisdiction. Pure engine, no Django."""

from __future__ import annotations

from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from compliance.rules import BORROWER_TIMES_CODE, BorrowerFacts, Proposal, evaluate

from .helpers import POLICIES, local

SH = "Asia/Shanghai"
EVENINGS = (((0, 1, 2, 3, 4, 5, 6), 18 * 60, 21 * 60),)


def decide(at, *, windows=EVENINGS, channel="call", direction="outbound", party="borrower", code="CN", zone=SH):
    facts = BorrowerFacts(time_zones=(zone,), contact_windows=windows)
    proposal = Proposal(at=at, channel=channel, account_id=1, direction=direction, party=party)
    return evaluate(policy=POLICIES[code], facts=facts, history=[], proposal=proposal)


def test_outside_the_borrowers_times_refused_with_the_next_convenient_time():
    d = decide(local(SH, 2027, 4, 14, 10, 0))
    assert not d.allowed and [v.code for v in d.violations] == [BORROWER_TIMES_CODE]
    assert d.next_allowed_at == local(SH, 2027, 4, 14, 18, 0)
    assert "18:00–21:00" in d.violations[0].message


def test_inside_them_the_policy_decides_alone():
    assert decide(local(SH, 2027, 4, 14, 19, 30)).allowed
    assert decide(local(SH, 2027, 4, 14, 19, 30), windows=()).allowed
    assert decide(local(SH, 2027, 4, 14, 10, 0), windows=()).allowed  # no preference: the policy's hours


@pytest.mark.parametrize(("channel", "direction", "party"), [
    ("letter", "outbound", "borrower"),  # a letter does not arrive at a moment
    ("call", "inbound", "borrower"),  # the borrower calling us is always recordable
])
def test_not_for_letters_or_inbound(channel, direction, party):
    assert decide(local(SH, 2027, 4, 14, 10, 0), channel=channel, direction=direction, party=party).allowed


@pytest.mark.parametrize("channel", ["sms", "email", "visit"])
def test_every_channel_that_reaches_the_borrower_at_a_moment(channel):
    d = decide(local(SH, 2027, 4, 14, 10, 0), channel=channel)
    assert BORROWER_TIMES_CODE in [v.code for v in d.violations]


def test_both_the_policy_and_the_borrower_must_allow_a_moment():
    late = (((0, 1, 2, 3, 4, 5, 6), 21 * 60, 23 * 60),)  # CN quiet hours start at 22:00
    assert [v.code for v in decide(local(SH, 2027, 4, 14, 22, 30), windows=late).violations] == ["CN.QUIET_HOURS"]
    d = decide(local(SH, 2027, 4, 14, 23, 30), windows=late)
    assert sorted(v.code for v in d.violations) == sorted([BORROWER_TIMES_CODE, "CN.QUIET_HOURS"])
    assert d.next_allowed_at == local(SH, 2027, 4, 15, 21, 0)


def test_weekdays_only():
    weekdays = (((0, 1, 2, 3, 4), 9 * 60, 12 * 60),)
    saturday = local("America/New_York", 2027, 4, 17, 10, 0)
    d = decide(saturday, windows=weekdays, code="US", zone="America/New_York")
    assert d.next_allowed_at == local("America/New_York", 2027, 4, 19, 9, 0)  # Monday


@pytest.mark.parametrize("bad", [(((), 60, 120),), (((7,), 60, 120),), (((0,), 120, 60),), (((0,), 0, 1500),)])
def test_malformed_windows_are_refused(bad):
    with pytest.raises(ValueError):
        BorrowerFacts(time_zones=(SH,), contact_windows=bad)


windows_st = st.lists(
    st.tuples(st.sets(st.integers(0, 6), min_size=1).map(lambda s: tuple(sorted(s))),
              st.integers(0, 23 * 60), st.integers(30, 600))
    .map(lambda t: (t[0], t[1], min(1440, t[1] + t[2]))),
    min_size=1, max_size=3).map(tuple)


@settings(max_examples=300, deadline=None)
@given(windows=windows_st, minutes=st.integers(0, 14 * 24 * 60), code=st.sampled_from(["CN", "US", "AU"]))
def test_allowed_means_inside_a_window_and_next_is_exact(windows, minutes, code):
    zone = {"CN": SH, "US": "America/Chicago", "AU": "Australia/Sydney"}[code]
    at = local(zone, 2027, 5, 3, 0, 0) + timedelta(minutes=minutes)
    d = decide(at, windows=windows, code=code, zone=zone)
    def inside(t):
        lt = t.astimezone(ZoneInfo(zone))
        m = lt.hour * 60 + lt.minute
        return any(lt.weekday() in days and start <= m < end for days, start, end in windows)
    if d.allowed:
        assert inside(at)
    elif d.next_allowed_at is not None:
        assert d.next_allowed_at > at and inside(d.next_allowed_at)
        assert decide(d.next_allowed_at, windows=windows, code=code, zone=zone).allowed
        # Nothing lawful in between (checked on the minute grid, sampled).
        step = max(timedelta(minutes=1), (d.next_allowed_at - at) / 50)
        t = at + step
        while t < d.next_allowed_at - timedelta(minutes=1):
            assert not decide(t, windows=windows, code=code, zone=zone).allowed
            t += step
