"""Reads for the lender portal: batches, the lender's accounts with their collection results, exports."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import date, datetime
from decimal import Decimal

from django.db.models import (
    Count,
    DecimalField,
    Exists,
    IntegerField,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
    Value,
)
from django.db.models.functions import Coalesce
from django.utils.translation import gettext as _

from cases.models import (
    ContactAttempt,
    Lender,
    OverdueAccount,
    Payment,
    PlacementBatch,
    PlacementJob,
    PlacementRowError,
    PromiseToPay,
    User,
)
from cases.selectors import account_list_for_user

from .columns import COLUMNS
from .reader import FileFormatError, iter_rows, sniff

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
EXPORT_FIELDS = (
    "external_ref", "status", "balance", "currency", "principal", "due_date", "days_past_due", "bucket",
    "last_contact_at", "last_outcome", "open_promises", "kept_promises", "broken_promises", "recovered", "updated_at",
    # Appended (issue 13) so that existing column positions stay: the account's settled settlement, empty if none.
    "settlement_amount", "written_off",
)


def csv_safe(value: object) -> str:
    """Neutralise spreadsheet formulas: a cell starting with = + - @ (or tab/CR) gets a leading quote."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_START) else text


def placement_batches_for_user(*, user: User) -> QuerySet[PlacementBatch]:
    """Lender users see their lender's batches, supervisors all, everyone else none. ``queued``: its
    job waits in the outbox for the broker (see ``batch_is_queued``)."""
    qs = (PlacementBatch.objects.select_related("lender", "uploaded_by").order_by("-created_at", "-id")
          .annotate(queued=Exists(PlacementJob.objects.filter(batch_id=OuterRef("pk"), sent_at__isnull=True))))
    if not user.is_authenticated or not user.is_active:
        return qs.none()
    if user.is_supervisor:
        return qs
    if user.is_lender_user:
        return qs.filter(lender_id=user.lender_id)
    return qs.none()


def lenders_pending() -> QuerySet[Lender]:
    return Lender.objects.filter(status=Lender.Status.PENDING).prefetch_related("users").order_by("created_at")


def lenders_recently_decided(*, limit: int = 20) -> QuerySet[Lender]:
    return Lender.objects.exclude(status=Lender.Status.PENDING).order_by("-approved_at", "-created_at")[:limit]


def column_mapping_for(*, lender: Lender) -> dict:
    """The lender's saved {their header: canonical column} mapping (empty if none)."""
    from cases.models import ColumnMapping

    return ColumnMapping.objects.filter(lender=lender).values_list("mapping", flat=True).first() or {}


def _int_subquery(qs) -> Subquery:
    return Coalesce(Subquery(qs, output_field=IntegerField()), Value(0))


def accounts_with_results(*, user: User) -> QuerySet[OverdueAccount]:
    """The caller's visible accounts annotated with last contact, promise counts, amount recovered and the
    settled settlement (amount and written off; None if none).

    Correlated subqueries (not joins) so the counts never multiply each other; one query for any page.
    """
    from finance.models import Settlement  # finance imports this module (csv_safe)

    attempts = ContactAttempt.objects.filter(account=OuterRef("pk")).order_by("-occurred_at", "-id")

    def promises(status: str):
        return (PromiseToPay.objects.filter(account=OuterRef("pk"), status=status).order_by()
                .values("account").annotate(n=Count("id")).values("n"))

    recovered = (Payment.objects.filter(account=OuterRef("pk")).order_by().values("account")
                 .annotate(total=Sum("amount")).values("total"))
    # At most one (a settled account is closed; a reopened one is approved again), latest first all the same.
    settled = Settlement.objects.filter(account=OuterRef("pk"), status=Settlement.Status.SETTLED).order_by("-settled_at")
    amount_field = DecimalField(max_digits=14, decimal_places=2)
    return account_list_for_user(user=user).annotate(
        last_contact_at=Subquery(attempts.values("occurred_at")[:1]),
        last_outcome=Subquery(attempts.values("outcome")[:1]),
        open_promises=_int_subquery(promises(PromiseToPay.Status.OPEN)),
        kept_promises=_int_subquery(promises(PromiseToPay.Status.KEPT)),
        broken_promises=_int_subquery(promises(PromiseToPay.Status.BROKEN)),
        recovered=Coalesce(Subquery(recovered, output_field=DecimalField(max_digits=14, decimal_places=2)),
                           Value(Decimal("0")), output_field=DecimalField(max_digits=14, decimal_places=2)),
        settlement_amount=Subquery(settled.values("amount")[:1], output_field=amount_field),
        written_off=Subquery(settled.values("written_off")[:1], output_field=amount_field),
    )


def portal_account_search(*, user: User, q: str = "", status: str = "") -> QuerySet[OverdueAccount]:
    qs = accounts_with_results(user=user)
    q = q.strip()
    if q:
        qs = qs.filter(Q(external_ref__icontains=q) | Q(borrower__name__icontains=q) | Q(borrower__phones__icontains=q))
    if status:
        qs = qs.filter(status=status)
    return qs.order_by("-updated_at", "-id")


def results_rows(*, user: User) -> Iterator[dict]:
    """The export rows, streamed from the database (server-side cursor on PostgreSQL)."""
    qs = accounts_with_results(user=user).order_by("id").values(*EXPORT_FIELDS)
    yield from qs.iterator(chunk_size=2000)


def _cell(value: object) -> object:
    if isinstance(value, Decimal):
        return f"{value:.2f}"
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


class _Echo:
    def write(self, value: str) -> str:
        return value


def results_csv(*, user: User) -> Iterator[str]:
    """CSV lines (UTF-8 with BOM so Excel opens Chinese text), formula-safe."""
    writer = csv.writer(_Echo())
    yield "\ufeff" + writer.writerow(EXPORT_FIELDS)
    for row in results_rows(user=user):
        yield writer.writerow([csv_safe(_cell(row[f])) for f in EXPORT_FIELDS])


def money(value: object) -> str:
    """An amount with thousands separators and two decimals ("1,234,567.80"), in every language:
    Chinese financial statements group by thousands too."""
    if value is None or value == "":
        return ""
    return f"{Decimal(value):,.2f}"


def local_minute(value) -> str:
    """A time in the current (lender's) time zone, to the minute: no microseconds, no offset."""
    from django.utils import timezone

    return timezone.localtime(value).strftime("%Y-%m-%d %H:%M") if value else ""


def _readable_columns() -> list[tuple[str, object]]:
    from cases.models import ContactAttempt

    statuses, outcomes = dict(OverdueAccount.Status.choices), dict(ContactAttempt.Outcome.choices)
    return [
        (_("External reference"), lambda r: r["external_ref"]),
        (_("Status"), lambda r: statuses.get(r["status"], r["status"])),
        (_("Balance"), lambda r: money(r["balance"])),
        (_("Currency"), lambda r: r["currency"]),
        (_("Principal"), lambda r: money(r["principal"])),
        (_("Due date"), lambda r: r["due_date"].isoformat() if r["due_date"] else ""),
        (_("Days past due"), lambda r: r["days_past_due"]),
        (_("Bucket"), lambda r: r["bucket"]),
        (_("Last contact"), lambda r: local_minute(r["last_contact_at"])),
        (_("Last outcome"), lambda r: outcomes.get(r["last_outcome"], r["last_outcome"] or "")),
        (_("Open promises"), lambda r: r["open_promises"]),
        (_("Kept promises"), lambda r: r["kept_promises"]),
        (_("Broken promises"), lambda r: r["broken_promises"]),
        (_("Recovered"), lambda r: money(r["recovered"])),
        (_("Updated"), lambda r: local_minute(r["updated_at"])),
        (_("Settled for"), lambda r: money(r["settlement_amount"])),
        (_("Written off"), lambda r: money(r["written_off"])),
    ]


def results_csv_readable(*, user: User) -> Iterator[str]:
    """The portal's results file for people: translated headers, status and outcome labels, amounts
    with separators, local times to the minute. Formula-safe. (``results_csv`` / JSON stay the
    machine-readable exports with codes and ISO times.)"""
    columns = _readable_columns()
    writer = csv.writer(_Echo())
    yield "\ufeff" + writer.writerow([str(title) for title, _get in columns])
    for row in results_rows(user=user):
        yield writer.writerow([csv_safe(get(row)) for _title, get in columns])


def results_json(*, user: User) -> Iterator[str]:
    """A JSON array, streamed element by element."""
    yield "["
    first = True
    for row in results_rows(user=user):
        yield ("" if first else ",\n") + json.dumps({k: _cell(v) for k, v in row.items()}, ensure_ascii=False)
        first = False
    yield "]\n"


def batch_is_queued(*, batch: PlacementBatch) -> bool:
    """Pending with its job still in the outbox: the job queue (broker) could not be reached yet."""
    if batch.state != PlacementBatch.State.PENDING:
        return False
    queued = getattr(batch, "queued", None)  # annotated by placement_batches_for_user
    return batch.jobs.filter(sent_at__isnull=True).exists() if queued is None else queued


def batch_outcome(*, batch: PlacementBatch) -> tuple[str, str, str]:
    """(display code, label, tone) of a batch: applied with failed rows is amber ("warn"), not green."""
    State = PlacementBatch.State
    if batch.state == State.APPLIED and batch.error_count:
        return "applied_with_errors", str(_("Applied with errors")), "warn"
    if batch_is_queued(batch=batch):
        return "queued", str(_("Queued")), ""
    tone = {State.APPLIED: "ok", State.REJECTED: "bad", State.FAILED: "bad"}.get(batch.state, "")
    return batch.state, str(batch.get_state_display()), tone


def batch_repeats(*, batch: PlacementBatch) -> PlacementBatch | None:
    """The earlier batch of the same lender that this identical file repeats (nothing was applied again)."""
    earlier = (batch.report or {}).get("already_applied")
    if not earlier:
        return None
    return PlacementBatch.objects.filter(lender_id=batch.lender_id, pk=earlier).first()


def batch_progress(*, batch: PlacementBatch) -> dict:
    """What the portal's progress bar polls. ``state`` is the stored state (or "queued"); ``display``
    and ``tone`` tell "applied" from "applied with errors"."""
    total = max(batch.total_rows, batch.processed_rows)
    done = batch.state in (PlacementBatch.State.APPLIED, PlacementBatch.State.REJECTED, PlacementBatch.State.FAILED)
    queued = batch_is_queued(batch=batch)
    display, label, tone = batch_outcome(batch=batch)
    return {
        "id": batch.pk,
        "state": "queued" if queued else batch.state,
        "display": display,
        "tone": tone,
        "state_display": label,
        "done": done,
        "processed_rows": batch.processed_rows,
        "total_rows": total,
        # Reading the file is most of the bar; full only when done (applying the rows follows it).
        "percent": 100 if done else (min(99, int(batch.processed_rows * 100 / total)) if total else 0),
        "created": batch.created_count,
        "updated": batch.updated_count,
        "unchanged": batch.unchanged_count,
        "errors": batch.error_count,
        # "Being processed" only while it is: a finished batch shows its own outcome message.
        "message": batch.error_message or (
            _("The processing service is not reachable right now; the file is queued and will be processed "
              "automatically when it is back.") if queued else
            "" if done else _("File received; it is being processed.")),
    }


# ---------------------------------------------------------------------------------------------
# Row errors: the file to fix and upload again, and the blank template


def batch_row_errors(*, batch: PlacementBatch) -> QuerySet[PlacementRowError]:
    return batch.row_errors.order_by("line", "id")


def _original_cell(value: object) -> str:
    """A cell as the lender wrote it (XLSX numbers and dates turned back into text)."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, datetime):
        return value.date().isoformat() if value.time() == datetime.min.time() else value.isoformat(sep=" ")
    if isinstance(value, date):
        return value.isoformat()
    return str(value).replace("\x00", "")


def batch_error_file(*, batch: PlacementBatch) -> Iterator[str]:
    """CSV lines (UTF-8 with BOM, formula-safe): the file's header row and every row that failed, with
    its original values and a last column giving the reasons, so the lender can fix them and upload
    the file again. The stored upload is read again (streamed); only the failing lines are written."""
    reasons: dict[int, list[str]] = {}
    for line, column, reason in batch.row_errors.order_by("line", "id").values_list("line", "column", "reason"):
        reasons.setdefault(line, []).append(f"{column}: {reason}" if column else reason)
    writer = csv.writer(_Echo())
    yield "\ufeff"
    if not reasons:
        return
    with batch.file.open("rb") as fh:
        try:
            sniffed = sniff(fh, encoding=batch.encoding)
            rows = iter_rows(fh, sniffed)
            header = next(rows, None)
            if header is None:
                return
            yield writer.writerow([csv_safe(_original_cell(v)) for v in header[1]]
                                  + [_("Errors in this row")])
            last = max(reasons)
            for line, values in rows:
                if line in reasons:
                    yield writer.writerow([csv_safe(_original_cell(v)) for v in values] + [csv_safe("; ".join(reasons[line]))])
                if line >= last:
                    break
        except FileFormatError:  # the file could not be read at all: its reasons are on the batch page
            return


def template_headers(*, language: str) -> list[str]:
    """The placement columns, as canonical keys ("en") or as their first Chinese built-in name ("zh")."""
    if language == "zh":
        return [next((a for a in c.aliases if not a.isascii()), c.key) for c in COLUMNS]
    return [c.key for c in COLUMNS]


def template_csv(*, language: str) -> str:
    out = io.StringIO()
    csv.writer(out).writerow(template_headers(language=language))
    return "\ufeff" + out.getvalue()


def template_xlsx(*, language: str) -> bytes:
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    ws.title = "placements"
    ws.append(template_headers(language=language))
    for i, _col in enumerate(COLUMNS, start=1):
        ws.cell(row=1, column=i).number_format = "@"
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()
