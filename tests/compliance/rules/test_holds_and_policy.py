"""Holds, inbound contacts, input validation and the policy data format."""

from __future__ import annotations

import copy
import json
import time as timer
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from compliance.rules import (
    CHANNELS,
    HOLD_FLAGS,
    OUTCOMES,
    POLICY_UPDATES,
    SEED_POLICIES,
    Attempt,
    BorrowerFacts,
    Policy,
    Proposal,
    evaluate,
    history_window,
)

from .helpers import POLICIES, call, check, codes, days, local

NY = "America/New_York"
P = local(NY, 2025, 6, 11, 12, 0)


@pytest.mark.parametrize("code", sorted(POLICIES))
@pytest.mark.parametrize("flag", HOLD_FLAGS)
def test_each_hold_blocks_everything_without_a_next_time(code, flag):
    for channel in CHANNELS:
        for party in ("borrower", "third_party"):
            d = check(code, P, holds=frozenset({flag}), channel=channel, party=party)
            assert not d.allowed
            assert f"HOLD.{flag.upper()}" in codes(d)
            assert d.next_allowed_at is None
    v = next(v for v in check(code, P, holds=frozenset({flag})).violations if v.code == f"HOLD.{flag.upper()}")
    assert v.message and v.citation


def test_several_holds_give_several_violations():
    d = check("US", local(NY, 2025, 6, 11, 22, 0), holds=frozenset({"cease", "bankruptcy"}))
    assert codes(d) == {"HOLD.CEASE", "HOLD.BANKRUPTCY", "US.FDCPA.TIME_OF_DAY"}
    assert d.next_allowed_at is None


@pytest.mark.parametrize("code", sorted(POLICIES))
def test_inbound_is_always_allowed(code):
    history = [call(P - timedelta(hours=h), "right_party_contact") for h in range(1, 40)]
    at = local(NY, 2025, 12, 25, 3, 0)
    d = check(code, at, history=history, holds=frozenset(HOLD_FLAGS), direction="inbound")
    assert d.allowed and d.violations == () and d.next_allowed_at == at
    assert (d.policy_code, d.policy_version) == (POLICIES[code].code, POLICIES[code].version)


def test_naive_datetimes_are_rejected():
    with pytest.raises(ValueError, match="aware"):
        Proposal(at=datetime(2025, 6, 11, 12, 0), channel="call", account_id=1)
    with pytest.raises(ValueError, match="aware"):
        Attempt(at=datetime(2025, 6, 11, 12, 0), channel="call", outcome="busy", account_id=1)


@pytest.mark.parametrize(
    "kwargs",
    [{"channel": "fax"}, {"party": "neighbour"}, {"direction": "sideways"}],
)
def test_bad_proposal_values_are_rejected(kwargs):
    with pytest.raises(ValueError):
        Proposal(**{"at": P, "channel": "call", "account_id": 1, **kwargs})


def test_bad_facts_are_rejected():
    # No zone at all is allowed: it means "unknown" (the jurisdiction's zones are used, see test_scopes).
    assert BorrowerFacts(time_zones=()).time_zones == ()
    with pytest.raises(ValueError):
        BorrowerFacts(time_zones=("Mars/Olympus_Mons",))
    with pytest.raises(ValueError):
        BorrowerFacts(time_zones=(NY,), holds=frozenset({"vacation"}))
    with pytest.raises(ValueError):
        Attempt(at=P, channel="call", outcome="exploded", account_id=1)
    # lists (e.g. from a JSON field) are accepted and frozen
    facts = BorrowerFacts(time_zones=[NY], holds=["cease"])
    assert facts.time_zones == (NY,) and facts.holds == frozenset({"cease"})


def test_seed_policies_are_json_and_round_trip():
    assert [p["code"] for p in SEED_POLICIES] == ["US", "US-MA", "CN", "AU"]
    for data in SEED_POLICIES:
        assert json.loads(json.dumps(data)) == data
        assert data["version"] == 1 and data["effective_from"] == "2020-01-01"
        policy = Policy.from_dict(data)
        assert Policy.from_dict(policy.to_dict()) == policy
        assert Policy.from_dict(json.loads(json.dumps(policy.to_dict()))).to_dict() == policy.to_dict()


def test_optional_top_level_fields():
    data = {"code": "X", "version": 3, "rules": []}
    policy = Policy.from_dict(data)
    assert policy.name == "X" and policy.effective_from is None and policy.rules == ()
    assert policy.to_dict() == {"code": "X", "version": 3, "name": "X", "rules": []}
    dated = Policy.from_dict({**data, "effective_from": "2026-01-01T00:00:00+00:00", "description": "draft"})
    assert dated.effective_from == "2026-01-01T00:00:00+00:00"
    assert Policy.from_dict(dated.to_dict()) == dated
    # a policy without rules allows everything
    d = evaluate(policy=policy, facts=BorrowerFacts((NY,)), history=[], proposal=Proposal(P, "call", 1))
    assert d.allowed and (d.policy_code, d.policy_version) == ("X", 3)
    assert history_window(policy) == timedelta(0)


def test_history_window():
    assert history_window(POLICIES["US"]) == days(7)
    assert history_window(POLICIES["US-MA"]) == days(7)
    assert history_window(POLICIES["CN"]) == days(3)
    assert history_window(POLICIES["AU"]) == days(30)


def test_a_supervisor_can_draft_a_new_version_by_editing_numbers():
    data = copy.deepcopy(POLICIES["US"].to_dict())
    data["version"] = 2
    rule = next(r for r in data["rules"] if r["code"] == "US.REGF.CALL_FREQUENCY")
    rule["max"] = 3
    v2 = Policy.from_dict(data)
    history = [call(P - days(k), "voicemail") for k in (1, 2, 3)]
    assert check("US", P, history=history).allowed
    d = evaluate(policy=v2, facts=BorrowerFacts((NY,)), history=history, proposal=Proposal(P, "call", 1))
    assert not d.allowed and d.policy_version == 2 and "(limit 3)" in d.violations[0].message


def test_rule_indexes_used_below():
    rules = SEED_POLICIES[0]["rules"]
    assert rules[FREQ]["code"] == "US.REGF.CALL_FREQUENCY" and rules[WIN]["code"] == "US.FDCPA.TIME_OF_DAY"


def _mutated(path_and_value):
    data = copy.deepcopy(SEED_POLICIES[0])
    path, value = path_and_value
    target = data
    for key in path[:-1]:
        target = target[key]
    if value is KeyError:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return data


FREQ = 6  # index of US.REGF.CALL_FREQUENCY in the US seed
WIN = 5  # index of US.FDCPA.TIME_OF_DAY


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ((["rules", FREQ, "type"], "vibes"), "unknown rule type"),
        ((["rules", FREQ, "max"], -1), "at least 0"),
        ((["rules", FREQ, "max"], 2.5), "whole number"),
        ((["rules", FREQ, "max"], True), "whole number"),
        ((["rules", FREQ, "days"], 0), "at least 1"),
        ((["rules", FREQ, "period"], "fortnight"), "period"),
        ((["rules", FREQ, "scope"], "planet"), "scope"),
        ((["rules", FREQ, "count_outcomes"], ["answered"]), "unknown value"),
        ((["rules", FREQ, "channels"], ["pigeon"]), "unknown value"),
        ((["rules", FREQ, "maximum"], 3), "unknown field"),
        ((["rules", FREQ, "code"], KeyError), "missing required field 'code'"),
        ((["rules", FREQ, "code"], "HOLD.CEASE"), "duplicate rule code"),
        ((["rules", WIN, "windows", 0, "start"], "8am"), "HH:MM"),
        ((["rules", WIN, "windows", 0, "start"], "25:00"), "HH:MM"),
        ((["rules", WIN, "windows", 0, "end"], "07:00"), "must be before"),
        ((["rules", WIN, "windows", 0, "days"], ["funday"]), "unknown value"),
        ((["rules", WIN, "windows"], []), "non-empty"),
        ((["rules", WIN, "closed_dates"], ["2025-13-01"]), "YYYY-MM-DD"),
        ((["rules", 0, "flag"], "grumpy"), "flag"),
        ((["version"], 0), "at least 1"),
        ((["rules"], {}), "list of rules"),
        ((["effective_from"], "soon"), "YYYY-MM-DD"),
        ((["effective_from"], "2026-01-01T00:00:00"), "aware ISO datetime"),
        ((["colour"], "red"), "unknown field"),
    ],
)
def test_from_dict_rejects_bad_data(change, message):
    with pytest.raises(ValueError, match=message):
        Policy.from_dict(_mutated(change))


def test_from_dict_rejects_non_dicts():
    with pytest.raises(ValueError):
        Policy.from_dict([])  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Policy.from_dict({"code": "X", "version": 1, "rules": ["time_window"]})


def test_evaluate_is_fast():
    history = []
    for k in range(50):
        outcome = OUTCOMES[k % len(OUTCOMES)]
        history.append(Attempt(P - timedelta(hours=7 * k + 1), ("call", "sms")[k % 2], outcome, 1 + k % 3, phone="+1"))
    facts = BorrowerFacts((NY, "America/Los_Angeles"))
    for code, policy in POLICIES.items():
        proposal = Proposal(P, "call", 1, phone="+1")
        evaluate(policy=policy, facts=facts, history=history, proposal=proposal)
        runs = 200
        start = timer.perf_counter()
        for _ in range(runs):
            evaluate(policy=policy, facts=facts, history=history, proposal=proposal)
        per_call = (timer.perf_counter() - start) / runs
        assert per_call < 0.001, (code, per_call)


# ---- CN v2: field visits by two collectors ----------------------------------------------------


def test_cn_field_visit_needs_two_collectors():
    at = local("Asia/Shanghai", 2026, 6, 10, 10, 0)
    alone = check("CN", at, zones=("Asia/Shanghai",), channel="visit")
    assert not alone.allowed and codes(alone) == {"CN.VISIT_TWO_COLLECTORS"}
    assert alone.next_allowed_at is None  # waiting does not help: another collector does
    assert alone.violations[0].message.startswith("A field visit needs at least 2 collectors present; 1 recorded.")
    assert check("CN", at, zones=("Asia/Shanghai",), channel="visit", collectors=2).allowed
    assert check("CN", at, zones=("Asia/Shanghai",), channel="call").allowed  # other channels: no team needed
    assert check("US", local(NY, 2026, 6, 10, 10, 0), channel="visit").allowed  # not a US rule
    # Still refused at night with two: the other rules apply as before.
    night = check("CN", local("Asia/Shanghai", 2026, 6, 10, 23, 0), zones=("Asia/Shanghai",), channel="visit",
                  collectors=2)
    assert codes(night) == {"CN.QUIET_HOURS"}


def test_cn_v1_stays_as_it_was():
    v1 = next(p for p in SEED_POLICIES if p["code"] == "CN")
    v2 = next(p for p in POLICY_UPDATES if p["code"] == "CN")
    assert "team" not in {r["type"] for r in v1["rules"]}
    changed = [(a["code"], {k for k in {*a, *b} if a.get(k) != b.get(k)}) for a, b in zip(v1["rules"], v2["rules"][:-1], strict=True)
               if a != b]
    assert changed == [("CN.CONVERSATIONS_PER_DAY", {"parties"})] and v2["rules"][-1]["type"] == "team"


def test_seeded_versions_are_the_frozen_files_the_migrations_load():
    """What the engine tests check is what the database holds (migrations compliance/0003 and 0005)."""
    frozen = Path(__file__).resolve().parents[3] / "compliance" / "migrations"
    assert json.loads((frozen / "policies_v1.json").read_text(encoding="utf-8")) == SEED_POLICIES
    assert json.loads((frozen / "policies_v2.json").read_text(encoding="utf-8")) == POLICY_UPDATES[:1]
    # compliance/0007: US v2, US-MA v2, CN v3, AU v2
    assert json.loads((frozen / "policies_v3.json").read_text(encoding="utf-8")) == POLICY_UPDATES[1:]


@pytest.mark.parametrize("bad", [{"min_collectors": 1}, {"min_collectors": "two"}, {"channels": ["fax"]}])
def test_team_rule_data_is_checked(bad):
    with pytest.raises(ValueError):
        Policy.from_dict({"code": "X", "version": 1, "name": "x", "effective_from": "2026-01-01", "rules": [
            {"type": "team", "code": "X.TEAM", "citation": "c", **bad}]})


def test_proposal_collectors_must_be_a_positive_whole_number():
    for bad in (0, -1, 1.5, True, "2"):
        with pytest.raises(ValueError):
            Proposal(at=P, channel="visit", account_id=1, collectors=bad)
