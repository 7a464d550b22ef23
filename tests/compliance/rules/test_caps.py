"""Frequency caps and waiting periods per policy."""

from __future__ import annotations

from datetime import timedelta

import pytest

from compliance.rules import Attempt

from .helpers import call, check, codes, days, local

NY = "America/New_York"
P = local(NY, 2025, 6, 11, 12, 0)  # a Wednesday noon in New York


# ---- US: Regulation F 7-in-7 -----------------------------------------------------------------


def _seven_voicemails(outcome="voicemail"):
    return [call(P - days(k), outcome) for k in range(1, 7)] + [call(P - timedelta(hours=1), outcome)]


def test_us_seven_calls_in_seven_days_refused_until_oldest_leaves():
    d = check("US", P, history=_seven_voicemails())
    assert not d.allowed and codes(d) == {"US.REGF.CALL_FREQUENCY"}
    (v,) = d.violations
    assert v.citation == "12 CFR 1006.14(b)(2)(i)(A)"
    assert v.message == "7 calls about this debt were already made within 7 consecutive days of this time (limit 7)."
    assert d.next_allowed_at == P - days(6) + days(7)
    assert check("US", d.next_allowed_at, history=_seven_voicemails()).allowed
    assert not check("US", d.next_allowed_at - timedelta(minutes=1), history=_seven_voicemails()).allowed


@pytest.mark.parametrize("outcome", ["not_connected", "no_answer", "busy", "wrong_number", "failed"])
def test_us_v1_left_unanswered_calls_out(outcome):
    """Version 1 as published (kept for replay): no unanswered call counted."""
    assert check("US@1", P, history=_seven_voicemails(outcome)).allowed
    mixed = _seven_voicemails()[:6] + [call(P - timedelta(minutes=5), outcome)]
    assert check("US@1", P, history=mixed).allowed


@pytest.mark.parametrize("outcome", ["not_connected", "busy", "failed"])
def test_us_calls_that_never_reach_the_number_do_not_count(outcome):
    assert check("US", P, history=_seven_voicemails(outcome)).allowed
    mixed = _seven_voicemails()[:6] + [call(P - timedelta(minutes=5), outcome)]
    assert check("US", P, history=mixed).allowed


def test_us_seven_day_window_is_half_open():
    history = [call(P - days(7), "voicemail")] + _seven_voicemails()[1:]  # oldest exactly 7 days ago
    assert check("US", P, history=history).allowed


def test_us_other_debts_and_other_channels_do_not_count():
    other_debt = [call(a.at, a.outcome, account_id=2) for a in _seven_voicemails()]
    assert check("US", P, history=other_debt).allowed
    texts = [call(a.at, "delivered", channel="sms") for a in _seven_voicemails()]
    assert check("US", P, history=texts).allowed
    # the cap restricts calls only
    assert check("US", P, history=_seven_voicemails(), channel="sms").allowed


def test_us_next_allowed_respects_the_time_window_too():
    history = [call(P - days(7) + timedelta(hours=10), "voicemail")] + _seven_voicemails()[1:]
    d = check("US", P, history=history)
    # the oldest call leaves the window at 22:00 tonight, but calls stop at 21:00: next is 08:00 tomorrow
    assert d.next_allowed_at == local(NY, 2025, 6, 12, 8, 0)


def test_us_post_conversation_wait():
    talk = P - days(2)
    d = check("US", P, history=[call(talk, "promise")])
    assert codes(d) == {"US.REGF.POST_CONVERSATION"}
    assert d.violations[0].citation == "12 CFR 1006.14(b)(2)(i)(B)"
    assert "telephone conversation" in d.violations[0].message
    assert d.next_allowed_at == talk + days(7)
    assert not check("US", talk, history=[call(talk, "refused")]).allowed  # at the conversation itself
    assert check("US", talk + days(7), history=[call(talk, "refused")]).allowed
    assert check("US", talk + days(7) - timedelta(minutes=1), history=[call(talk, "refused")]).next_allowed_at == (
        talk + days(7)
    )
    # another debt, a non-conversation, an sms or a letter: no wait
    assert check("US", P, history=[call(talk, "promise", account_id=2)]).allowed
    assert check("US", P, history=[call(talk, "voicemail")]).allowed
    assert check("US", P, history=[call(talk, "promise")], channel="sms").allowed


def test_us_inbound_history_never_counts_toward_the_cap():
    inbound = [call(a.at, "voicemail", direction="inbound") for a in _seven_voicemails()]
    assert check("US", P, history=inbound).allowed
    # v1 ignored inbound conversations altogether; v2 starts the 7-day wait with them (test_truth)
    inbound = [call(a.at, "right_party_contact", direction="inbound") for a in _seven_voicemails()]
    assert check("US@1", P, history=inbound).allowed


# ---- US-MA: 2 telephone communications per 7 days --------------------------------------------


def test_us_ma_two_per_seven_days():
    history = [call(P - days(5), "voicemail"), Attempt(P - days(1), "sms", "delivered", 1)]
    assert check("US", P, history=history).allowed
    for channel in ("call", "sms"):
        d = check("US-MA", P, history=history, channel=channel)
        assert codes(d) == {"US-MA.940CMR.TELEPHONE_FREQUENCY"}
        assert d.violations[0].citation == "940 CMR 7.04(1)(f)"
        assert d.violations[0].message.startswith("2 telephone communications")
        assert d.next_allowed_at == P - days(5) + days(7)
    assert check("US-MA", P, history=history, channel="email").allowed
    assert check("US-MA", P, history=history[:1]).allowed
    not_connected = history + [call(P - days(2), "no_answer"), call(P - days(3), "busy")]
    assert check("US-MA", P, history=not_connected[2:]).allowed


def test_us_ma_inherits_us_rules():
    assert codes(check("US-MA", local(NY, 2025, 6, 11, 21, 0))) == {"US.FDCPA.TIME_OF_DAY"}
    assert "US.REGF.POST_CONVERSATION" in codes(check("US-MA", P, history=[call(P - days(1), "promise")]))


# ---- CN: daily caps and third parties ---------------------------------------------------------

SH = "Asia/Shanghai"
CNP = local(SH, 2025, 6, 11, 15, 0)
NUM = "+8613800000000"


def _cn(history, **kw):
    return check("CN", kw.pop("at", CNP), zones=(SH,), history=history, **kw)


def test_cn_six_unanswered_per_number_per_day():
    history = [call(local(SH, 2025, 6, 11, 8, 10 * k), "no_answer", phone=NUM) for k in range(5)]
    assert _cn(history, phone=NUM).allowed
    history.append(call(local(SH, 2025, 6, 11, 9, 0), "voicemail", phone=NUM))  # voicemail counts as unanswered
    d = _cn(history, phone=NUM)
    assert codes(d) == {"CN.UNANSWERED_PER_NUMBER"}
    assert "6 unanswered call attempts to +8613800000000" in d.violations[0].message
    assert "limit 6 per day" in d.violations[0].message
    assert d.next_allowed_at == local(SH, 2025, 6, 12, 8, 0)  # tomorrow, once the quiet hours end
    assert _cn(history, phone="+8613900000000").allowed  # another number
    assert _cn(history, phone=NUM, at=local(SH, 2025, 6, 12, 8, 0)).allowed
    # same counts, but yesterday
    yesterday = [call(a.at - days(1), a.outcome, phone=NUM) for a in history]
    assert _cn(yesterday, phone=NUM).allowed


def test_cn_three_conversations_per_borrower_per_day():
    history = [call(local(SH, 2025, 6, 11, 9 + k, 0), "right_party_contact", account_id=k + 1) for k in range(3)]
    d = _cn(history, account_id=7)
    assert codes(d) == {"CN.CONVERSATIONS_PER_DAY"}
    assert d.next_allowed_at == local(SH, 2025, 6, 12, 8, 0)
    assert _cn(history[:2], account_id=7).allowed


def test_cn_daily_caps_use_the_primary_zone_calendar_day():
    history = [call(local(SH, 2025, 6, 11, 23, 30), "promise", account_id=k) for k in range(3)]
    # from the borrower's consent to after-hours contact: the cap resets at local midnight
    d = check("CN", local(SH, 2025, 6, 11, 23, 45), zones=(SH,), history=history, consent=True)
    assert d.next_allowed_at == local(SH, 2025, 6, 12, 0, 0)


def test_cn_third_party_only_when_borrower_unreachable():
    failed = [call(CNP - timedelta(hours=h), "no_answer") for h in (1, 20, 50)]
    assert _cn(failed, party="third_party").allowed
    for history in (
        failed[:2],  # too few attempts
        failed[:2] + [call(CNP - days(4), "no_answer")],  # one is too old
        failed + [call(CNP - timedelta(hours=30), "voicemail")],  # a message was left: not all unanswered
        failed + [call(CNP - days(2), "promise", channel="visit")],  # the borrower was reached
        failed + [call(CNP - days(1), "right_party_contact", direction="inbound")],  # the borrower called us
    ):
        d = _cn(history, party="third_party")
        assert codes(d) == {"CN.THIRD_PARTY"} and d.next_allowed_at is None
    # the rule does not restrict calls to the borrower
    assert _cn(failed[:1]).allowed


# ---- AU: 3 per week, 10 per 30 days -----------------------------------------------------------

SY = "Australia/Sydney"
AUP = local(SY, 2025, 6, 11, 12, 0)  # Wednesday


def _au(history, **kw):
    return check("AU", kw.pop("at", AUP), zones=(SY,), history=history, **kw)


def test_au_three_contacts_per_week():
    history = [
        Attempt(AUP - days(6), "letter", "delivered", 1),
        Attempt(AUP - days(3), "sms", "delivered", 1),
        call(AUP - days(1), "voicemail"),
    ]
    d = _au(history)
    assert codes(d) == {"AU.CONTACTS_PER_WEEK"}
    assert d.violations[0].message == "3 contacts about this debt were already made within 7 consecutive days of this time (limit 3)."
    assert d.next_allowed_at == AUP + days(1)
    assert _au(history, channel="email").next_allowed_at == AUP + days(1)  # every channel is capped
    assert _au(history[:2] + [call(AUP - days(1), "no_answer")]).allowed


def test_au_ten_contacts_per_thirty_days():
    history = [call(AUP - days(2 + 3 * k), "voicemail") for k in range(10)]  # 2 per week, 10 in 29 days
    d = _au(history)
    assert codes(d) == {"AU.CONTACTS_PER_MONTH"}
    assert d.next_allowed_at == AUP - days(29) + days(30)
    assert _au(history[:9]).allowed


def test_au_cap_and_holiday_combine():
    # the weekly cap clears on Anzac Day (Friday 25 April 2025): the next chance is Saturday 09:00
    at = local(SY, 2025, 4, 23, 12, 0)
    history = [call(at - days(5), "voicemail"), call(at - days(4), "voicemail"), call(at - days(1), "voicemail")]
    d = check("AU", at, zones=(SY,), history=history)
    assert d.next_allowed_at == local(SY, 2025, 4, 26, 9, 0)
