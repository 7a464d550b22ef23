"""Streaming readers for uploaded files: CSV in UTF-8 / UTF-8 with BOM / GBK-GB18030, and XLSX.

Memory stays flat whatever the file size: CSV goes through ``csv.reader`` over a decoding text
stream, XLSX through openpyxl's read-only mode (rows parsed as they are read).
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO

ENCODINGS = {
    "": "detect",
    "utf-8": "UTF-8",
    "utf-8-sig": "UTF-8 with BOM",
    "gb18030": "GBK / GB18030",
}
CHUNK = 1 << 20


class FileFormatError(ValueError):
    """The file cannot be read at all (not CSV/XLSX, wrong encoding, no header)."""


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
        try:
            from openpyxl import load_workbook

            wb = load_workbook(fh, read_only=True, data_only=True)
            ws = wb.worksheets[0]
            rows = max(0, (ws.max_row or 1) - 1)
            wb.close()
        except Exception as exc:  # noqa: BLE001 - openpyxl raises many kinds for a zip that is not a workbook
            raise FileFormatError(f"not a readable XLSX workbook ({exc.__class__.__name__})") from exc
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


def iter_rows(fh: IO[bytes], sniffed: Sniffed) -> Iterator[tuple[int, list]]:
    """Yield ``(line number, values)`` for every row, the header (line 1) included; blank rows skipped."""
    fh.seek(0)
    if sniffed.kind == "xlsx":
        yield from _iter_xlsx(fh)
        return
    text = io.TextIOWrapper(fh, encoding=sniffed.encoding, errors="strict", newline="")
    try:
        reader = csv.reader(text)
        try:
            for values in reader:
                if values and any(values):
                    yield reader.line_num, values
        except UnicodeDecodeError as exc:
            raise FileFormatError(
                f"the file is not valid {sniffed.encoding} near line {reader.line_num + 1}; choose its encoding"
            ) from exc
        except csv.Error as exc:
            raise FileFormatError(f"malformed CSV near line {reader.line_num}: {exc}") from exc
    finally:
        with contextlib.suppress(ValueError):  # ValueError: the caller closed the file already
            text.detach()  # the caller owns (and closes) the binary file


def _iter_xlsx(fh: IO[bytes]) -> Iterator[tuple[int, list]]:
    from openpyxl import load_workbook

    wb = load_workbook(fh, read_only=True, data_only=True)
    try:
        ws = wb.worksheets[0]
        for n, values in enumerate(ws.iter_rows(values_only=True), start=1):
            if values and any(v not in (None, "") for v in values):
                yield n, list(values)
    finally:
        wb.close()
