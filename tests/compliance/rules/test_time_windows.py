"""Local-time windows: edges, several zones, DST change days, public holidays."""

from __future__ import annotations

from datetime import timedelta

import pytest

from compliance.rules import BorrowerFacts, Policy, Proposal, evaluate

from .helpers import check, codes, local, utc

US_ZONES = ["America/New_York", "America/Los_Angeles", "Pacific/Honolulu"]


@pytest.mark.parametrize("zone", US_ZONES)
@pytest.mark.parametrize(
    ("hh", "mm", "allowed"),
    [(7, 59, False), (8, 0, True), (12, 0, True), (20, 59, True), (21, 0, False), (23, 30, False), (0, 0, False)],
)
def test_us_window_edges(zone, hh, mm, allowed):
    at = local(zone, 2025, 6, 11, hh, mm)
    d = check("US", at, zones=(zone,))
    assert d.allowed is allowed
    if allowed:
        assert d.next_allowed_at == at and not d.violations
    else:
        assert codes(d) == {"US.FDCPA.TIME_OF_DAY"}
        day = 11 if hh < 8 else 12
        assert d.next_allowed_at == local(zone, 2025, 6, day, 8, 0)
        assert d.next_allowed_at.tzinfo is not None and d.next_allowed_at.utcoffset() == timedelta(0)


def test_us_window_applies_to_every_channel_but_letters():
    at = local("America/New_York", 2025, 6, 11, 3, 0)
    for channel in ("call", "sms", "email", "visit"):
        assert not check("US", at, channel=channel).allowed
    assert check("US", at, channel="letter").allowed


def test_us_violation_message_is_concrete():
    d = check("US", local("America/New_York", 2025, 6, 11, 21, 0))
    (v,) = d.violations
    assert "21:00" in v.message and "08:00–21:00" in v.message and "America/New_York" in v.message
    assert v.citation == "15 USC 1692c(a)(1); 12 CFR 1006.6(b)(1)(i)"


def test_several_zones_get_the_intersection():
    zones = ("America/New_York", "America/Los_Angeles")
    d = check("US", local("America/New_York", 2025, 6, 11, 7, 0), zones=zones)
    assert not d.allowed
    assert d.next_allowed_at == local("America/New_York", 2025, 6, 11, 11, 0)
    assert "America/Los_Angeles" in d.violations[0].message
    # Late evening: closes at 21:00 ET even though it is only 18:00 in LA.
    assert check("US", local("America/New_York", 2025, 6, 11, 20, 59), zones=zones).allowed
    late = check("US", local("America/New_York", 2025, 6, 11, 21, 0), zones=zones)
    assert late.next_allowed_at == local("America/New_York", 2025, 6, 12, 11, 0)


def test_disjoint_zones_never_overlap():
    # 09:00-10:00 in Shanghai and in New York never intersect: no lawful time can be predicted.
    policy = _policy_with_window("09:00", "10:00")
    facts = BorrowerFacts(("America/New_York", "Asia/Shanghai"))
    proposal = Proposal(at=utc(2025, 6, 11, 13, 0), channel="call", account_id=1)
    d = evaluate(policy=policy, facts=facts, history=[], proposal=proposal)
    assert not d.allowed and d.next_allowed_at is None


@pytest.mark.parametrize(
    ("when", "allowed", "next_utc"),
    [
        # Spring forward Sunday 9 March 2025 (02:00 EST -> 03:00 EDT): window edges at local wall time.
        ((2025, 3, 9, 7, 59), False, utc(2025, 3, 9, 12, 0)),
        ((2025, 3, 9, 8, 0), True, None),
        ((2025, 3, 9, 20, 59), True, None),
        ((2025, 3, 9, 21, 0), False, utc(2025, 3, 10, 12, 0)),
        ((2025, 3, 8, 21, 30), False, utc(2025, 3, 9, 12, 0)),  # EST evening -> EDT morning
        ((2025, 3, 9, 2, 30), False, utc(2025, 3, 9, 12, 0)),  # nonexistent wall time
        # Fall back Sunday 2 November 2025 (02:00 EDT -> 01:00 EST).
        ((2025, 11, 2, 7, 59), False, utc(2025, 11, 2, 13, 0)),
        ((2025, 11, 2, 8, 0), True, None),
        ((2025, 11, 2, 21, 0), False, utc(2025, 11, 3, 13, 0)),
        ((2025, 11, 1, 21, 30), False, utc(2025, 11, 2, 13, 0)),  # EDT evening -> EST morning
    ],
)
def test_us_dst_change_days(when, allowed, next_utc):
    at = local("America/New_York", *when)
    d = check("US", at)
    assert d.allowed is allowed
    assert d.next_allowed_at == (at if allowed else next_utc)


@pytest.mark.parametrize(
    ("when", "allowed", "next_utc"),
    [
        # Sydney DST starts Sunday 5 Oct 2025 02:00 AEST -> 03:00 AEDT (weekend window 09:00-21:00).
        ((2025, 10, 5, 8, 59), False, utc(2025, 10, 4, 22, 0)),
        ((2025, 10, 5, 9, 0), True, None),
        ((2025, 10, 4, 21, 0), False, utc(2025, 10, 4, 22, 0)),  # Saturday 21:00 AEST -> Sunday 09:00 AEDT
        ((2025, 10, 5, 21, 0), False, utc(2025, 10, 5, 20, 30)),  # -> Monday 07:30 AEDT
        # Sydney DST ends Sunday 6 Apr 2025 03:00 AEDT -> 02:00 AEST.
        ((2025, 4, 6, 8, 59), False, utc(2025, 4, 5, 23, 0)),
        ((2025, 4, 6, 9, 0), True, None),
        ((2025, 4, 5, 21, 0), False, utc(2025, 4, 5, 23, 0)),  # Saturday 21:00 AEDT -> Sunday 09:00 AEST
    ],
)
def test_au_dst_change_days(when, allowed, next_utc):
    at = local("Australia/Sydney", *when)
    d = check("AU", at, zones=("Australia/Sydney",))
    assert d.allowed is allowed
    assert d.next_allowed_at == (at if allowed else next_utc)


@pytest.mark.parametrize(
    ("when", "allowed", "next_local"),
    [
        ((2025, 6, 11, 7, 29), False, (2025, 6, 11, 7, 30)),  # Wednesday
        ((2025, 6, 11, 7, 30), True, None),
        ((2025, 6, 11, 20, 59), True, None),
        ((2025, 6, 11, 21, 0), False, (2025, 6, 12, 7, 30)),
        ((2025, 6, 14, 7, 30), False, (2025, 6, 14, 9, 0)),  # Saturday
        ((2025, 6, 14, 8, 59), False, (2025, 6, 14, 9, 0)),
        ((2025, 6, 14, 9, 0), True, None),
        ((2025, 6, 15, 21, 0), False, (2025, 6, 16, 7, 30)),  # Sunday night -> Monday morning
        ((2025, 6, 13, 21, 0), False, (2025, 6, 14, 9, 0)),  # Friday night -> Saturday 09:00
    ],
)
def test_au_weekday_and_weekend_hours(when, allowed, next_local):
    at = local("Australia/Sydney", *when)
    d = check("AU", at, zones=("Australia/Sydney",))
    assert d.allowed is allowed
    assert d.next_allowed_at == (at if allowed else local("Australia/Sydney", *next_local))


@pytest.mark.parametrize(
    ("holiday", "next_local"),
    [
        ((2025, 4, 25), (2025, 4, 26, 9, 0)),  # Anzac Day (Fri) -> Saturday opening
        ((2025, 4, 18), (2025, 4, 19, 9, 0)),  # Good Friday -> Saturday opening
        ((2025, 1, 27), (2025, 1, 28, 7, 30)),  # Australia Day observed (Mon) -> Tuesday opening
        ((2025, 12, 25), (2025, 12, 27, 9, 0)),  # Christmas, then Boxing Day -> Saturday
        ((2027, 12, 27), (2027, 12, 29, 7, 30)),  # Christmas + Boxing Day substitutes (Mon, Tue)
        ((2028, 1, 3), (2028, 1, 4, 7, 30)),  # New Year's Day substitute (Mon)
    ],
)
def test_au_public_holidays(holiday, next_local):
    at = local("Australia/Sydney", *holiday, 12, 0)
    d = check("AU", at, zones=("Australia/Sydney",))
    assert not d.allowed and codes(d) == {"AU.CONTACT_HOURS"}
    assert "public holiday" in d.violations[0].message
    assert d.next_allowed_at == local("Australia/Sydney", *next_local)


def test_au_easter_dates_match_computus():
    from compliance.rules import AU_NATIONAL_HOLIDAYS

    def easter(year):  # anonymous Gregorian algorithm
        a, b, c = year % 19, year // 100, year % 100
        d, e = divmod(b, 4)
        g = (8 * b + 13) // 25
        h = (19 * a + b - d - g + 15) % 30
        i, k = divmod(c, 4)
        l_ = (32 + 2 * e + 2 * i - h - k) % 7
        m = (a + 11 * h + 22 * l_) // 451
        month, day = divmod(h + l_ - 7 * m + 114, 31)
        from datetime import date

        return date(year, month, day + 1)

    for year in range(2025, 2029):
        sunday = easter(year)
        assert (sunday - timedelta(days=2)).isoformat() in AU_NATIONAL_HOLIDAYS
        assert (sunday + timedelta(days=1)).isoformat() in AU_NATIONAL_HOLIDAYS


@pytest.mark.parametrize(
    ("hh", "mm", "allowed", "next_local"),
    [
        (21, 59, True, None),
        (22, 0, False, (2025, 6, 12, 8, 0)),
        (23, 59, False, (2025, 6, 12, 8, 0)),
        (0, 0, False, (2025, 6, 11, 8, 0)),
        (7, 59, False, (2025, 6, 11, 8, 0)),
        (8, 0, True, None),
    ],
)
def test_cn_quiet_hours(hh, mm, allowed, next_local):
    at = local("Asia/Shanghai", 2025, 6, 11, hh, mm)
    d = check("CN", at, zones=("Asia/Shanghai",))
    assert d.allowed is allowed
    if not allowed:
        assert codes(d) == {"CN.QUIET_HOURS"}
        assert d.next_allowed_at == local("Asia/Shanghai", *next_local)
    # with the borrower's consent to after-hours contact, any hour is fine
    assert check("CN", at, zones=("Asia/Shanghai",), consent=True).allowed


def test_cn_quiet_hours_cover_sms_visit_email_not_letters():
    at = local("Asia/Shanghai", 2025, 6, 11, 23, 0)
    for channel in ("call", "sms", "email", "visit"):
        assert not check("CN", at, zones=("Asia/Shanghai",), channel=channel).allowed
    assert check("CN", at, zones=("Asia/Shanghai",), channel="letter").allowed


def _policy_with_window(start: str, end: str) -> Policy:
    return Policy.from_dict(
        {
            "code": "T",
            "version": 1,
            "rules": [
                {
                    "type": "time_window",
                    "code": "T.WIN",
                    "citation": "test",
                    "windows": [{"days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
                                 "start": start, "end": end}],
                }
            ],
        }
    )


def _decide(policy, at, zone="America/New_York"):
    return evaluate(
        policy=policy, facts=BorrowerFacts((zone,)), history=[], proposal=Proposal(at=at, channel="call", account_id=1)
    )


def test_window_edge_inside_the_spring_forward_gap():
    # 02:30 does not exist on 9 March 2025 in New York: the window opens when the clock jumps to 03:00 EDT.
    policy = _policy_with_window("02:30", "05:00")
    d = _decide(policy, utc(2025, 3, 9, 5, 0))  # 00:00 EST
    assert d.next_allowed_at == utc(2025, 3, 9, 7, 0)  # 03:00 EDT
    assert not _decide(policy, utc(2025, 3, 9, 6, 59)).allowed  # 01:59 EST
    assert _decide(policy, utc(2025, 3, 9, 7, 0)).allowed


def test_window_edge_inside_the_fall_back_repeat():
    # 01:00-01:30 happens twice on 2 November 2025 in New York; both are inside a 01:00-01:30 window.
    policy = _policy_with_window("01:00", "01:30")
    first = utc(2025, 11, 2, 5, 0)  # 01:00 EDT
    second = utc(2025, 11, 2, 6, 0)  # 01:00 EST
    assert _decide(policy, first).allowed
    assert not _decide(policy, first + timedelta(minutes=30)).allowed  # 01:30 EDT
    assert _decide(policy, first + timedelta(minutes=30)).next_allowed_at == second
    assert _decide(policy, second + timedelta(minutes=29)).allowed
    assert _decide(policy, second + timedelta(minutes=30)).next_allowed_at == utc(2025, 11, 3, 6, 0)


def test_half_hour_dst_zone():
    # Lord Howe Island shifts by 30 minutes (5 Oct 2025 02:00 -> 02:30).
    zone = "Australia/Lord_Howe"
    d = check("US", local(zone, 2025, 10, 4, 22, 0), zones=(zone,))
    assert d.next_allowed_at == local(zone, 2025, 10, 5, 8, 0)
    assert check("US", local(zone, 2025, 10, 5, 8, 0), zones=(zone,)).allowed
