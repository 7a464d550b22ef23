"""Payment files: a lender's "the borrower paid us" file (portal) and a bank / payment-provider statement
(supervisors). Each line is matched to an account by its reference and recorded with
``finance.services.payment_receive``, idempotent by the line's external reference (the bank's transaction id):
uploading the same file again records nothing new. A line that cannot be recorded is reported with its line
number and reason; nothing is dropped silently, and one bad line never loses the others (each line is its own
transaction).
"""

from __future__ import annotations

import dataclasses
import io
from dataclasses import dataclass, field
from datetime import date, datetime, time
from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from django.utils.translation import gettext as _

from cases.importers.reader import FileFormatError, FileLimitError, Limits, iter_rows, sniff
from cases.importers.validation import parse_amount
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
# References looked up per query: one query for a typical file, bounded statements for the largest.
LOOKUP_CHUNK = 2000
_REF_MAX = OverdueAccount._meta.get_field("external_ref").max_length


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


def _rows(*, content: bytes, name: str, notes: dict) -> list[tuple[int, list]]:
    """(line number, values as read) of every non-blank row, the header first. Read by the placement
    importer's reader, so the same hostile-file protections apply (zip-bomb check before anything is
    inflated, GB18030 for Chinese CSV, column / cell / time limits), with this module's row cap."""
    fh = io.BytesIO(content)
    limits = Limits.current()
    limits = dataclasses.replace(limits, rows=min(MAX_ROWS, limits.rows))
    try:
        sniffed = sniff(fh)
        if name.lower().endswith(".xlsx") and sniffed.kind != "xlsx":
            raise ValidationError(_("Not a readable XLSX file (%(error)s).") % {"error": "BadZipFile"})
        rows = []
        for n, values in iter_rows(fh, sniffed, limits=limits, notes=notes):
            # Spaces-only rows are blank too (the reader keeps them: a placement file has no such rows).
            if any(_cell(v) for v in values):
                rows.append((n, values))
        return rows
    except FileLimitError as exc:
        raise ValidationError(_("The file was stopped at a limit: %(why)s") % {"why": exc}) from exc
    except FileFormatError as exc:
        raise ValidationError(_("The file cannot be read: %(why)s") % {"why": exc}) from exc


def _accounts_by_ref(*, refs: set[str], lender: Lender | None) -> dict[str, list[OverdueAccount]]:
    """external_ref -> the matching accounts (the lender's, or any lender's), in a few queries for the whole
    file rather than one per line. A reference that cannot be stored (too long, NUL) matches nothing."""
    accounts = OverdueAccount.objects.all() if lender is None else OverdueAccount.objects.filter(lender=lender)
    wanted = sorted(r for r in refs if r and len(r) <= _REF_MAX and "\x00" not in r)
    found: dict[str, list[OverdueAccount]] = {}
    for i in range(0, len(wanted), LOOKUP_CHUNK):
        for account in accounts.filter(external_ref__in=wanted[i:i + LOOKUP_CHUNK]).order_by("pk"):
            found.setdefault(account.external_ref, []).append(account)
    return found


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
    notes: dict = {}
    # (line, values as read, their text): the amount is parsed from the value (an XLSX number stays a number).
    rows = [(n, values, [_cell(v) for v in values]) for n, values in _rows(content=content, name=name, notes=notes)]
    if not rows:
        raise ValidationError(_("The file is empty."))
    cols = _header(rows[0][2])
    ref_col = cols["account_ref"]
    by_ref = _accounts_by_ref(refs={cells[ref_col] for _n, _v, cells in rows[1:] if ref_col < len(cells)},
                              lender=lender)
    result = PaymentFileResult()
    for n, values, cells in rows[1:]:
        result.lines += 1
        def get(c: str, cells=cells) -> str:
            return cells[cols[c]] if c in cols and cols[c] < len(cells) else ""

        ref = get("account_ref")

        def issue(reason: str, n=n, ref=ref) -> None:
            result.issues.append(LineIssue(n, ref[:64], reason))

        if any("\x00" in c for c in cells):  # PostgreSQL text cannot hold NUL: the line would fail in the database
            issue(_("Contains a NUL (zero) character, which cannot be stored; remove it."))
            continue
        external_ref = get("external_ref")
        if not ref or not external_ref:
            issue(_("The account reference and the line's external reference are required."))
            continue
        if len(external_ref) > 64:
            issue(_("The external reference is longer than 64 characters."))
            continue
        # The placement importer's parser: "¥1,234.50" and "￥" read, "1e5" / "NaN" refused, an XLSX float's
        # binary noise (0.30000000000000004) rounded to the cent.
        amount = parse_amount(values[cols["amount"]] if cols["amount"] < len(values) else "")
        if amount is None:
            issue(_("Amount %(value)r is not a number.") % {"value": get("amount")})
            continue
        if amount <= 0 or amount != cents(amount):
            issue(_("Amount %(value)r must be positive, in whole cents.") % {"value": get("amount")})
            continue
        # Not validation.parse_date: it drops the time of day, which a bank line carries.
        paid_at = _paid_at(get("paid_at"))
        if paid_at is None:
            issue(_("Date %(value)r is not a date (YYYY-MM-DD or ISO date and time).") % {"value": get("paid_at")})
            continue
        if paid_at > timezone.now():
            issue(_("The payment date is in the future."))
            continue
        matches = by_ref.get(ref, [])
        if not matches:
            issue(_("No account with this reference."))
            continue
        if len(matches) > 1:
            issue(_("This reference belongs to accounts of several lenders; upload it as one lender's statement."))
            continue
        # payment_receive re-reads the account under lock: an earlier line of this file paying it is seen.
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
    if "empty_rows_from_line" in notes:  # an XLSX whose data ended at a long run of empty rows: say so
        line = notes["empty_rows_from_line"]
        result.issues.append(LineIssue(line, "", _("Reading stopped at line %(line)s: more than %(n)s empty rows "
                                                   "follow it, and rows after them, if any, were not read.")
                                       % {"line": line, "n": settings.PLACEMENT_MAX_EMPTY_ROWS}))
    audit_log(action="finance.payment_file.imported", actor=actor, lender_id=lender.pk if lender else None,
              data={"file": name[:200], "source": source, "lines": result.lines, "recorded": result.recorded,
                    "already_recorded": result.already, "totals": result.totals,
                    "unmatched": [{"line": i.line, "reference": i.reference, "reason": i.reason}
                                  for i in result.issues[:500]], "unmatched_count": len(result.issues)})
    return result
