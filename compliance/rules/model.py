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
)
#: A telephone conversation with the borrower took place.
CONVERSATION_OUTCOMES = ("right_party_contact", "promise", "refused", "dispute_raised")
#: Nobody was reached (a voicemail is *not* in here: a message was left).
NOT_CONNECTED_OUTCOMES = ("not_connected", "no_answer", "busy", "wrong_number", "failed")

HOLD_FLAGS = ("cease", "dispute", "attorney", "bankruptcy", "deceased")


def _check_aware(value: object, what: str) -> None:
    if not isinstance(value, datetime):
        raise ValueError(f"{what} must be a datetime, got {type(value).__name__}.")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware, got naive {value.isoformat()}.")


def _check_choice(value: object, choices: tuple[str, ...], what: str) -> None:
    if value not in choices:
        raise ValueError(f"{what} must be one of {', '.join(choices)}; got {value!r}.")


@dataclass(frozen=True)
class Attempt:
    """One past, already recorded outreach (or inbound contact)."""

    at: datetime
    channel: str
    outcome: str
    account_id: int
    party: str = "borrower"
    direction: str = "outbound"
    phone: str = ""

    def __post_init__(self) -> None:
        _check_aware(self.at, "Attempt.at")
        _check_choice(self.channel, CHANNELS, "Attempt.channel")
        _check_choice(self.outcome, OUTCOMES, "Attempt.outcome")
        _check_choice(self.party, PARTIES, "Attempt.party")
        _check_choice(self.direction, DIRECTIONS, "Attempt.direction")


@dataclass(frozen=True)
class Proposal:
    """The outreach we want to make (or record)."""

    at: datetime
    channel: str
    account_id: int
    party: str = "borrower"
    direction: str = "outbound"
    phone: str = ""
    collectors: int = 1  # staff going in person (a field visit)

    def __post_init__(self) -> None:
        _check_aware(self.at, "Proposal.at")
        if not isinstance(self.collectors, int) or isinstance(self.collectors, bool) or self.collectors < 1:
            raise ValueError(f"Proposal.collectors must be a whole number >= 1, got {self.collectors!r}.")
        _check_choice(self.channel, CHANNELS, "Proposal.channel")
        _check_choice(self.party, PARTIES, "Proposal.party")
        _check_choice(self.direction, DIRECTIONS, "Proposal.direction")


@dataclass(frozen=True)
class BorrowerFacts:
    """What the rules need to know about the borrower. ``time_zones[0]`` is the primary zone."""

    time_zones: tuple[str, ...]
    holds: frozenset[str] = frozenset()
    after_hours_consent: bool = False

    def __post_init__(self) -> None:
        # Accept any iterables (e.g. lists from a JSONField) but store immutable values.
        zones = (self.time_zones,) if isinstance(self.time_zones, str) else tuple(self.time_zones)
        holds = frozenset(self.holds or ())
        object.__setattr__(self, "time_zones", zones)
        object.__setattr__(self, "holds", holds)
        if not zones:
            raise ValueError("BorrowerFacts.time_zones needs at least one IANA time zone.")
        unknown = sorted(holds - set(HOLD_FLAGS))
        if unknown:
            raise ValueError(f"Unknown hold flag(s) {unknown}; allowed: {', '.join(HOLD_FLAGS)}.")
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
