"""What the compliance gate reads about a borrower: the facts, every lender's history of the same
person and their holds, in as few queries as possible; and the read-only checks built on them
(``contact_check`` for one outreach, ``contact_check_bulk`` for a page of accounts).

This is the cases side of the gate: it feeds the pure engine (``compliance.rules``) with the
platform's records, so that the compliance core itself never depends on the cases app.
"""

from __future__ import annotations

import json
import weakref
from datetime import datetime

from django.db import connection
from django.db.models import Q

from compliance import rules
from compliance.selectors import policies_in_force, policy_in_force

from .models import Borrower, ContactAttempt
from .phones import phone_e164_or_raw


def borrower_facts(*, borrower, person_holds: frozenset[str] = frozenset(),
                   person_windows: list | None = None) -> rules.BorrowerFacts:
    """The engine's facts. No known zone stays empty: the engine then uses the jurisdiction's zones
    (never the server's). ``person_windows``: the person's convenient times (``person_windows``);
    None: this record's own."""
    return rules.BorrowerFacts(
        time_zones=tuple(borrower.time_zones),
        holds=borrower.holds,
        after_hours_consent=borrower.after_hours_consent,
        person_holds=person_holds,
        consented=frozenset(c for c, on in (("sms", borrower.sms_consent), ("email", borrower.email_consent)) if on),
        opted_out=frozenset(borrower.opted_out or ()),
        contact_windows=contact_windows_facts(borrower.contact_windows if person_windows is None else person_windows),
    )


def person_windows(own, others) -> list:
    """The person's convenient times, read like holds from every record of the person. They are written
    on every record at once (``contact_times_set``), but a record placed later by another lender starts
    with none: without this, that lender could call at times the borrower asked not to be called."""
    if own:
        return own
    return next((w for w in others if w), [])


def contact_windows_facts(raw) -> tuple[tuple[tuple[int, ...], int, int], ...]:
    """``Borrower.contact_windows`` (policy-style dicts, written by ``borrowers.services``) as engine facts."""
    out = []
    for i, w in enumerate(raw or ()):
        window = rules.Window.from_dict(w, f"contact_windows[{i}]")
        out.append((window.days, window.start, window.end))
    return tuple(out)


#: Namespace of the person locks (the two-key advisory lock form never meets the one-key form).
PERSON_LOCK_CLASS = 20261


def person_lock(*, key: str) -> None:
    """Serialise outreach to one natural person, whichever lender's record it goes through (inside
    a transaction; released at its end). SQLite serialises writers by itself."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", [PERSON_LOCK_CLASS, key])


# One round trip for the gate on PostgreSQL: the person's records (their holds) and their attempts in
# the window, as a prepared statement per connection. Planning, not execution, dominated the check
# (about 0.5 ms of planning for 0.05 ms of index scans); a generic plan is used once warmed. The
# ``person_key <> ''`` repeats the partial index's predicate so that a generic plan can use it.
_PERSON_SQL = """
SELECT b.id, b.cease, b.dispute, b.attorney, b.bankruptcy, b.deceased, b.contact_windows,
       a.borrower_id, a.occurred_at, a.channel, a.outcome, a.account_id, a.party, a.direction, a.phone, a.other_accounts
FROM cases_borrower b
LEFT JOIN cases_contactattempt a ON a.borrower_id = b.id AND a.occurred_at > $2 AND a.occurred_at < $3
WHERE {where}
"""
_PREPARED = {
    "servicing_person_by_key": _PERSON_SQL.format(where="b.person_key = $1 AND b.person_key <> ''"),
    "servicing_person_by_id": _PERSON_SQL.format(where="b.id = $1::bigint"),
}
_prepared_on: weakref.WeakSet = weakref.WeakSet()


def _person_rows_postgres(*, borrower, since: datetime, until: datetime) -> list[tuple]:
    raw = connection.connection
    with connection.cursor() as cursor:
        if raw not in _prepared_on:
            for name, sql in _PREPARED.items():
                cursor.execute(f"PREPARE {name}(text, timestamptz, timestamptz) AS {sql}")
            _prepared_on.add(raw)
        if borrower.person_key:
            cursor.execute("EXECUTE servicing_person_by_key(%s, %s, %s)", [borrower.person_key, since, until])
        else:
            cursor.execute("EXECUTE servicing_person_by_id(%s, %s, %s)", [str(borrower.pk), since, until])
        return cursor.fetchall()


def person_snapshot(*, borrower, since: datetime,
                    until: datetime) -> tuple[frozenset[str], list, list[rules.Attempt]]:
    """Holds and convenient times on any lender's record of the person, and every lender's attempts on
    the person in (since, until): what the gate reads, in one query on PostgreSQL."""
    if connection.vendor != "postgresql":
        holds, windows = _person_records_orm(borrower=borrower)
        return holds, windows, _person_history_orm(borrower=borrower, since=since, until=until)
    holds: set[str] = set()
    windows: dict[int, object] = {}
    history = []
    for row in _person_rows_postgres(borrower=borrower, since=since, until=until):
        holds.update(f for f, on in zip(Borrower.HOLD_FIELDS, row[1:6], strict=True) if on)
        if row[0] not in windows:  # one row per attempt: decode each record's times once
            windows[row[0]] = json.loads(row[6]) if isinstance(row[6], str) else row[6]
        if row[7] is not None:
            history.append(_attempt(row[7:]))
    return (frozenset(holds) | borrower.holds, person_windows(borrower.contact_windows, windows.values()), history)


def _person_records_orm(*, borrower) -> tuple[frozenset[str], list]:
    if not borrower.person_key:
        return borrower.holds, borrower.contact_windows or []
    rows = list(Borrower.objects.filter(person_key=borrower.person_key)
                .values_list(*Borrower.HOLD_FIELDS, "contact_windows"))
    holds = frozenset(f for row in rows for f, on in zip(Borrower.HOLD_FIELDS, row[:-1], strict=True) if on)
    return holds | borrower.holds, person_windows(borrower.contact_windows, (row[-1] for row in rows))


def person_holds(*, borrower) -> frozenset[str]:
    """Holds on any lender's record of the same person (rules with scope "person" read them)."""
    return _person_records_orm(borrower=borrower)[0]


def _attempt(row) -> rules.Attempt:
    borrower_id, at, channel, outcome, account_id, party, direction, phone, others = row
    if isinstance(others, str):  # raw SQL on PostgreSQL: Django leaves jsonb undecoded
        others = json.loads(others)
    return rules.Attempt(at=at, channel=channel, outcome=outcome, account_id=account_id, party=party,
                         direction=direction, phone=phone, accounts=tuple(others or ()), borrower_id=borrower_id)


_ATTEMPT_FIELDS = ("borrower_id", "occurred_at", "channel", "outcome", "account_id", "party", "direction", "phone",
                   "other_accounts")


def person_history(*, borrower, policy: rules.Policy, at: datetime) -> list[rules.Attempt]:
    """Every lender's attempts on this person within the policy's window on *both* sides of ``at``
    (a contact reported after the fact is judged against what came after it too)."""
    window = rules.history_window(policy)
    return person_snapshot(borrower=borrower, since=at - window, until=at + window)[2]


def _person_history_orm(*, borrower, since: datetime, until: datetime) -> list[rules.Attempt]:
    qs = ContactAttempt.objects.filter(occurred_at__gt=since, occurred_at__lt=until)
    qs = qs.filter(person_key=borrower.person_key) if borrower.person_key else qs.filter(borrower_id=borrower.pk)
    return [_attempt(row) for row in qs.values_list(*_ATTEMPT_FIELDS)]


def borrower_history(*, borrower_id: int, policy: rules.Policy, at: datetime) -> list[rules.Attempt]:
    """One borrower record's attempts before ``at`` within the policy's look-back (what-if, tests)."""
    return borrower_history_bulk(borrower_ids={borrower_id}, since=at - rules.history_window(policy))[borrower_id]


def contact_check(
    *,
    account,
    channel: str,
    at: datetime,
    direction: str = "outbound",
    party: str = "borrower",
    phone: str = "",
    collectors: int = 1,
) -> rules.Decision:
    """Would this outreach be lawful? Pure read: records nothing."""
    borrower = account.borrower
    policy = policy_in_force(code=borrower.jurisdiction, at=at)
    window = rules.history_window(policy)
    holds, windows, history = person_snapshot(borrower=borrower, since=at - window, until=at + window)
    proposal = rules.Proposal(
        at=at, channel=channel, account_id=account.pk, party=party, direction=direction,
        phone=phone or default_phone(borrower=borrower, channel=channel), collectors=collectors,
        address=default_address(borrower=borrower, channel=channel), borrower_id=borrower.pk,
    )
    return rules.evaluate(
        policy=policy, facts=borrower_facts(borrower=borrower, person_holds=holds, person_windows=windows),
        history=history, proposal=proposal,
    )


def _e164(raw: str, jurisdiction: str) -> str:
    return phone_e164_or_raw(raw, jurisdiction=jurisdiction)


def default_phone(*, borrower, channel: str) -> str:
    """The borrower's first number in E.164, for calls and texts."""
    if channel in ("call", "sms") and borrower.phones:
        return _e164(str(borrower.phones[0]), borrower.jurisdiction)
    return ""


def default_address(*, borrower, channel: str) -> str:
    """Where an SMS or email goes by default (consent and opt-out are per address)."""
    if channel == "sms":
        return default_phone(borrower=borrower, channel=channel)
    if channel == "email" and borrower.emails:
        return str(borrower.emails[0]).strip().lower()
    return ""


def borrower_history_bulk(*, borrower_ids: set[int], since: datetime) -> dict[int, list[rules.Attempt]]:
    """Attempts after ``since`` for many borrower records in ONE query."""
    out: dict[int, list[rules.Attempt]] = {bid: [] for bid in borrower_ids}
    if not borrower_ids:
        return out
    rows = ContactAttempt.objects.filter(borrower_id__in=borrower_ids, occurred_at__gt=since).values_list(*_ATTEMPT_FIELDS)
    for row in rows:
        out[row[0]].append(_attempt(row))
    return out


def person_history_bulk(*, borrowers, since: datetime, until: datetime) -> dict[int, list[rules.Attempt]]:
    """Every lender's attempts on each borrower's person in (since, until), in ONE query, keyed by borrower id."""
    borrowers = list(borrowers)
    out: dict[int, list[rules.Attempt]] = {b.pk: [] for b in borrowers}
    keys = {b.person_key for b in borrowers if b.person_key}
    keyless = {b.pk for b in borrowers if not b.person_key}
    if not borrowers:
        return out
    rows = ContactAttempt.objects.filter(Q(person_key__in=keys) | Q(borrower_id__in=keyless),
                                         occurred_at__gt=since, occurred_at__lt=until)
    by_key: dict[str, list[rules.Attempt]] = {}
    by_borrower: dict[int, list[rules.Attempt]] = {}
    for row in rows.values_list("person_key", *_ATTEMPT_FIELDS):
        attempt = _attempt(row[1:])
        if row[0] in keys:
            by_key.setdefault(row[0], []).append(attempt)
        else:
            by_borrower.setdefault(attempt.borrower_id, []).append(attempt)
    for b in borrowers:
        out[b.pk] = by_key.get(b.person_key, []) if b.person_key else by_borrower.get(b.pk, [])
    return out


def person_records_bulk(*, borrowers) -> dict[int, tuple[frozenset[str], list]]:
    """The person's holds and convenient times (as ``person_snapshot``) for many borrower records in ONE query."""
    borrowers = list(borrowers)
    keys = {b.person_key for b in borrowers if b.person_key}
    holds: dict[str, set[str]] = {}
    windows: dict[str, list] = {}
    if keys:
        rows = Borrower.objects.filter(person_key__in=keys).values_list("person_key", *Borrower.HOLD_FIELDS,
                                                                         "contact_windows")
        for key, *flags, times in rows:
            holds.setdefault(key, set()).update(f for f, on in zip(Borrower.HOLD_FIELDS, flags, strict=True) if on)
            windows.setdefault(key, []).append(times)
    return {b.pk: (frozenset(holds.get(b.person_key, ())) | b.holds,
                   person_windows(b.contact_windows, windows.get(b.person_key, ())))
            for b in borrowers}


def contact_check_bulk(
    *, accounts, channels: tuple[str, ...] = ("call",), at: datetime
) -> dict[tuple[int, str], rules.Decision | None]:
    """``contact_check`` for many accounts (with ``borrower`` loaded) and channels in two queries.

    Returns {(account_id, channel): Decision}, or None where no policy is published for the
    borrower's jurisdiction (shown as "unknown", never as allowed).
    """
    accounts = list(accounts)
    policies = policies_in_force(codes={a.borrower.jurisdiction for a in accounts}, at=at)
    window = max((rules.history_window(p) for p in policies.values()), default=None)
    borrowers = list({a.borrower_id: a.borrower for a in accounts}.values())
    history = (
        person_history_bulk(borrowers=borrowers, since=at - window, until=at + window)
        if window is not None else {}
    )
    persons = person_records_bulk(borrowers=borrowers) if window is not None else {}
    out: dict[tuple[int, str], rules.Decision | None] = {}
    for account in accounts:
        borrower = account.borrower
        policy = policies.get(borrower.jurisdiction)
        holds, windows = persons.get(borrower.pk, (frozenset(), None))
        facts = (borrower_facts(borrower=borrower, person_holds=holds, person_windows=windows)
                 if policy else None)
        for channel in channels:
            if policy is None:
                out[(account.pk, channel)] = None
                continue
            out[(account.pk, channel)] = rules.evaluate(
                policy=policy, facts=facts, history=history.get(borrower.pk, ()),
                proposal=rules.Proposal(
                    at=at, channel=channel, account_id=account.pk, borrower_id=borrower.pk,
                    phone=default_phone(borrower=borrower, channel=channel),
                    address=default_address(borrower=borrower, channel=channel),
                ),
            )
    return out


