"""Value types of the rule engine: what happened, what we want to do, what we know, what we decided."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from .localtime import zone

CHANNELS = ("call", "sms", "email", "letter", "visit")
PARTIES = ("borrower", "third_party")
DIRECTIONS = ("outbound", "inbound")

OUTCOMES = (
    "not_connected",
    "no_answer",
    "busy",
    "voicemail",
    "wrong_number",
    "right_party_contact",
    "promise",
    "refused",
    "dispute_raised",
    "third_party_contact",
    "delivered",
    "failed",
    "unreported",
)
#: The outcome of an attempt that was started (the gate let it through) and is not yet completed.
#: Its result is unknown, so every rule counts it as whatever would restrict the most.
PENDING = "pending"
#: A telephone conversation with the borrower took place.
CONVERSATION_OUTCOMES = ("right_party_contact", "promise", "refused", "dispute_raised")
#: Nobody was reached (a voicemail is *not* in here: a message was left).
NOT_CONNECTED_OUTCOMES = ("not_connected", "no_answer", "busy", "wrong_number", "failed")
#: Calls that never reached the number: the only ones Reg F leaves out of "calls placed".
NEVER_REACHED_OUTCOMES = ("not_connected", "busy", "failed")
#: Calls placed (Reg F 1006.14(b)(2)(i)(A), 940 CMR 7.04(1)(f)): unanswered, voicemail and a
#: started call never reported included.
PLACED_OUTCOMES = tuple(o for o in OUTCOMES if o not in NEVER_REACHED_OUTCOMES)

HOLD_FLAGS = ("cease", "dispute", "attorney", "bankruptcy", "deceased")
#: Channels whose messages need the borrower's consent per address and honour an opt-out.
ELECTRONIC_CHANNELS = ("sms", "email")


def _check_aware(value: object, what: str) -> None:
    if not isinstance(value, datetime):
        raise ValueError(f"{what} must be a datetime, got {type(value).__name__}.")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware, got naive {value.isoformat()}.")


def _check_choice(value: object, choices: tuple[str, ...], what: str) -> None:
    if value not in choices:
        raise ValueError(f"{what} must be one of {', '.join(choices)}; got {value!r}.")


def _account_set(primary: int, others) -> frozenset[int]:
    return frozenset((primary, *(others or ())))


@dataclass(frozen=True)
class Attempt:
    """One past, already recorded outreach (or inbound contact).

    ``account_id`` is the debt the attempt was about; ``accounts`` any other debts of the same
    borrower it was also about (a call about several debts counts for each). ``borrower_id`` tells
    the borrower record apart from other lenders' records of the same person (0: the proposal's).
    ``outcome`` is PENDING for an attempt started and not yet completed.
    """

    at: datetime
    channel: str
    outcome: str
    account_id: int
    party: str = "borrower"
    direction: str = "outbound"
    phone: str = ""
    accounts: tuple[int, ...] = ()
    borrower_id: int = 0

    def __post_init__(self) -> None:
        _check_aware(self.at, "Attempt.at")
        _check_choice(self.channel, CHANNELS, "Attempt.channel")
        _check_choice(self.outcome, (*OUTCOMES, PENDING), "Attempt.outcome")
        object.__setattr__(self, "accounts", tuple(self.accounts or ()))

    @property
    def account_ids(self) -> frozenset[int]:
        return _account_set(self.account_id, self.accounts)
        _check_choice(self.party, PARTIES, "Attempt.party")
        _check_choice(self.direction, DIRECTIONS, "Attempt.direction")


@dataclass(frozen=True)
class Proposal:
    """The outreach we want to make (or a contact that happened, to be judged).

    ``outcome``: empty when not known yet (outreach about to start: every rule assumes the outcome
    that restricts the most); known for a contact being reported after the fact. ``address``: the
    phone number or email address an electronic message goes to (consent and opt-out are per address).
    """

    at: datetime
    channel: str
    account_id: int
    party: str = "borrower"
    direction: str = "outbound"
    phone: str = ""
    collectors: int = 1  # staff going in person (a field visit)
    outcome: str = ""
    accounts: tuple[int, ...] = ()
    borrower_id: int = 0
    address: str = ""

    def __post_init__(self) -> None:
        _check_aware(self.at, "Proposal.at")
        if self.outcome:
            _check_choice(self.outcome, OUTCOMES, "Proposal.outcome")
        object.__setattr__(self, "accounts", tuple(self.accounts or ()))
        if not isinstance(self.collectors, int) or isinstance(self.collectors, bool) or self.collectors < 1:
            raise ValueError(f"Proposal.collectors must be a whole number >= 1, got {self.collectors!r}.")
        _check_choice(self.channel, CHANNELS, "Proposal.channel")
        _check_choice(self.party, PARTIES, "Proposal.party")
        _check_choice(self.direction, DIRECTIONS, "Proposal.direction")

    @property
    def account_ids(self) -> frozenset[int]:
        return _account_set(self.account_id, self.accounts)

    def may_be(self, outcomes: tuple[str, ...]) -> bool:
        """Could this outreach end with one of ``outcomes``? (Unknown outcome: yes.)"""
        return not self.outcome or self.outcome in outcomes


@dataclass(frozen=True)
class BorrowerFacts:
    """What the rules need to know about the borrower. ``time_zones[0]`` is the primary zone.

    ``time_zones`` may be empty when no zone is known: the engine then uses every zone of the
    policy's jurisdiction (never the server's). ``person_holds``: holds on any record of the same
    person with other lenders (rules with scope "person" read them). ``consented``: electronic
    channels the borrower agreed to; ``opted_out``: addresses (E.164 numbers, lower-case emails)
    that asked to stop (STOP / 退订).
    """

    time_zones: tuple[str, ...]
    holds: frozenset[str] = frozenset()
    after_hours_consent: bool = False
    person_holds: frozenset[str] = frozenset()
    consented: frozenset[str] = frozenset(ELECTRONIC_CHANNELS)
    opted_out: frozenset[str] = frozenset()
    # The times the borrower said suit them, as (weekdays, start minute, end minute) in their local time;
    # empty: no preference. Outreach outside them is at a time known to be inconvenient (Reg F 1006.6(b)(1)).
    contact_windows: tuple[tuple[tuple[int, ...], int, int], ...] = ()

    def __post_init__(self) -> None:
        # Accept any iterables (e.g. lists from a JSONField) but store immutable values.
        zones = (self.time_zones,) if isinstance(self.time_zones, str) else tuple(self.time_zones or ())
        holds = frozenset(self.holds or ())
        person_holds = frozenset(self.person_holds or ()) | holds
        object.__setattr__(self, "time_zones", zones)
        object.__setattr__(self, "holds", holds)
        object.__setattr__(self, "person_holds", person_holds)
        object.__setattr__(self, "consented", frozenset(self.consented or ()))
        object.__setattr__(self, "opted_out", frozenset(self.opted_out or ()))
        windows = tuple((tuple(sorted(set(days))), int(start), int(end)) for days, start, end in self.contact_windows or ())
        for days, start, end in windows:
            if not days or not set(days) <= set(range(7)) or not 0 <= start < end <= 1440:
                raise ValueError(f"Bad contact window {days} {start}-{end}: weekdays 0-6, 0 <= start < end <= 1440.")
        object.__setattr__(self, "contact_windows", windows)
        unknown = sorted(person_holds - set(HOLD_FLAGS))
        if unknown:
            raise ValueError(f"Unknown hold flag(s) {unknown}; allowed: {', '.join(HOLD_FLAGS)}.")
        bad = sorted(self.consented - set(ELECTRONIC_CHANNELS))
        if bad:
            raise ValueError(f"Unknown consent channel(s) {bad}; allowed: {', '.join(ELECTRONIC_CHANNELS)}.")
        for name in zones:
            zone(name)  # raises ValueError for unknown names


@dataclass(frozen=True)
class Violation:
    code: str
    message: str  # English: for the audit log, the API and logs
    citation: str
    #: The same explanation as data, sentence by sentence (``text.Text``), for translated UIs.
    parts: tuple = ()


@dataclass(frozen=True)
class Decision:
    allowed: bool
    violations: tuple[Violation, ...]
    next_allowed_at: datetime | None
    policy_code: str
    policy_version: int
