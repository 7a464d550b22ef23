"""Reads of the supervisor console: agents, and the audit log with names, labels and search.

The console depends on both the compliance core and the cases app (never the other way round)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass

from django.db.models import Q, QuerySet
from django.utils.translation import gettext_lazy

from cases.models import Borrower, Lender, OverdueAccount, User
from compliance.models import AuditEvent
from compliance.selectors import (
    AUDIT_PAGE_SIZE,
    AuditFilters,
    AuditPage,
    audit_event_iter,
    audit_event_queryset,
    audit_event_summary,
)


def agent_list() -> QuerySet:
    return User.objects.filter(role=User.Role.AGENT).prefetch_related("lenders").order_by("username")



# ---------------------------------------------------------------------------------------------
# Supervisor audit log (issue 12): readable labels, names instead of ids, search by reference or
# borrower name, a bounded count, the event detail. Added below the gate's part of this module.


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


def policy_rules_diff(*, before: list[dict], after: list[dict]) -> list[dict]:
    """Rule by rule (matched by code): added, removed, or changed with the fields that differ.
    Each item: {"code", "status": "added" | "removed" | "changed", "changes": [(field, old, new)]}."""
    old = {r["code"]: r for r in before}
    new = {r["code"]: r for r in after}
    out = []
    for code in [*old, *(c for c in new if c not in old)]:
        if code not in new:
            out.append({"code": code, "status": "removed", "changes": []})
        elif code not in old:
            out.append({"code": code, "status": "added", "changes": []})
        else:
            a, b = old[code], new[code]
            changes = [(key, _show(a.get(key)), _show(b.get(key))) for key in [*a, *(k for k in b if k not in a)]
                       if a.get(key) != b.get(key)]
            if changes:
                out.append({"code": code, "status": "changed", "changes": changes})
    return out


def _show(value) -> str:
    if value is None:
        return "–"
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return ", ".join(value)
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
