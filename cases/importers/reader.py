"""Streaming readers for uploaded files: CSV in UTF-8 / UTF-8 with BOM / GBK-GB18030, and XLSX.

Memory stays flat whatever the file size: CSV goes through ``csv.reader`` over a decoding text
stream, XLSX through openpyxl's read-only worksheet parser (rows parsed as they are read).

Hostile files are stopped by limits (Django settings ``PLACEMENT_*``, documented in
docs/placement-format.md): an XLSX's zip directory is checked before anything is inflated (total
uncompressed size and compression ratio), and while reading, rows, columns, cell length, lines per
CSV record, runs of empty rows and wall time are bounded. Past a limit ``FileLimitError`` names the
line; the batch then fails with that message.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import io
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO

from django.conf import settings
from django.utils.translation import gettext as _

ENCODINGS = {
    "": "detect",
    "utf-8": "UTF-8",
    "utf-8-sig": "UTF-8 with BOM",
    "gb18030": "GBK / GB18030",
}
CHUNK = 1 << 20


class FileFormatError(ValueError):
    """The file cannot be read at all (not CSV/XLSX, wrong encoding, no header)."""


class FileLimitError(FileFormatError):
    """The file is past one of the PLACEMENT_* limits (its message names the limit and the line)."""


@dataclass(frozen=True)
class Limits:
    """The reading limits, from settings at the time of reading (tests override them)."""

    rows: int
    columns: int
    cell_chars: int
    lines_per_row: int
    empty_rows: int
    seconds: float
    xlsx_uncompressed: int
    xlsx_ratio: int

    @classmethod
    def current(cls) -> Limits:
        return cls(
            rows=settings.PLACEMENT_MAX_ROWS, columns=settings.PLACEMENT_MAX_COLUMNS,
            cell_chars=settings.PLACEMENT_MAX_CELL_CHARS, lines_per_row=settings.PLACEMENT_MAX_LINES_PER_ROW,
            empty_rows=settings.PLACEMENT_MAX_EMPTY_ROWS, seconds=settings.PLACEMENT_MAX_READ_SECONDS,
            xlsx_uncompressed=settings.PLACEMENT_XLSX_MAX_UNCOMPRESSED_BYTES,
            xlsx_ratio=settings.PLACEMENT_XLSX_MAX_RATIO,
        )


def _mib(n: int) -> str:
    return f"{n / (1 << 20):,.0f} MiB"


def check_xlsx_archive(fh: IO[bytes], limits: Limits) -> None:
    """Refuse a zip bomb from its central directory alone, before any member is inflated. The
    declared sizes are what ``zipfile`` will inflate at most (it stops a member at its declared
    size), so bounding them bounds the work."""
    try:
        with zipfile.ZipFile(fh) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise FileFormatError(_("not a readable XLSX workbook (%(why)s)") % {"why": exc.__class__.__name__}) from exc
    finally:
        fh.seek(0)
    total = sum(m.file_size for m in members)
    if total > limits.xlsx_uncompressed:
        raise FileLimitError(
            _("The workbook expands to %(size)s when unpacked; the limit is %(limit)s. Save it as CSV or split it.")
            % {"size": _mib(total), "limit": _mib(limits.xlsx_uncompressed)})
    for m in members:
        # Real spreadsheets compress about 5-20 times; a member packed far tighter is built to explode.
        if m.file_size > (1 << 20) and m.file_size > limits.xlsx_ratio * max(1, m.compress_size):
            raise FileLimitError(
                _("The workbook part %(name)s is compressed %(ratio)s times; the limit is %(limit)s times. "
                  "Save the file as CSV or remove the empty formatted rows.")
                % {"name": m.filename[:100], "ratio": m.file_size // max(1, m.compress_size), "limit": limits.xlsx_ratio})


class _Watch:
    """Row, column, cell and wall-time limits while reading. The readers test the cheap conditions
    inline (a million rows per file) and call ``row`` when one trips, and every 1,024 rows for the clock."""

    def __init__(self, limits: Limits):
        self.limits = limits
        self.rows = 0
        self.max_rows = limits.rows + 1  # the header is a row too
        self.deadline = time.monotonic() + limits.seconds

    def row(self, line: int, width: int) -> None:
        if width > self.limits.columns:
            raise FileLimitError(_("Line %(line)s has %(n)s columns; the limit is %(limit)s.")
                                 % {"line": line, "n": width, "limit": self.limits.columns})
        if self.rows > self.max_rows:
            raise FileLimitError(_("The file has more than %(limit)s rows (line %(line)s); split it into smaller files.")
                                 % {"limit": f"{self.limits.rows:,}", "line": line})
        if not self.rows & 1023:
            self.clock(line)

    def clock(self, line: int) -> None:
        if time.monotonic() > self.deadline:
            raise FileLimitError(_("Reading the file took longer than %(s)s seconds (stopped at line %(line)s); "
                                   "split it into smaller files.") % {"s": int(self.limits.seconds), "line": line})

    def cell(self, line: int, values: list) -> None:
        limit = self.limits.cell_chars
        for v in values:
            if type(v) is str and len(v) > limit:
                raise FileLimitError(_("Line %(line)s: a cell is longer than %(limit)s characters.")
                                     % {"line": line, "limit": f"{limit:,}"})


@dataclass
class Sniffed:
    kind: str  # "csv" or "xlsx"
    encoding: str  # for CSV: "utf-8", "utf-8-sig" or "gb18030"
    estimated_rows: int  # data rows (0 = unknown)


def sniff(fh: IO[bytes], *, encoding: str = "") -> Sniffed:
    """One cheap binary pass: format, encoding (if not chosen) and an estimate of the row count.

    A file that is valid UTF-8 from start to end is UTF-8; otherwise it is taken as GB18030, the
    superset of GBK that Chinese Excel writes ("CSV (逗号分隔)").
    """
    fh.seek(0)
    head = fh.read(4)
    fh.seek(0)
    if head.startswith(b"PK\x03\x04"):
        limits = Limits.current()
        check_xlsx_archive(fh, limits)
        try:
            from openpyxl import load_workbook

            wb = load_workbook(fh, read_only=True, data_only=True)
            ws = wb.worksheets[0]
            # The dimension is only what the file claims (a sheet may claim 20M rows): an estimate for
            # the progress bar, capped at the row limit.
            rows = min(max(0, (ws.max_row or 1) - 1), limits.rows)
            wb.close()
        except Exception as exc:  # noqa: BLE001 - openpyxl raises many kinds for a zip that is not a workbook
            raise FileFormatError(_("not a readable XLSX workbook (%(why)s)") % {"why": exc.__class__.__name__}) from exc
        fh.seek(0)
        return Sniffed(kind="xlsx", encoding="", estimated_rows=rows)
    decoder = codecs.getincrementaldecoder("utf-8")() if not encoding else None
    utf8_ok = True
    lines = 0
    last = b""
    while True:
        block = fh.read(CHUNK)
        if not block:
            break
        lines += block.count(b"\n")
        last = block
        if decoder is not None and utf8_ok:
            try:
                decoder.decode(block)
            except UnicodeDecodeError:
                utf8_ok = False
    if decoder is not None and utf8_ok:
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            utf8_ok = False
    if last and not last.endswith(b"\n"):
        lines += 1
    fh.seek(0)
    if not encoding:
        encoding = ("utf-8-sig" if head.startswith(codecs.BOM_UTF8) else "utf-8") if utf8_ok else "gb18030"
    elif encoding == "utf-8" and head.startswith(codecs.BOM_UTF8):
        encoding = "utf-8-sig"
    elif encoding in ("gbk", "gb2312"):
        encoding = "gb18030"
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise FileFormatError("UTF-16 text is not supported; save the file as CSV UTF-8 or XLSX")
    return Sniffed(kind="csv", encoding=encoding, estimated_rows=max(0, lines - 1))


def iter_rows(fh: IO[bytes], sniffed: Sniffed, *, limits: Limits | None = None,
              notes: dict | None = None) -> Iterator[tuple[int, list]]:
    """Yield ``(line number, values)`` for every row, the header (line 1) included; blank rows skipped.
    Raises FileLimitError past a limit. ``notes`` gets ``empty_rows_from_line`` when an XLSX sheet's
    data ended at a long run of empty rows (what follows was not read)."""
    fh.seek(0)
    limits = limits or Limits.current()
    if sniffed.kind == "xlsx":
        yield from _iter_xlsx(fh, limits, {} if notes is None else notes)
        return
    yield from _iter_csv(fh, sniffed, limits)


def _iter_csv(fh: IO[bytes], sniffed: Sniffed, limits: Limits) -> Iterator[tuple[int, list]]:
    watch = _Watch(limits)
    max_columns = limits.columns
    # The csv module checks field length in C as it parses: a 30 MB field fails here, with its line,
    # instead of reaching the database. Process-wide, but every reader sets it before reading.
    csv.field_size_limit(limits.cell_chars)
    text = io.TextIOWrapper(fh, encoding=sniffed.encoding, errors="strict", newline="")
    try:
        reader = csv.reader(text)
        end = 0  # the last physical line of the previous record
        try:
            for values in reader:
                start, end = end + 1, reader.line_num
                if end > start and (end - start >= limits.lines_per_row
                                    or (values and values[-1].endswith(("\n", "\r")))):
                    # A quoted field over many lines, or one running to the end of the file: a quote
                    # opened on `start` and never closed swallowed what follows.
                    raise FileLimitError(
                        _("Line %(line)s: a quote (\") opened on this line is not closed; the row runs over "
                          "%(n)s lines. Close the quote or remove it.") % {"line": start, "n": end - start + 1})
                if values and any(values):
                    watch.rows += 1
                    if watch.rows > watch.max_rows or len(values) > max_columns or not watch.rows & 1023:
                        watch.row(start, len(values))
                    yield start, values
        except UnicodeDecodeError as exc:
            raise FileFormatError(
                _("the file is not valid %(encoding)s near line %(line)s; choose its encoding")
                % {"encoding": sniffed.encoding, "line": reader.line_num + 1}
            ) from exc
        except csv.Error as exc:
            if "field larger than field limit" in str(exc):
                raise FileLimitError(
                    _("Line %(line)s is longer than %(limit)s characters in one field (or a quote opened there is "
                      "not closed).") % {"line": end + 1, "limit": f"{limits.cell_chars:,}"}) from exc
            raise FileFormatError(_("malformed CSV near line %(line)s: %(why)s") % {"line": end + 1, "why": exc}) from exc
    finally:
        with contextlib.suppress(ValueError):  # ValueError: the caller closed the file already
            text.detach()  # the caller owns (and closes) the binary file


def _iter_xlsx(fh: IO[bytes], limits: Limits, notes: dict) -> Iterator[tuple[int, list]]:
    """The first sheet's rows as the file holds them. openpyxl's own ``iter_rows`` makes up every
    row the sheet's dimension claims (20M empty tuples for a sheet that says A1:Z20000000); this
    walks only the rows present in the XML, and stops at the row limit, at a long run of empty rows
    (formatting down to row 1,048,576 is not data) or when the time is up."""
    from openpyxl import load_workbook
    from openpyxl.worksheet._reader import WorkSheetParser

    check_xlsx_archive(fh, limits)
    watch = _Watch(limits)
    wb = load_workbook(fh, read_only=True, data_only=True)
    try:
        ws = wb.worksheets[0]
        with ws._get_source() as src:
            parser = WorkSheetParser(src, ws._shared_strings, data_only=True, epoch=wb.epoch,
                                     date_formats=wb._date_formats, timedelta_formats=wb._timedelta_formats)
            last_data = 0
            for n, cells in parser.parse():
                if not n & 1023:
                    watch.clock(n)
                # Formatted but empty cells are not data (nor columns).
                cells = [c for c in cells if c["value"] is not None and c["value"] != ""]
                if not cells:
                    if n - last_data > limits.empty_rows:
                        notes["empty_rows_from_line"] = last_data + 1
                        return  # a long run of empty rows ends the data
                    continue
                width = max(c["column"] for c in cells)
                watch.rows += 1
                watch.row(n, width)
                values = [None] * width
                for cell in cells:
                    values[cell["column"] - 1] = cell["value"]
                watch.cell(n, values)
                last_data = n
                yield n, values
    finally:
        wb.close()
