"""Reading and validating placement files: encodings, XLSX, header aliases, per-row checks. No database."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from django.utils import translation

from cases.importers.columns import resolve_header
from cases.importers.reader import FileFormatError, iter_rows, sniff
from cases.importers.selectors import csv_safe
from cases.importers.validation import RowValidator, normalise_phone, parse_amount, parse_date, valid_ric

from .conftest import FIXTURES


def read(name: str, encoding: str = ""):
    with open(FIXTURES / name, "rb") as fh:
        sniffed = sniff(fh, encoding=encoding)
        rows = list(iter_rows(fh, sniffed))
    return sniffed, rows


@pytest.mark.parametrize(("name", "kind", "encoding"), [
    ("placements_utf8.csv", "csv", "utf-8"),
    ("placements_bom.csv", "csv", "utf-8-sig"),
    ("placements_gbk.csv", "csv", "gb18030"),
    ("placements.xlsx", "xlsx", ""),
])
def test_format_and_encoding_detected(name, kind, encoding):
    sniffed, rows = read(name)
    assert (sniffed.kind, sniffed.encoding) == (kind, encoding)
    assert sniffed.estimated_rows == len(rows) - 1
    header = resolve_header(rows[0][1])
    assert header.missing == [] and header.duplicates == []


def test_gbk_and_bom_decode_to_the_same_chinese_text():
    _s, gbk = read("placements_gbk.csv")
    _s, bom = read("placements_bom.csv")
    assert gbk == bom
    assert gbk[0][1][:2] == ["合同编号", "借款人姓名"]  # no BOM left on the first header
    assert gbk[1][1][1] == "赵六"


def test_wrong_chosen_encoding_is_a_clear_error():
    with (translation.override("en"), open(FIXTURES / "placements_gbk.csv", "rb") as fh,
          pytest.raises(FileFormatError, match="not valid utf-8")):
        list(iter_rows(fh, sniff(fh, encoding="utf-8")))


def test_broken_xlsx_is_rejected():
    with open(FIXTURES / "broken.xlsx", "rb") as fh, pytest.raises(FileFormatError, match="XLSX"):
        sniff(fh)


def test_chinese_aliases_and_lender_mapping():
    header = resolve_header(["合同编号", "借款人姓名", "身份证号", "手机号", "备用手机号", "逾期金额", "到期日", "Remarks"])
    keys = [k for _i, k, _h in header.positions]
    assert keys == ["external_ref", "borrower_name", "national_id", "phones", "phones", "balance", "due_date"]
    assert header.ignored == ["Remarks"]
    own = resolve_header(["LoanKey", "Client", "Mobile", "Owed", "Deadline"],
                         mapping={"loankey": "external_ref", "Client": "borrower_name", "Mobile": "phones",
                                  "Owed": "balance", "Deadline": "due_date"})
    assert own.missing == []
    assert resolve_header(["external_ref", "phones"]).missing == ["borrower_name", "balance", "due_date"]


def validate_file(name: str):
    _s, rows = read(name)
    header = resolve_header(rows[0][1])
    v = RowValidator(positions=header.positions, kind="placement", default_jurisdiction="CN", today=date(2025, 6, 1))
    with translation.override("en"):
        return [(line, *v(line, values)) for line, values in rows[1:]]


def test_each_broken_row_has_its_line_column_and_reason():
    results = validate_file("placements_broken.csv")
    errors = {line: errs for line, clean, errs in results if errs}
    assert sorted(errors) == [3, 4, 5, 6, 7, 8]  # line 9 (duplicate ref) is caught when staging, see test_apply
    assert errors[3] == [("due_date", "Not a valid date (use YYYY-MM-DD, YYYY/MM/DD or YYYYMMDD).")]
    assert errors[4] == [("balance", "Amount cannot be negative.")]
    assert errors[5] == [("principal", "Not a number.")]
    assert errors[6][0][0] == "national_id" and "check digit" in errors[6][0][1]
    assert errors[7][0][0] == "phones" and "Invalid phone" in errors[7][0][1]
    assert errors[8][0][0] == "currency" and "Unknown currency" in errors[8][0][1]


def test_clean_rows_are_typed():
    results = validate_file("placements_utf8.csv")
    clean = {c.external_ref: c for _l, c, _e in results if c}
    assert set(clean) == {"U-001", "U-002", "U-003", "U-004"}
    assert clean["U-002"].phones == ["13800138000"] and clean["U-002"].due_date == date(2025, 2, 1)
    assert clean["U-001"].borrower_key == clean["U-002"].borrower_key  # same national ID
    assert clean["U-003"].phones == ["13912345678", "13700001111"] and clean["U-003"].due_date == date(2025, 3, 1)
    assert clean["U-004"].phones == ["+12125550100"] and clean["U-004"].currency == "USD"
    assert clean["U-001"].balance == Decimal("8000.50") and clean["U-001"].days_past_due == 137
    assert clean["U-001"].bucket == "M5"
    assert [e for _l, c, e in results if not c] == [[("balance", "Not a number.")]]  # the =HYPERLINK cell


def test_xlsx_cells_dates_serials_and_numbers():
    results = validate_file("placements.xlsx")
    clean = {c.external_ref: c for _l, c, _e in results if c}
    assert clean["X-001"].due_date == date(2024, 3, 5) and clean["X-001"].balance == Decimal("15000.00")
    assert clean["X-002"].due_date == date(2024, 6, 30)  # Excel serial 45473
    assert clean["X-002"].phones == ["13600000002"]  # a number cell
    assert clean["X-002"].last_payment_date == date(2024, 5, 30)
    assert [(line, errs[0][0]) for line, c, errs in results if not c] == [(4, "逾期金额")]


@pytest.mark.parametrize(("raw", "expected"), [
    ("2025-01-31", date(2025, 1, 31)), ("2025/1/5", date(2025, 1, 5)), ("20250131", date(2025, 1, 31)),
    ("2025年1月5日", date(2025, 1, 5)), ("2025-01-31 00:00:00", date(2025, 1, 31)), (45473, date(2024, 6, 30)),
    ("2025-02-30", None), ("31/01/2025", None), ("", None), ("abc", None),
])
def test_parse_date(raw, expected):
    assert parse_date(raw) == expected


def test_amounts_ids_phones_and_formula_safety():
    assert parse_amount("1,234.50") == Decimal("1234.50") and parse_amount(0.1 + 0.2) == Decimal("0.30")
    assert parse_amount("1" + "0" * 400) is not None and parse_amount("NaN") is None and parse_amount("x") is None
    assert valid_ric("11010519491231002X") is False and valid_ric("110105194912310021") is False
    assert valid_ric("110105194912310022") is True and valid_ric("110105194913310022") is False  # month 13
    assert normalise_phone("+86 139-1234-5678") == "13912345678" and normalise_phone("8613912345678") == "13912345678"
    assert normalise_phone("0044 20 7946 0958") == "+442079460958" and normalise_phone("12912345678") is None
    assert [csv_safe(v) for v in ("=1+1", "+86", "-3", "@SUM", "\tx", "ok", None, 5)] == \
        ["'=1+1", "'+86", "'-3", "'@SUM", "'\tx", "ok", "", "5"]


def test_huge_or_too_precise_amounts_are_row_errors_not_crashes():
    header = resolve_header(["external_ref", "borrower_name", "phones", "balance", "due_date"])
    v = RowValidator(positions=header.positions, kind="placement", default_jurisdiction="CN", today=date(2025, 6, 1))
    with translation.override("en"):
        assert v(2, ["R1", "A", "13800000000", "1" + "0" * 400, "2025-01-01"])[1] == [("balance", "Amount is too large.")]
        assert v(3, ["R2", "A", "13800000000", "1.005", "2025-01-01"])[1] == [("balance", "Amount has more than two decimals.")]
        assert v(4, ["R3", "A", "", "1", "2025-01-01"])[1][0][1].startswith("Give a national ID or a phone")


@pytest.mark.parametrize("raw", ["1e9", "1E9", "2.5e3", "1e-2", "1_000", "Infinity", "NaN", "0x10", "١٢"])
def test_amounts_must_be_written_in_decimal_notation(raw):
    header = resolve_header(["external_ref", "borrower_name", "phones", "balance", "due_date"])
    v = RowValidator(positions=header.positions, kind="placement", default_jurisdiction="CN", today=date(2025, 6, 1))
    with translation.override("en"):
        clean, errors = v(2, ["R1", "A", "13800000000", raw, "2025-01-01"])
    assert clean is None and len(errors) == 1 and errors[0][0] == "balance"
    if "e" in raw.lower() and raw[0].isdigit():
        assert "decimal notation" in errors[0][1]
    # Still accepted: plain decimals with separators and currency signs, and XLSX number cells.
    assert parse_amount("¥1,000,000,000.00") == Decimal("1000000000.00") and parse_amount(1e9) == Decimal("1000000000.00")


def test_a_phone_cell_of_separators_only_gives_no_phone():
    header = resolve_header(["external_ref", "borrower_name", "phones", "balance", "due_date"])
    v = RowValidator(positions=header.positions, kind="placement", default_jurisdiction="CN", today=date(2025, 6, 1))
    with translation.override("en"):
        for cell in ("/", "、", " ; / "):
            clean, errors = v(2, ["R1", "A", cell, "1", "2025-01-01"])
            assert clean is None and [c for c, _r in errors] == ["phones"]
            assert errors[0][1].startswith("Give a national ID or a phone")
        # A bad number is reported as such, not twice.
        assert v(3, ["R2", "A", "12345", "1", "2025-01-01"])[1] == [
            ("phones", "Invalid phone number: use a mainland mobile (1xxxxxxxxxx, +86 allowed) or E.164 (+…).")]
        assert v(4, ["R3", "A", "13800000000/", "1", "2025-01-01"])[0].phones == ["13800000000"]


def test_nul_characters_and_control_characters_in_emails_are_row_errors():
    header = resolve_header(["external_ref", "borrower_name", "phones", "email", "address", "balance", "due_date", "memo"])
    v = RowValidator(positions=header.positions, kind="placement", default_jurisdiction="CN", today=date(2025, 6, 1))
    ok = ["R1", "A", "13800000000", "a@example.com", "x", "1", "2025-01-01", ""]
    with translation.override("en"):
        nul = "Contains a NUL (zero) character, which cannot be stored; remove it."
        assert v(2, ["R1", "A\x00", *ok[2:4], "x\x00y", *ok[5:]]) == (None, [("borrower_name", nul), ("address", nul)])
        assert v(3, ["R\x00", *ok[1:]])[1] == [("external_ref", nul)]
        for email in ("a\x01b@example.com", "a@exa\x1fmple.com", "a@example.c\x00m"):
            clean, errors = v(4, [*ok[:3], email, *ok[4:]])
            assert clean is None and errors[0][0] == "email"
        assert v(5, [*ok[:-1], "memo\x00"])[0] is not None  # an ignored column is not stored
        assert v(6, ok)[0].email == "a@example.com"
    recall = resolve_header(["external_ref", "reason"], kind="recall")
    r = RowValidator(positions=recall.positions, kind="recall", default_jurisdiction="CN", today=date(2025, 6, 1))
    with translation.override("en"):
        assert r(2, ["R1", "sold\x00"]) == (None, [("reason", nul)])
