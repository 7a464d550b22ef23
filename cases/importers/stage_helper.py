"""The second reader of a large placement CSV (started by ``pipelines.postgres.StageHelper``).

    python -m cases.importers.stage_helper BATCH_ID PATH ENCODING TODAY CHUNK_ROWS PARENT_PID MAPPING_JSON

Connects with the database settings the task passes as JSON in ``PLACEMENT_HELPER_DB``, reads the
file like the task does, validates every other chunk of lines (the odd ones; the task takes the even
ones), COPYs its valid rows into the batch's staging table, stores its row errors, adds its progress
to the batch, and prints ``{"processed": n, "errors": e}`` as its last line.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
from datetime import date


def die_with_parent(parent: int) -> None:
    """Linux: this process is killed when the task's process dies (a lost worker re-runs the batch
    from the start, and must not find a stray reader still writing). Set here, after exec, because
    the parent has threads and a pre-exec hook there is unsafe."""
    import ctypes

    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:  # it died before the line above
        sys.exit(3)


def main(argv: list[str]) -> int:
    die_with_parent(int(argv[5]))
    import django

    django.setup()
    from django.db import connections
    from django.utils import translation

    from cases.importers.columns import resolve_header
    from cases.importers.pipelines import base, postgres
    from cases.importers.reader import Sniffed, iter_rows
    from cases.importers.validation import RowValidator
    from cases.models import PlacementBatch

    # The task's own connection settings (OPTIONS and a socket HOST included), set before the first
    # query opens the connection: DATABASE_URL alone may name another database (under tests) and
    # cannot express them all.
    connections["default"].settings_dict.update(json.loads(os.environ[postgres.HELPER_DB_ENV]))
    batch_id, path, encoding, today, chunk_rows = int(argv[0]), argv[1], argv[2], date.fromisoformat(argv[3]), int(argv[4])
    base.CHUNK_ROWS = chunk_rows  # the same chunks as the task, whatever this process's settings say
    batch = PlacementBatch.objects.select_related("lender", "uploaded_by").get(pk=batch_id)
    mapping = json.loads(argv[6])  # the task's column mapping, as it read it: both read the same columns
    errors = base.Errors(batch.pk, cap=base.MAX_STORED_ERRORS // 2)
    with translation.override(batch.options.get("language") or "zh-hans"), open(path, "rb") as fh:
        rows = iter_rows(fh, Sniffed(kind="csv", encoding=encoding, estimated_rows=0))
        header = resolve_header(next(rows)[1], mapping=mapping, kind=batch.kind)
        validate = RowValidator(positions=header.positions, kind=batch.kind,
                                default_jurisdiction=batch.lender.default_jurisdiction, today=today)
        stage = postgres.PgStage(batch=batch, create=False)
        try:
            processed = base.stage_rows(stage=stage, rows=rows, validate=validate, errors=errors, share=1, shares=2)
        finally:
            stage.side.close()
    print(json.dumps({"processed": processed, "errors": errors.rows}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
