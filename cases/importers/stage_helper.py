"""The second reader of a large placement CSV (started by ``services._StageHelper``).

    python -m cases.importers.stage_helper BATCH_ID PATH ENCODING TODAY CHUNK_ROWS

Reads the file like the task does, validates every other chunk of lines (the odd ones; the task
takes the even ones), COPYs its valid rows into the batch's staging table, stores its row errors,
adds its progress to the batch, and prints ``{"processed": n, "errors": e}`` as its last line.
"""

from __future__ import annotations

import json
import sys
from datetime import date


def main(argv: list[str]) -> int:
    import django

    django.setup()
    from django.utils import translation

    from cases.importers import services
    from cases.importers.columns import resolve_header
    from cases.importers.reader import Sniffed, iter_rows
    from cases.importers.validation import RowValidator
    from cases.models import ColumnMapping, PlacementBatch

    batch_id, path, encoding, today, chunk_rows = int(argv[0]), argv[1], argv[2], date.fromisoformat(argv[3]), int(argv[4])
    services.CHUNK_ROWS = chunk_rows  # the same chunks as the task, whatever this process's settings say
    batch = PlacementBatch.objects.select_related("lender", "uploaded_by").get(pk=batch_id)
    mapping = ColumnMapping.objects.filter(lender_id=batch.lender_id).values_list("mapping", flat=True).first() or {}
    errors = services._Errors(batch.pk, cap=services.MAX_STORED_ERRORS // 2)
    with translation.override(batch.options.get("language") or "zh-hans"), open(path, "rb") as fh:
        rows = iter_rows(fh, Sniffed(kind="csv", encoding=encoding, estimated_rows=0))
        header = resolve_header(next(rows)[1], mapping=mapping, kind=batch.kind)
        validate = RowValidator(positions=header.positions, kind=batch.kind,
                                default_jurisdiction=batch.lender.default_jurisdiction, today=today)
        stage = services._PgStage(batch=batch, create=False)
        try:
            processed = services._stage_rows(stage=stage, rows=rows, validate=validate, errors=errors, share=1, shares=2)
        finally:
            stage.side.close()
    print(json.dumps({"processed": processed, "errors": errors.rows}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
