"""Payment files: a lender's "the borrower paid us" file (portal) and a bank / payment-provider statement
(supervisors). Each line is matched to an account by its reference and recorded with
``finance.services.payment_receive``, idempotent by the line's external reference (the bank's transaction id):
uploading the same file again records nothing new. A line that cannot be recorded is reported with its line
number and reason; nothing is dropped silently, and one bad line never loses the others (each line is its own
transaction).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from datetime import date, datetime, time
from decimal import Decimal, InvalidOperation

from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from django.utils.translation import gettext as _

from cases.models import Lender, OverdueAccount, User
from compliance.audit import audit_log

from .services import PaymentConflict, cents, payment_receive

# Canonical column -> accepted headers (case-insensitive; Chinese bank exports included).
COLUMNS = {
    "account_ref": ("account_ref", "reference", "account", "账户编号", "账号", "借据号", "合同号", "参考号"),
    "external_ref": ("external_ref", "transaction_id", "transaction_ref", "流水号", "交易流水号", "交易编号"),
    "amount": ("amount", "金额", "交易金额", "还款金额"),
    "currency": ("currency", "币种"),
    "paid_at": ("paid_at", "date", "value_date", "交易日期", "交易时间", "还款日期", "付款时间"),
    "method": ("method", "channel", "还款方式", "渠道"),
}
REQUIRED = ("account_ref", "external_ref", "amount", "paid_at")
# Lines are recorded while the uploader waits, so the row cap is far below the placement pipeline's.
MAX_ROWS = getattr(settings, "FINANCE_PAYMENT_FILE_MAX_ROWS", 20000)
MAX_BYTES = min(settings.PLACEMENT_MAX_FILE_BYTES, getattr(settings, "FINANCE_PAYMENT_FILE_MAX_BYTES", 10_000_000))


@dataclass
class LineIssue:
    line: int
    reference: str
    reason: str


@dataclass
class PaymentFileResult:
    lines: int = 0
    recorded: int = 0
    already: int = 0  # replays of lines recorded before (same external reference, same details)
    totals: dict[str, Decimal] = field(default_factory=dict)
    issues: list[LineIssue] = field(default_factory=list)


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, float):
        return repr(value)  # XLSX numbers: the shortest exact text (123.45), never float arithmetic
    return str(value).strip()


def _rows(*, content: bytes, name: str) -> list[tuple[int, list[str]]]:
    """(line number, cells) of every row, the header first. CSV (UTF-8, BOM or GBK) or XLSX."""
    if name.lower().endswith(".xlsx"):
        from openpyxl import load_workbook

        try:
            ws = load_workbook(io.BytesIO(content), read_only=True, data_only=True).worksheets[0]
        except Exception as exc:  # openpyxl raises many types for a broken workbook
            raise ValidationError(_("Not a readable XLSX file (%(error)s).") % {"error": exc.__class__.__name__}) from exc
        rows = []
        for n, row in enumerate(ws.iter_rows(values_only=True), start=1):
            rows.append((n, [_cell(v) for v in row]))
            if len(rows) > MAX_ROWS + 1:
                break
        return rows
    for encoding in ("utf-8-sig", "gbk"):
        try:
            text = content.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:
        raise ValidationError(_("The file is neither UTF-8 nor GBK text."))
    reader = csv.reader(io.StringIO(text, newline=""))
    rows = []
    try:
        for row in reader:
            rows.append((reader.line_num, [c.strip() for c in row]))
            if len(rows) > MAX_ROWS + 1:
                break
    except csv.Error as exc:
        raise ValidationError(_("Line %(line)s: not valid CSV (%(error)s).") % {"line": reader.line_num, "error": exc}) from exc
    return rows


def _header(cells: list[str]) -> dict[str, int]:
    lookup = {alias.lower(): canonical for canonical, aliases in COLUMNS.items() for alias in aliases}
    found: dict[str, int] = {}
    for i, cell in enumerate(cells):
        canonical = lookup.get(cell.strip().lower())
        if canonical and canonical not in found:
            found[canonical] = i
    missing = [c for c in REQUIRED if c not in found]
    if missing:
        raise ValidationError(_("Line 1: missing column(s) %(columns)s.") % {"columns": ", ".join(missing)})
    return found


def _paid_at(text: str) -> datetime | None:
    text = text.replace("/", "-")
    try:  # Django's parsers raise ValueError for well-formed but impossible dates (2026-13-01)
        moment = parse_datetime(text)
        day = parse_date(text[:10]) if moment is None and len(text) >= 8 else None
    except ValueError:
        return None
    if moment is None:
        if day is None:
            return None
        moment = datetime.combine(day, time(12, 0))  # a value date: midday, so no zone moves it to another day
    return timezone.make_aware(moment) if timezone.is_naive(moment) else moment


def payment_file_import(*, actor: User, content: bytes, name: str, lender: Lender | None,
                        source: str) -> PaymentFileResult:
    """Record each line of a payment file. ``lender``: match only that lender's accounts (a lender's portal
    upload, or a bank statement of one lender's collection account); None: any lender's (a reference used by
    several lenders is then reported as ambiguous, never guessed)."""
    if len(content) > MAX_BYTES:
        raise ValidationError(_("The file is larger than %(bytes)s bytes.") % {"bytes": MAX_BYTES})
    rows = [(n, cells) for n, cells in _rows(content=content, name=name) if any(cells)]
    if not rows:
        raise ValidationError(_("The file is empty."))
    if len(rows) - 1 > MAX_ROWS:
        raise ValidationError(_("The file has more than %(rows)s lines; split it.") % {"rows": MAX_ROWS})
    if len(rows[0][1]) > settings.PLACEMENT_MAX_COLUMNS:
        raise ValidationError(_("Line 1: more than %(columns)s columns.") % {"columns": settings.PLACEMENT_MAX_COLUMNS})
    cols = _header(rows[0][1])
    accounts = OverdueAccount.objects.all() if lender is None else OverdueAccount.objects.filter(lender=lender)
    result = PaymentFileResult()
    for n, cells in rows[1:]:
        result.lines += 1
        def get(c: str, cells=cells) -> str:
            return cells[cols[c]] if c in cols and cols[c] < len(cells) else ""

        ref = get("account_ref")

        def issue(reason: str, n=n, ref=ref) -> None:
            result.issues.append(LineIssue(n, ref[:64], reason))

        if any(len(c) > settings.PLACEMENT_MAX_CELL_CHARS for c in cells):
            issue(_("A cell is too long."))
            continue
        external_ref = get("external_ref")
        if not ref or not external_ref:
            issue(_("The account reference and the line's external reference are required."))
            continue
        if len(external_ref) > 64:
            issue(_("The external reference is longer than 64 characters."))
            continue
        try:
            amount = Decimal(get("amount").replace(",", ""))
        except InvalidOperation:
            issue(_("Amount %(value)r is not a number.") % {"value": get("amount")})
            continue
        if not amount.is_finite() or amount <= 0 or amount != cents(amount):
            issue(_("Amount %(value)r must be positive, in whole cents.") % {"value": get("amount")})
            continue
        paid_at = _paid_at(get("paid_at"))
        if paid_at is None:
            issue(_("Date %(value)r is not a date (YYYY-MM-DD or ISO date and time).") % {"value": get("paid_at")})
            continue
        if paid_at > timezone.now():
            issue(_("The payment date is in the future."))
            continue
        matches = list(accounts.filter(external_ref=ref)[:2])
        if not matches:
            issue(_("No account with this reference."))
            continue
        if len(matches) > 1:
            issue(_("This reference belongs to accounts of several lenders; upload it as one lender's statement."))
            continue
        account = matches[0]
        currency = get("currency").upper() or account.currency
        if currency != account.currency:
            issue(_("The account is kept in %(account)s, the line is in %(line)s.") % {"account": account.currency, "line": currency})
            continue
        try:
            _payment, created = payment_receive(actor=actor, account=account, external_ref=external_ref,
                                                amount=amount, paid_at=paid_at, method=get("method")[:30] or source,
                                                source=source)
        except PaymentConflict as conflict:
            issue(str(conflict))
            continue
        except ValidationError as exc:
            issue(" ".join(exc.messages))
            continue
        if created:
            result.recorded += 1
            result.totals[currency] = result.totals.get(currency, Decimal("0.00")) + amount
        else:
            result.already += 1
    audit_log(action="finance.payment_file.imported", actor=actor, lender_id=lender.pk if lender else None,
              data={"file": name[:200], "source": source, "lines": result.lines, "recorded": result.recorded,
                    "already_recorded": result.already, "totals": result.totals,
                    "unmatched": [{"line": i.line, "reference": i.reference, "reason": i.reason}
                                  for i in result.issues[:500]], "unmatched_count": len(result.issues)})
    return result
