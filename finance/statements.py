"""Remittance statements: issue (services), lines and exports (CSV, XLSX, PDF). See ``finance.models.Statement``.

Issuing is a handful of indexed aggregates per lender (allocations, reversals, commission, settlements, each by
``(lender, recorded time)``); the lines are read back with the same ranges, so they always add up to the totals.

Settlements (issue 13) are reported to the lender: those settled in the period with the amount written off, and
those reopened in it (the payment that settled them was reversed) with the write-off restored. A write-off is
not money due to the lender, so it has its own total (``written_off_total``) and column, never ``amount_due``.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta

from django.db import transaction
from django.db.models import Count, F, Max, Q, Sum
from django.utils import timezone
from django.utils.translation import gettext as _

from cases.importers.selectors import csv_safe
from cases.models import Lender, User
from compliance.audit import audit_log_many

from .models import ZERO, CommissionEntry, PaymentAllocation, PaymentReversal, SettlementEntry, Statement
from .services import commission_plan_in_force

# A statement never reaches closer to "now" than this: a payment's transaction still open at the cut-off would
# otherwise commit with a recorded time inside an already issued period.
SETTLE = timedelta(minutes=1)


def month_bounds(*, year: int, month: int) -> tuple[datetime, datetime]:
    """A calendar month in the platform's zone, as aware datetimes [start, end)."""
    tz = timezone.get_default_timezone()
    start = datetime(year, month, 1, tzinfo=tz)
    end = datetime(year + (month == 12), month % 12 + 1, 1, tzinfo=tz)
    return start, end


def _blank() -> dict:
    return {"pc": 0, "pt": ZERO, "rc": 0, "rt": ZERO, "ct": ZERO, "sc": 0, "so": 0, "wt": ZERO}


def _sums(lender_ids: list[int], start: datetime, end: datetime) -> dict[tuple[int, str], dict]:
    """Totals per (lender, currency) over [start, end): four grouped aggregates, whatever the number of lenders."""
    out: dict[tuple[int, str], dict] = defaultdict(_blank)
    for row in (PaymentAllocation.objects.filter(lender_id__in=lender_ids, created_at__gte=start, created_at__lt=end)
                .values("lender_id", "currency").annotate(n=Count("pk"), t=Sum("amount")).order_by()):
        out[row["lender_id"], row["currency"]].update(pc=row["n"], pt=row["t"])
    for row in (PaymentReversal.objects.filter(lender_id__in=lender_ids, reversed_at__gte=start, reversed_at__lt=end)
                .values("lender_id", "currency").annotate(n=Count("pk"), t=Sum("amount")).order_by()):
        out[row["lender_id"], row["currency"]].update(rc=row["n"], rt=row["t"])
    for row in (CommissionEntry.objects.filter(lender_id__in=lender_ids, created_at__gte=start, created_at__lt=end)
                .values("lender_id", "currency").annotate(t=Sum(F("commission") + F("flat_fee"))).order_by()):
        out[row["lender_id"], row["currency"]]["ct"] = row["t"]
    settled, reopened = Q(kind=SettlementEntry.Kind.SETTLED), Q(kind=SettlementEntry.Kind.REOPENED)
    for row in (SettlementEntry.objects.filter(lender_id__in=lender_ids, created_at__gte=start, created_at__lt=end)
                .values("lender_id", "currency")
                .annotate(n=Count("pk", filter=settled), o=Count("pk", filter=reopened), t=Sum("written_off"))
                .order_by()):
        out[row["lender_id"], row["currency"]].update(sc=row["n"], so=row["o"], wt=row["t"])
    return out


def _issue(*, actor: User | None, lender_ids: list[int], end: datetime, kind: str, label: str) -> list[Statement]:
    """Each lender's statements (one per currency with activity, else one empty one) from the end of its last
    statement to ``end``; lenders sharing a start are summed together. Audited, one event per lender."""
    with transaction.atomic():
        # One issuer per lender at a time (lenders are not locked by payments, so no lock-order concern).
        lenders = {lender.pk: lender for lender in Lender.objects.select_for_update().filter(pk__in=lender_ids).order_by("pk")}
        last = dict(Statement.objects.filter(lender_id__in=lenders).values("lender_id")
                    .annotate(m=Max("period_end")).values_list("lender_id", "m"))
        by_start: dict[datetime, list[int]] = defaultdict(list)
        for pk, lender in lenders.items():
            start = last.get(pk) or lender.created_at
            if start < end:
                by_start[start].append(pk)
        statements, events = [], []
        for start, ids in by_start.items():
            sums = _sums(ids, start, end)
            period = label or f"{timezone.localtime(start):%Y-%m-%d} – {timezone.localtime(end):%Y-%m-%d}"
            for pk in ids:
                plan = commission_plan_in_force(lender_id=pk, at=end)
                remit_net = bool(plan and plan.remit_net)
                mine = sorted((c, v) for (lid, c), v in sums.items() if lid == pk) or [("CNY", _blank())]
                issued = []
                for currency, v in mine:
                    due = v["pt"] - v["rt"] - (v["ct"] if remit_net else ZERO)
                    issued.append(Statement(
                        lender=lenders[pk], currency=currency, kind=kind, label=period, period_start=start,
                        period_end=end, remit_net=remit_net, payments_count=v["pc"], payments_total=v["pt"],
                        reversals_count=v["rc"], reversals_total=v["rt"], commission_total=v["ct"],
                        settlements_count=v["sc"], settlements_reopened_count=v["so"], written_off_total=v["wt"],
                        amount_due=due, issued_by=actor))
                statements += issued
                events.append({
                    "action": "finance.statement.issued", "lender_id": pk,
                    "data": {"period_start": start, "period_end": end, "kind": kind, "label": period,
                             "statements": [{"currency": s.currency, "payments": s.payments_total,
                                             "reversals": s.reversals_total, "commission": s.commission_total,
                                             "amount_due": s.amount_due, "remit_net": s.remit_net,
                                             "settlements": s.settlements_count,
                                             "settlements_reopened": s.settlements_reopened_count,
                                             "written_off": s.written_off_total} for s in issued]}})
        Statement.objects.bulk_create(statements)
        audit_log_many(events=events, actor=actor)
        return statements


def statement_issue(*, actor: User | None, lender: Lender, period_end: datetime | None = None,
                    kind: str = Statement.Kind.ON_DEMAND, label: str = "") -> list[Statement]:
    """Issue one lender's statements up to ``period_end`` (default: now, less a settling minute). Returns [] if
    the period would be empty (nothing since the last statement's end)."""
    now = timezone.now()
    end = min(period_end or now, now - SETTLE)
    return _issue(actor=actor, lender_ids=[lender.pk], end=end, kind=kind, label=label)


def statements_issue_month(*, actor: User | None, year: int, month: int, lenders=None) -> list[Statement]:
    """The monthly run: every active lender's statement up to the end of the month."""
    _start, end = month_bounds(year=year, month=month)
    end = min(end, timezone.now() - SETTLE)
    ids = [lender.pk for lender in lenders] if lenders is not None else list(
        Lender.objects.filter(status=Lender.Status.ACTIVE).values_list("pk", flat=True))
    return _issue(actor=actor, lender_ids=ids, end=end, kind=Statement.Kind.MONTH, label=f"{year:04d}-{month:02d}")


# ---------------------------------------------------------------------------------------------
# Reads and exports


SETTLEMENT_KINDS = ("settled", "settlement_reopened")


def statement_lines(*, statement: Statement) -> list[dict]:
    """Each payment, reversal, commission entry and settlement settled or reopened that the statement covers, in
    recorded order. ``amount`` and ``commission`` add up to the money totals; ``written_off`` (settlement lines
    only) to ``written_off_total``; ``settlement`` is the amount a settled account was settled for."""
    rng = {"lender_id": statement.lender_id, "currency": statement.currency}
    none = {"settlement": None, "written_off": None}
    lines = [
        {"at": a.created_at, "kind": "payment", "account": a.account.external_ref, "reference": a.payment.reference,
         "amount": a.amount, "commission": None, **none}
        for a in PaymentAllocation.objects.filter(created_at__gte=statement.period_start,
                                                  created_at__lt=statement.period_end, **rng)
        .select_related("account", "payment")
    ] + [
        {"at": r.reversed_at, "kind": "reversal", "account": r.account.external_ref, "reference": r.payment.reference,
         "amount": -r.amount, "commission": None, **none}
        for r in PaymentReversal.objects.filter(reversed_at__gte=statement.period_start,
                                                reversed_at__lt=statement.period_end, **rng)
        .select_related("account", "payment")
    ] + [
        {"at": c.created_at, "kind": f"commission_{c.kind}", "account": c.account.external_ref,
         "reference": c.payment.reference, "amount": None, "commission": c.total, **none}
        for c in CommissionEntry.objects.filter(created_at__gte=statement.period_start,
                                                created_at__lt=statement.period_end, **rng)
        .select_related("account", "payment")
    ] + [
        {"at": e.created_at, "kind": "settled" if e.kind == SettlementEntry.Kind.SETTLED else "settlement_reopened",
         "account": e.account.external_ref, "reference": e.payment.reference if e.payment_id else "", "amount": None,
         "commission": None, "settlement": e.amount if e.kind == SettlementEntry.Kind.SETTLED else None,
         "written_off": e.written_off}
        for e in SettlementEntry.objects.filter(created_at__gte=statement.period_start,
                                                created_at__lt=statement.period_end, **rng)
        .select_related("account", "payment")
    ]
    return sorted(lines, key=lambda x: (x["at"], x["kind"]))


def _kind_label(kind: str) -> str:
    return {"payment": _("Payment"), "reversal": _("Reversal"), "commission_earned": _("Commission"),
            "commission_reversed": _("Commission reversed"), "settled": _("Settlement settled"),
            "settlement_reopened": _("Settlement reopened")}[kind]


def _summary(statement: Statement) -> list[tuple[str, str]]:
    return [
        (_("Lender"), statement.lender.name), (_("Period"), statement.label), (_("Currency"), statement.currency),
        (_("Payments"), f"{statement.payments_total} ({statement.payments_count})"),
        (_("Reversals"), f"{statement.reversals_total} ({statement.reversals_count})"),
        (_("Commission"), str(statement.commission_total)),
        (_("Terms"), _("Net of commission") if statement.remit_net else _("Gross (commission invoiced separately)")),
        (_("Amount due to the lender"), str(statement.amount_due)),
        # Reported, not remitted: a write-off is not money due to the lender.
        (_("Settlements"), _("%(settled)s settled, %(reopened)s reopened")
         % {"settled": statement.settlements_count, "reopened": statement.settlements_reopened_count}),
        (_("Written off (settlements)"), str(statement.written_off_total)),
    ]


def _line_headers() -> list[str]:
    return [_("Recorded at"), _("Type"), _("Account"), _("Reference"), _("Amount"), _("Commission"), _("Settled for"),
            _("Written off (settlements)")]


AMOUNT_KEYS = ("amount", "commission", "settlement", "written_off")


def _text(value) -> str:
    return "" if value is None else str(value)


def statement_csv(*, statement: Statement) -> str:
    """UTF-8 with BOM (Excel opens Chinese text); text cells formula-safe (numbers are our own Decimals)."""
    out = io.StringIO()
    out.write("\ufeff")
    w = csv.writer(out)
    for k, v in _summary(statement):
        w.writerow([k, csv_safe(v)])
    w.writerow([])
    w.writerow(_line_headers())
    for line in statement_lines(statement=statement):
        w.writerow([line["at"].astimezone(UTC).isoformat(), _kind_label(line["kind"]), csv_safe(line["account"]),
                    csv_safe(line["reference"])] + [_text(line[k]) for k in AMOUNT_KEYS])
    return out.getvalue()


def statement_xlsx(*, statement: Statement) -> bytes:
    """The CSV's content as a workbook: amounts are numeric cells (Decimal, never float), text cells formula-safe
    (openpyxl stores a string starting with "=" as a formula)."""
    from openpyxl import Workbook

    wb = Workbook(write_only=True)
    ws = wb.create_sheet(title=statement.currency)
    for k, v in _summary(statement):
        ws.append([k, csv_safe(v)])
    ws.append([])
    ws.append(_line_headers())
    for line in statement_lines(statement=statement):
        ws.append([line["at"].astimezone(UTC).isoformat(), _kind_label(line["kind"]), csv_safe(line["account"]),
                   csv_safe(line["reference"])] + [line[k] for k in AMOUNT_KEYS])
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


CONTENT_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "pdf": "application/pdf",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}


def statement_file(*, statement: Statement, fmt: str) -> tuple[bytes, str, str]:
    """(content, content type, file name) of a statement download in ``fmt`` (csv, pdf or xlsx)."""
    render = {"csv": lambda: statement_csv(statement=statement).encode("utf-8"),
              "pdf": lambda: statement_pdf(statement=statement), "xlsx": lambda: statement_xlsx(statement=statement)}
    name = f"statement-{statement.lender.code}-{statement.currency}-{statement.period_end:%Y%m%d}-{statement.pk}.{fmt}"
    return render[fmt](), CONTENT_TYPES[fmt], name


def statement_pdf(*, statement: Statement) -> bytes:
    """A real PDF (ReportLab). STSong-Light is one of ReportLab's built-in CID fonts: Chinese needs no font file."""
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import getSampleStyleSheet
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont
    from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

    if "STSong-Light" not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(UnicodeCIDFont("STSong-Light"))
    styles = getSampleStyleSheet()
    for name in ("Title", "Heading2", "Normal"):
        styles[name].fontName = "STSong-Light"
    buf = io.BytesIO()
    doc = SimpleDocTemplate(buf, pagesize=A4, title=f"{statement.lender.code} {statement.label}")
    grid = TableStyle([("FONTNAME", (0, 0), (-1, -1), "STSong-Light"), ("FONTSIZE", (0, 0), (-1, -1), 8),
                       ("GRID", (0, 0), (-1, -1), 0.25, colors.grey)])
    every = statement_lines(statement=statement)

    def row(x: dict, keys: tuple[str, ...]) -> list[str]:
        return [timezone.localtime(x["at"]).strftime("%Y-%m-%d %H:%M"), _kind_label(x["kind"]), x["account"],
                x["reference"]] + [_text(x[k]) for k in keys]

    head = [_("Recorded at"), _("Type"), _("Account"), _("Reference")]
    money = [head + [_("Amount"), _("Commission")]] + [
        row(x, ("amount", "commission")) for x in every if x["kind"] not in SETTLEMENT_KINDS]
    story = [
        Paragraph(_("Remittance statement"), styles["Title"]),
        Table([list(r) for r in _summary(statement)], style=grid), Spacer(1, 12),
        Table(money, style=grid, repeatRows=1),
    ]
    # Settlements in a section of their own: reported to the lender, not part of the amount due.
    settled = [row(x, ("settlement", "written_off")) for x in every if x["kind"] in SETTLEMENT_KINDS]
    if settled:
        story += [
            Spacer(1, 12), Paragraph(_("Written off (settlements)"), styles["Heading2"]),
            Paragraph(_("Accounts settled for less than their balance, and the remainder written off; a settlement "
                        "reopened because its payment was reversed restores the write-off. Not part of the amount "
                        "due."), styles["Normal"]), Spacer(1, 6),
            Table([head + [_("Settled for"), _("Written off")]] + settled
                  + [["", _("Total"), "", "", "", str(statement.written_off_total)]], style=grid, repeatRows=1),
        ]
    doc.build(story)
    return buf.getvalue()


def statements_for_lender(*, lender_id: int):
    return Statement.objects.filter(lender_id=lender_id).order_by("-period_end", "currency")


def statements_all(*, limit: int = 200):
    return Statement.objects.select_related("lender").order_by("-period_end", "lender__name", "currency")[:limit]


def statement_for_user(*, user: User, pk: int) -> Statement | None:
    """Scoped: a lender user gets only their lender's statements (else None: a 404); supervisors any."""
    qs = Statement.objects.select_related("lender")
    if user.is_lender_user:
        qs = qs.filter(lender_id=user.lender_id)
    elif not user.is_supervisor:
        return None
    return qs.filter(pk=pk).first()


def default_month() -> tuple[int, int]:
    """The last full month."""
    first = date.today().replace(day=1) - timedelta(days=1)
    return first.year, first.month
