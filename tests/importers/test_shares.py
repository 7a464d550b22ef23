"""Large batches on PostgreSQL: read by two processes (the task and a helper, every other chunk of
lines each), applied in shares by several connections, resumable after a failure.

These tests commit (the other connections must see the staged rows), so they use a transactional
database; the share size is lowered so a file of a few hundred rows is split.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import IntegrityError, connection, transaction

from cases.importers.pipelines import base, postgres
from cases.importers.services import placement_batch_create, placement_batch_process
from cases.models import Borrower, OverdueAccount, PlacementBatch, PlacementBatchPart
from compliance.audit import audit_verify
from compliance.models import AuditEvent
from tests import factories as f

pytestmark = pytest.mark.django_db(transaction=True)

ROWS = 300


def _csv(rows: int, *, balance: str = "100.00", bad_every: int = 0, new_phone: bool = False) -> SimpleUploadedFile:
    from stdnum.cn import ric

    out = io.StringIO()
    out.write("external_ref,borrower_name,national_id,phone,balance,due_date\n")
    for i in range(rows):
        body = f"11010519800101{i % 100:03d}"  # 100 borrowers, 3 accounts each
        amount = "-5" if bad_every and i % bad_every == 0 else balance
        phones = f"13800{i % 100:06d}" + (f";13900{i % 100:06d}" if new_phone else "")
        out.write(f"S-{i:04d},借款人{i % 100},{body}{ric.calc_check_digit(body)},{phones},{amount},2026-01-15\n")
    return SimpleUploadedFile("shares.csv", out.getvalue().encode())


@pytest.fixture
def shares(settings, require_postgres, monkeypatch):
    settings.PLACEMENT_APPLY_WORKERS = 3
    settings.PLACEMENT_ROWS_PER_WORKER = 10
    monkeypatch.setattr(base, "CHUNK_ROWS", 40)  # 300 lines = 8 chunks, half of them read by the helper
    return 3


@pytest.fixture
def lender_user():
    return f.user(role="lender", lender=f.lender())


def test_a_large_batch_is_applied_in_shares_with_the_same_result(shares, lender_user):
    batch = placement_batch_create(actor=lender_user, file=_csv(ROWS), language="en")
    batch = placement_batch_process(batch_id=batch.pk)
    assert batch.state == "applied", batch.error_message
    assert batch.report["read_processes"] == 2
    assert (batch.total_rows, batch.processed_rows) == (ROWS, ROWS)
    assert (batch.created_count, batch.updated_count, batch.unchanged_count) == (ROWS, 0, 0)
    parts = PlacementBatchPart.objects.filter(batch=batch)
    assert sorted(p.part for p in parts) == [0, 1, 2] and {p.parts for p in parts} == {shares}
    assert sum(p.created_count for p in parts) == ROWS and all(p.created_count > 0 for p in parts)
    # A borrower's accounts all went to one share: one borrower each, never two.
    assert Borrower.objects.filter(lender=lender_user.lender).count() == 100
    assert OverdueAccount.objects.filter(lender=lender_user.lender).values("borrower").distinct().count() == 100

    # A later file changing every balance and giving every borrower a second number: updated in
    # shares (the borrowers before the shares start), each change audited, chain intact.
    again = placement_batch_create(actor=lender_user, file=_csv(ROWS, balance="90.00", new_phone=True), language="en")
    again = placement_batch_process(batch_id=again.pk)
    assert (again.state, again.created_count, again.updated_count) == ("applied", 0, ROWS)
    assert again.report["borrowers_updated"] == 100
    assert AuditEvent.objects.filter(action="cases.account.updated", lender_id=lender_user.lender_id).count() == ROWS
    assert AuditEvent.objects.filter(action="cases.borrower.updated", lender_id=lender_user.lender_id).count() == 100
    assert all(len(p) == 2 for p in Borrower.objects.filter(lender=lender_user.lender).values_list("phones", flat=True))
    assert audit_verify(record=False).ok


def test_row_errors_from_both_readers_are_all_reported(shares, lender_user):
    bad = [i for i in range(ROWS) if i % 7 == 0]  # spread over every chunk, the helper's too
    batch = placement_batch_create(actor=lender_user, file=_csv(ROWS, bad_every=7), language="en",
                                   mode="all_or_nothing")
    batch = placement_batch_process(batch_id=batch.pk)
    assert (batch.state, batch.error_count, batch.total_rows) == ("rejected", len(bad), ROWS)
    assert f"{len(bad)} row(s) failed validation" in batch.error_message
    assert OverdueAccount.objects.filter(lender=lender_user.lender).count() == 0
    lines = sorted(batch.row_errors.values_list("line", flat=True))
    assert lines == [i + 2 for i in bad]  # line 1 is the header
    assert set(batch.row_errors.values_list("reason", flat=True)) == {"Amount cannot be negative."}

    partial = placement_batch_create(actor=lender_user, file=_csv(ROWS, bad_every=7, balance="101.00"), language="en")
    partial = placement_batch_process(batch_id=partial.pk)
    assert (partial.state, partial.error_count, partial.created_count) == ("applied", len(bad), ROWS - len(bad))
    assert partial.row_errors.count() == len(bad)


def test_a_failed_share_leaves_a_resumable_batch(shares, lender_user, monkeypatch):
    real = postgres._pg_place_share

    def share_two_fails(table, batch, part, *args, **kw):
        if part == 2:
            raise RuntimeError("connection lost")
        return real(table, batch, part, *args, **kw)

    monkeypatch.setattr(postgres, "_pg_place_share", share_two_fails)
    # Committed, the upload queues its processing (eager here): that run fails.
    with pytest.raises(RuntimeError):
        placement_batch_create(actor=lender_user, file=_csv(ROWS), language="en")
    batch = PlacementBatch.objects.get(lender=lender_user.lender)
    # Share 1 committed on its own connection; share 0 (with the batch result) rolled back.
    assert batch.state == "failed"
    assert "1 of 3 shares were applied" in batch.error_message and "connection lost" not in batch.error_message
    assert AuditEvent.objects.get(action="cases.placement.failed", subject_id=str(batch.pk)).data["error"] == \
        "RuntimeError: connection lost"
    done = PlacementBatchPart.objects.get(batch=batch)
    assert done.part == 1
    assert OverdueAccount.objects.filter(lender=lender_user.lender).count() == done.created_count
    # The failed batch counts what the committed share created, and keeps the rows it read.
    assert (batch.created_count, batch.updated_count) == (done.created_count, 0) and done.created_count > 0
    assert (batch.total_rows, batch.processed_rows, batch.error_count) == (ROWS, ROWS, 0)
    failed = AuditEvent.objects.get(action="cases.placement.failed", subject_id=str(batch.pk))
    assert (failed.data["created"], failed.data["updated"], failed.data["rows"]) == (done.created_count, 0, ROWS)

    monkeypatch.setattr(postgres, "_pg_place_share", real)
    batch = placement_batch_process(batch_id=batch.pk)  # processing it again resumes
    assert batch.state == "applied", batch.error_message
    assert (batch.created_count, batch.updated_count, batch.unchanged_count) == (ROWS, 0, 0)
    assert OverdueAccount.objects.filter(lender=lender_user.lender).count() == ROWS
    assert sorted(PlacementBatchPart.objects.filter(batch=batch).values_list("part", flat=True)) == [0, 1, 2]
    assert PlacementBatch.objects.get(pk=batch.pk).row_errors.count() == 0


def test_an_account_cannot_point_at_another_lenders_borrower(require_postgres):
    mine, theirs = f.lender(), f.lender()
    other_borrower = f.borrower(lender=theirs)
    with pytest.raises(IntegrityError), transaction.atomic():
        OverdueAccount.objects.create(lender=mine, borrower=other_borrower, external_ref="X-1", balance="1.00",
                                      due_date="2026-01-01")


def test_both_readers_use_the_lenders_saved_column_mapping(shares, lender_user):
    from cases.importers.services import column_mapping_save

    column_mapping_save(actor=lender_user, lender=lender_user.lender, mapping={
        "合同号": "external_ref", "客户": "borrower_name", "证件": "national_id", "电话": "phones",
        "欠款": "balance", "应还日": "due_date"})
    own = _csv(ROWS).read().decode().replace(
        "external_ref,borrower_name,national_id,phone,balance,due_date", "合同号,客户,证件,电话,欠款,应还日", 1)
    batch = placement_batch_create(actor=lender_user, file=SimpleUploadedFile("own.csv", own.encode()), language="en")
    batch = placement_batch_process(batch_id=batch.pk)
    assert (batch.state, batch.report["read_processes"], batch.created_count, batch.error_count) == ("applied", 2, ROWS, 0)


def _fail_share_two(monkeypatch, lender_user) -> PlacementBatch:
    """An uploaded batch whose first run applied share 1 of 3 and failed on share 2."""
    real = postgres._pg_place_share

    def share_two_fails(table, batch, part, *args, **kw):
        if part == 2:
            raise RuntimeError("connection lost")
        return real(table, batch, part, *args, **kw)

    monkeypatch.setattr(postgres, "_pg_place_share", share_two_fails)
    with pytest.raises(RuntimeError):
        placement_batch_create(actor=lender_user, file=_csv(ROWS), language="en")
    monkeypatch.setattr(postgres, "_pg_place_share", real)
    batch = PlacementBatch.objects.get(lender=lender_user.lender)
    assert batch.state == "failed" and list(batch.parts.values_list("part", flat=True)) == [1]
    return batch


def test_a_failed_batch_resumed_inside_a_callers_transaction_applies_the_rest_itself(shares, lender_user,
                                                                                     monkeypatch):
    """Inside a transaction no other connection sees the batch's staging table, and the batch row is
    locked by that transaction: the shares left are applied on this connection, one after another,
    and progress is not written through a second one (it would wait for the lock for ever)."""
    batch = _fail_share_two(monkeypatch, lender_user)
    # A regression fails within seconds instead of hanging: every new connection gives up waiting.
    monkeypatch.setitem(connection.settings_dict, "OPTIONS",
                        {**connection.settings_dict.get("OPTIONS", {}), "options": "-c lock_timeout=5000"})
    with transaction.atomic():
        batch = placement_batch_process(batch_id=batch.pk)
    assert batch.state == "applied", batch.error_message
    assert (batch.created_count, batch.updated_count, batch.unchanged_count, batch.error_count) == (ROWS, 0, 0, 0)
    assert batch.report["read_processes"] == 1
    assert sorted(PlacementBatchPart.objects.filter(batch=batch).values_list("part", "parts")) == [(0, 3), (1, 3), (2, 3)]
    assert OverdueAccount.objects.filter(lender=lender_user.lender).count() == ROWS
    assert Borrower.objects.filter(lender=lender_user.lender).count() == 100
    assert AuditEvent.objects.filter(action="cases.placement.applied", subject_id=str(batch.pk)).count() == 1
    assert audit_verify(record=False).ok


def _upload_without_processing(monkeypatch, lender_user, file) -> PlacementBatch:
    from cases.tasks import placement_batch_process_task

    with monkeypatch.context() as m:
        m.setattr(placement_batch_process_task, "delay", lambda batch_id: None)
        return placement_batch_create(actor=lender_user, file=file, language="en")


def test_one_run_of_a_batch_at_a_time(require_postgres, lender_user, monkeypatch):
    from celery.exceptions import Retry

    from cases.importers.pipelines.postgres import LOCK_BATCH_RUN
    from cases.tasks import placement_batch_process_task

    batch = _upload_without_processing(monkeypatch, lender_user, _csv(30))
    other = connection.copy()
    try:
        with other.cursor() as cur:  # another worker running this batch
            cur.execute("SELECT pg_try_advisory_lock(%s, %s::integer)", [LOCK_BATCH_RUN, batch.pk])
            assert cur.fetchone()[0]
            same = placement_batch_process(batch_id=batch.pk)
            assert (same.state, same.started_at) == ("pending", None)
            assert not OverdueAccount.objects.filter(lender=lender_user.lender).exists()
            # The task, as a worker runs it, comes back later rather than leave the batch to nobody.
            retries = []
            monkeypatch.setattr(placement_batch_process_task, "retry",
                                lambda **kw: retries.append(kw) or Retry("busy"))
            placement_batch_process_task.push_request(is_eager=False)
            try:
                with pytest.raises(Retry):
                    placement_batch_process_task.run(batch.pk)
            finally:
                placement_batch_process_task.pop_request()
            assert retries == [{"countdown": 60}]
            cur.execute("SELECT pg_advisory_unlock(%s, %s::integer)", [LOCK_BATCH_RUN, batch.pk])
            assert placement_batch_process(batch_id=batch.pk).state == "applied"
            # Released when the run ends (session-level, so it outlives the run's transactions otherwise).
            cur.execute("SELECT pg_try_advisory_lock(%s, %s::integer)", [LOCK_BATCH_RUN, batch.pk])
            assert cur.fetchone()[0]
    finally:
        other.close()


def test_the_helper_reader_connects_with_the_tasks_own_settings(shares, lender_user, monkeypatch):
    """Its NAME (here the test database, which DATABASE_URL does not name), OPTIONS and a Unix-socket
    HOST, none of which a rebuilt URL carried."""
    import subprocess

    with connection.cursor() as cur:
        cur.execute("SHOW unix_socket_directories")
        sockets = [d.strip() for d in cur.fetchone()[0].split(",") if d.strip()]
    socket_dir = next((d for d in sockets if (Path(d) / f".s.PGSQL.{connection.settings_dict.get('PORT') or 5432}").exists()), None)
    if socket_dir is None:
        pytest.skip("the PostgreSQL server has no Unix socket on this machine")
    monkeypatch.setitem(connection.settings_dict, "HOST", socket_dir)
    monkeypatch.setitem(connection.settings_dict, "OPTIONS",
                        {**connection.settings_dict.get("OPTIONS", {}), "application_name": "placement-tests"})
    seen = []
    real_popen = subprocess.Popen

    def popen(args, **kw):
        seen.append(kw["env"])
        return real_popen(args, **kw)

    monkeypatch.setattr(postgres.subprocess, "Popen", popen)
    batch = placement_batch_create(actor=lender_user, file=_csv(ROWS), language="en")
    batch = PlacementBatch.objects.get(pk=batch.pk)
    assert (batch.state, batch.report["read_processes"], batch.created_count) == ("applied", 2, ROWS), batch.error_message
    (env,) = seen
    db = json.loads(env[postgres.HELPER_DB_ENV])
    assert (db["NAME"], db["HOST"], db["OPTIONS"]["application_name"]) == (
        connection.settings_dict["NAME"], socket_dir, "placement-tests")
    assert env.get("DATABASE_URL") == os.environ.get("DATABASE_URL")  # left as it was
