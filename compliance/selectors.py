"""Reads for the compliance gate: the policy in force, the borrower's facts and recent history."""

from __future__ import annotations

import json
import weakref
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from time import monotonic

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection
from django.db.models import BooleanField, Q, QuerySet
from django.db.models.expressions import RawSQL
from django.utils import timezone

from . import rules
from .models import AuditEvent, AuditVerification, Policy

# Parsed policies are immutable, so caching by (code, version) is safe across requests.
_PARSED: dict[tuple[str, int], rules.Policy] = {}


def policy_parse(*, row: Policy) -> rules.Policy:
    key = (row.code, row.version)
    parsed = _PARSED.get(key)
    if parsed is None:
        parsed = _PARSED[key] = rules.Policy.from_dict(row.rules)
    return parsed


def policy_row_in_force(*, code: str, at: datetime) -> Policy:
    row = (
        Policy.objects.filter(code=code, status=Policy.Status.PUBLISHED, effective_from__lte=at)
        .order_by("-effective_from", "-version")
        .first()
    )
    if row is None:
        raise ValidationError(f"No published contact policy for jurisdiction {code!r} at {at.isoformat()}.")
    return row


# Published versions per jurisdiction, cached per process for read-only checks (queue pages, the
# contact-check API). The recording gate always reads the database (``fresh=True``); a change in this
# process clears the cache at once (signals), other processes see it within the TTL.
_PUBLISHED: dict[str, tuple[float, list[Policy]]] = {}


def policy_cache_clear() -> None:
    _PUBLISHED.clear()


def _published_versions(code: str) -> list[Policy]:
    now = monotonic()
    hit = _PUBLISHED.get(code)
    if hit is not None and hit[0] > now:
        return hit[1]
    rows = list(Policy.objects.filter(code=code, status=Policy.Status.PUBLISHED).order_by("-effective_from", "-version"))
    _PUBLISHED[code] = (now + getattr(settings, "COMPLIANCE_POLICY_CACHE_SECONDS", 10), rows)
    return rows


def policy_in_force(*, code: str, at: datetime, fresh: bool = False) -> rules.Policy:
    """The published version whose effective date is the latest one not after ``at``."""
    if fresh:
        return policy_parse(row=policy_row_in_force(code=code, at=at))
    for row in _published_versions(code):
        if row.effective_from <= at:
            return policy_parse(row=row)
    raise ValidationError(f"No published contact policy for jurisdiction {code!r} at {at.isoformat()}.")


def borrower_facts(*, borrower, person_holds: frozenset[str] = frozenset()) -> rules.BorrowerFacts:
    """The engine's facts. No known zone stays empty: the engine then uses the jurisdiction's zones
    (never the server's)."""
    return rules.BorrowerFacts(
        time_zones=tuple(borrower.time_zones),
        holds=borrower.holds,
        after_hours_consent=borrower.after_hours_consent,
        person_holds=person_holds,
        consented=frozenset(c for c, on in (("sms", borrower.sms_consent), ("email", borrower.email_consent)) if on),
        opted_out=frozenset(borrower.opted_out or ()),
    )


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
SELECT b.id, b.cease, b.dispute, b.attorney, b.bankruptcy, b.deceased,
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


def person_snapshot(*, borrower, since: datetime, until: datetime) -> tuple[frozenset[str], list[rules.Attempt]]:
    """Holds on any lender's record of the person, and every lender's attempts on the person in
    (since, until): what the gate reads, in one query on PostgreSQL."""
    from cases.models import Borrower

    if connection.vendor != "postgresql":
        window_history = _person_history_orm(borrower=borrower, since=since, until=until)
        return person_holds(borrower=borrower), window_history
    holds: set[str] = set()
    history = []
    for row in _person_rows_postgres(borrower=borrower, since=since, until=until):
        holds.update(f for f, on in zip(Borrower.HOLD_FIELDS, row[1:6], strict=True) if on)
        if row[6] is not None:
            history.append(_attempt(row[6:]))
    return frozenset(holds) | borrower.holds, history


def person_holds(*, borrower) -> frozenset[str]:
    """Holds on any lender's record of the same person (rules with scope "person" read them)."""
    from cases.models import Borrower

    if not borrower.person_key:
        return borrower.holds
    rows = Borrower.objects.filter(person_key=borrower.person_key).values_list(*Borrower.HOLD_FIELDS)
    return frozenset(f for row in rows for f, on in zip(Borrower.HOLD_FIELDS, row, strict=True) if on)


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
    return person_snapshot(borrower=borrower, since=at - window, until=at + window)[1]


def _person_history_orm(*, borrower, since: datetime, until: datetime) -> list[rules.Attempt]:
    from cases.models import ContactAttempt

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
    holds, history = person_snapshot(borrower=borrower, since=at - window, until=at + window)
    proposal = rules.Proposal(
        at=at, channel=channel, account_id=account.pk, party=party, direction=direction,
        phone=phone or default_phone(borrower=borrower, channel=channel), collectors=collectors,
        address=default_address(borrower=borrower, channel=channel), borrower_id=borrower.pk,
    )
    return rules.evaluate(
        policy=policy, facts=borrower_facts(borrower=borrower, person_holds=holds), history=history, proposal=proposal,
    )


def _e164(raw: str, jurisdiction: str) -> str:
    from cases.phones import phone_e164_or_raw

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


def decision_as_dict(decision: rules.Decision) -> dict:
    return {
        "allowed": decision.allowed,
        "violations": [{"code": v.code, "message": v.message, "citation": v.citation} for v in decision.violations],
        "next_allowed_at": decision.next_allowed_at.isoformat() if decision.next_allowed_at else None,
        "policy": f"{decision.policy_code} v{decision.policy_version}",
    }


# ---- bulk reads (queue pages, case page): constant number of queries however many rows --------


def policies_in_force(*, codes: set[str], at: datetime) -> dict[str, rules.Policy]:
    """The policy in force for each jurisdiction code, in ONE query (parsing is cached by version)."""
    out: dict[str, rules.Policy] = {}
    if not codes:
        return out
    rows = Policy.objects.filter(
        code__in=codes, status=Policy.Status.PUBLISHED, effective_from__lte=at
    ).order_by("code", "-effective_from", "-version")
    for row in rows:
        if row.code not in out:
            out[row.code] = policy_parse(row=row)
    return out


def borrower_history_bulk(*, borrower_ids: set[int], since: datetime) -> dict[int, list[rules.Attempt]]:
    """Attempts after ``since`` for many borrower records in ONE query."""
    from cases.models import ContactAttempt

    out: dict[int, list[rules.Attempt]] = {bid: [] for bid in borrower_ids}
    if not borrower_ids:
        return out
    rows = ContactAttempt.objects.filter(borrower_id__in=borrower_ids, occurred_at__gt=since).values_list(*_ATTEMPT_FIELDS)
    for row in rows:
        out[row[0]].append(_attempt(row))
    return out


def person_history_bulk(*, borrowers, since: datetime, until: datetime) -> dict[int, list[rules.Attempt]]:
    """Every lender's attempts on each borrower's person in (since, until), in ONE query, keyed by borrower id."""
    from cases.models import ContactAttempt

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


def person_holds_bulk(*, borrowers) -> dict[int, frozenset[str]]:
    """``person_holds`` for many borrower records in ONE query."""
    from cases.models import Borrower

    borrowers = list(borrowers)
    keys = {b.person_key for b in borrowers if b.person_key}
    by_key: dict[str, set[str]] = {}
    if keys:
        for row in Borrower.objects.filter(person_key__in=keys).values_list("person_key", *Borrower.HOLD_FIELDS):
            by_key.setdefault(row[0], set()).update(
                f for f, on in zip(Borrower.HOLD_FIELDS, row[1:], strict=True) if on)
    return {b.pk: frozenset(by_key.get(b.person_key, ())) | b.holds for b in borrowers}


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
    holds = person_holds_bulk(borrowers=borrowers) if window is not None else {}
    out: dict[tuple[int, str], rules.Decision | None] = {}
    for account in accounts:
        borrower = account.borrower
        policy = policies.get(borrower.jurisdiction)
        facts = borrower_facts(borrower=borrower, person_holds=holds.get(borrower.pk, frozenset())) if policy else None
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


# ---------------------------------------------------------------------------------------------
# Supervisor console: audit log search (keyset pagination), timeline, verification status

#: Free text of an event (contact notes, note bodies, status-change reasons). Must match the
#: trigram index expression in migration 0004 so that PostgreSQL can use it for ILIKE.
AUDIT_NOTES_SQL = (
    "(coalesce(data->>'notes', '') || ' ' || coalesce(data->>'body', '') || ' ' || coalesce(data->>'reason', ''))"
)
ATTEMPT_ALLOWED_ACTIONS = ("cases.contact_attempt.recorded",)
ATTEMPT_REFUSED_ACTIONS = ("compliance.contact.blocked", "compliance.callback.blocked")
AUDIT_PAGE_SIZE = 50


@dataclass(frozen=True)
class AuditFilters:
    """What the supervisor asked for; every field optional. Dates are local calendar days, inclusive."""

    lender_id: int | None = None
    actor_id: int | None = None
    borrower_id: int | None = None
    account_id: int | None = None
    action: str = ""  # exact code, or a prefix when it ends with "." or "*"
    outcome: str = ""  # "allowed" | "refused" | ""
    date_from: date | None = None
    date_to: date | None = None
    q: str = ""


def _day_start(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min))


def audit_event_queryset(*, filters: AuditFilters) -> QuerySet[AuditEvent]:
    """Filtered events, newest first. Never counted or offset: callers page with ``before_id``."""
    qs = AuditEvent.objects.all()
    f = filters
    for field in ("lender_id", "actor_id", "borrower_id", "account_id"):
        value = getattr(f, field)
        if value is not None:
            qs = qs.filter(**{field: value})
    if f.action:
        if f.action.endswith(("*", ".")):
            qs = qs.filter(action__startswith=f.action.rstrip("*"))
        else:
            qs = qs.filter(action=f.action)
    if f.outcome == "refused":
        qs = qs.filter(action__in=ATTEMPT_REFUSED_ACTIONS)
    elif f.outcome == "allowed":
        qs = qs.filter(action__in=ATTEMPT_ALLOWED_ACTIONS)
    if f.date_from:
        qs = qs.filter(created_at__gte=_day_start(f.date_from))
    if f.date_to:
        qs = qs.filter(created_at__lt=_day_start(f.date_to + timedelta(days=1)))
    if f.q.strip():
        term = f.q.strip()
        if connection.vendor == "postgresql":
            like = "%" + term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            qs = qs.filter(RawSQL(f"{AUDIT_NOTES_SQL} ILIKE %s", [like], output_field=BooleanField()))
        else:
            qs = qs.filter(Q(data__notes__icontains=term) | Q(data__body__icontains=term) | Q(data__reason__icontains=term))
    return qs.order_by("-id")


@dataclass
class AuditPage:
    events: list[AuditEvent]
    next_before_id: int | None  # pass as ``before`` for the next (older) page; None = last page


def audit_event_page(*, filters: AuditFilters, before_id: int | None = None, limit: int = AUDIT_PAGE_SIZE) -> AuditPage:
    """One page of the audit log: a seek on ``id`` (index range read), no OFFSET, no COUNT(*)."""
    qs = audit_event_queryset(filters=filters)
    if before_id is not None:
        qs = qs.filter(id__lt=before_id)
    rows = list(qs[: limit + 1])
    more = len(rows) > limit
    rows = rows[:limit]
    return AuditPage(events=rows, next_before_id=rows[-1].id if more and rows else None)


def audit_event_iter(*, filters: AuditFilters, batch: int = 2000, max_rows: int | None = None) -> Iterator[AuditEvent]:
    """Every matching event, newest first, fetched in keyset batches (for streamed exports)."""
    before_id = None
    sent = 0
    while True:
        qs = audit_event_queryset(filters=filters)
        if before_id is not None:
            qs = qs.filter(id__lt=before_id)
        rows = list(qs[:batch])
        for row in rows:
            if max_rows is not None and sent >= max_rows:
                return
            sent += 1
            yield row
        if len(rows) < batch:
            return
        before_id = rows[-1].id


def audit_event_summary(*, event: AuditEvent) -> str:
    """One line about what happened, for the table and exports (no PII beyond what the event holds)."""
    d = event.data if isinstance(event.data, dict) else {}
    parts = []
    if d.get("channel"):
        parts.append(f"{d.get('channel')}/{d.get('outcome', '')}".rstrip("/"))
    if d.get("violations"):
        parts.append(", ".join(v.get("code", "") for v in d["violations"] if isinstance(v, dict)))
    for key in ("from", "to", "amount", "currency", "code", "version", "username"):
        if key in d and d[key] not in (None, ""):
            parts.append(f"{key}={d[key]}")
    for key in ("notes", "body", "reason"):
        if d.get(key):
            parts.append(str(d[key])[:200])
    return " · ".join(parts)


def audit_verification_last() -> AuditVerification | None:
    return AuditVerification.objects.order_by("-ran_at").first()


KNOWN_AUDIT_ACTIONS = (
    "auth.", "auth.login", "auth.logout", "auth.login_failed",
    "cases.", "cases.contact_attempt.recorded", "cases.promise.created", "cases.payment.recorded",
    "cases.account.assigned", "cases.account.status_changed", "cases.account.aged", "cases.note.added",
    "cases.callback.scheduled", "cases.agent.settings_changed", "cases.account.updated", "cases.account.recalled",
    "cases.borrower.updated", "cases.repayment_plan.completed", "cases.contact_attempt.outcome_changed",
    "cases.placement.", "admin.", "reminders.",
    "compliance.", "compliance.contact.blocked", "compliance.callback.blocked",
    "compliance.policy.drafted", "compliance.policy.published",
    "cases.contact_attempt.started", "cases.contact_attempt.completed", "cases.contact_attempt.unreported",
    "cases.borrower.opted_out", "compliance.incident.opened", "compliance.incident.reviewed",
    "scoring.",
    "borrowers.", "borrowers.link.issued", "borrowers.access.verified", "borrowers.access.failed",
    "borrowers.promise.made", "borrowers.plan.proposed", "borrowers.plan.accepted", "borrowers.plan.countered",
    "borrowers.dispute.raised", "borrowers.dispute.verification_requested", "borrowers.dispute.resolved",
    "borrowers.hold.lifted", "borrowers.opt_out.requested", "borrowers.preferences.changed",
    "borrowers.callback.requested", "borrowers.callback.refused", "borrowers.message.refused",
    "borrowers.evidence.viewed",
)


def audit_action_codes() -> list[str]:
    """Suggestions for the action filter. A static list: DISTINCT over millions of rows would be a
    full index scan on every page view; other codes can still be typed (a trailing "." = prefix)."""
    return list(KNOWN_AUDIT_ACTIONS)


# ---------------------------------------------------------------------------------------------
# Supervisor console: policies and agents


def policy_versions_by_jurisdiction() -> dict[str, list[Policy]]:
    out: dict[str, list[Policy]] = {}
    for row in Policy.objects.select_related("created_by", "published_by").order_by("code", "-version"):
        out.setdefault(row.code, []).append(row)
    return out


def agent_list() -> QuerySet:
    from cases.models import User

    return User.objects.filter(role=User.Role.AGENT).prefetch_related("lenders").order_by("username")


# ---------------------------------------------------------------------------------------------
# Incidents: contacts stored as breaches, for supervisor review

INCIDENT_PAGE_SIZE = 50


def incident_list(*, status: str = "open", lender_id: int | None = None):
    """Incidents newest first (``status`` "" = all), with the agent loaded."""
    from .models import Incident

    qs = Incident.objects.select_related("agent", "reviewed_by").order_by("-created_at", "-id")
    if status:
        qs = qs.filter(status=status)
    if lender_id is not None:
        qs = qs.filter(lender_id=lender_id)
    return qs


def incident_counts() -> dict[str, int]:
    from django.db.models import Count

    from .models import Incident

    return dict(Incident.objects.values_list("status").annotate(n=Count("id")).values_list("status", "n"))


# ---------------------------------------------------------------------------------------------
# Supervisor audit log (issue 12): readable labels, names instead of ids, search by reference or
# borrower name, a bounded count, the event detail. Added below the gate's part of this module.

from django.utils.translation import gettext_lazy  # noqa: E402 - this section's own import

AUDIT_ACTION_LABELS = {
    "auth.login": gettext_lazy("Signed in"),
    "auth.logout": gettext_lazy("Signed out"),
    "auth.login_failed": gettext_lazy("Sign-in failed"),
    "cases.account.aged": gettext_lazy("Account aged"),
    "cases.account.assigned": gettext_lazy("Account assigned"),
    "cases.account.locked": gettext_lazy("Account locked"),
    "cases.account.unlocked": gettext_lazy("Account unlocked"),
    "cases.account.recalled": gettext_lazy("Account recalled"),
    "cases.account.status_changed": gettext_lazy("Account status changed"),
    "cases.account.updated": gettext_lazy("Account updated by a file"),
    "cases.ageing.run": gettext_lazy("Daily ageing run"),
    "cases.agent.settings_changed": gettext_lazy("Agent settings changed"),
    "cases.borrower.opted_out": gettext_lazy("Borrower opted out"),
    "cases.borrower.updated": gettext_lazy("Borrower contact details extended"),
    "cases.callback.scheduled": gettext_lazy("Callback scheduled"),
    "cases.column_mapping.saved": gettext_lazy("Column mapping saved"),
    "cases.contact_attempt.recorded": gettext_lazy("Contact recorded"),
    "cases.contact_attempt.started": gettext_lazy("Outreach started"),
    "cases.contact_attempt.completed": gettext_lazy("Outreach completed"),
    "cases.contact_attempt.unreported": gettext_lazy("Outreach left unreported"),
    "cases.contact_attempt.outcome_changed": gettext_lazy("Contact outcome changed"),
    "cases.instalment.missed": gettext_lazy("Instalment missed"),
    "cases.lender.registered": gettext_lazy("Lender registered"),
    "cases.lender.approved": gettext_lazy("Lender approved"),
    "cases.lender.suspended": gettext_lazy("Lender refused or suspended"),
    "cases.note.added": gettext_lazy("Note added"),
    "cases.payment.recorded": gettext_lazy("Payment recorded"),
    "cases.pii.viewed": gettext_lazy("Personal data revealed"),
    "cases.placement.uploaded": gettext_lazy("File uploaded"),
    "cases.placement.applied": gettext_lazy("File applied"),
    "cases.placement.rejected": gettext_lazy("File rejected"),
    "cases.placement.failed": gettext_lazy("File failed"),
    "cases.placement.requeued": gettext_lazy("File queued again"),
    "cases.plan.broken": gettext_lazy("Repayment plan broken"),
    "cases.promise.broken": gettext_lazy("Promise broken"),
    "cases.promise.created": gettext_lazy("Promise to pay recorded"),
    "cases.repayment_plan.completed": gettext_lazy("Repayment plan completed"),
    "cases.repayment_plan.created": gettext_lazy("Repayment plan created"),
    "compliance.audit.verify_requested": gettext_lazy("Audit chain verification requested"),
    "compliance.callback.blocked": gettext_lazy("Callback refused by the compliance check"),
    "compliance.contact.blocked": gettext_lazy("Contact refused by the compliance check"),
    "compliance.incident.opened": gettext_lazy("Incident opened"),
    "compliance.incident.reviewed": gettext_lazy("Incident reviewed"),
    "compliance.policy.drafted": gettext_lazy("Policy drafted"),
    "compliance.policy.published": gettext_lazy("Policy published"),
    "reminders.reminder.scheduled": gettext_lazy("Reminder scheduled"),
}
AUDIT_COUNT_CAP = 10_000
AUDIT_SEARCH_MAX_SUBJECTS = 500  # accounts or borrowers one search term may stand for


def audit_action_label(code: str) -> str:
    """The translated label of an action code; an unknown code is shown as it is."""
    label = AUDIT_ACTION_LABELS.get(code)
    return str(label) if label is not None else code


def audit_search_subjects(*, term: str, lender_id: int | None = None) -> tuple[list[int], list[int]]:
    """(account ids, borrower ids) a search term stands for: accounts whose external reference is the
    term (exact) and borrowers whose name contains it, of one lender or all. Two indexed reads
    (cases/0008: external_ref btree, name trigram), bounded."""
    from cases.models import Borrower, OverdueAccount

    term = term.strip()
    if not term:
        return [], []
    accounts = OverdueAccount.objects.filter(external_ref=term).order_by()
    borrowers = Borrower.objects.filter(name__icontains=term).order_by()
    if lender_id is not None:
        accounts, borrowers = accounts.filter(lender_id=lender_id), borrowers.filter(lender_id=lender_id)
    return (list(accounts.values_list("id", flat=True)[:AUDIT_SEARCH_MAX_SUBJECTS]),
            list(borrowers.values_list("id", flat=True)[:AUDIT_SEARCH_MAX_SUBJECTS]))


def audit_search_queryset(*, filters: AuditFilters, term: str = "") -> QuerySet[AuditEvent]:
    """``audit_event_queryset`` narrowed to the events about what ``term`` names (none if nothing)."""
    qs = audit_event_queryset(filters=filters)
    if term.strip():
        accounts, borrowers = audit_search_subjects(term=term, lender_id=filters.lender_id)
        qs = qs.filter(Q(account_id__in=accounts) | Q(borrower_id__in=borrowers))
    return qs


def audit_search_page(*, filters: AuditFilters, term: str = "", before_id: int | None = None,
                      limit: int = AUDIT_PAGE_SIZE) -> AuditPage:
    """One keyset page (as ``audit_event_page``) of the search."""
    qs = audit_search_queryset(filters=filters, term=term)
    if before_id is not None:
        qs = qs.filter(id__lt=before_id)
    rows = list(qs[: limit + 1])
    more = len(rows) > limit
    rows = rows[:limit]
    return AuditPage(events=rows, next_before_id=rows[-1].id if more and rows else None)


def audit_search_count(*, filters: AuditFilters, term: str = "", cap: int = AUDIT_COUNT_CAP) -> tuple[int, bool]:
    """(count, more): counts at most ``cap`` + 1 rows (a LIMIT inside the COUNT), never all of a table
    of millions; ``more`` means "at least cap+1", shown as "10,000+"."""
    n = audit_search_queryset(filters=filters, term=term).order_by().values("id")[: cap + 1].count()
    return min(n, cap), n > cap


def mask_name(name: str) -> str:
    """张三 -> 张*, John Smith -> J*** S****: enough to tell rows apart, not to identify a person."""
    if not name:
        return ""
    if any(ord(c) > 0x2E80 for c in name):
        return name[0] + "*" * (len(name) - 1)
    return " ".join(w[0] + "*" * (len(w) - 1) for w in name.split())


@dataclass
class AuditRow:
    event: AuditEvent
    label: str
    lender: str
    account_ref: str
    borrower: str
    summary: str


def audit_rows(*, events: list[AuditEvent], reveal_names: bool) -> list[AuditRow]:
    """Events with names and references in place of ids: three queries for any page size (lenders,
    accounts, borrowers). The actor is the username stored on the event. ``reveal_names``: the full
    borrower name (supervisors and administrators); otherwise masked."""
    from cases.models import Borrower, Lender, OverdueAccount

    def names(model, ids, field):
        ids = {i for i in ids if i is not None}
        return dict(model.objects.filter(pk__in=ids).order_by().values_list("pk", field)) if ids else {}

    lenders = names(Lender, (e.lender_id for e in events), "name")
    refs = names(OverdueAccount, (e.account_id for e in events), "external_ref")
    people = names(Borrower, (e.borrower_id for e in events), "name")
    return [
        AuditRow(
            event=e, label=audit_action_label(e.action), lender=lenders.get(e.lender_id, ""),
            account_ref=refs.get(e.account_id, ""),
            borrower=(people.get(e.borrower_id, "") if reveal_names else mask_name(people.get(e.borrower_id, ""))),
            summary=audit_event_summary(event=e),
        )
        for e in events
    ]


def audit_event_detail(*, event_id: int, reveal_names: bool) -> tuple[AuditRow, str] | None:
    """One event with its names, and its data as indented JSON (as stored: secrets already masked)."""
    event = AuditEvent.objects.filter(pk=event_id).select_related("actor").first()
    if event is None:
        return None
    row = audit_rows(events=[event], reveal_names=reveal_names)[0]
    return row, json.dumps(event.data, ensure_ascii=False, indent=2, sort_keys=True)


def audit_search_iter(*, filters: AuditFilters, term: str = "", batch: int = 2000,
                      max_rows: int | None = None) -> Iterator[AuditEvent]:
    """Every event of the search, newest first, in keyset batches (the export of what the page shows)."""
    if not term.strip():
        yield from audit_event_iter(filters=filters, batch=batch, max_rows=max_rows)
        return
    accounts, borrowers = audit_search_subjects(term=term, lender_id=filters.lender_id)
    before_id, sent = None, 0
    while True:
        qs = audit_event_queryset(filters=filters).filter(Q(account_id__in=accounts) | Q(borrower_id__in=borrowers))
        if before_id is not None:
            qs = qs.filter(id__lt=before_id)
        rows = list(qs[:batch])
        for row in rows:
            if max_rows is not None and sent >= max_rows:
                return
            sent += 1
            yield row
        if len(rows) < batch:
            return
        before_id = rows[-1].id
