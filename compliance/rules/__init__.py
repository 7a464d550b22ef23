"""Pure contact-compliance rule engine (stdlib only: no Django, no I/O).

``evaluate(policy=..., facts=..., history=..., proposal=...)`` decides whether a proposed outbound
outreach to a borrower is lawful under a :class:`Policy` and, if not, the exact earliest instant at
which the same outreach would be lawful (``Decision.next_allowed_at``, UTC; None when no time can be
predicted, e.g. a hold or the third-party rule). Inbound contacts are always allowed and never count
toward caps. ``history_window(policy)`` tells the caller how much history to load.

Policy data format (plain JSON; ``Policy.from_dict`` validates it, ``Policy.to_dict`` returns the
canonical form with all defaults filled in)::

    {"code": "US", "version": 1, "name": "...", "effective_from": "2020-01-01", "description": "...",
     "rules": [RULE, ...]}              # name (default: code), effective_from, description optional

Unknown fields anywhere are rejected (typos must not silently weaken a policy).

Every RULE has ``type``, ``code`` (unique in the policy, used as Violation.code), ``citation`` and
optionally ``channels`` (proposal channels it restricts; default all of call/sms/email/letter/visit)
and ``parties`` (proposal parties it restricts *and* history parties it counts; default both
"borrower" and "third_party"). Rules only ever restrict *outbound* proposals. Types:

``time_window``
    ``windows``: [{"days": ["mon", ...], "start": "HH:MM", "end": "HH:MM"}] - allowed when the local
    wall clock is in [start, end) of a window for that weekday ("24:00" allowed as end);
    ``closed_dates``: ["YYYY-MM-DD", ...] local dates with no outreach (public holidays);
    ``consent_waives``: true if ``BorrowerFacts.after_hours_consent`` switches the rule off.
    With several borrower time zones the instant must be allowed in every zone.
``frequency``
    Refuse when ``max`` or more counted attempts already exist. Counted: outbound history attempts with
    channel in ``count_channels``, outcome in ``count_outcomes``, party in ``parties``, and matching the
    ``scope``: "account" (same debt), "borrower" (whole history given) or "number" (same phone).
    ``period``: "rolling" with ``days`` (the busiest window (e - days, e] that contains t, so attempts
    logged later than a back-dated proposal count too) or "day" (the whole local calendar day of the
    borrower's primary zone that contains t). ``label`` names what is counted in the message.
``cooldown``
    A history attempt with channel in ``trigger_channels`` and outcome in ``trigger_outcomes`` (outbound,
    party in ``parties``, same ``scope``) at c blocks c <= t < c + ``days`` days. ``label`` names the trigger.
``hold``
    ``flag``: one of HOLD_FLAGS; when the borrower has that hold, outreach is refused (optional ``message``).
``third_party``
    Applies to third-party proposals: allowed only if, in the last ``days`` days, there were at least
    ``min_attempts`` outbound borrower attempts on ``attempt_channels``, all with ``failed_outcomes``, and
    no borrower contact (either direction) with ``contact_outcomes``; ``scope`` "borrower" or "account".
``team``
    ``min_collectors`` (>= 2): an in-person proposal on ``channels`` (default ["visit"]) needs at least
    that many staff present (``Proposal.collectors``); otherwise refused with no predicted time.

See ``SEED_POLICIES`` and ``POLICY_UPDATES`` (compliance/rules/seeds.py) for complete examples.
"""

from .engine import evaluate, history_window
from .model import (
    CHANNELS,
    CONVERSATION_OUTCOMES,
    HOLD_FLAGS,
    NOT_CONNECTED_OUTCOMES,
    OUTCOMES,
    Attempt,
    BorrowerFacts,
    Decision,
    Proposal,
    Violation,
)
from .policy import (
    CooldownRule,
    FrequencyRule,
    HoldRule,
    Policy,
    Rule,
    TeamRule,
    ThirdPartyRule,
    TimeWindowRule,
    Window,
)
from .seeds import AU_NATIONAL_HOLIDAYS, POLICY_UPDATES, SEED_POLICIES

__all__ = [
    "AU_NATIONAL_HOLIDAYS",
    "CHANNELS",
    "CONVERSATION_OUTCOMES",
    "HOLD_FLAGS",
    "NOT_CONNECTED_OUTCOMES",
    "OUTCOMES",
    "SEED_POLICIES",
    "POLICY_UPDATES",
    "Attempt",
    "BorrowerFacts",
    "CooldownRule",
    "Decision",
    "FrequencyRule",
    "HoldRule",
    "Policy",
    "Proposal",
    "Rule",
    "TeamRule",
    "ThirdPartyRule",
    "TimeWindowRule",
    "Violation",
    "Window",
    "evaluate",
    "history_window",
]
