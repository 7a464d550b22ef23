"""Issue 10 at the engine: count what the law counts, look both ways in time, scopes beyond one
lender, no server time zone, per-channel hours, consent in the one gate. Each test failed on the
engine and policies before version US 2 / US-MA 2 / CN 3 / AU 2."""

from __future__ import annotations

from datetime import timedelta

import pytest

from compliance.rules import PENDING, Attempt, BorrowerFacts, Proposal, evaluate

from .helpers import POLICIES, call, check, codes, days, local

NY = "America/New_York"
P = local(NY, 2026, 12, 9, 12, 0)  # a Wednesday noon in New York, after the December 2026 versions
SH = "Asia/Shanghai"


def _calls(outcome: str, n: int = 7, **kw) -> list[Attempt]:
    return [call(P - timedelta(hours=6 * (k + 1)), outcome, **kw) for k in range(n)]


# ---- 1. calls placed are counted ---------------------------------------------------------------


@pytest.mark.parametrize("outcome", ["no_answer", "voicemail", "wrong_number", "unreported", PENDING])
def test_us_counts_every_call_placed(outcome):
    d = check("US", P, history=_calls(outcome))
    assert "US.REGF.CALL_FREQUENCY" in codes(d)
    if outcome != PENDING:  # a call still in progress may also be a conversation: it starts the wait too
        assert codes(d) == {"US.REGF.CALL_FREQUENCY"}
    assert check("US@1", P, history=_calls("no_answer")).allowed  # v1 stays as published, for replay


@pytest.mark.parametrize("outcome", ["no_answer", "voicemail", "unreported"])
def test_massachusetts_counts_unanswered_calls(outcome):
    d = check("US-MA", P, history=_calls(outcome, n=2))
    assert "US-MA.940CMR.TELEPHONE_FREQUENCY" in codes(d)
    assert check("US-MA@1", P, history=_calls("no_answer", n=2)).allowed


def test_a_reported_busy_call_is_not_capped_but_an_unknown_outcome_is():
    full = _calls("no_answer")
    assert check("US", P, history=full, outcome="busy").allowed
    assert not check("US", P, history=full, outcome="no_answer").allowed
    assert not check("US", P, history=full).allowed  # about to start: the outcome is not known


# ---- 2. unknown time zone: the jurisdiction's zones, never the server's --------------------------


def test_unknown_zone_uses_every_us_zone():
    ten_pm_ny = local(NY, 2026, 12, 9, 22, 0)
    d = check("US", ten_pm_ny, zones=())
    assert codes(d) == {"US.FDCPA.TIME_OF_DAY"}
    assert "time zone is not known" in d.violations[0].message
    # 08:00 in Honolulu is 13:00 in New York: the first minute lawful everywhere
    assert d.next_allowed_at == local("Pacific/Honolulu", 2026, 12, 10, 8, 0)
    assert check("US", local(NY, 2026, 12, 10, 13, 0), zones=()).allowed
    assert not check("US", local(NY, 2026, 12, 10, 12, 59), zones=()).allowed


def test_unknown_zone_in_china_is_beijing_time_and_a_policy_without_zones_refuses():
    assert check("CN", local(SH, 2026, 12, 9, 21, 59), zones=()).allowed
    assert not check("CN", local(SH, 2026, 12, 9, 22, 0), zones=()).allowed
    from compliance.rules import Policy

    custom = Policy.from_dict({"code": "XX", "version": 1, "rules": [
        {"type": "time_window", "code": "XX.HOURS", "citation": "c",
         "windows": [{"days": ["mon"], "start": "08:00", "end": "09:00"}]}]})
    d = evaluate(policy=custom, facts=BorrowerFacts(time_zones=()), history=[],
                 proposal=Proposal(at=P, channel="call", account_id=1))
    assert not d.allowed and codes(d) == {"TZ_UNKNOWN"} and d.next_allowed_at is None
    inbound = evaluate(policy=custom, facts=BorrowerFacts(time_zones=()), history=[],
                       proposal=Proposal(at=P, channel="call", account_id=1, direction="inbound"))
    assert inbound.allowed


# ---- 3. Australia: hours for every contact type ------------------------------------------------

SYD = "Australia/Sydney"


def test_au_hours_cover_visits_and_messages():
    eight_am_saturday = local(SYD, 2026, 12, 12, 8, 0)
    for channel in ("call", "sms", "email", "visit"):
        assert not check("AU", eight_am_saturday, zones=(SYD,), channel=channel).allowed, channel
        assert check("AU@1", eight_am_saturday, zones=(SYD,), channel=channel).allowed == (channel != "call")
    # a weekday 8:00: telephone yes (from 7:30), face to face no (from 9:00)
    weekday = local(SYD, 2026, 12, 10, 8, 0)
    assert check("AU", weekday, zones=(SYD,), channel="call").allowed
    d = check("AU", weekday, zones=(SYD,), channel="visit")
    assert codes(d) == {"AU.FACE_TO_FACE_HOURS"} and d.next_allowed_at == local(SYD, 2026, 12, 10, 9, 0)


def test_au_no_visit_on_a_public_holiday():
    christmas_noon = local(SYD, 2026, 12, 25, 12, 0)
    assert codes(check("AU", christmas_noon, zones=(SYD,), channel="visit")) == {"AU.FACE_TO_FACE_HOURS"}
    assert check("AU@1", christmas_noon, zones=(SYD,), channel="visit").allowed


# ---- 4. an inbound conversation starts the 7-day wait --------------------------------------------


def test_inbound_conversation_starts_the_wait():
    history = [call(P - days(2), "right_party_contact", direction="inbound")]
    d = check("US", P, history=history)
    assert codes(d) == {"US.REGF.POST_CONVERSATION"}
    assert d.next_allowed_at == P - days(2) + days(7)
    assert check("US@1", P, history=history).allowed
    # inbound contacts themselves stay recordable, whatever the history
    assert check("US", P, history=history, direction="inbound").allowed


# ---- 5. one call about several debts counts for each ---------------------------------------------


def test_a_call_about_two_debts_counts_for_both():
    both = [call(a.at, "no_answer", account_id=1, accounts=(2,)) for a in _calls("no_answer")]
    assert not check("US", P, history=both, account_id=2).allowed
    assert check("US", P, history=both, account_id=3).allowed


def test_a_proposal_about_two_debts_must_fit_each_cap():
    six_on_2 = _calls("no_answer", n=7, account_id=2)
    d = check("US", P, history=six_on_2, account_id=1, accounts=(2,))
    assert codes(d) == {"US.REGF.CALL_FREQUENCY"}
    assert "Debt #2" in d.violations[0].message
    assert check("US", P, history=six_on_2, account_id=1).allowed


# ---- 6. both sides of the proposed time ----------------------------------------------------------


def test_a_back_dated_conversation_before_a_later_call_is_refused():
    later_call = [call(P + timedelta(hours=2), "no_answer")]
    d = check("US", P, history=later_call, outcome="right_party_contact")
    assert codes(d) == {"US.REGF.POST_CONVERSATION"}
    assert "would put it inside the waiting period" in d.violations[0].message
    # the same entry as an unanswered call is lawful: it starts no wait
    assert check("US", P, history=later_call, outcome="no_answer").allowed


def test_two_calls_a_millisecond_apart_cannot_both_be_conversations():
    first = [call(P + timedelta(milliseconds=1), PENDING)]  # a colleague's call, in progress
    assert codes(check("US", P, history=first)) == {"US.REGF.POST_CONVERSATION"}
    earlier = [call(P - timedelta(milliseconds=1), PENDING)]
    assert codes(check("US", P, history=earlier)) == {"US.REGF.POST_CONVERSATION"}


# ---- 7. scopes beyond one lender -----------------------------------------------------------------


def test_cn_daily_conversation_cap_counts_the_person_across_lenders():
    at = local(SH, 2026, 12, 9, 15, 0)
    other_lender = [call(at - timedelta(hours=k + 1), "right_party_contact", borrower_id=7, account_id=90 + k)
                    for k in range(3)]
    d = check("CN", at, zones=(SH,), history=other_lender, borrower_id=1)
    assert codes(d) == {"CN.CONVERSATIONS_PER_DAY"}
    assert "every lender" in d.violations[0].message
    assert check("CN@2", at, zones=(SH,), history=other_lender, borrower_id=1).allowed


def test_person_holds_reach_every_lender_but_a_dispute_stays_with_its_debt():
    at = local(NY, 2026, 12, 9, 12, 0)
    facts = BorrowerFacts(time_zones=(NY,), person_holds=frozenset({"cease", "dispute"}))
    d = evaluate(policy=POLICIES["US"], facts=facts, history=[], proposal=Proposal(at=at, channel="call", account_id=1))
    assert codes(d) == {"HOLD.CEASE"}
    assert "another lender" in d.violations[0].message
    assert evaluate(policy=POLICIES["US@1"], facts=facts, history=[],
                    proposal=Proposal(at=at, channel="call", account_id=1)).allowed


def test_cn_per_number_cap_compares_numbers():
    at = local(SH, 2026, 12, 9, 15, 0)
    history = [call(at - timedelta(minutes=10 * (k + 1)), "no_answer", phone="+8613800138000", borrower_id=7)
               for k in range(6)]
    assert codes(check("CN", at, zones=(SH,), history=history, phone="+8613800138000")) >= {
        "CN.UNANSWERED_PER_NUMBER"}
    assert check("CN", at, zones=(SH,), history=history, phone="+8613900139000").allowed


# ---- 8. consent and opt-out for every SMS and email ----------------------------------------------


def test_consent_and_opt_out_are_in_the_one_gate():
    at = local(NY, 2026, 12, 9, 12, 0)

    def sms(facts, address="+12125550100"):
        return evaluate(policy=POLICIES["US"], facts=facts, history=[],
                        proposal=Proposal(at=at, channel="sms", account_id=1, address=address))

    assert sms(BorrowerFacts(time_zones=(NY,))).allowed
    d = sms(BorrowerFacts(time_zones=(NY,), consented=frozenset({"email"})))
    assert codes(d) == {"US.REGF.ELECTRONIC_OPT_OUT"} and d.next_allowed_at is None
    d = sms(BorrowerFacts(time_zones=(NY,), opted_out=frozenset({"+12125550100"})))
    assert "opted out" in d.violations[0].message
    assert sms(BorrowerFacts(time_zones=(NY,), opted_out=frozenset({"+12125550100"})), address="+12125550199").allowed
