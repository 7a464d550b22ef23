"""A file large enough for two readers and two shares, through the API and a real Celery worker."""

from __future__ import annotations

import io
import time

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from cases.models import Borrower, OverdueAccount, PlacementBatch, PlacementBatchPart
from tests import factories as f

from .test_worker import wait_done

pytestmark = [pytest.mark.worker, pytest.mark.postgres]

ROWS = 12_000  # three chunks of 5,000 lines: the helper process reads the second


@pytest.fixture
def celery_worker_env() -> dict[str, str]:
    return {"PLACEMENT_APPLY_WORKERS": "2", "PLACEMENT_ROWS_PER_WORKER": "1000"}


def _file() -> SimpleUploadedFile:
    from stdnum.cn import ric

    out = io.StringIO()
    out.write("合同编号,借款人姓名,身份证号,手机号,逾期金额,到期日\n")
    for i in range(ROWS):
        body = f"3101011985{(i % 12) + 1:02d}{(i % 28) + 1:02d}{i % 1000:03d}"
        balance = "abc" if i == 7_777 else f"{1000 + i}.00"  # one bad row, in the helper's chunk
        out.write(f"W-{i:06d},借款人{i % 4000},{body}{ric.calc_check_digit(body)},139{i:08d},{balance},2026-03-01\n")
    return SimpleUploadedFile("large.csv", out.getvalue().encode())


def test_a_large_file_is_read_by_two_processes_and_applied_in_shares(shared_media, celery_worker):
    user = f.user(role="lender", lender=f.lender())
    client = APIClient()
    client.force_authenticate(user)
    r = client.post("/api/v1/placements/", {"file": _file()}, format="multipart")
    assert r.status_code == 202, r.content
    d = wait_done(client, r.data["id"], timeout=120)
    assert (d["state"], d["total_rows"], d["created_count"], d["error_count"]) == ("applied", ROWS, ROWS - 1, 1), d
    assert [(e["line"], e["column"]) for e in d["row_errors"]] == [(7_779, "逾期金额")]
    batch = PlacementBatch.objects.get(pk=r.data["id"])
    assert batch.report["read_processes"] == 2
    assert sorted(PlacementBatchPart.objects.filter(batch=batch).values_list("part", "parts")) == [(0, 2), (1, 2)]
    assert OverdueAccount.objects.filter(lender=user.lender).count() == ROWS - 1
    assert Borrower.objects.filter(lender=user.lender).count() == ROWS - 1  # every national ID differs


def _nid(i: int) -> str:
    from stdnum.cn import ric

    body = f"44010619{70 + i % 30:02d}{(i % 12) + 1:02d}{(i % 28) + 1:02d}{i % 1000:03d}"  # repeats every 21,000
    return body + ric.calc_check_digit(body)


def _big_file(rows: int) -> SimpleUploadedFile:
    out = io.StringIO()
    out.write("external_ref,borrower_name,national_id,phone,balance,due_date\n")
    for i in range(rows):
        out.write(f"K-{i:07d},借款人{i % 21_000},{_nid(i)},137{i:08d},{100 + i % 900}.00,2026-02-01\n")
    return SimpleUploadedFile("crash.csv", out.getvalue().encode())


def test_a_worker_killed_while_applying_leaves_a_batch_that_completes_when_processed_again(shared_media, celery_worker,
                                                                                           settings):
    """A hard kill (SIGKILL, as a lost machine) in the middle of the apply: whatever had committed
    stays, share 0 and the batch result roll back with the dead connection, and processing the batch
    again (what the re-delivered task does) finishes it with the right counts and no duplicates."""
    import signal

    from cases.importers import dispatch

    rows = 120_000
    user = f.user(role="lender", lender=f.lender())
    client = APIClient()
    client.force_authenticate(user)
    r = client.post("/api/v1/placements/", {"file": _big_file(rows)}, format="multipart")
    assert r.status_code == 202, r.content
    deadline = time.monotonic() + 120
    state = ""
    while time.monotonic() < deadline:
        state = PlacementBatch.objects.values_list("state", flat=True).get(pk=r.data["id"])
        if state != "pending" and state != "processing":
            break
        time.sleep(0.02)
    assert state == "applying", f"the batch reached {state!r} before the worker could be killed mid-apply"
    time.sleep(0.3)  # into the INSERTs
    celery_worker["process"].send_signal(signal.SIGKILL)
    celery_worker["process"].wait(timeout=30)

    batch = PlacementBatch.objects.get(pk=r.data["id"])
    assert batch.state == "applying"  # visible as interrupted, not as applied
    done = PlacementBatchPart.objects.filter(batch=batch).count()
    assert done < 2 and OverdueAccount.objects.filter(lender=user.lender).count() < rows

    _wait_for_run_lock_release(batch.pk)
    # The sweep finds it (its heartbeat stopped, nobody holds its run lock) and queues it again; the
    # job (sent after the sweep's commit) runs here, in-process, as a live worker would run it.
    from servicing.celery import app

    settings.PLACEMENT_STALE_SECONDS = 0
    app.conf.CELERY_TASK_ALWAYS_EAGER = True
    assert dispatch.placement_batches_sweep() == {"requeued": 1, "failed": 0}
    batch = PlacementBatch.objects.get(pk=batch.pk)
    assert batch.state == "applied" and batch.requeue_count == 1, batch.error_message
    assert batch.jobs.filter(sent_at__isnull=True).count() == 0
    assert (batch.created_count, batch.updated_count, batch.unchanged_count, batch.error_count) == (rows, 0, 0, 0)
    assert OverdueAccount.objects.filter(lender=user.lender).count() == rows
    assert Borrower.objects.filter(lender=user.lender).count() == 21_000  # one per national ID, never two
    assert PlacementBatchPart.objects.filter(batch=batch).count() == 2


def _wait_for_run_lock_release(batch_id: int, timeout: float = 60) -> None:
    """The killed worker's database session lives on until its running statement ends, and holds the
    batch's run lock till then: processing the batch meanwhile would leave it to that session. A
    re-delivered task comes much later (the broker's visibility timeout); wait as it would."""
    from django.db import connection

    from cases.importers.pipelines.postgres import LOCK_BATCH_RUN

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with connection.cursor() as cur:
            cur.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid::bigint = %s"
                        " AND objid::bigint = %s AND objsubid = 2", [LOCK_BATCH_RUN, batch_id])
            if not cur.fetchone()[0]:
                return
        time.sleep(0.1)
    raise AssertionError(f"the killed worker still holds batch {batch_id} after {timeout} s")
