"""Per-row validation of placement and recall rows. Pure Python, no database.

Written for speed (a million rows per import): compiled regexes, ``date.fromisoformat``,
and the Chinese resident-ID checksum from python-stdnum without its slow region-table lookup.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from functools import lru_cache
from operator import itemgetter

from django.utils.translation import gettext as _
from stdnum.cn import ric

from cases.models import CURRENCIES, JURISDICTIONS
from cases.services import bucket_for

CURRENCY_CODES = frozenset(c for c, _label in CURRENCIES)
JURISDICTION_CODES = frozenset(c for c, _label in JURISDICTIONS)
MAX_AMOUNT = Decimal("999999999999.99")  # max_digits=14, decimal_places=2
CENT = Decimal("0.01")
EXCEL_EPOCH = date(1899, 12, 30)

_CN_MOBILE = re.compile(r"(?:\+?86)?(1[3-9]\d{9})")
_E164 = re.compile(r"\+[1-9]\d{6,14}")
_PHONE_SPLIT = re.compile(r"[;,/|，；、]+")
# The apostrophe: a formula-safe export (our error file) writes "'+86…"; uploaded again, it is not part of the number.
_PHONE_STRIP = re.compile(r"[\s\-().']")
_DATE_SEP = re.compile(r"(\d{4})[-/.年](\d{1,2})[-/.月](\d{1,2})日?")
# No control characters: the address goes into a JSON array as is (and NUL into no PostgreSQL text).
_EMAIL = re.compile(r"[^@\s\x00-\x1f]+@[^@\s\x00-\x1f]+\.[^@\s\x00-\x1f]+")
_AMOUNT_STRIP = str.maketrans("", "", ", ¥￥$")
# Decimal notation only: Decimal() also takes "1e9", "1_000", "NaN" and "Infinity", which a lender's
# system did not mean as amounts.
_DECIMAL = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")
# The single-valued columns, in the order RowValidator reads them (phones may repeat: read apart).
_KEYS = ("external_ref", "reason", "borrower_name", "national_id", "email", "address", "region", "time_zone",
         "jurisdiction", "product", "principal", "balance", "currency", "due_date", "last_payment_date",
         "interest", "fees", "costs")


@lru_cache(maxsize=1)
def _zones() -> frozenset[str]:
    import zoneinfo

    return frozenset(zoneinfo.available_timezones())


def _text(value: object) -> str:
    if type(value) is str:  # the common case first: this runs for every cell
        return value.strip()
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # an XLSX number cell holding an ID or phone
    return str(value).strip()


def parse_date(value: object) -> date | None:
    """YYYY-MM-DD, YYYY/MM/DD (also unpadded, as Chinese Excel writes), YYYYMMDD, or an Excel serial."""
    if type(value) is str and len(value) == 10 and value[4] == "-":
        try:
            return date.fromisoformat(value)
        except ValueError:
            return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        if 1 <= value < 100000:  # Excel serial day number (1900 date system)
            return EXCEL_EPOCH + timedelta(days=int(value))
        value = str(int(value))
    text = str(value).strip().split(" ", 1)[0].split("T", 1)[0]
    try:
        if len(text) == 10 and text[4] == "-":
            return date.fromisoformat(text)
        if len(text) == 8 and text.isdigit():
            return date(int(text[:4]), int(text[4:6]), int(text[6:]))
        m = _DATE_SEP.fullmatch(text)
        if m:
            return date(int(m[1]), int(m[2]), int(m[3]))
    except ValueError:
        return None
    return None


def parse_amount(value: object) -> Decimal | None:
    """A Decimal, or None when not a number in decimal notation (sign, size and decimals are checked
    by the caller)."""
    if type(value) is str and _DECIMAL.fullmatch(value):
        return Decimal(value)
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        # XLSX numbers are binary floats: round to the cent rather than reject 0.30000000000000004.
        try:
            return Decimal(repr(value)).quantize(CENT, rounding=ROUND_HALF_UP)
        except InvalidOperation:
            return None
    text = str(value).strip().translate(_AMOUNT_STRIP)
    if not _DECIMAL.fullmatch(text):
        return None
    return Decimal(text)


def valid_ric(number: str) -> bool:
    """Chinese resident ID (18 characters): digits, a real birth date and the ISO 7064 check digit."""
    if len(number) != 18 or not number[:17].isdigit():
        return False
    try:
        date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
    except ValueError:
        return False
    return ric.calc_check_digit(number[:17]) == number[17].upper()


def normalise_phone(raw: str) -> str | None:
    """Mainland mobiles as 11 digits (+86 / 86 prefix dropped), other numbers as E.164; None if neither."""
    if len(raw) == 11 and raw[0] == "1" and raw[1] in "3456789" and raw.isdigit():
        return raw
    compact = _PHONE_STRIP.sub("", raw)
    m = _CN_MOBILE.fullmatch(compact)
    if m:
        return m[1]
    if compact.startswith("00"):
        compact = "+" + compact[2:]
    if _E164.fullmatch(compact) and not compact.startswith("+86"):
        return compact
    return None


@dataclass
class CleanRow:
    line: int
    external_ref: str
    borrower_name: str = ""
    national_id: str = ""
    phones: list[str] = field(default_factory=list)
    email: str = ""
    address: str = ""
    region: str = ""
    time_zone: str = ""
    jurisdiction: str = ""
    product: str = ""
    principal: Decimal | None = None
    balance: Decimal | None = None
    currency: str = "CNY"
    due_date: date | None = None
    last_payment_date: date | None = None
    days_past_due: int = 0
    bucket: str = "M0"
    reason: str = ""
    # Balance parts given by the file ({"interest", "fees", "costs"} as text); None when the file has none.
    parts: dict | None = None

    @property
    def borrower_key(self) -> str:
        """Same borrower = same national ID, else same first phone and name."""
        if self.national_id:
            return "id:" + self.national_id
        return "pn:" + (self.phones[0] if self.phones else "") + "|" + self.borrower_name


class RowValidator:
    """Turns one row's raw values into a CleanRow or a list of (column, reason) errors."""

    def __init__(self, *, positions: list[tuple[int, str, str]], kind: str, default_jurisdiction: str, today: date):
        self.positions = positions
        self.kind = kind
        self.default_jurisdiction = default_jurisdiction
        self.today = today
        self.headers = {}
        for _i, key, header in positions:
            self.headers.setdefault(key, header)
        self.phone_ix = [i for i, key, _h in positions if key == "phones"]
        # Each column read by index (no dict per row); a column the file lacks reads the None slot
        # appended after the row's values.
        self.width = max((i for i, _k, _h in positions), default=-1) + 1
        self.ix: dict[str, int] = {}
        for i, key, _h in positions:
            if key != "phones":
                self.ix[key] = i  # one column per key: resolve_header drops a repeated one (a header error)
        self._pad = [None] * (self.width + 1)
        self._get = itemgetter(*(self.ix.get(k, self.width) for k in _KEYS))

    def __call__(self, line: int, values: list) -> tuple[CleanRow | None, list[tuple[str, str]]]:
        n, w = len(values), self.width
        row_values = values[:w] + self._pad[n:] if n <= w else values[:w] + self._pad[w:]
        (v_ref, v_reason, v_name, v_nid, v_email, v_address, v_region, v_tz, v_jur, v_product, v_principal,
         v_balance, v_ccy, v_due, v_lpd, v_interest, v_fees, v_costs) = self._get(row_values)
        errors: list[tuple[str, str]] = []
        h = self.headers
        # NUL cannot be stored in PostgreSQL text (one would fail the COPY of the whole file). One join
        # and one search per row: CSV rows are all text; an XLSX row with numbers or dates raises.
        try:
            nul = "\x00" in "".join(values)
        except TypeError:
            nul = any(type(v) is str and "\x00" in v for v in values)
        if nul:
            errors = self._nul_errors(values)
            if errors:
                return None, errors
        phones_raw = [t for t in (_text(values[i]) for i in self.phone_ix if i < n) if t]
        ref = _text(v_ref)
        if not ref:
            errors.append((h["external_ref"], _("External reference is empty.")))
        elif len(ref) > 64:
            errors.append((h["external_ref"], _("External reference is longer than 64 characters.")))
        row = CleanRow(line=line, external_ref=ref)
        if self.kind == "recall":
            row.reason = _text(v_reason)[:500]
            return (None, errors) if errors else (row, errors)

        row.borrower_name = _text(v_name)
        if not row.borrower_name:
            errors.append((h["borrower_name"], _("Borrower name is empty.")))
        elif len(row.borrower_name) > 200:
            errors.append((h["borrower_name"], _("Borrower name is longer than 200 characters.")))

        nid = _text(v_nid).replace(" ", "").upper()
        if nid:
            if valid_ric(nid):
                row.national_id = nid
            else:
                errors.append((h["national_id"], _("Invalid Chinese resident ID (length, birth date or check digit).")))

        bad_phone = False
        for chunk in phones_raw:
            for part in _PHONE_SPLIT.split(chunk):
                part = part.strip()
                if not part:
                    continue
                phone = normalise_phone(part)
                if phone is None:
                    bad_phone = True
                    errors.append((h["phones"], _("Invalid phone number: use a mainland mobile (1xxxxxxxxxx, +86 allowed) or E.164 (+…).")))
                elif phone not in row.phones:
                    row.phones.append(phone)
        # The phones read, not the cell: "/" or "、" alone gives none. A bad number is reported already.
        if not nid and not row.phones and not bad_phone:
            errors.append((h.get("national_id") or h.get("phones") or h["borrower_name"],
                           _("Give a national ID or a phone number to identify the borrower.")))

        email = _text(v_email)
        if email:
            if _EMAIL.fullmatch(email) and len(email) <= 254:
                row.email = email
            else:
                errors.append((h["email"], _("Invalid email address.")))
        row.address = _text(v_address)
        row.region = _text(v_region)[:100]
        tz = _text(v_tz)
        if tz:
            if tz in _zones():
                row.time_zone = tz
            else:
                errors.append((h["time_zone"], _("Unknown time zone (use an IANA name such as Asia/Shanghai).")))
        jur = _text(v_jur).upper()
        if jur and jur not in JURISDICTION_CODES:
            errors.append((h["jurisdiction"], _("Unknown jurisdiction.")))
        row.jurisdiction = jur or self.default_jurisdiction
        row.product = _text(v_product)[:100]

        parts: dict[str, Decimal] = {}
        for key, value in (("principal", v_principal), ("balance", v_balance), ("interest", v_interest),
                           ("fees", v_fees), ("costs", v_costs)):
            if value is None or _text(value) == "":
                if key == "balance":
                    errors.append((h["balance"], _("Outstanding balance is empty.")))
                continue
            amount = parse_amount(value)
            if amount is None:
                text = _text(value).lower()
                errors.append((h[key], _("Use decimal notation (e.g. 1000000.00), not exponent notation.")
                               if "e" in text and any(c.isdigit() for c in text) else _("Not a number.")))
            elif amount < 0:
                errors.append((h[key], _("Amount cannot be negative.")))
            elif amount > MAX_AMOUNT:
                errors.append((h[key], _("Amount is too large.")))
            elif amount != amount.quantize(CENT):
                errors.append((h[key], _("Amount has more than two decimals.")))
            elif key in ("interest", "fees", "costs"):
                parts[key] = amount.quantize(CENT)
            else:
                setattr(row, key, amount)
        if parts and row.balance is not None:
            if sum(parts.values()) > row.balance:
                errors.append((h[next(iter(parts))], _("Interest, fees and costs add up to more than the outstanding balance.")))
            else:
                row.parts = {k: str(parts.get(k, Decimal("0.00"))) for k in ("interest", "fees", "costs")}

        ccy = _text(v_ccy).upper()
        if ccy:
            if ccy in CURRENCY_CODES:
                row.currency = ccy
            else:
                errors.append((h["currency"], _("Unknown currency (use one of %(codes)s).") % {"codes": ", ".join(sorted(CURRENCY_CODES))}))

        for key, value in (("due_date", v_due), ("last_payment_date", v_lpd)):
            if value is None or _text(value) == "":
                if key == "due_date":
                    errors.append((h["due_date"], _("Due date is empty.")))
                continue
            d = parse_date(value)
            if d is None or not (1900 <= d.year <= 2100):
                errors.append((h[key], _("Not a valid date (use YYYY-MM-DD, YYYY/MM/DD or YYYYMMDD).")))
            else:
                setattr(row, key, d)
        if errors:
            return None, errors
        if row.principal is None:
            row.principal = row.balance
        row.days_past_due = max(0, (self.today - row.due_date).days)
        row.bucket = bucket_for(row.days_past_due)
        return row, errors

    def ref_of(self, values: list) -> str:
        """The row's external reference as written (for its error report; only failing rows pay this)."""
        i = self.ix.get("external_ref")
        return _text(values[i]) if i is not None and i < len(values) else ""

    def cells(self, values: list) -> dict[str, str]:
        """The row's values by header as written (phones: each of its columns)."""
        n = len(values)
        return {header: _text(values[i]) for i, _key, header in self.positions if i < n}

    def _nul_errors(self, values: list) -> list[tuple[str, str]]:
        """The row is refused, naming each column read that holds a NUL (ignored columns are not stored)."""
        n = len(values)
        return [(header, _("Contains a NUL (zero) character, which cannot be stored; remove it."))
                for i, _key, header in self.positions if i < n and type(values[i]) is str and "\x00" in values[i]]
