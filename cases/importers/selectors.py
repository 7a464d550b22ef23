"""Reads for the lender portal: batches, the lender's accounts with their collection results, exports."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
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
    PromiseToPay,
    User,
)
from cases.selectors import account_list_for_user

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
EXPORT_FIELDS = (
    "external_ref", "status", "balance", "currency", "principal", "due_date", "days_past_due", "bucket",
    "last_contact_at", "last_outcome", "open_promises", "kept_promises", "broken_promises", "recovered", "updated_at",
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
    """The caller's visible accounts annotated with last contact, promise counts and amount recovered.

    Correlated subqueries (not joins) so the counts never multiply each other; one query for any page.
    """
    attempts = ContactAttempt.objects.filter(account=OuterRef("pk")).order_by("-occurred_at", "-id")

    def promises(status: str):
        return (PromiseToPay.objects.filter(account=OuterRef("pk"), status=status).order_by()
                .values("account").annotate(n=Count("id")).values("n"))

    recovered = (Payment.objects.filter(account=OuterRef("pk")).order_by().values("account")
                 .annotate(total=Sum("amount")).values("total"))
    return account_list_for_user(user=user).annotate(
        last_contact_at=Subquery(attempts.values("occurred_at")[:1]),
        last_outcome=Subquery(attempts.values("outcome")[:1]),
        open_promises=_int_subquery(promises(PromiseToPay.Status.OPEN)),
        kept_promises=_int_subquery(promises(PromiseToPay.Status.KEPT)),
        broken_promises=_int_subquery(promises(PromiseToPay.Status.BROKEN)),
        recovered=Coalesce(Subquery(recovered, output_field=DecimalField(max_digits=14, decimal_places=2)),
                           Value(Decimal("0")), output_field=DecimalField(max_digits=14, decimal_places=2)),
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


def batch_progress(*, batch: PlacementBatch) -> dict:
    """What the portal's progress bar polls."""
    total = max(batch.total_rows, batch.processed_rows)
    done = batch.state in (PlacementBatch.State.APPLIED, PlacementBatch.State.REJECTED, PlacementBatch.State.FAILED)
    queued = batch_is_queued(batch=batch)
    return {
        "id": batch.pk,
        "state": "queued" if queued else batch.state,
        "state_display": _("Queued") if queued else str(batch.get_state_display()),
        "done": done,
        "processed_rows": batch.processed_rows,
        "total_rows": total,
        # Reading the file is most of the bar; full only when done (applying the rows follows it).
        "percent": 100 if done else (min(99, int(batch.processed_rows * 100 / total)) if total else 0),
        "created": batch.created_count,
        "updated": batch.updated_count,
        "unchanged": batch.unchanged_count,
        "errors": batch.error_count,
        "message": batch.error_message or (
            _("The processing service is not reachable right now; the file is queued and will be processed "
              "automatically when it is back.") if queued else ""),
    }
