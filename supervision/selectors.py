"""Reads of the supervisor console: agents, and the audit log with names, labels and search.

The console depends on both the compliance core and the cases app (never the other way round)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass

from django.db.models import Q, QuerySet

from cases.models import Borrower, Lender, OverdueAccount, User
from compliance.audit_labels import AUDIT_ACTION_LABELS as AUDIT_ACTION_LABELS  # one table, old names kept
from compliance.audit_labels import audit_action_label as audit_action_label
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


AUDIT_COUNT_CAP = 10_000
AUDIT_SEARCH_MAX_SUBJECTS = 500  # accounts or borrowers one search term may stand for


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
