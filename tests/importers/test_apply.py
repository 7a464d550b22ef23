"""Applying placement and recall files through the services, on SQLite (ORM path) and PostgreSQL (COPY path)."""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.exceptions import PermissionDenied
from django.utils import timezone

from cases.importers.recall import accounts_recall
from cases.importers.services import column_mapping_save, placement_batch_create, placement_batch_process
from cases.models import Borrower, Callback, OverdueAccount, PlacementBatch
from compliance.audit import audit_verify
from compliance.models import AuditEvent
from tests import factories as f

from .conftest import fixture_file

pytestmark = pytest.mark.django_db


@pytest.fixture
def lender_user():
    return f.user(role="lender", lender=f.lender())


def errors_of(batch):
    return [(e.line, e.column) for e in batch.row_errors.order_by("line", "id")]


def test_utf8_file_is_applied_and_borrowers_are_deduplicated(lender_user, upload):
    batch = upload(lender_user, "placements_utf8.csv")
    assert batch.state == "applied", batch.error_message
    assert (batch.total_rows, batch.created_count, batch.updated_count, batch.error_count) == (5, 4, 0, 1)
    assert errors_of(batch) == [(6, "balance")]
    accounts = {a.external_ref: a for a in OverdueAccount.objects.filter(lender=lender_user.lender)}
    assert set(accounts) == {"U-001", "U-002", "U-003", "U-004"}
    # U-001 and U-002 carry the same national ID: one borrower, with the details of both lines.
    assert accounts["U-001"].borrower_id == accounts["U-002"].borrower_id
    zhang = accounts["U-002"].borrower
    assert (zhang.phones, zhang.emails, zhang.address) == (["13800138000"], ["zhangsan@example.com"], "北京市朝阳区1号")
    assert Borrower.objects.filter(lender=lender_user.lender).count() == 3
    b = accounts["U-004"].borrower
    assert (b.phones, b.emails, b.time_zones, b.jurisdiction) == (["+12125550100"], ["john@example.com"], ["America/New_York"], "CN")
    assert accounts["U-001"].balance == Decimal("8000.50") and accounts["U-001"].status == "new"
    assert accounts["U-001"].days_past_due > 0 and accounts["U-001"].bucket != "M0"
    assert AuditEvent.objects.filter(action="cases.placement.applied", lender_id=lender_user.lender_id).count() == 1


def test_same_file_again_changes_nothing(lender_user, upload):
    first = upload(lender_user, "placements_utf8.csv")
    before = list(OverdueAccount.objects.order_by("id").values_list("id", "balance", "updated_at"))
    again = upload(lender_user, "placements_utf8.csv")
    assert again.pk != first.pk and again.state == "applied"
    assert again.report == {"already_applied": first.pk}
    assert (again.created_count, again.updated_count) == (0, 0)
    assert list(OverdueAccount.objects.order_by("id").values_list("id", "balance", "updated_at")) == before
    assert "already applied" in again.error_message


def test_later_file_updates_by_reference_and_audits_each_change(lender_user, upload):
    upload(lender_user, "placements_utf8.csv")
    borrowers = Borrower.objects.count()
    batch = upload(lender_user, "placements_update.csv")
    assert batch.state == "applied", batch.error_message
    assert (batch.created_count, batch.updated_count, batch.unchanged_count, batch.error_count) == (1, 2, 2, 0)
    u1 = OverdueAccount.objects.get(external_ref="U-001")
    assert u1.balance == Decimal("7000.00")
    assert str(OverdueAccount.objects.get(external_ref="U-003").due_date) == "2025-03-15"
    # 李四 has no national ID: matched again by first phone + name, not duplicated.
    assert Borrower.objects.count() == borrowers + 1  # only U-006's new borrower
    events = AuditEvent.objects.filter(action="cases.account.updated").order_by("seq")
    assert {e.data["external_ref"] for e in events} == {"U-001", "U-003"}
    e1 = events.get(account_id=u1.pk)
    assert e1.data["changes"] == {"balance": ["8000.50", "7000.00"]} and e1.data["batch"] == batch.pk
    assert e1.actor_id == lender_user.pk
    assert batch.report["borrowers_updated"] == 0  # same contact details as before
    assert audit_verify(record=False).ok


def test_later_file_adds_new_contact_details_to_known_borrowers(lender_user, upload):
    from django.core.files.uploadedfile import SimpleUploadedFile

    upload(lender_user, "placements_utf8.csv")
    zhang = Borrower.objects.get(national_id="110105194912310022")
    li = Borrower.objects.get(name="李四")
    header = "external_ref,borrower_name,national_id,phones,email,address,balance,due_date\n"
    later = header + (
        "U-001,张三,110105194912310022,13900000001;13800138000,zs2@example.com,北京市海淀区2号,8000.50,2025-01-15\n"
        "U-002,张三,110105194912310022,13900000002,,,5000,2025-02-01\n"
        "U-003,李四,,13912345678,li@example.com,,2999.99,2025-03-01\n"
    )
    batch = placement_batch_create(actor=lender_user, file=SimpleUploadedFile("later.csv", later.encode()), language="en")
    batch = placement_batch_process(batch_id=batch.pk)
    assert batch.state == "applied", batch.error_message
    assert batch.report["borrowers_updated"] == 2
    zhang.refresh_from_db()
    li.refresh_from_db()
    # Numbers and emails are added in file order, none removed; the address is the file's.
    assert zhang.phones == ["13800138000", "13900000001", "13900000002"]
    assert zhang.emails == ["zhangsan@example.com", "zs2@example.com"] and zhang.address == "北京市海淀区2号"
    assert (li.phones, li.emails, li.address) == (["13912345678", "13700001111"], ["li@example.com"], "上海市")
    events = {e.borrower_id: e.data for e in AuditEvent.objects.filter(action="cases.borrower.updated")}
    assert events[zhang.pk] == {"batch": batch.pk, "phones_added": ["139****0001", "139****0002"],
                                "emails_added": ["z***@example.com"], "address_changed": True}
    assert events[li.pk]["emails_added"] == ["l***@example.com"] and events[li.pk]["address_changed"] is False
    assert Borrower.objects.filter(lender=lender_user.lender).count() == 3  # matched, not duplicated
    # The same file again: nothing more to add.
    again = placement_batch_create(actor=lender_user, file=SimpleUploadedFile("later2.csv", (later + "\n").encode()),
                                   language="en")
    assert placement_batch_process(batch_id=again.pk).report["borrowers_updated"] == 0
    assert AuditEvent.objects.filter(action="cases.borrower.updated").count() == 2
    assert audit_verify(record=False).ok


def test_all_or_nothing_applies_nothing_when_a_row_fails(lender_user, upload):
    batch = upload(lender_user, "placements_broken.csv", mode="all_or_nothing")
    assert batch.state == "rejected"
    assert OverdueAccount.objects.count() == 0 and Borrower.objects.count() == 0
    assert batch.error_count == 7
    assert "nothing was applied" in batch.error_message


def test_partial_mode_applies_valid_rows_and_reports_the_rest(lender_user, upload):
    batch = upload(lender_user, "placements_broken.csv")
    assert batch.state == "applied"
    assert sorted(OverdueAccount.objects.values_list("external_ref", flat=True)) == ["B-001", "B-009"]
    assert errors_of(batch) == [(3, "due_date"), (4, "balance"), (5, "principal"), (6, "national_id"),
                                (7, "phones"), (8, "currency"), (9, "external_ref")]
    dup = batch.row_errors.get(line=9)
    assert "Duplicate external reference B-001" in dup.reason
    assert (batch.created_count, batch.error_count, batch.unchanged_count) == (2, 7, 0)


@pytest.mark.parametrize(("name", "created", "errors"), [
    ("placements_bom.csv", 3, 0), ("placements_gbk.csv", 3, 0), ("placements.xlsx", 2, 1),
])
def test_bom_gbk_and_xlsx_files(lender_user, upload, name, created, errors):
    batch = upload(lender_user, name)
    assert (batch.state, batch.created_count, batch.error_count) == ("applied", created, errors), batch.error_message
    names = set(Borrower.objects.values_list("name", flat=True))
    assert {"赵六", "钱七"} <= names


def test_gbk_read_as_utf8_when_the_user_says_so_is_rejected_visibly(lender_user, upload):
    batch = upload(lender_user, "placements_gbk.csv", encoding="utf-8")
    assert batch.state == "rejected" and "choose its encoding" in batch.error_message
    assert OverdueAccount.objects.count() == 0


def test_unreadable_files_and_missing_columns_are_rejected(lender_user, upload):
    broken = upload(lender_user, "broken.xlsx")
    assert broken.state == "rejected" and "XLSX" in broken.error_message
    missing = upload(lender_user, "placements_missing_column.csv")
    assert missing.state == "rejected"
    assert [(e.line, e.column) for e in missing.row_errors.all()] == [(1, "Outstanding balance"), (1, "Due date")]
    assert OverdueAccount.objects.count() == 0


def test_saved_column_mapping_reads_own_headers(lender_user, upload):
    column_mapping_save(actor=lender_user, lender=lender_user.lender, mapping={
        "LoanKey": "external_ref", "Client": "borrower_name", "Mobile": "phones", "Owed": "balance", "Deadline": "due_date"})
    batch = upload(lender_user, "placements_own_headers.csv")
    assert (batch.state, batch.created_count) == ("applied", 1)
    assert OverdueAccount.objects.get(external_ref="O-001").balance == Decimal("321.00")
    assert AuditEvent.objects.filter(action="cases.column_mapping.saved").exists()


def test_recall_file_unassigns_and_audits(lender_user, upload):
    upload(lender_user, "placements_utf8.csv")
    agent = f.user(role="agent")
    OverdueAccount.objects.filter(external_ref__in=["U-001", "U-002"]).update(assigned_agent=agent, status="assigned")
    u1 = OverdueAccount.objects.get(external_ref="U-001")
    Callback.objects.create(account=u1, agent=agent, due_at=timezone.now() + timedelta(days=1))
    batch = upload(lender_user, "recall.csv", kind="recall")
    assert batch.state == "applied", batch.error_message
    assert (batch.updated_count, batch.error_count) == (2, 1)
    assert errors_of(batch) == [(4, "合同编号")]
    u1.refresh_from_db()
    assert (u1.status, u1.assigned_agent_id) == ("recalled", None)
    assert OverdueAccount.objects.get(external_ref="U-002").assigned_agent == agent  # not in the file
    assert not OverdueAccount.objects.filter(assigned_agent=agent, external_ref="U-001").exists()
    assert Callback.objects.get(account=u1).status == "cancelled"
    ev = AuditEvent.objects.get(action="cases.account.recalled", account_id=u1.pk)
    assert ev.data["from"] == "assigned" and ev.data["reason"] == "lender takes it back" and ev.data["from_agent"] == agent.pk
    # Recalling again changes nothing.
    assert accounts_recall(actor=lender_user, refs=["U-001", "nope"]) == {"recalled": [], "unchanged": ["U-001"], "unknown": ["nope"]}


def test_other_lenders_accounts_are_neither_matched_nor_recalled(lender_user, upload):
    other = f.user(role="lender", lender=f.lender())
    upload(other, "placements_utf8.csv")
    batch = upload(lender_user, "recall.csv", kind="recall")
    assert (batch.updated_count, batch.error_count) == (0, 3)
    assert not OverdueAccount.objects.filter(status="recalled").exists()
    mine = upload(lender_user, "placements_utf8.csv")  # same file, other lender: not "already applied"
    assert mine.created_count == 4
    assert Borrower.objects.filter(lender=lender_user.lender).count() == 3
    assert Borrower.objects.filter(lender=other.lender).count() == 3


def test_inactive_lenders_cannot_upload(upload):
    pending = f.user(role="lender", lender=f.lender(status="pending"))
    with pytest.raises(PermissionDenied):
        placement_batch_create(actor=pending, file=fixture_file("placements_utf8.csv"))
    agent = f.user(role="agent")
    with pytest.raises(PermissionDenied):
        placement_batch_create(actor=agent, file=fixture_file("placements_utf8.csv"))
    # Suspended after uploading, before processing: the batch is rejected, nothing applied.
    user = f.user(role="lender", lender=f.lender())
    batch = placement_batch_create(actor=user, file=fixture_file("placements_utf8.csv"))
    user.lender.status = "suspended"
    user.lender.save()
    batch = placement_batch_process(batch_id=batch.pk)
    assert batch.state == "rejected" and OverdueAccount.objects.count() == 0


def test_processing_twice_is_idempotent(lender_user):
    batch = placement_batch_create(actor=lender_user, file=fixture_file("placements_utf8.csv"))
    assert batch.state == "pending"
    placement_batch_process(batch_id=batch.pk)
    again = placement_batch_process(batch_id=batch.pk)  # e.g. a re-delivered task
    assert again.state == "applied" and OverdueAccount.objects.count() == 4
    assert PlacementBatch.objects.get(pk=batch.pk).row_errors.count() == 1


def test_a_crash_while_applying_leaves_nothing_half_written(lender_user, monkeypatch):
    from cases.importers import services
    from cases.importers.pipelines import base

    batch = placement_batch_create(actor=lender_user, file=fixture_file("placements_utf8.csv"), language="en")

    def explode(*a, **kw):
        raise RuntimeError("disk full")

    # Fails after borrowers were written, inside the apply transaction.
    monkeypatch.setattr(base, "audit_changes", explode)
    monkeypatch.setattr(services, "_finish", _finish_exploding_once(services._finish))
    with pytest.raises(RuntimeError):
        placement_batch_process(batch_id=batch.pk)
    batch.refresh_from_db()
    # The lender reads a plain message; the exception is for supervisors, in the audit event.
    assert batch.state == "failed" and "internal error" in batch.error_message and "disk" not in batch.error_message
    event = AuditEvent.objects.get(action="cases.placement.failed", subject_id=str(batch.pk))
    assert event.data["error"] == "RuntimeError: disk full"
    assert OverdueAccount.objects.count() == 0 and Borrower.objects.count() == 0


def _finish_exploding_once(real):
    state = {"done": False}

    def finish(batch, **kw):
        if kw.get("state") == "applied" and not state["done"]:
            state["done"] = True
            raise RuntimeError("disk full")
        return real(batch, **kw)

    return finish


def test_long_file_names_and_a_zip_that_is_not_a_workbook(lender_user):
    import io
    import zipfile

    from django.core.files.uploadedfile import SimpleUploadedFile

    name = "客户逾期明细-" * 20 + ".csv"
    batch = placement_batch_create(actor=lender_user, file=SimpleUploadedFile(name, fixture_file("placements_utf8.csv").read()))
    assert batch.original_name == name[:255] and len(batch.file.name) <= 100
    assert placement_batch_process(batch_id=batch.pk).created_count == 4
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("hello.txt", "not a workbook")
    other = placement_batch_create(actor=lender_user, file=SimpleUploadedFile("x.xlsx", buf.getvalue()))
    other = placement_batch_process(batch_id=other.pk)
    assert other.state == "rejected" and "XLSX" in other.error_message


def test_a_failed_batch_keeps_the_counts_its_run_recorded(lender_user, monkeypatch):
    from cases.importers import services

    batch = placement_batch_create(actor=lender_user, file=fixture_file("placements_utf8.csv"), language="en")
    monkeypatch.setattr(services, "_finish", _finish_exploding_once(services._finish))
    with pytest.raises(RuntimeError):
        placement_batch_process(batch_id=batch.pk)
    batch.refresh_from_db()
    # Rows read and errors as the run counted them, not the stale values of the task's copy.
    assert (batch.state, batch.total_rows, batch.processed_rows, batch.error_count) == ("failed", 5, 5, 1)
    assert (batch.created_count, batch.updated_count) == (0, 0)  # nothing committed
    event = AuditEvent.objects.get(action="cases.placement.failed", subject_id=str(batch.pk))
    assert (event.data["rows"], event.data["errors"], event.data["created"]) == (5, 1, 0)


def test_nul_characters_and_control_characters_in_emails_fail_their_rows_only(lender_user):
    # On PostgreSQL one such value would make the COPY of the whole file fail.
    from django.core.files.uploadedfile import SimpleUploadedFile

    text = (
        "external_ref,borrower_name,phones,email,address,balance,due_date\n"
        "N-1,好人\x00,13800000001,,,100,2025-01-01\n"
        "N-2,好人,13800000002,,北京\x00市,100,2025-01-01\n"
        "N-3,好人,13800000003,a\x01b@example.com,,100,2025-01-01\n"
        "N-4,好人,13800000004,ok@example.com,上海市,100,2025-01-01\n"
    )
    batch = placement_batch_create(actor=lender_user, file=SimpleUploadedFile("nul.csv", text.encode()), language="en")
    batch = placement_batch_process(batch_id=batch.pk)
    assert (batch.state, batch.created_count, batch.error_count) == ("applied", 1, 3), batch.error_message
    assert errors_of(batch) == [(2, "borrower_name"), (3, "address"), (4, "email")]
    assert "NUL" in batch.row_errors.get(line=2).reason
    assert list(OverdueAccount.objects.values_list("external_ref", flat=True)) == ["N-4"]
    recall = "external_ref,reason\nN-4,sold\x00\n"
    batch = placement_batch_create(actor=lender_user, file=SimpleUploadedFile("r.csv", recall.encode()), kind="recall",
                                   language="en")
    batch = placement_batch_process(batch_id=batch.pk)
    assert (batch.state, batch.updated_count, errors_of(batch)) == ("applied", 0, [(2, "reason")])


def test_api_recall_reports_finished_accounts_unchanged_and_audits_the_rest(lender_user, upload):
    upload(lender_user, "placements_utf8.csv")
    agent = f.user(role="agent")
    OverdueAccount.objects.filter(external_ref="U-001").update(assigned_agent=agent, status="assigned")
    OverdueAccount.objects.filter(external_ref="U-003").update(status="paid")
    u1 = OverdueAccount.objects.get(external_ref="U-001")
    Callback.objects.create(account=u1, agent=agent, due_at=timezone.now() + timedelta(days=1))
    result = accounts_recall(actor=lender_user, refs=["U-003", "U-001", "U-002", "U-001", "nope"], reason="sold")
    assert result == {"recalled": ["U-001", "U-002"], "unchanged": ["U-003"], "unknown": ["nope"]}
    assert Callback.objects.get(account=u1).status == "cancelled"
    assert OverdueAccount.objects.get(external_ref="U-003").status == "paid"
    events = {e.data["external_ref"]: e.data for e in AuditEvent.objects.filter(action="cases.account.recalled")}
    assert set(events) == {"U-001", "U-002"}
    assert events["U-001"] == {"batch": None, "external_ref": "U-001", "from": "assigned", "to": "recalled",
                               "from_agent": agent.pk, "reason": "sold"}
    assert audit_verify(record=False).ok


def test_a_helper_that_cannot_start_still_closes_the_stage(lender_user, monkeypatch):
    from cases.importers.pipelines import orm, postgres

    closed = []
    for cls in (orm.OrmStage, postgres.PgStage):
        monkeypatch.setattr(cls, "close", lambda self, real=cls.close: (closed.append(self.batch.pk), real(self))[1])

    def cannot_fork(**kw):
        raise OSError("cannot fork")

    monkeypatch.setattr(postgres.StageHelper, "start", staticmethod(cannot_fork))
    batch = placement_batch_create(actor=lender_user, file=fixture_file("placements_utf8.csv"), language="en")
    with pytest.raises(OSError, match="cannot fork"):
        placement_batch_process(batch_id=batch.pk)
    assert closed == [batch.pk]
    batch.refresh_from_db()
    assert batch.state == "failed" and "cannot fork" not in batch.error_message
    assert "cannot fork" in AuditEvent.objects.get(action="cases.placement.failed", subject_id=str(batch.pk)).data["error"]


def test_a_batch_another_worker_is_processing_is_left_to_it(lender_user, require_postgres):
    """Here inside the test's transaction (the transaction-level form of the run lock);
    tests/importers/test_shares.py has the session-level one."""
    from django.db import connection

    from cases.importers.pipelines.postgres import LOCK_BATCH_RUN

    batch = placement_batch_create(actor=lender_user, file=fixture_file("placements_utf8.csv"), language="en")
    other = connection.copy()
    try:
        with other.cursor() as cur:
            cur.execute("SELECT pg_advisory_lock(%s, %s::integer)", [LOCK_BATCH_RUN, batch.pk])
        same = placement_batch_process(batch_id=batch.pk)
        assert (same.state, same.started_at, same.row_errors.count()) == ("pending", None, 0)
        assert OverdueAccount.objects.count() == 0
        with other.cursor() as cur:
            # Released explicitly: a closed session's locks go only when its server process has exited,
            # a moment later on a busy machine.
            cur.execute("SELECT pg_advisory_unlock(%s, %s::integer)", [LOCK_BATCH_RUN, batch.pk])
    finally:
        other.close()
    assert placement_batch_process(batch_id=batch.pk).state == "applied"


def test_the_temp_tables_of_changes_are_keyed_for_keyset_paging(lender_user, upload, monkeypatch, require_postgres):
    from django.core.files.uploadedfile import SimpleUploadedFile
    from django.db import connection

    from cases.importers.pipelines import postgres

    keyed: dict[str, bool] = {}
    real = postgres._iter_table

    def iter_table(table, columns, *, json_from):
        with connection.cursor() as cur:
            cur.execute("SELECT EXISTS (SELECT 1 FROM pg_index WHERE indrelid = %s::regclass AND indisunique"
                        " AND indkey[0] = (SELECT attnum FROM pg_attribute WHERE attrelid = %s::regclass"
                        " AND attname = 'id'))", [table, table])
            keyed[re.sub(r"(_\d+)+$", "", table)] = cur.fetchone()[0]  # placement_changes_7_0 -> placement_changes
        return real(table, columns, json_from=json_from)

    monkeypatch.setattr(postgres, "_iter_table", iter_table)
    upload(lender_user, "placements_utf8.csv")
    later = ("external_ref,borrower_name,national_id,phones,balance,due_date\n"
             "U-001,张三,110105194912310022,13900000001,7000,2025-01-15\n")
    batch = placement_batch_create(actor=lender_user, file=SimpleUploadedFile("later.csv", later.encode()), language="en")
    assert placement_batch_process(batch_id=batch.pk).updated_count == 1
    upload(lender_user, "recall.csv", kind="recall")
    assert keyed == {"placement_borrower_changes": True, "placement_changes": True, "recall_changes": True}
