"""Pure contact-compliance rule engine (stdlib only: no Django, no I/O).

``evaluate(policy=..., facts=..., history=..., proposal=...)`` decides whether a proposed outbound
outreach to a borrower is lawful under a :class:`Policy` and, if not, the exact earliest instant at
which the same outreach would be lawful (``Decision.next_allowed_at``, UTC; None when no time can be
predicted, e.g. a hold or the third-party rule). Inbound contacts are always allowed; they count
only where a rule says so (a cooldown's ``trigger_directions``). ``history_window(policy)`` tells the
caller how much history to load, on *both* sides of the proposal's time.

The history may hold attempts after the proposal (a contact reported after the fact, a colleague's
call a moment later): every rule whose conflict is symmetric (caps, waits) looks both ways. An
attempt still in progress has outcome ``PENDING`` and counts as whatever restricts the most; a
proposal with no ``outcome`` (outreach about to start) likewise. With no borrower time zone the
jurisdiction's zones (``Policy.zones`` or ``JURISDICTION_ZONES``) all apply, or the proposal is
refused as ``TZ_UNKNOWN``.

Policy data format (plain JSON; ``Policy.from_dict`` validates it, ``Policy.to_dict`` returns the
canonical form with all defaults filled in)::

    {"code": "US", "version": 1, "name": "...", "effective_from": "2020-01-01", "description": "...",
     "zones": ["America/New_York", ...], "rules": [RULE, ...]}
                                        # name (default: code), effective_from, description, zones optional

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
    One rule per channel group models per-channel windows (AU: calls vs face-to-face).
    With several borrower time zones the instant must be allowed in every zone.
``frequency``
    Refuse when ``max`` or more counted attempts already exist. Counted: outbound history attempts with
    channel in ``count_channels``, outcome in ``count_outcomes``, party in ``parties``, and matching the
    ``scope``: "account" (same debt; an attempt about several debts counts for each, and a proposal
    about several must fit each debt's cap), "borrower" (this lender's record of the borrower), "person"
    (every lender's record of the same person: the whole history given) or "number" (same E.164 phone).
    A proposal whose known outcome is not in ``count_outcomes`` (a reported busy call) is not capped.
    ``period``: "rolling" with ``days`` (the busiest window (e - days, e] that contains t, so attempts
    logged later than a back-dated proposal count too) or "day" (the whole local calendar day of the
    borrower's primary zone that contains t). ``label`` names what is counted in the message.
``cooldown``
    A history attempt with channel in ``trigger_channels`` and outcome in ``trigger_outcomes`` (outbound,
    party in ``parties``, same ``scope``, direction in ``trigger_directions``, default outbound only) at c
    blocks c <= t < c + ``days`` days for proposals that may end in ``count_outcomes`` (default all); and
    a proposal that may itself be a trigger is refused while restricted outreach lies in (t, t + days).
    ``label`` names the trigger.
``hold``
    ``flag``: one of HOLD_FLAGS; when the borrower has that hold, outreach is refused (optional ``message``).
    ``scope``: "borrower" (default) or "person" (a hold on any lender's record of the person).
``consent``
    SMS/email (``channels``) only with the borrower's consent to the channel (``BorrowerFacts.consented``)
    and never to an address in ``BorrowerFacts.opted_out`` (STOP / 退订).
``third_party``
    Applies to third-party proposals: allowed only if, in the last ``days`` days, there were at least
    ``min_attempts`` outbound borrower attempts on ``attempt_channels``, all with ``failed_outcomes``, and
    no borrower contact (either direction) with ``contact_outcomes``; ``scope`` "borrower" or "account".
``team``
    ``min_collectors`` (>= 2): an in-person proposal on ``channels`` (default ["visit"]) needs at least
    that many staff present (``Proposal.collectors``); otherwise refused with no predicted time.

See ``SEED_POLICIES`` and ``POLICY_UPDATES`` (compliance/rules/seeds.py) for complete examples.
"""

from .engine import BORROWER_TIMES_CITATION, BORROWER_TIMES_CODE, borrower_rules, evaluate, history_window
from .model import (
    CHANNELS,
    CONVERSATION_OUTCOMES,
    ELECTRONIC_CHANNELS,
    HOLD_FLAGS,
    NEVER_REACHED_OUTCOMES,
    NOT_CONNECTED_OUTCOMES,
    OUTCOMES,
    PENDING,
    PLACED_OUTCOMES,
    Attempt,
    BorrowerFacts,
    Decision,
    Proposal,
    Violation,
)
from .policy import (
    ConsentRule,
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
from .seeds import AU_NATIONAL_HOLIDAYS, POLICY_UPDATES, POLICY_UPDATES_2026_12, SEED_POLICIES
from .zones import JURISDICTION_ZONES

__all__ = [
    "BORROWER_TIMES_CITATION",
    "BORROWER_TIMES_CODE",
    "borrower_rules",
    "AU_NATIONAL_HOLIDAYS",
    "ELECTRONIC_CHANNELS",
    "JURISDICTION_ZONES",
    "NEVER_REACHED_OUTCOMES",
    "PENDING",
    "PLACED_OUTCOMES",
    "POLICY_UPDATES_2026_12",
    "ConsentRule",
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
