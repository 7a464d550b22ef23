"""Payment files are read by the placement importer's reader: the same zip-bomb check, GB18030 text and
column / cell / row limits; amounts parsed like placement amounts; accounts looked up for the whole file at
once, not one query per line."""

from __future__ import annotations

import io
import time
import tracemalloc
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import translation
from openpyxl import Workbook
from openpyxl.styles import Font

from cases.models import OverdueAccount, Payment
from compliance.models import AuditEvent
from finance import payment_files
from finance.models import PaymentAllocation
from tests import factories as f
from tests.importers.test_limits import zip_bomb_xlsx

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _english():
    # The messages asserted below are the English ones (zh-hans is the default language).
    with translation.override("en"):
        yield


@pytest.fixture
def world():
    lender = f.lender()
    return {"lender": lender, "user": f.user(role="lender", lender=lender),
            "account": f.account(lender=lender, balance="5000.00")}


def _import(w, content: bytes, name: str = "paid.csv", lender="default"):
    return payment_files.payment_file_import(actor=w["user"], content=content, name=name, source="lender_file",
                                             lender=w["lender"] if lender == "default" else lender)


def _xlsx(rows: list[list]) -> bytes:
    wb = Workbook()
    for row in rows:
        wb.active.append(row)
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def test_an_xlsx_zip_bomb_is_refused_from_the_zip_directory_and_records_nothing(world, client):
    data = zip_bomb_xlsx(600 << 20)  # one shared string of 600 MiB, under 1 MB on disk
    assert len(data) < min(payment_files.MAX_BYTES, 1 << 20)
    tracemalloc.start()
    t0 = time.monotonic()
    with pytest.raises(ValidationError, match="expands to 600 MiB when unpacked; the limit is 512 MiB"):
        _import(world, data, name="bank.xlsx")
    elapsed = time.monotonic() - t0
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    # Nothing was inflated (the old reader loaded the 600 MiB string).
    assert elapsed < 2 and peak < 30 * (1 << 20), (elapsed, peak)

    client.force_login(world["user"])
    r = client.post("/finance/payments/upload/", {"file": SimpleUploadedFile("bank.xlsx", data)},
                    HTTP_ACCEPT_LANGUAGE="en")
    assert r.status_code == 400 and "expands to 600 MiB" in r.content.decode()
    assert not Payment.objects.exists() and not PaymentAllocation.objects.exists()
    assert not AuditEvent.objects.filter(action="finance.payment_file.imported").exists()


def test_an_xlsx_part_compressed_beyond_the_ratio_is_refused(world):
    with pytest.raises(ValidationError, match="compressed .* times; the limit is 200 times"):
        _import(world, zip_bomb_xlsx(8 << 20), name="bank.xlsx")
    assert not Payment.objects.exists()


def test_a_gb18030_only_character_in_a_csv_is_read(world):
    OverdueAccount.objects.filter(pk=world["account"].pk).update(external_ref="REF-𠀀-1")
    content = "账户编号,流水号,金额,交易日期,还款方式\nREF-𠀀-1,TX-€1,100.00,2026-01-05,微信€\n".encode("gb18030")
    with pytest.raises(UnicodeDecodeError):
        content.decode("gbk")  # what the old reader tried: the file was refused whole
    result = _import(world, content)
    assert (result.recorded, result.issues) == (1, [])
    payment = Payment.objects.get()
    assert payment.method == "微信€" and PaymentAllocation.objects.get().external_ref == "TX-€1"


def test_amounts_with_currency_signs_and_excel_float_noise(world):
    ref = world["account"].external_ref
    content = ("account_ref,external_ref,amount,paid_at\n"
               f'{ref},TX-1,"¥1,234.50",2026-01-05\n'
               f"{ref},TX-2,￥20.00,2026-01-05\n"
               f"{ref},TX-3,1e5,2026-01-05\n"
               f"{ref},TX-4,NaN,2026-01-05\n"
               f"{ref},TX-5,1.005,2026-01-05\n").encode()
    result = _import(world, content)
    assert result.recorded == 2 and result.totals == {"CNY": Decimal("1254.50")}
    assert [(i.line, i.reason) for i in result.issues] == [
        (4, "Amount '1e5' is not a number."), (5, "Amount 'NaN' is not a number."),
        (6, "Amount '1.005' must be positive, in whole cents.")]
    assert PaymentAllocation.objects.get(external_ref="TX-1").amount == Decimal("1234.50")
    # An XLSX cell holding 0.1 + 0.2 is 0.30000000000000004: the cent it means, not a refusal.
    result = _import(world, _xlsx([["account_ref", "external_ref", "amount", "paid_at"],
                                   [ref, "TX-6", 0.1 + 0.2, "2026-01-06"]]), name="paid.xlsx")
    assert result.recorded == 1 and PaymentAllocation.objects.get(external_ref="TX-6").amount == Decimal("0.30")


def test_line_numbers_count_blank_and_multi_line_rows(world):
    ref = world["account"].external_ref
    content = ("account_ref,external_ref,amount,paid_at,method\n"
               "\n"
               "  ,  ,  ,  \n"
               f'{ref},TX-1,1.00,2026-01-05,"two\nlines"\n'
               f"NOPE,TX-2,1.00,2026-01-05,\n").encode()
    result = _import(world, content)
    assert result.lines == 2 and [(i.line, i.reference) for i in result.issues] == [(6, "NOPE")]


@pytest.mark.parametrize(("line", "message"), [
    (",".join(["x"] * 300), "Line 3 has 300 columns; the limit is 200."),
    ("R,TX-9,1.00,2026-01-05," + "y" * 20_000, "Line 3 is longer than 10,000 characters"),
], ids=["columns", "cell"])
def test_the_placement_column_and_cell_limits_apply(world, line, message):
    ref = world["account"].external_ref
    content = f"account_ref,external_ref,amount,paid_at,method\n{ref},TX-1,1.00,2026-01-05,\n{line}\n".encode()
    with pytest.raises(ValidationError, match=message):
        _import(world, content)
    assert not Payment.objects.exists()


def test_an_xlsx_whose_data_ends_at_a_long_run_of_empty_rows_says_where_reading_stopped(world, settings):
    settings.PLACEMENT_MAX_EMPTY_ROWS = 50
    wb = Workbook()
    ws = wb.active
    ws.append(["account_ref", "external_ref", "amount", "paid_at"])
    ws.append([world["account"].external_ref, "TX-1", 5, "2026-01-05"])
    for r in range(3, 100):  # formatted, empty: Excel keeps these after a deleted block
        ws.cell(row=r, column=1).font = Font(bold=True)
    ws.cell(row=150, column=1, value="late")
    buf = io.BytesIO()
    wb.save(buf)
    result = _import(world, buf.getvalue(), name="paid.xlsx")
    assert (result.lines, result.recorded) == (1, 1)
    assert [(i.line, i.reason[:30]) for i in result.issues] == [(3, "Reading stopped at line 3: mor")]


def _lookups(queries) -> int:
    """Queries finding accounts by reference (payment_receive's own reads are by primary key)."""
    return sum(1 for q in queries
               if 'FROM "cases_overdueaccount"' in q["sql"]
               and '"cases_overdueaccount"."external_ref"' in q["sql"].split(" WHERE ", 1)[-1])


@pytest.mark.parametrize("scoped", [True, False])
def test_accounts_are_looked_up_for_the_whole_file_not_per_line(scoped, monkeypatch):
    lender = f.lender()
    user = f.user(role="supervisor")
    accounts = [f.account(lender=lender, balance="100.00") for _ in range(55)]
    other = f.account(lender=f.lender(), balance="100.00")
    OverdueAccount.objects.filter(pk=other.pk).update(external_ref=accounts[0].external_ref)
    # Queries run by payment_receive (its cost per line is its own) and all the others.
    counts = {"receive": 0, "other": 0}
    receiving = [False]
    real_receive = payment_files.payment_receive

    def receive(**kwargs):
        receiving[0] = True
        try:
            return real_receive(**kwargs)
        finally:
            receiving[0] = False

    def count(execute, sql, params, many, context):
        counts["receive" if receiving[0] else "other"] += 1
        return execute(sql, params, many, context)

    monkeypatch.setattr(payment_files, "payment_receive", receive)

    def run(first: int, n: int):
        body = "account_ref,external_ref,amount,paid_at\n" + "".join(
            f"{a.external_ref},TX-{first + i},1.00,2026-01-05\n" for i, a in enumerate(accounts[first:first + n]))
        counts.update(receive=0, other=0)
        with connection.execute_wrapper(count), CaptureQueriesContext(connection) as ctx:
            result = payment_files.payment_file_import(actor=user, content=body.encode(), name="bank.csv",
                                                       lender=lender if scoped else None, source="bank_file")
        return result, ctx.captured_queries, counts["other"]

    run(0, 0)  # a header-only file: the audit chain's first event costs a few queries more
    few, few_queries, few_other = run(0, 5)
    many, many_queries, many_other = run(5, 50)
    assert (few.lines, many.lines, many.recorded) == (5, 50, 50)
    # Scoped to the lender, the reference is the lender's account; any lender's, it is ambiguous.
    assert few.recorded == (5 if scoped else 4)
    assert [(i.line, "several lenders" in i.reason) for i in few.issues] == ([] if scoped else [(2, True)])
    assert _lookups(few_queries) == _lookups(many_queries) == 1
    # Ten times the lines: only payment_receive's queries grow.
    assert few_other == many_other, (few_other, many_other)

    # The largest files are looked up in chunks (here 20 references a query; the replay records nothing).
    monkeypatch.setattr(payment_files, "LOOKUP_CHUNK", 20)
    again, again_queries, _other = run(5, 50)
    assert (again.recorded, again.already) == (0, 50) and _lookups(again_queries) == 3
