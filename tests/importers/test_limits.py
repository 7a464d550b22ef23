"""Hostile and broken files: zip bombs, sheets that claim millions of rows, huge lines, unclosed
quotes, too many rows or columns, slow reads. Each fails its batch with a clear, translated message
naming the line, never with a raw database error, and never leaves it processing."""

from __future__ import annotations

import io
import re
import time
import tracemalloc
import zipfile

import pytest
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import translation

from cases.importers.reader import FileLimitError, Limits, iter_rows, sniff
from cases.importers.services import placement_batch_create, placement_batch_process
from cases.models import OverdueAccount
from tests import factories as f

HEADER = "external_ref,borrower_name,phones,balance,due_date\n"


def row(n: int) -> str:
    return f"R-{n},Name {n},139{n:08d},100.00,2025-01-01\n"


@pytest.fixture(autouse=True)
def _english():
    # The messages asserted below are the English ones (zh-hans is the default language).
    with translation.override("en"):
        yield


@pytest.fixture
def lender_user(db):
    return f.user(role="lender", lender=f.lender())


def process(user, name: str, data: bytes, language: str = "en"):
    batch = placement_batch_create(actor=user, file=SimpleUploadedFile(name, data), language=language)
    return placement_batch_process(batch_id=batch.pk)


def xlsx(extra_rows: str = "", dimension: str = "") -> bytes:
    """A real workbook (openpyxl) with a header and two rows; ``extra_rows`` is sheet XML appended
    to its rows, ``dimension`` replaces the range the sheet claims."""
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    ws.append(["external_ref", "borrower_name", "phones", "balance", "due_date"])
    ws.append(["X-1", "A", "13900000001", 10, "2025-01-01"])
    ws.append(["X-2", "B", "13900000002", 20, "2025-01-01"])
    buf = io.BytesIO()
    wb.save(buf)
    src = zipfile.ZipFile(io.BytesIO(buf.getvalue()))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for item in src.infolist():
            data = src.read(item.filename)
            if item.filename == "xl/worksheets/sheet1.xml":
                text = data.decode()
                text = text.replace("</sheetData>", extra_rows + "</sheetData>")
                if dimension:
                    text = re.sub(r'<dimension ref="A1:E3"\s*/>', f'<dimension ref="{dimension}"/>', text)
                    assert dimension in text
                data = text.encode()
            dst.writestr(item, data)
    return out.getvalue()


def zip_bomb_xlsx(cell_bytes: int) -> bytes:
    """A workbook whose one shared string unpacks to ``cell_bytes`` (written in 1 MiB pieces: the
    test never holds it in memory either)."""
    base = zipfile.ZipFile(io.BytesIO(xlsx()))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as dst:
        for item in base.infolist():
            if item.filename != "xl/sharedStrings.xml":
                dst.writestr(item.filename, base.read(item.filename))
        with dst.open("xl/sharedStrings.xml", "w", force_zip64=True) as fh:
            fh.write(b'<sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" count="1" '
                     b'uniqueCount="1"><si><t>')
            piece = b"A" * (1 << 20)
            for _ in range(cell_bytes >> 20):
                fh.write(piece)
            fh.write(b"</t></si></sst>")
    return out.getvalue()


def test_a_1gib_cell_in_a_small_xlsx_is_refused_from_the_zip_directory(lender_user):
    data = zip_bomb_xlsx(1 << 30)
    assert len(data) < 2 * (1 << 20)  # about 1 MB on disk
    tracemalloc.start()
    t0 = time.monotonic()
    with pytest.raises(FileLimitError, match="expands to 1,024 MiB"):
        sniff(io.BytesIO(data))
    elapsed = time.monotonic() - t0
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    # Nothing was inflated: no time, no memory.
    assert elapsed < 1 and peak < 20 * (1 << 20), (elapsed, peak)
    batch = process(lender_user, "bomb.xlsx", data)
    assert batch.state == "failed" and "expands to 1,024 MiB" in batch.error_message and "limit" in batch.error_message
    assert OverdueAccount.objects.count() == 0


def test_a_member_compressed_beyond_the_ratio_is_refused(settings):
    data = zip_bomb_xlsx(8 << 20)  # 8 MiB of one letter: under the size limit, far over the ratio
    with pytest.raises(FileLimitError, match="compressed .* times"):
        sniff(io.BytesIO(data))
    settings.PLACEMENT_XLSX_MAX_RATIO = 100_000
    assert sniff(io.BytesIO(data)).kind == "xlsx"


def test_a_sheet_claiming_20m_rows_is_read_in_no_time(lender_user):
    # The dimension claims 20M rows and one formatted empty cell sits on row 20,000,000: openpyxl's
    # iter_rows would make up ~20M empty rows in between (minutes at 0 rows read).
    data = xlsx('<row r="20000000"><c r="A20000000" s="0"/></row>', dimension="A1:E20000000")
    with open_bytes(data) as fh:
        sniffed = sniff(fh)
        t0 = time.monotonic()
        rows = list(iter_rows(fh, sniffed))
    assert time.monotonic() - t0 < 2
    assert [line for line, _v in rows] == [1, 2, 3]
    assert sniffed.estimated_rows == 2_000_000  # the claim, capped at PLACEMENT_MAX_ROWS
    batch = process(lender_user, "claims.xlsx", data)
    assert (batch.state, batch.created_count, batch.total_rows) == ("applied", 2, 2)


def test_a_long_run_of_empty_rows_ends_the_data_and_the_batch_says_so(lender_user, settings):
    settings.PLACEMENT_MAX_EMPTY_ROWS = 100
    empty = "".join(f'<row r="{n}"><c r="A{n}" s="0"/></row>' for n in range(4, 200))
    data = xlsx(empty + '<row r="300"><c r="A300" t="inlineStr"><is><t>late</t></is></c></row>')
    notes: dict = {}
    with open_bytes(data) as fh:
        rows = list(iter_rows(fh, sniff(fh), notes=notes))
    assert [line for line, _v in rows] == [1, 2, 3] and notes == {"empty_rows_from_line": 4}
    batch = process(lender_user, "formatted.xlsx", data)
    assert (batch.state, batch.created_count, batch.report["empty_rows_from_line"]) == ("applied", 2, 4)
    assert "Reading stopped at line 4: more than 100 empty rows follow it" in batch.error_message


def open_bytes(data: bytes) -> io.BytesIO:
    return io.BytesIO(data)


def test_too_many_rows_fails_the_batch_with_the_limit(lender_user, settings):
    settings.PLACEMENT_MAX_ROWS = 3
    batch = process(lender_user, "many.csv", (HEADER + "".join(row(n) for n in range(5))).encode())
    assert batch.state == "failed" and "more than 3 rows (line 5)" in batch.error_message
    assert OverdueAccount.objects.count() == 0


def test_too_many_columns_names_the_line(lender_user):
    data = HEADER + row(1) + ",".join(["x"] * 300) + "\n" + row(2)
    batch = process(lender_user, "wide.csv", data.encode())
    assert batch.state == "failed" and "Line 3 has 300 columns; the limit is 200." in batch.error_message


def test_a_30mb_single_line_csv_is_a_line_error_not_a_database_error(lender_user):
    data = (HEADER + "R-1,Huge," + "9" * (30 << 20) + ",1,2025-01-01\n").encode()
    batch = process(lender_user, "one-line.csv", data)
    assert batch.state == "failed"
    assert "Line 2 is longer than 10,000 characters" in batch.error_message
    assert "COPY" not in batch.error_message and "Error" not in batch.error_message
    zh = process(lender_user, "one-line-zh.csv", data + b"\n", language="zh-hans")
    assert zh.state == "failed" and "第 2 行" in zh.error_message


@pytest.mark.parametrize(("tail_rows", "expected_span"), [(40, 41), (2, 3)])
def test_an_unclosed_quote_is_reported_where_it_opened(lender_user, tail_rows, expected_span):
    # Long after the quote (a run over the line limit), or up to the end of the file.
    lines = [HEADER, row(1), 'R-2,"Open quote,13900000002,5,2025-01-01\n'] + [row(n) for n in range(3, 3 + tail_rows)]
    batch = process(lender_user, "quote.csv", "".join(lines).encode())
    assert batch.state == "failed"
    assert "Line 3: a quote (\") opened on this line is not closed" in batch.error_message
    assert f"runs over {expected_span} lines" in batch.error_message


def test_a_closed_multiline_quote_is_still_one_row():
    data = (HEADER + 'R-1,"Name\nsecond line",13900000001,5,2025-01-01\n' + row(2)).encode()
    with open_bytes(data) as fh:
        rows = list(iter_rows(fh, sniff(fh)))
    assert [line for line, _v in rows] == [1, 2, 4] and rows[1][1][1] == "Name\nsecond line"


def test_the_wall_time_limit_stops_a_slow_read(lender_user):
    data = (HEADER + "".join(row(n) for n in range(1100))).encode()
    limits = Limits.current()
    stopped = Limits(**{**limits.__dict__, "seconds": 0})
    with open_bytes(data) as fh, pytest.raises(FileLimitError, match="longer than 0 seconds"):
        list(iter_rows(fh, sniff(fh), limits=stopped))


def test_the_wall_time_limit_fails_the_batch(lender_user, settings):
    settings.PLACEMENT_MAX_READ_SECONDS = 0
    batch = process(lender_user, "slow.csv", (HEADER + "".join(row(n) for n in range(1100))).encode())
    assert batch.state == "failed" and "took longer than 0 seconds" in batch.error_message


def test_a_file_over_the_size_limit_is_refused_at_upload(lender_user, settings, client):
    settings.PLACEMENT_MAX_FILE_BYTES = 1_000_000
    with pytest.raises(ValidationError, match="larger than 1 MB"):
        placement_batch_create(actor=lender_user, file=SimpleUploadedFile("big.csv", b"x" * 1_000_001))
    from rest_framework.test import APIClient

    api = APIClient()
    api.force_authenticate(lender_user)
    r = api.post("/api/v1/placements/", {"file": SimpleUploadedFile("big.csv", b"x" * 1_000_001)}, format="multipart",
                 HTTP_ACCEPT_LANGUAGE="en")
    assert r.status_code == 400 and "larger than" in str(r.content.decode())
