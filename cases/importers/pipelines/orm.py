"""The portable ORM pipeline (SQLite, the embedded run): valid rows spooled to a temp file while
loading, then applied through the ORM in chunks. Same results as the PostgreSQL pipeline."""

from __future__ import annotations

import pickle
import tempfile
from collections.abc import Iterator
from datetime import date
from decimal import Decimal

from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext as _

from cases.models import Borrower, Lender, OverdueAccount, PlacementBatch

from ..validation import CleanRow
from . import base


class OrmStage:
    """``base.Stage`` through the ORM: rows spooled (pickled chunks) while loading, applied in chunks."""

    def __init__(self, *, batch: PlacementBatch):
        self.batch = batch
        self.kind = batch.kind
        self.count = 0
        self.spool = tempfile.TemporaryFile()  # noqa: SIM115 - closed in close()
        self.seen: set[str] = set()
        self.created_borrowers: set[int] = set()  # by this batch: a later chunk's lines merge in unaudited

    def progress(self, *, rows: int, errors: int) -> None:
        self._errors.flush()
        base.progress(self.batch.pk, processed_rows=F("processed_rows") + rows, error_count=F("error_count") + errors)

    def load(self, rows: Iterator[CleanRow], errors: base.Errors) -> None:
        self._errors = errors
        chunk: list[CleanRow] = []
        for row in rows:
            chunk.append(row)
            if len(chunk) >= base.CHUNK_ROWS:
                self._load_chunk(chunk, errors)
                chunk = []
        self._load_chunk(chunk, errors)

    def _load_chunk(self, rows: list[CleanRow], errors: base.Errors) -> None:
        keep = []
        for r in rows:
            if r.external_ref in self.seen:
                errors.add(r.line, [(self.batch.report["columns"]["external_ref"],
                                     _("Duplicate external reference %(ref)s (already on an earlier line).") % {"ref": r.external_ref})], ref=r.external_ref)
                continue
            self.seen.add(r.external_ref)
            keep.append(r)
        if self.kind == PlacementBatch.Kind.RECALL and keep:
            known = set(OverdueAccount.objects.filter(lender_id=self.batch.lender_id,
                                                      external_ref__in=[r.external_ref for r in keep])
                        .values_list("external_ref", flat=True))
            for r in [r for r in keep if r.external_ref not in known]:
                errors.add(r.line, [(self.batch.report["columns"]["external_ref"],
                                     _("Unknown external reference %(ref)s.") % {"ref": r.external_ref})], ref=r.external_ref)
            keep = [r for r in keep if r.external_ref in known]
        if keep:
            pickle.dump(keep, self.spool)
            self.count += len(keep)

    def check(self, errors: base.Errors) -> None:
        """Duplicates and unknown references were found while loading."""

    def lock(self) -> None:
        Lender.objects.select_for_update().filter(pk=self.batch.lender_id).first()

    def _chunks(self) -> Iterator[list[CleanRow]]:
        self.spool.seek(0)
        while True:
            try:
                yield pickle.load(self.spool)  # noqa: S301 - our own temp file, written above
            except EOFError:
                return

    def apply(self) -> tuple[int, int]:
        created = updated = 0
        for rows in self._chunks():
            if self.kind == PlacementBatch.Kind.RECALL:
                updated += _orm_recall(self.batch, rows)
            else:
                c, u = _orm_place(self.batch, rows, created_borrowers=self.created_borrowers)
                created, updated = created + c, updated + u
        return created, updated

    def close(self) -> None:
        self.spool.close()


def _orm_borrowers(batch: PlacementBatch, rows: list[CleanRow], *, created_borrowers: set[int]) -> dict[str, int]:
    lender_id = batch.lender_id
    ids = {r.national_id for r in rows if r.national_id}
    existing: dict[str, Borrower] = {}
    for b in Borrower.objects.filter(lender_id=lender_id, national_id__in=ids).order_by("id"):
        existing.setdefault("id:" + b.national_id, b)
    names = {r.borrower_name for r in rows if not r.national_id}
    for b in Borrower.objects.filter(lender_id=lender_id, name__in=names).order_by("id"):
        for phone in b.phones:
            existing.setdefault(f"pn:{phone}|{b.name}", b)
    _orm_merge_contacts(batch, rows, existing, audit_skip=created_borrowers)
    found = {key: b.pk for key, b in existing.items()}
    new: dict[str, Borrower] = {}
    for r in rows:  # made from its first line; the others add their contact details
        if r.borrower_key not in found and r.borrower_key not in new:
            new[r.borrower_key] = Borrower(
                lender_id=lender_id, name=r.borrower_name, national_id=r.national_id, phones=[],
                emails=[], address="", region=r.region, jurisdiction=r.jurisdiction,
                time_zones=[r.time_zone] if r.time_zone else [],
            )
        if r.borrower_key in new:
            _merge_row(new[r.borrower_key], r)
    for key, b in zip(new, Borrower.objects.bulk_create(list(new.values())), strict=True):
        found[key] = b.pk
        created_borrowers.add(b.pk)
    return found


def _merge_row(b: Borrower, r: CleanRow) -> None:
    b.phones = b.phones + [p for p in r.phones if p not in b.phones]
    if r.email and r.email not in b.emails:
        b.emails = [*b.emails, r.email]
    if r.address:
        b.address = r.address


def _orm_merge_contacts(batch: PlacementBatch, rows: list[CleanRow], existing: dict[str, Borrower], *,
                        audit_skip: set[int]) -> None:
    """The ORM twin of the PostgreSQL merge (``_merge_contacts_sql``): new phones and emails
    appended, the last address; audited for borrowers that were there before this batch."""
    before: dict[int, dict] = {}
    touched: dict[int, Borrower] = {}
    for r in rows:
        b = existing.get(r.borrower_key)
        if b is None:
            continue
        before.setdefault(b.pk, {"phones": list(b.phones), "emails": list(b.emails), "address": b.address})
        touched[b.pk] = b
        _merge_row(b, r)
    changed = [b for pk, b in touched.items()
               if {"phones": b.phones, "emails": b.emails, "address": b.address} != before[pk]]
    now = timezone.now()
    for b in changed:
        b.updated_at = now
    Borrower.objects.bulk_update(changed, [*base.BORROWER_MERGED, "updated_at"])
    n = base.audit_borrower_changes(batch, ((b.pk, before[b.pk], {k: getattr(b, k) for k in base.BORROWER_MERGED})
                                        for b in changed if b.pk not in audit_skip))
    batch.report["borrowers_updated"] = batch.report.get("borrowers_updated", 0) + n


def _orm_place(batch: PlacementBatch, rows: list[CleanRow], *, created_borrowers: set[int]) -> tuple[int, int]:
    borrowers = _orm_borrowers(batch, rows, created_borrowers=created_borrowers)
    existing = {a.external_ref: a for a in OverdueAccount.objects.filter(
        lender_id=batch.lender_id, external_ref__in=[r.external_ref for r in rows])}
    to_create, to_update, changes = [], [], []
    for r in rows:
        a = existing.get(r.external_ref)
        if a is None:
            to_create.append(OverdueAccount(
                lender_id=batch.lender_id, borrower_id=borrowers[r.borrower_key], external_ref=r.external_ref,
                product=r.product, principal=r.principal, balance=r.balance, currency=r.currency, due_date=r.due_date,
                last_payment_date=r.last_payment_date, days_past_due=r.days_past_due, bucket=r.bucket,
                status=OverdueAccount.Status.NEW,
                extra={"batch": batch.pk, **({"balance_parts": r.parts} if r.parts else {})},
            ))
            continue
        old = {k: getattr(a, k) for k in base.COMPARED}
        new = {k: getattr(r, k) for k in base.COMPARED}
        if old == new:
            continue
        for k, v in new.items():
            setattr(a, k, v)
        a.days_past_due, a.bucket, a.updated_at = r.days_past_due, r.bucket, timezone.now()
        to_update.append(a)
        changes.append((a.pk, a.borrower_id, a.external_ref, _jsonish(old), _jsonish(new)))
    OverdueAccount.objects.bulk_create(to_create)
    OverdueAccount.objects.bulk_update(to_update, [*base.COMPARED, "days_past_due", "bucket", "updated_at"])
    base.audit_changes(batch, changes)
    return len(to_create), len(to_update)


def _jsonish(values: dict) -> dict:
    return {k: (f"{v:.2f}" if isinstance(v, Decimal) else v.isoformat() if isinstance(v, date) else v)
            for k, v in values.items()}


def _orm_recall(batch: PlacementBatch, rows: list[CleanRow]) -> int:
    reasons = {r.external_ref: r.reason for r in rows}
    accounts = list(OverdueAccount.objects.filter(lender_id=batch.lender_id, external_ref__in=list(reasons))
                    .exclude(status__in=base.RECALL_SKIP).order_by("pk"))
    return base.accounts_recall_apply(lender_id=batch.lender_id, batch_id=batch.pk, accounts=accounts,
                                      reasons=reasons, actor=batch.uploaded_by)
