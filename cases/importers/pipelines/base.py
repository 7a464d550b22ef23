"""What both pipelines share: the Stage interface, progress and row-error buffering, the staging
loop that feeds a stage from the validator, and the audit events of an applied batch."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from django.utils import timezone

from cases.models import Callback, OverdueAccount, PlacementBatch, PlacementRowError, User
from cases.selectors import mask_email, mask_phone
from compliance.audit import audit_log_many

from ..validation import CleanRow, RowValidator

CHUNK_ROWS = 5000
MAX_STORED_ERRORS = 50_000  # every error is counted; beyond this many they are not stored one by one
# Statuses a recall leaves alone: already out of collection, or finished.
RECALL_SKIP = ("recalled", "closed", "paid", "settled")
COMPARED = ("balance", "principal", "due_date", "last_payment_date", "currency", "product")
# What a later file may change on an existing borrower: phones and emails are added to (never
# removed), the address replaced. Name and identity stay.
BORROWER_MERGED = ("phones", "emails", "address")


class Stage(Protocol):
    """One batch's staging area and apply step (``postgres.PgStage`` or ``orm.OrmStage``).

    Called in this order: ``load`` (valid rows, streamed; ``progress`` per chunk), ``check``
    (duplicates, unknown recall references), ``lock`` and ``apply`` inside the caller's
    transaction, and always ``close``."""

    batch: PlacementBatch
    count: int  # valid rows staged, known after check()

    def progress(self, *, rows: int, errors: int) -> None: ...
    def load(self, rows: Iterator[CleanRow], errors: Errors) -> None: ...
    def check(self, errors: Errors) -> None: ...
    def lock(self) -> None: ...
    def apply(self) -> tuple[int, int]: ...  # (created, updated)
    def close(self) -> None: ...


def progress(batch_id: int, **fields) -> None:
    # Runs outside the apply transaction (autocommit in the worker) so the portal sees it at once.
    # Every update is also the run's heartbeat (the sweep re-queues a batch whose heartbeat stops).
    PlacementBatch.objects.filter(pk=batch_id).update(heartbeat_at=timezone.now(), **fields)


class Errors:
    """Row errors buffered and written in bulk; counts every failing row, stores up to a cap."""

    def __init__(self, batch_id: int, *, cap: int = MAX_STORED_ERRORS):
        self.batch_id = batch_id
        self.cap = cap
        self.rows = 0
        self.stored = 0
        self.buffer: list[PlacementRowError] = []

    def add(self, line: int, problems: list[tuple[str, str]], *, ref: str = "",
            cells: dict[str, str] | None = None) -> None:
        """``cells``: the row's values by header, so each error can show the value it refused."""
        self.rows += 1
        for column, reason in problems:
            if self.stored < self.cap:
                value = (cells or {}).get(column, "")
                self.buffer.append(PlacementRowError(
                    batch_id=self.batch_id, line=line, column=column[:100], reason=reason[:500],
                    external_ref=str(ref)[:64], value=value.replace("\x00", "")[:200]))
                self.stored += 1

    def flush(self) -> None:
        if self.buffer:
            PlacementRowError.objects.bulk_create(self.buffer, batch_size=2000)
            self.buffer = []


def stage_rows(*, stage, rows, validate: RowValidator, errors: Errors, share: int, shares: int) -> int:
    """Validate this process's chunks of lines (chunk i goes to share i % shares) into the stage;
    returns how many lines were read. Errors are buffered; progress is added every chunk."""
    counter = {"processed": 0}

    def valid_rows() -> Iterator[CleanRow]:
        processed = reported_errors = 0
        for i, (line, values) in enumerate(rows):
            if shares > 1 and (i // CHUNK_ROWS) % shares != share:
                continue
            clean, problems = validate(line, values)
            processed += 1
            if clean is None:
                errors.add(line, problems, ref=validate.ref_of(values), cells=validate.cells(values))
            else:
                yield clean
            if processed % CHUNK_ROWS == 0:
                stage.progress(rows=CHUNK_ROWS, errors=errors.rows - reported_errors)
                reported_errors = errors.rows
        counter["processed"] = processed
        stage.progress(rows=processed % CHUNK_ROWS, errors=errors.rows - reported_errors)

    stage.load(valid_rows(), errors)
    errors.flush()
    return counter["processed"]


def borrower_diff(old: dict, new: dict) -> dict:
    # The audit log is append-only and kept for years: what changed, with contact details masked.
    return {
        "phones_added": [mask_phone(p) for p in new["phones"] if p not in old["phones"]],
        "emails_added": [mask_email(e) for e in new["emails"] if e not in old["emails"]],
        "address_changed": old["address"] != new["address"],
    }


def audit_borrower_changes(batch: PlacementBatch, changes) -> int:
    """One ``cases.borrower.updated`` event per borrower whose contact details the file extended."""
    events: list[dict] = []
    n = 0
    for borrower_id, old, new in changes:
        n += 1
        events.append({
            "action": "cases.borrower.updated", "lender_id": batch.lender_id, "subject_type": "cases.borrower",
            "subject_id": borrower_id, "borrower_id": borrower_id,
            "data": {"batch": batch.pk, **borrower_diff(old, new)},
        })
        if len(events) >= 5000:
            audit_log_many(events=events, actor=batch.uploaded_by)
            events = []
    if events:
        audit_log_many(events=events, actor=batch.uploaded_by)
    return n


def audit_changes(batch: PlacementBatch, changes) -> None:
    """One ``cases.account.updated`` event per changed account (bulk, in chunks)."""
    events: list[dict] = []
    for account_id, borrower_id, ref, old, new in changes:
        diff = {k: [old.get(k), new.get(k)] for k in COMPARED if str(old.get(k)) != str(new.get(k))}
        events.append({
            "action": "cases.account.updated", "lender_id": batch.lender_id, "subject_type": "cases.overdueaccount",
            "subject_id": account_id, "account_id": account_id, "borrower_id": borrower_id,
            "data": {"batch": batch.pk, "external_ref": ref, "changes": diff},
        })
        if len(events) >= 5000:
            audit_log_many(events=events, actor=batch.uploaded_by)
            events = []
    if events:
        audit_log_many(events=events, actor=batch.uploaded_by)


def recall_event(lender_id, batch_id, account_id, borrower_id, ref, status, agent_id, reason) -> dict:
    return {
        "action": "cases.account.recalled", "lender_id": lender_id, "subject_type": "cases.overdueaccount",
        "subject_id": account_id, "account_id": account_id, "borrower_id": borrower_id,
        "data": {"batch": batch_id, "external_ref": ref, "from": status, "to": "recalled", "from_agent": agent_id,
                 "reason": reason or ""},
    }


def accounts_recall_apply(*, lender_id: int, batch_id: int | None, accounts: list[OverdueAccount],
                           reasons: dict[str, str], actor: User | None) -> int:
    """Recall ``accounts`` (already chosen: the lender's, not in RECALL_SKIP): status "recalled",
    unassigned and unlocked, their scheduled callbacks cancelled, one audit event each with the
    status and agent they had and the reason for their reference. The caller holds the transaction.
    Returns how many were recalled."""
    ids = [a.pk for a in accounts]
    OverdueAccount.objects.filter(pk__in=ids).update(
        status=OverdueAccount.Status.RECALLED, assigned_agent=None, locked_by=None, locked_until=None,
        updated_at=timezone.now())
    Callback.objects.filter(account_id__in=ids, status=Callback.Status.SCHEDULED).update(status=Callback.Status.CANCELLED)
    if accounts:
        audit_log_many(events=[recall_event(lender_id, batch_id, a.pk, a.borrower_id, a.external_ref, a.status,
                                             a.assigned_agent_id, reasons.get(a.external_ref, ""))
                               for a in accounts], actor=actor)
    return len(ids)
