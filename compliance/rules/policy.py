"""Policies and their generic, data-parametrised rules (parsing, validation, evaluation per rule).

See the package docstring (``compliance/rules/__init__.py``) for the data format.

Every rule is *bound* to one evaluation (facts, history, proposal) and then answers three questions
about an instant ``t`` (the proposal moved to ``t``):

* ``ok(t)`` - is this rule alone satisfied?
* ``violation(t)`` - the :class:`Violation` explaining why not (or None);
* ``earliest(t)`` - the earliest instant >= t at which this rule alone is satisfied, exactly
  (None if never within the search horizon or not predictable).
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

from .localtime import day_start, local_intervals, wall, zone
from .model import (
    CHANNELS,
    DIRECTIONS,
    ELECTRONIC_CHANNELS,
    HOLD_FLAGS,
    OUTCOMES,
    PARTIES,
    PENDING,
    Attempt,
    BorrowerFacts,
    Proposal,
    Violation,
)
from .text import Hours, Local, Seq, Text, Word, gettext_noop, text
from .text import days_phrase as _days_phrase
from .text import hhmm as _hhmm

#: How far ahead next_allowed_at is searched.
HORIZON = timedelta(days=400)

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
SCOPES = ("account", "borrower", "person", "number")
HOLD_SCOPES = ("borrower", "person")
PERIODS = ("rolling", "day")

CHANNEL_NOUNS = {"call": "calls", "sms": "text messages", "email": "emails", "letter": "letters", "visit": "visits"}

HOLD_MESSAGES = {
    "cease": gettext_noop("The borrower has asked us to stop contacting them (cease-communication request); no outreach may be made."),
    "dispute": gettext_noop("The borrower disputes this debt; collection outreach is suspended until the dispute is resolved."),
    "attorney": gettext_noop("The borrower is represented by an attorney; communicate with the attorney, not the borrower."),
    "bankruptcy": gettext_noop("The borrower is in bankruptcy; collection outreach is barred while the bankruptcy stay applies."),
    "deceased": gettext_noop("The borrower is recorded as deceased; no collection outreach may be made on this record."),
}
PERSON_HOLD_NOTE = gettext_noop("(Recorded on this person's account with another lender: it applies to every lender.)")


def _violation(rule: Rule, *parts: Text) -> Violation:
    return Violation(rule.code, " ".join(p.render() for p in parts), rule.citation, parts)

_TIME_RE = re.compile(r"^([01]\d|2[0-4]):([0-5]\d)$")


# --------------------------------------------------------------------------------------------
# Evaluation context
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Context:
    """One evaluation: facts, proposal, and history normalised to UTC and sorted."""

    facts: BorrowerFacts
    proposal: Proposal
    history: tuple[tuple[datetime, Attempt], ...]  # (UTC instant, attempt), sorted by instant
    zones: tuple[ZoneInfo, ...]
    limit: datetime  # search horizon for next_allowed_at
    zones_assumed: bool = False  # no zone known: all the jurisdiction's zones are used

    @classmethod
    def build(
        cls, *, facts: BorrowerFacts, history: Sequence[Attempt], proposal: Proposal,
        zones: tuple[str, ...] = (),
    ) -> Context:
        items = []
        for attempt in history:
            if not isinstance(attempt, Attempt):
                raise ValueError(f"history items must be Attempt, got {type(attempt).__name__}.")
            items.append((attempt.at.astimezone(UTC), attempt))
        items.sort(key=lambda item: item[0])
        at = proposal.at.astimezone(UTC)
        names = facts.time_zones or zones
        return cls(
            facts=facts,
            proposal=proposal,
            history=tuple(items),
            zones=tuple(zone(name) for name in names),
            limit=at + HORIZON,
            zones_assumed=not facts.time_zones,
        )

    @property
    def primary(self) -> ZoneInfo:
        return self.zones[0]

    def channel_noun(self) -> str:
        return CHANNEL_NOUNS[self.proposal.channel]

    def select(
        self,
        *,
        channels: tuple[str, ...],
        outcomes: tuple[str, ...],
        parties: tuple[str, ...],
        scope: str,
        directions: tuple[str, ...] = ("outbound",),
        account_id: int | None = None,
        pending: bool = True,
    ) -> list[datetime]:
        """UTC instants (sorted) of the history attempts matching the filters and the scope.

        Scopes: "account" (attempts about ``account_id``, the proposal's debt by default; an attempt
        about several debts matches each), "borrower" (this lender's record of the borrower),
        "person" (the whole history given: every lender's record of the same person), "number"
        (the same phone number). A PENDING attempt (started, outcome not reported yet) matches any
        ``outcomes`` when ``pending`` is true: it counts as whatever restricts the most.
        """
        p = self.proposal
        account = p.account_id if account_id is None else account_id
        out = []
        for instant, a in self.history:
            if a.direction not in directions or a.channel not in channels or a.party not in parties:
                continue
            if a.outcome not in outcomes and not (pending and a.outcome == PENDING):
                continue
            if scope == "account" and account not in a.account_ids:
                continue
            if scope == "borrower" and a.borrower_id != p.borrower_id:
                continue
            if scope == "number" and a.phone != p.phone:
                continue
            out.append(instant)
        return out


class Bound:
    predictable: ClassVar[bool] = True

    def ok(self, t: datetime) -> bool:  # pragma: no cover - abstract
        raise NotImplementedError

    def violation(self, t: datetime) -> Violation | None:  # pragma: no cover - abstract
        raise NotImplementedError

    def earliest(self, t: datetime) -> datetime | None:  # pragma: no cover - abstract
        raise NotImplementedError


def _count_between(times: list[datetime], lo_excl: datetime, hi_incl: datetime) -> int:
    return bisect_right(times, hi_incl) - bisect_right(times, lo_excl)


def _first_ok(bound: Bound, candidates: list[datetime], t: datetime, limit: datetime) -> datetime | None:
    for c in sorted({t, *(c for c in candidates if c > t)}):
        if c > limit:
            return None
        if bound.ok(c):
            return c
    return None


class _AllOf(Bound):
    """One rule counted per debt, for an outreach about several debts: each must be satisfied."""

    def __init__(self, bounds: list[Bound], limit: datetime) -> None:
        self.bounds = bounds
        self.limit = limit
        self.predictable = all(b.predictable for b in bounds)

    def ok(self, t: datetime) -> bool:
        return all(b.ok(t) for b in self.bounds)

    def violation(self, t: datetime) -> Violation | None:
        return next((v for v in (b.violation(t) for b in self.bounds) if v is not None), None)

    def earliest(self, t: datetime) -> datetime | None:
        for _ in range(1000):
            moved = False
            for b in self.bounds:
                e = b.earliest(t)
                if e is None or e > self.limit:
                    return None
                if e > t:
                    t, moved = e, True
            if not moved:
                return t
        return None  # pragma: no cover - pathological data


def _per_account(make, ctx: Context, scope: str) -> Bound:
    ids = sorted(ctx.proposal.account_ids)
    if scope != "account" or len(ids) == 1:
        return make(ctx.proposal.account_id)
    return _AllOf([make(a) for a in ids], ctx.limit)


# --------------------------------------------------------------------------------------------
# Parsing helpers
# --------------------------------------------------------------------------------------------


class _Reader:
    """Reads one dict, with the path of the value in every error message."""

    def __init__(self, data: Any, where: str) -> None:
        if not isinstance(data, dict):
            raise ValueError(f"{where}: expected an object, got {type(data).__name__}.")
        self.data = data
        self.where = where
        self.used: set[str] = set()

    def _get(self, key: str, default: Any, required: bool) -> Any:
        self.used.add(key)
        if key not in self.data:
            if required:
                raise ValueError(f"{self.where}: missing required field {key!r}.")
            return default
        return self.data[key]

    def str(self, key: str, default: str | None = None, *, required: bool = True) -> str:
        value = self._get(key, default, required and default is None)
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"{self.where}.{key}: expected a non-empty string, got {value!r}.")
        return value

    def int(self, key: str, default: int | None = None, *, minimum: int = 0) -> int:
        value = self._get(key, default, default is None)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{self.where}.{key}: expected a whole number, got {value!r}.")
        if value < minimum:
            raise ValueError(f"{self.where}.{key}: must be at least {minimum}, got {value}.")
        return value

    def bool(self, key: str, default: bool) -> bool:
        value = self._get(key, default, False)
        if not isinstance(value, bool):
            raise ValueError(f"{self.where}.{key}: expected true or false, got {value!r}.")
        return value

    def choice(self, key: str, choices: tuple[str, ...], default: str | None = None) -> str:
        value = self._get(key, default, default is None)
        if value not in choices:
            raise ValueError(f"{self.where}.{key}: must be one of {', '.join(choices)}; got {value!r}.")
        return value

    def choices(self, key: str, choices: tuple[str, ...], default: tuple[str, ...] | None = None) -> tuple[str, ...]:
        value = self._get(key, default, default is None)
        if not isinstance(value, (list, tuple)) or not value:
            raise ValueError(f"{self.where}.{key}: expected a non-empty list, got {value!r}.")
        bad = [v for v in value if v not in choices]
        if bad:
            raise ValueError(f"{self.where}.{key}: unknown value(s) {bad}; allowed: {', '.join(choices)}.")
        # canonical order, no duplicates
        return tuple(c for c in choices if c in value)

    def raw(self, key: str, default: Any = None, *, required: bool = True) -> Any:
        return self._get(key, default, required)

    def done(self) -> None:
        extra = sorted(set(self.data) - self.used)
        if extra:
            raise ValueError(f"{self.where}: unknown field(s) {extra}.")


def _parse_hhmm(value: Any, where: str) -> int:
    if not isinstance(value, str) or not _TIME_RE.match(value):
        raise ValueError(f"{where}: expected a time 'HH:MM' between 00:00 and 24:00, got {value!r}.")
    hours, minutes = int(value[:2]), int(value[3:])
    if hours == 24 and minutes:
        raise ValueError(f"{where}: expected a time 'HH:MM' between 00:00 and 24:00, got {value!r}.")
    return hours * 60 + minutes


def _parse_effective(value: Any, where: str) -> str:
    """An ISO date ('2020-01-01') or an aware ISO datetime, normalised to its ISO form."""
    if isinstance(value, str):
        try:
            return date.fromisoformat(value).isoformat()
        except ValueError:
            pass
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            parsed = None
        if parsed is not None and parsed.tzinfo is not None:
            return parsed.isoformat()
    raise ValueError(f"{where}: expected a date 'YYYY-MM-DD' or an aware ISO datetime, got {value!r}.")


def _parse_date(value: Any, where: str) -> date:
    if not isinstance(value, str):
        raise ValueError(f"{where}: expected a date 'YYYY-MM-DD', got {value!r}.")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{where}: expected a date 'YYYY-MM-DD', got {value!r}.") from None


# --------------------------------------------------------------------------------------------
# Rules
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    type: ClassVar[str] = ""

    code: str
    citation: str
    channels: tuple[str, ...] = CHANNELS
    parties: tuple[str, ...] = PARTIES

    def applies(self, proposal: Proposal, facts: BorrowerFacts) -> bool:
        return (
            proposal.direction == "outbound" and proposal.channel in self.channels and proposal.party in self.parties
        )

    def lookback(self) -> timedelta:
        return timedelta(0)

    def bind(self, ctx: Context) -> Bound:  # pragma: no cover - abstract
        raise NotImplementedError

    def _base_dict(self) -> dict:
        return {
            "type": self.type,
            "code": self.code,
            "citation": self.citation,
            "channels": list(self.channels),
            "parties": list(self.parties),
        }

    @staticmethod
    def _base_kwargs(r: _Reader) -> dict:
        return {
            "code": r.str("code"),
            "citation": r.str("citation"),
            "channels": r.choices("channels", CHANNELS, CHANNELS),
            "parties": r.choices("parties", PARTIES, PARTIES),
        }


# ---- time window ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    days: tuple[int, ...]  # weekday numbers, Monday == 0
    start: int  # minutes after local midnight, inclusive
    end: int  # minutes after local midnight, exclusive (1440 == midnight at the end of the day)

    def to_dict(self) -> dict:
        return {"days": [WEEKDAYS[d] for d in self.days], "start": _hhmm(self.start), "end": _hhmm(self.end)}

    @classmethod
    def from_dict(cls, data: Any, where: str) -> Window:
        r = _Reader(data, where)
        names = r.choices("days", WEEKDAYS)
        start = _parse_hhmm(r.raw("start"), f"{where}.start")
        end = _parse_hhmm(r.raw("end"), f"{where}.end")
        if start >= end:
            raise ValueError(f"{where}: start {_hhmm(start)} must be before end {_hhmm(end)}.")
        r.done()
        return cls(days=tuple(WEEKDAYS.index(n) for n in names), start=start, end=end)


@dataclass(frozen=True)
class TimeWindowRule(Rule):
    """Outreach only when the local wall clock is inside one of the windows, in every borrower zone."""

    type: ClassVar[str] = "time_window"

    windows: tuple[Window, ...] = ()
    closed_dates: tuple[date, ...] = ()  # sorted; no outreach at all on these local dates
    consent_waives: bool = False  # BorrowerFacts.after_hours_consent switches the rule off

    def applies(self, proposal: Proposal, facts: BorrowerFacts) -> bool:
        if self.consent_waives and facts.after_hours_consent:
            return False
        return super().applies(proposal, facts)

    def to_dict(self) -> dict:
        return {
            **self._base_dict(),
            "windows": [w.to_dict() for w in self.windows],
            "closed_dates": [d.isoformat() for d in self.closed_dates],
            "consent_waives": self.consent_waives,
        }

    @classmethod
    def from_dict(cls, r: _Reader) -> TimeWindowRule:
        kwargs = cls._base_kwargs(r)
        raw_windows = r.raw("windows")
        if not isinstance(raw_windows, list) or not raw_windows:
            raise ValueError(f"{r.where}.windows: expected a non-empty list of windows.")
        windows = tuple(Window.from_dict(w, f"{r.where}.windows[{i}]") for i, w in enumerate(raw_windows))
        raw_dates = r.raw("closed_dates", [], required=False)
        if not isinstance(raw_dates, list):
            raise ValueError(f"{r.where}.closed_dates: expected a list of dates.")
        dates = tuple(sorted({_parse_date(d, f"{r.where}.closed_dates[{i}]") for i, d in enumerate(raw_dates)}))
        return cls(**kwargs, windows=windows, closed_dates=dates, consent_waives=r.bool("consent_waives", False))

    def bind(self, ctx: Context) -> Bound:
        return _TimeWindowBound(self, ctx)

    def describe(self) -> str:
        return ", ".join(f"{_hhmm(w.start)}–{_hhmm(w.end)} ({_days_phrase(w.days)})" for w in self.windows)


class _TimeWindowBound(Bound):
    def __init__(self, rule: TimeWindowRule, ctx: Context) -> None:
        self.rule = rule
        self.ctx = ctx
        self.closed = frozenset(rule.closed_dates)

    def _zone_ok(self, tz: ZoneInfo, t: datetime) -> bool:
        local = wall(tz, t)
        day = local.date()
        if day in self.closed:
            return False
        since_midnight = local - datetime.combine(day, time())
        weekday = day.weekday()
        for w in self.rule.windows:
            if weekday in w.days and timedelta(minutes=w.start) <= since_midnight < timedelta(minutes=w.end):
                return True
        return False

    def ok(self, t: datetime) -> bool:
        return all(self._zone_ok(tz, t) for tz in self.ctx.zones)

    def _zone_earliest(self, tz: ZoneInfo, t: datetime) -> datetime | None:
        first = wall(tz, t).date() - timedelta(days=1)
        days = (self.ctx.limit - t).days + 3
        for i in range(days):
            day = first + timedelta(days=i)
            if day in self.closed:
                continue
            weekday = day.weekday()
            best = None
            for w in self.rule.windows:
                if weekday not in w.days:
                    continue
                for a, b in local_intervals(tz, day, w.start, w.end):
                    if b > t:
                        c = max(a, t)
                        if best is None or c < best:
                            best = c
            if best is not None:
                return best if best <= self.ctx.limit else None
        return None

    def earliest(self, t: datetime) -> datetime | None:
        # Each zone's earliest is a lower bound of the intersection: iterate to the fixpoint.
        for _ in range(1000):
            moved = False
            for tz in self.ctx.zones:
                e = self._zone_earliest(tz, t)
                if e is None:
                    return None
                if e > t:
                    t, moved = e, True
            if not moved:
                return t
        return None  # pragma: no cover - pathological data

    def violation(self, t: datetime) -> Violation | None:
        failing = [tz for tz in self.ctx.zones if not self._zone_ok(tz, t)]
        if not failing:
            return None
        noun = Word(self.ctx.channel_noun())
        holidays = sorted({wall(tz, t).date() for tz in failing if wall(tz, t).date() in self.closed})
        parts = []
        if holidays:
            parts.append(text(gettext_noop("%(dates)s is a public holiday for the borrower; no %(noun)s on public holidays."),
                              dates=Seq(tuple(holidays)), noun=noun))
        hours = [tz for tz in failing if wall(tz, t).date() not in self.closed]
        if hours:
            parts.append(text(
                gettext_noop("It would be %(when)s for the borrower; %(noun)s are only allowed %(hours)s local time."),
                when=Seq(tuple(Local(t, tz.key) for tz in hours)), noun=noun,
                hours=Hours(tuple((w.start, w.end, tuple(w.days)) for w in self.rule.windows)),
            ))
        if self.ctx.zones_assumed:
            parts.append(text(gettext_noop("The borrower's time zone is not known, so the hours must hold in every"
                                           " time zone of the jurisdiction (%(zones)s)."),
                              zones=Seq(tuple(tz.key for tz in self.ctx.zones), ", ")))
        if self.rule.consent_waives:
            parts.append(text(gettext_noop("The borrower has not agreed to contact outside these hours.")))
        return _violation(self.rule, *parts)


# ---- frequency cap -------------------------------------------------------------------------


def _scope_phrase(scope: str, proposal: Proposal) -> Text:
    if scope == "account":
        return text(gettext_noop("about this debt"))
    if scope == "borrower":
        return text(gettext_noop("with this borrower (all debts)"))
    if scope == "person":
        return text(gettext_noop("with this person (all debts, every lender)"))
    return text(gettext_noop("to %(phone)s"), phone=proposal.phone) if proposal.phone else text(gettext_noop("to this number"))


@dataclass(frozen=True)
class FrequencyRule(Rule):
    """Refuse when ``max`` or more counted attempts lie in the period ending at the proposal."""

    type: ClassVar[str] = "frequency"

    count_channels: tuple[str, ...] = CHANNELS
    count_outcomes: tuple[str, ...] = OUTCOMES
    period: str = "rolling"  # "rolling": the `days` days before (t-days, t]; "day": local calendar day
    days: int = 7
    max: int = 1
    scope: str = "account"
    label: str = "attempts"  # what is counted, for the message ("calls", "contacts", ...)

    def lookback(self) -> timedelta:
        # A local calendar day is at most ~26 hours long; reach back two days to be safe.
        return timedelta(days=self.days) if self.period == "rolling" else timedelta(days=2)

    def to_dict(self) -> dict:
        out = {
            **self._base_dict(),
            "count_channels": list(self.count_channels),
            "count_outcomes": list(self.count_outcomes),
            "period": self.period,
        }
        if self.period == "rolling":
            out["days"] = self.days
        out.update({"max": self.max, "scope": self.scope, "label": self.label})
        return out

    @classmethod
    def from_dict(cls, r: _Reader) -> FrequencyRule:
        kwargs = cls._base_kwargs(r)
        period = r.choice("period", PERIODS)
        days = r.int("days", minimum=1) if period == "rolling" else 1
        if period == "day" and "days" in r.data:
            raise ValueError(f"{r.where}.days: not used with period 'day' (the local calendar day).")
        return cls(
            **kwargs,
            count_channels=r.choices("count_channels", CHANNELS),
            count_outcomes=r.choices("count_outcomes", OUTCOMES),
            period=period,
            days=days,
            max=r.int("max", minimum=0),
            scope=r.choice("scope", SCOPES),
            label=r.str("label", "attempts"),
        )

    def applies(self, proposal: Proposal, facts: BorrowerFacts) -> bool:
        # A contact reported with an outcome the cap does not count (a busy call) cannot exceed it.
        return super().applies(proposal, facts) and proposal.may_be(self.count_outcomes)

    def bind(self, ctx: Context) -> Bound:
        return _per_account(lambda account: _FrequencyBound(self, ctx, account), ctx, self.scope)


class _FrequencyBound(Bound):
    def __init__(self, rule: FrequencyRule, ctx: Context, account_id: int) -> None:
        self.rule = rule
        self.ctx = ctx
        self.account_id = account_id
        self.times = ctx.select(
            channels=rule.count_channels, outcomes=rule.count_outcomes, parties=rule.parties, scope=rule.scope,
            account_id=account_id,
        )
        self.span = timedelta(days=rule.days)
        if rule.period == "day":
            self.by_day: dict[date, list[datetime]] = {}
            for instant in self.times:
                self.by_day.setdefault(wall(ctx.primary, instant).date(), []).append(instant)

    def count(self, t: datetime) -> int:
        """Attempts sharing a period with ``t``: the busiest window of ``days`` containing t, or t's local day.

        Counting only the attempts before t would let a back-dated entry slip under the cap
        (e.g. two agents logging calls a few seconds apart, each seeing only the older ones).
        """
        if self.rule.period == "rolling":
            # Windows (e - span, e] with t <= e < t + span; the count can only peak where e is t or an attempt.
            ends = [t] + [a for a in self.times[bisect_right(self.times, t):] if a < t + self.span]
            return max(_count_between(self.times, e - self.span, e) for e in ends)
        return len(self.by_day.get(wall(self.ctx.primary, t).date(), ()))

    def ok(self, t: datetime) -> bool:
        return self.count(t) < self.rule.max

    def earliest(self, t: datetime) -> datetime | None:
        if self.rule.max == 0:
            return None
        if self.rule.period == "rolling":
            # The count only drops when an attempt leaves the window, i.e. at attempt + span.
            return _first_ok(self, [a + self.span for a in self.times], t, self.ctx.limit)
        # Within a local day the count only grows: the next chance is the next local midnight.
        c = t
        while c <= self.ctx.limit:
            if self.ok(c):
                return c
            day = wall(self.ctx.primary, c).date()
            nxt = day_start(self.ctx.primary, day + timedelta(days=1))
            if nxt <= c:  # a zone falling back across midnight: skip the repeated hour
                nxt = day_start(self.ctx.primary, day + timedelta(days=2))
            c = nxt
        return None

    def violation(self, t: datetime) -> Violation | None:
        n = self.count(t)
        if n < self.rule.max:
            return None
        r = self.rule
        one = n == 1
        if r.period == "rolling" and r.days == 1:
            template = (gettext_noop("%(count)s %(label)s %(scope)s was already made within 24 hours of this time (limit %(max)s).")
                        if one else
                        gettext_noop("%(count)s %(label)s %(scope)s were already made within 24 hours of this time (limit %(max)s)."))
        elif r.period == "rolling":
            template = (gettext_noop("%(count)s %(label)s %(scope)s was already made within %(days)s consecutive days of this time (limit %(max)s).")
                        if one else
                        gettext_noop("%(count)s %(label)s %(scope)s were already made within %(days)s consecutive days of this time (limit %(max)s)."))
        else:
            template = (gettext_noop("%(count)s %(label)s %(scope)s was already made today (%(date)s, %(zone)s) (limit %(max)s per day).")
                        if one else
                        gettext_noop("%(count)s %(label)s %(scope)s were already made today (%(date)s, %(zone)s) (limit %(max)s per day)."))
        return _violation(r, text(
            template, count=n, label=Word(r.label), scope=_scope_phrase(r.scope, self.ctx.proposal), max=r.max,
            days=r.days, date=wall(self.ctx.primary, t).date(), zone=self.ctx.primary.key,
        ), *_debt_note(r.scope, self.ctx.proposal, self.account_id))


def _debt_note(scope: str, proposal: Proposal, account_id: int) -> tuple[Text, ...]:
    """Which debt, when an outreach is about several (each counts on its own)."""
    if scope != "account" or len(proposal.account_ids) == 1:
        return ()
    return (text(gettext_noop("(Debt #%(account)s: an outreach about several debts counts for each of them.)"),
                 account=account_id),)


# ---- cooldown ------------------------------------------------------------------------------


@dataclass(frozen=True)
class CooldownRule(Rule):
    """Refuse for ``days`` after a triggering attempt (trigger at c blocks c <= t < c + days)."""

    type: ClassVar[str] = "cooldown"

    trigger_channels: tuple[str, ...] = ("call",)
    trigger_outcomes: tuple[str, ...] = OUTCOMES
    #: Who started the trigger: ("outbound",) in v1 policies; Reg F's wait follows any conversation.
    trigger_directions: tuple[str, ...] = ("outbound",)
    #: Outcomes of the restricted outreach that the wait applies to (a busy call may not count).
    count_outcomes: tuple[str, ...] = OUTCOMES
    days: int = 7
    scope: str = "account"
    label: str = "contact"  # what the trigger is, for the message ("telephone conversation", ...)

    def lookback(self) -> timedelta:
        return timedelta(days=self.days)

    def to_dict(self) -> dict:
        out = {
            **self._base_dict(),
            "trigger_channels": list(self.trigger_channels),
            "trigger_outcomes": list(self.trigger_outcomes),
        }
        # Only written when not the default, so v1 policies keep their exact stored form.
        if self.trigger_directions != ("outbound",):
            out["trigger_directions"] = list(self.trigger_directions)
        if self.count_outcomes != OUTCOMES:
            out["count_outcomes"] = list(self.count_outcomes)
        out.update({"days": self.days, "scope": self.scope, "label": self.label})
        return out

    @classmethod
    def from_dict(cls, r: _Reader) -> CooldownRule:
        return cls(
            **cls._base_kwargs(r),
            trigger_channels=r.choices("trigger_channels", CHANNELS),
            trigger_outcomes=r.choices("trigger_outcomes", OUTCOMES),
            trigger_directions=r.choices("trigger_directions", DIRECTIONS, ("outbound",)),
            count_outcomes=r.choices("count_outcomes", OUTCOMES, OUTCOMES),
            days=r.int("days", minimum=1),
            scope=r.choice("scope", SCOPES),
            label=r.str("label", "contact"),
        )

    def applies(self, proposal: Proposal, facts: BorrowerFacts) -> bool:
        return super().applies(proposal, facts) and (self._waits(proposal) or self._triggers(proposal))

    def _waits(self, proposal: Proposal) -> bool:
        """Is the proposal an outreach the wait restricts (may it come after a trigger)?"""
        return proposal.may_be(self.count_outcomes)

    def _triggers(self, proposal: Proposal) -> bool:
        """Could the proposal itself start a wait (a conversation), restricting later outreach?"""
        return (proposal.channel in self.trigger_channels and proposal.direction in self.trigger_directions
                and proposal.party in self.parties and proposal.may_be(self.trigger_outcomes))

    def bind(self, ctx: Context) -> Bound:
        return _per_account(lambda account: _CooldownBound(self, ctx, account), ctx, self.scope)


class _CooldownBound(Bound):
    """A trigger at c blocks c <= t < c + days. The conflict is symmetric: an outreach that may
    itself be a trigger is refused when outreach the wait restricts was already made after it
    within the wait (a back-dated entry, or a colleague's call a moment later)."""

    def __init__(self, rule: CooldownRule, ctx: Context, account_id: int) -> None:
        self.rule = rule
        self.ctx = ctx
        self.account_id = account_id
        self.times = ctx.select(
            channels=rule.trigger_channels, outcomes=rule.trigger_outcomes, parties=rule.parties, scope=rule.scope,
            directions=rule.trigger_directions, account_id=account_id,
        ) if rule._waits(ctx.proposal) else []
        self.later = ctx.select(
            channels=rule.channels, outcomes=rule.count_outcomes, parties=rule.parties, scope=rule.scope,
            account_id=account_id,
        ) if rule._triggers(ctx.proposal) else []
        self.span = timedelta(days=rule.days)

    def _later_in_wait(self, t: datetime) -> datetime | None:
        """The first restricted outreach in (t, t + days): a trigger at t would put it in the wait."""
        i = bisect_right(self.later, t)
        if i < len(self.later) and self.later[i] < t + self.span:
            return self.later[i]
        return None

    def ok(self, t: datetime) -> bool:
        return _count_between(self.times, t - self.span, t) == 0 and self._later_in_wait(t) is None

    def earliest(self, t: datetime) -> datetime | None:
        candidates = [a + self.span for a in self.times] + self.later
        return _first_ok(self, candidates, t, self.ctx.limit)

    def violation(self, t: datetime) -> Violation | None:
        tz = self.ctx.primary
        r = self.rule
        scope = _scope_phrase(r.scope, self.ctx.proposal)
        note = _debt_note(r.scope, self.ctx.proposal, self.account_id)
        i = bisect_right(self.times, t)
        if i and self.times[i - 1] > t - self.span:
            last = self.times[i - 1]
            return _violation(r, text(
                gettext_noop("There was a %(label)s %(scope)s on %(when)s; no %(noun)s until %(days)s days after it, i.e. %(until)s."),
                label=Word(r.label), scope=scope, when=Local(last, tz.key),
                noun=Word(self.ctx.channel_noun()), days=r.days, until=Local(last + self.span, tz.key),
            ), *note)
        later = self._later_in_wait(t)
        if later is None:
            return None
        return _violation(r, text(
            gettext_noop("Outreach %(scope)s was already made on %(when)s, less than %(days)s days after this time;"
                         " a %(label)s at this time would put it inside the waiting period."),
            scope=scope, when=Local(later, tz.key), days=r.days, label=Word(r.label),
        ), *note)


# ---- holds ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class HoldRule(Rule):
    """A borrower hold flag blocks outreach outright; no lawful time can be predicted."""

    type: ClassVar[str] = "hold"

    flag: str = "cease"
    message: str = ""  # empty: a standard explanation for the flag
    #: "borrower": this lender's record only; "person": a hold on any lender's record of the person.
    scope: str = "borrower"

    def to_dict(self) -> dict:
        out = {**self._base_dict(), "flag": self.flag}
        if self.message:
            out["message"] = self.message
        if self.scope != "borrower":
            out["scope"] = self.scope
        return out

    @classmethod
    def from_dict(cls, r: _Reader) -> HoldRule:
        kwargs = cls._base_kwargs(r)
        flag = r.choice("flag", HOLD_FLAGS)
        message = r.raw("message", "", required=False)
        if not isinstance(message, str):
            raise ValueError(f"{r.where}.message: expected a string.")
        return cls(**kwargs, flag=flag, message=message, scope=r.choice("scope", HOLD_SCOPES, "borrower"))

    def applies(self, proposal: Proposal, facts: BorrowerFacts) -> bool:
        holds = facts.person_holds if self.scope == "person" else facts.holds
        return self.flag in holds and super().applies(proposal, facts)

    def bind(self, ctx: Context) -> Bound:
        return _HoldBound(self, elsewhere=self.flag not in ctx.facts.holds)


class _HoldBound(Bound):
    predictable = False

    def __init__(self, rule: HoldRule, elsewhere: bool = False) -> None:
        self.rule = rule
        self.elsewhere = elsewhere  # the hold is on another lender's record of the same person

    def ok(self, t: datetime) -> bool:
        return False

    def earliest(self, t: datetime) -> datetime | None:
        return None

    def violation(self, t: datetime) -> Violation | None:
        r = self.rule
        note = (text(PERSON_HOLD_NOTE),) if self.elsewhere else ()
        if r.message:  # the policy's own words
            return _violation(r, text("%(message)s", message=Word(r.message)), *note)
        return _violation(r, text(HOLD_MESSAGES[r.flag]), *note)


# ---- consent to electronic messages ---------------------------------------------------------


@dataclass(frozen=True)
class ConsentRule(Rule):
    """SMS and email need the borrower's consent to the channel, and an address that asked to stop
    (STOP / 退订, an unsubscribe) gets nothing more. Waiting does not help: no time is predicted."""

    type: ClassVar[str] = "consent"

    channels: tuple[str, ...] = ELECTRONIC_CHANNELS

    def to_dict(self) -> dict:
        return self._base_dict()

    @classmethod
    def from_dict(cls, r: _Reader) -> ConsentRule:
        kwargs = cls._base_kwargs(r)
        kwargs["channels"] = r.choices("channels", ELECTRONIC_CHANNELS, ELECTRONIC_CHANNELS)
        return cls(**kwargs)

    def bind(self, ctx: Context) -> Bound:
        return _ConsentBound(self, ctx)


class _ConsentBound(Bound):
    predictable = False

    def __init__(self, rule: ConsentRule, ctx: Context) -> None:
        self.rule = rule
        p = ctx.proposal
        self.channel = p.channel
        self.address = p.address or p.phone
        self.consented = p.channel in ctx.facts.consented
        self.opted_out = bool(self.address) and self.address in ctx.facts.opted_out

    def ok(self, t: datetime) -> bool:
        return self.consented and not self.opted_out

    def earliest(self, t: datetime) -> datetime | None:
        return t if self.ok(t) else None

    def violation(self, t: datetime) -> Violation | None:
        if self.ok(t):
            return None
        parts = []
        if not self.consented:
            parts.append(text(gettext_noop("The borrower has not agreed to receive %(noun)s."),
                              noun=Word(CHANNEL_NOUNS[self.channel])))
        if self.opted_out:
            parts.append(text(gettext_noop("%(address)s has opted out (STOP / unsubscribe); nothing more may be sent to it."),
                              address=self.address))
        return _violation(self.rule, *parts)


# ---- third parties -------------------------------------------------------------------------


@dataclass(frozen=True)
class ThirdPartyRule(Rule):
    """Third parties only while the borrower is unreachable, judged from history:
    at least ``min_attempts`` outbound borrower attempts (``attempt_channels``) in the last ``days`` days,
    all with ``failed_outcomes``, and no borrower contact (``contact_outcomes``, either direction)
    in those days."""

    type: ClassVar[str] = "third_party"

    days: int = 3
    min_attempts: int = 3
    attempt_channels: tuple[str, ...] = ("call",)
    failed_outcomes: tuple[str, ...] = ()
    contact_outcomes: tuple[str, ...] = ()
    scope: str = "borrower"
    parties: tuple[str, ...] = ("third_party",)

    def lookback(self) -> timedelta:
        return timedelta(days=self.days)

    def to_dict(self) -> dict:
        out = self._base_dict()
        del out["parties"]
        out.update(
            {
                "days": self.days,
                "min_attempts": self.min_attempts,
                "attempt_channels": list(self.attempt_channels),
                "failed_outcomes": list(self.failed_outcomes),
                "contact_outcomes": list(self.contact_outcomes),
                "scope": self.scope,
            }
        )
        return out

    @classmethod
    def from_dict(cls, r: _Reader) -> ThirdPartyRule:
        scope = r.choice("scope", ("account", "borrower", "person"), "borrower")
        return cls(
            code=r.str("code"),
            citation=r.str("citation"),
            channels=r.choices("channels", CHANNELS, CHANNELS),
            days=r.int("days", minimum=1),
            min_attempts=r.int("min_attempts", minimum=1),
            attempt_channels=r.choices("attempt_channels", CHANNELS),
            failed_outcomes=r.choices("failed_outcomes", OUTCOMES),
            contact_outcomes=r.choices("contact_outcomes", OUTCOMES),
            scope=scope,
        )

    def bind(self, ctx: Context) -> Bound:
        return _ThirdPartyBound(self, ctx)


class _ThirdPartyBound(Bound):
    predictable = False  # refused now: whether the borrower becomes unreachable depends on future attempts

    def __init__(self, rule: ThirdPartyRule, ctx: Context) -> None:
        self.rule = rule
        self.ctx = ctx
        borrower = ("borrower",)
        self.attempts = ctx.select(
            channels=rule.attempt_channels, outcomes=OUTCOMES, parties=borrower, scope=rule.scope
        )
        self.failed = ctx.select(  # a call still in progress is not (yet) a failed one
            channels=rule.attempt_channels, outcomes=rule.failed_outcomes, parties=borrower, scope=rule.scope,
            pending=False,
        )
        self.contacts = ctx.select(
            channels=CHANNELS,
            outcomes=rule.contact_outcomes,
            parties=borrower,
            scope=rule.scope,
            directions=("outbound", "inbound"),
        )
        self.span = timedelta(days=rule.days)

    def _counts(self, t: datetime) -> tuple[int, int, int]:
        lo = t - self.span
        return (
            _count_between(self.attempts, lo, t),
            _count_between(self.failed, lo, t),
            _count_between(self.contacts, lo, t),
        )

    def ok(self, t: datetime) -> bool:
        attempts, failed, contacts = self._counts(t)
        return attempts >= self.rule.min_attempts and failed == attempts and contacts == 0

    def earliest(self, t: datetime) -> datetime | None:
        # Only used once the rule was satisfied at the proposal time; exact over the known history.
        everything = self.attempts + self.contacts
        candidates = everything + [a + self.span for a in everything]
        return _first_ok(self, candidates, t, self.ctx.limit)

    def violation(self, t: datetime) -> Violation | None:
        if self.ok(t):
            return None
        r = self.rule
        attempts, failed, contacts = self._counts(t)
        if contacts:
            found = text(gettext_noop("found %(attempts)s attempt(s), %(answered)s of them answered or with a message left,"
                                      " and %(contacts)s conversation(s) with the borrower"),
                         attempts=attempts, answered=attempts - failed, contacts=contacts)
        else:
            found = text(gettext_noop("found %(attempts)s attempt(s), %(answered)s of them answered or with a message left"),
                         attempts=attempts, answered=attempts - failed)
        return _violation(r, text(
            gettext_noop("Third parties may only be contacted when the borrower cannot be reached: that needs at least"
                         " %(min)s unanswered outbound %(channels)s attempts to the borrower in the last %(days)s days,"
                         " none answered, and no conversation with the borrower in that time (%(found)s)."),
            min=r.min_attempts, channels=Seq(tuple(Word(c) for c in r.attempt_channels), "/"), days=r.days, found=found,
        ))


# ---- field-visit team ----------------------------------------------------------------------


@dataclass(frozen=True)
class TeamRule(Rule):
    """An in-person visit needs at least ``min_collectors`` staff present (CN: two collectors).
    Waiting does not help, so no lawful time is predicted: the visit needs another collector."""

    type: ClassVar[str] = "team"

    channels: tuple[str, ...] = ("visit",)
    min_collectors: int = 2

    def to_dict(self) -> dict:
        return {**self._base_dict(), "min_collectors": self.min_collectors}

    @classmethod
    def from_dict(cls, r: _Reader) -> TeamRule:
        kwargs = cls._base_kwargs(r)
        kwargs["channels"] = r.choices("channels", CHANNELS, ("visit",))
        return cls(**kwargs, min_collectors=r.int("min_collectors", 2, minimum=2))

    def bind(self, ctx: Context) -> Bound:
        return _TeamBound(self, ctx.proposal.collectors)


class _TeamBound(Bound):
    predictable = False

    def __init__(self, rule: TeamRule, collectors: int) -> None:
        self.rule = rule
        self.collectors = collectors

    def ok(self, t: datetime) -> bool:
        return self.collectors >= self.rule.min_collectors

    def earliest(self, t: datetime) -> datetime | None:
        return t if self.ok(t) else None

    def violation(self, t: datetime) -> Violation | None:
        if self.ok(t):
            return None
        return _violation(self.rule, text(
            gettext_noop("A field visit needs at least %(min)s collectors present; %(count)s recorded."
                         " Name the second collector who goes on the visit."),
            min=self.rule.min_collectors, count=self.collectors,
        ))


RULE_TYPES: dict[str, type[Rule]] = {
    cls.type: cls
    for cls in (TimeWindowRule, FrequencyRule, CooldownRule, HoldRule, ThirdPartyRule, TeamRule, ConsentRule)
}


# --------------------------------------------------------------------------------------------
# Policy
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Policy:
    """One immutable version of a jurisdiction's contact rules."""

    code: str
    version: int
    name: str
    rules: tuple[Rule, ...] = field(default=())
    effective_from: str | None = None  # ISO date (or datetime); informational, the database decides what is in force
    description: str = ""
    #: Every IANA zone of the jurisdiction: used (all at once) when a borrower's own zone is unknown.
    zones: tuple[str, ...] = ()

    @classmethod
    def from_dict(cls, data: dict) -> Policy:
        r = _Reader(data, "policy")
        code = r.str("code")
        where = f"policy {code}"
        r.where = where
        version = r.int("version", minimum=1)
        name = r.str("name", code)
        effective = r.raw("effective_from", None, required=False)
        if effective is not None:
            effective = _parse_effective(effective, f"{where}.effective_from")
        description = r.raw("description", "", required=False)
        if not isinstance(description, str):
            raise ValueError(f"{where}.description: expected a string.")
        zones = r.raw("zones", [], required=False)
        if not isinstance(zones, list) or not all(isinstance(z, str) for z in zones):
            raise ValueError(f"{where}.zones: expected a list of IANA time zone names.")
        for name in zones:
            try:
                zone(name)
            except ValueError as exc:
                raise ValueError(f"{where}.zones: {exc}") from None
        raw_rules = r.raw("rules")
        if not isinstance(raw_rules, list):
            raise ValueError(f"{where}.rules: expected a list of rules, got {type(raw_rules).__name__}.")
        rules = []
        for i, raw in enumerate(raw_rules):
            rw = _Reader(raw, f"{where}.rules[{i}]")
            kind = rw.raw("type")
            rule_cls = RULE_TYPES.get(kind) if isinstance(kind, str) else None
            if rule_cls is None:
                raise ValueError(
                    f"{rw.where}.type: unknown rule type {kind!r}; allowed: {', '.join(RULE_TYPES)}."
                )
            rule = rule_cls.from_dict(rw)  # type: ignore[attr-defined]
            rw.where = f"{where}.rules[{i}] ({rule.code})"
            rw.done()
            rules.append(rule)
        codes = [rule.code for rule in rules]
        dupes = sorted({c for c in codes if codes.count(c) > 1})
        if dupes:
            raise ValueError(f"{where}.rules: duplicate rule code(s) {dupes}.")
        r.done()
        return cls(
            code=code, version=version, name=name, rules=tuple(rules), effective_from=effective,
            description=description, zones=tuple(zones),
        )

    def to_dict(self) -> dict:
        out: dict[str, Any] = {"code": self.code, "version": self.version, "name": self.name}
        if self.effective_from is not None:
            out["effective_from"] = self.effective_from
        if self.description:
            out["description"] = self.description
        if self.zones:
            out["zones"] = list(self.zones)
        out["rules"] = [rule.to_dict() for rule in self.rules]  # type: ignore[attr-defined]
        return out
