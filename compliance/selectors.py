"""Reads of the compliance core: the policy in force, decisions as data, the audit log, incidents.

The core does not depend on the cases app (a test checks the imports): what the gate reads about a
borrower (facts, every lender's history of the person) lives in ``cases/gate.py``, the supervisor
console in the ``supervision`` app."""

from __future__ import annotations

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
from django.utils.translation import gettext as _

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
        raise ValidationError(_("No published contact policy for jurisdiction %(code)s at %(at)s.") % {"code": code, "at": at.isoformat()})
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
    raise ValidationError(_("No published contact policy for jurisdiction %(code)s at %(at)s.") % {"code": code, "at": at.isoformat()})


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


