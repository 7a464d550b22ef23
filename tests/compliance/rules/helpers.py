"""Shared builders for the rule-engine tests (pure Python, no Django)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from compliance.rules import POLICY_UPDATES, SEED_POLICIES, Attempt, BorrowerFacts, Policy, Proposal, evaluate

# The latest version of each policy under its code (later versions override the first ones), and
# every version as "CODE@VERSION" (e.g. "US@1") for what older versions decided.
POLICIES = {data["code"]: Policy.from_dict(data) for data in [*SEED_POLICIES, *POLICY_UPDATES]}
POLICIES.update({f"{d['code']}@{d['version']}": Policy.from_dict(d) for d in [*SEED_POLICIES, *POLICY_UPDATES]})


def local(zone: str, *args: int) -> datetime:
    """An aware local wall-clock time, e.g. local("America/New_York", 2025, 3, 11, 8, 0)."""
    return datetime(*args, tzinfo=ZoneInfo(zone))


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def call(at: datetime, outcome: str = "right_party_contact", *, account_id: int = 1, **kw) -> Attempt:
    return Attempt(at=at, channel=kw.pop("channel", "call"), outcome=outcome, account_id=account_id, **kw)


def check(
    code: str,
    at: datetime,
    *,
    zones: tuple[str, ...] = ("America/New_York",),
    history: list[Attempt] | tuple[Attempt, ...] = (),
    channel: str = "call",
    account_id: int = 1,
    holds: frozenset[str] = frozenset(),
    consent: bool = False,
    **kw,
):
    return evaluate(
        policy=POLICIES[code],
        facts=BorrowerFacts(time_zones=zones, holds=holds, after_hours_consent=consent),
        history=list(history),
        proposal=Proposal(at=at, channel=channel, account_id=account_id, **kw),
    )


def codes(decision) -> set[str]:
    return {v.code for v in decision.violations}


def days(n: float) -> timedelta:
    return timedelta(days=n)
