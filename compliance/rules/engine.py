"""evaluate(): is a proposed outreach lawful now, and if not, when is it next lawful?"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, timedelta

from .model import Attempt, BorrowerFacts, Decision, Proposal, Violation
from .policy import Context, Policy, TimeWindowRule, Window
from .text import gettext_noop, text
from .zones import JURISDICTION_ZONES

_MAX_ROUNDS = 10_000


def history_window(policy: Policy) -> timedelta:
    """How far back history must reach for ``evaluate`` to be exact at ``proposal.at``.

    Attempts at or before ``proposal.at - history_window(policy)`` never matter, so the caller may
    query ``at > proposal.at - window`` only. (next_allowed_at only looks at later times, which need
    even less history.)
    """
    return max((rule.lookback() for rule in policy.rules), default=timedelta(0))


#: The rule that a borrower's own convenient times add to any policy (code and citation, translated as policy data).
BORROWER_TIMES_CODE = "BORROWER.CONVENIENT_TIMES"
BORROWER_TIMES_CITATION = ("Times the borrower said are convenient; contact at a time known to be inconvenient is "
                           "not allowed (12 CFR 1006.6(b)(1)(i))")
#: Channels that reach the borrower at a moment (a letter does not).
BORROWER_TIMES_CHANNELS = ("call", "sms", "email", "visit")


def borrower_rules(facts: BorrowerFacts) -> tuple[TimeWindowRule, ...]:
    """The borrower's stated convenient times as one more time-window rule, on top of the policy's hours
    (both must allow a moment); none when the borrower stated none."""
    if not facts.contact_windows:
        return ()
    windows = tuple(Window(days=days, start=start, end=end) for days, start, end in facts.contact_windows)
    return (TimeWindowRule(code=BORROWER_TIMES_CODE, citation=BORROWER_TIMES_CITATION,
                           channels=BORROWER_TIMES_CHANNELS, parties=("borrower",), windows=windows),)


def evaluate(*, policy: Policy, facts: BorrowerFacts, history: Sequence[Attempt], proposal: Proposal) -> Decision:
    if not isinstance(policy, Policy):
        raise ValueError("policy must be a compliance.rules.Policy (use Policy.from_dict).")
    if proposal.at.tzinfo is None or proposal.at.utcoffset() is None:
        raise ValueError("Proposal.at must be timezone-aware.")
    at = proposal.at.astimezone(UTC)
    # No zone known for the borrower: every zone of the jurisdiction at once, never the server's.
    zones = facts.time_zones or policy.zones or JURISDICTION_ZONES.get(policy.code, ())
    if not zones:
        if proposal.direction == "inbound":
            return Decision(True, (), at, policy.code, policy.version)
        message = text(gettext_noop("The borrower's time zone is not known and policy %(policy)s names no time zones"
                                    " for its jurisdiction, so no lawful hour can be worked out. Record the"
                                    " borrower's time zone first."), policy=policy.code)
        violation = Violation("TZ_UNKNOWN", message.render(), "12 CFR 1006.6(b)(1)(i) (place of the consumer)", (message,))
        return Decision(False, (violation,), None, policy.code, policy.version)
    ctx = Context.build(facts=facts, history=history, proposal=proposal, zones=tuple(zones))
    bounds = [rule.bind(ctx) for rule in (*policy.rules, *borrower_rules(facts)) if rule.applies(proposal, facts)]

    violations = []
    unpredictable = False
    for bound in bounds:
        v = bound.violation(at)
        if v is not None:
            violations.append(v)
            unpredictable = unpredictable or not bound.predictable

    def decision(next_at):
        return Decision(
            allowed=not violations,
            violations=tuple(violations),
            next_allowed_at=next_at,
            policy_code=policy.code,
            policy_version=policy.version,
        )

    if not violations:
        return decision(at)
    if unpredictable:
        return decision(None)

    # Each rule's earliest() is the exact earliest instant that rule alone allows, hence a lower
    # bound for all rules together: jump to the max over the violated rules until all agree.
    t = at
    for _ in range(_MAX_ROUNDS):
        failing = [b for b in bounds if not b.ok(t)]
        if not failing:
            return decision(t)
        nxt = t
        for b in failing:
            e = b.earliest(t)
            if e is None:
                return decision(None)
            nxt = max(nxt, e)
        if nxt <= t or nxt > ctx.limit:  # no progress (inconsistent rule) or beyond the horizon
            return decision(None)
        t = nxt
    return decision(None)
