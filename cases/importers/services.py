"""Writes for lender onboarding and placement files: registration, approval, column mappings,
uploads, and applying a placement or recall batch.

Applying a batch (``placement_batch_process``, run by Celery):

1. Read and validate the file streaming, in chunks. Valid rows go to a staging area (on PostgreSQL
   an unlogged table filled with COPY; on SQLite a spooled temp file), row errors to PlacementRowError.
   ``processed_rows`` is committed every chunk so the portal can draw a progress bar.
2. All-or-nothing mode with any error: nothing is applied (state "rejected").
3. Otherwise the valid rows are applied set-based (PostgreSQL: INSERT ... SELECT / UPDATE ... FROM on
   the staging table; SQLite: the ORM in chunks), with the audit events, under a per-lender lock.
   A small file is applied in one transaction: a crash leaves nothing half-written. A large one on
   PostgreSQL is split by borrower into shares applied at once by several connections (the database
   work, not Python, is what takes the time). Each share commits with its PlacementBatchPart row, so
   the batch is resumable: processing it again (a re-delivered task, or a retry of a failed batch)
   skips the shares already applied and the counts come out the same. While it runs the batch is in
   state "applying".

On PostgreSQL a batch is processed by one run at a time (an advisory lock on its id): a task delivered
again while the first still runs leaves the batch to it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import pickle
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import IO

from django.conf import settings
from django.contrib.auth import password_validation
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files.uploadedfile import UploadedFile
from django.db import DEFAULT_DB_ALIAS, connection, connections, transaction
from django.db.models import F
from django.utils import timezone, translation
from django.utils.text import slugify
from django.utils.translation import gettext as _

from cases.models import (
    Borrower,
    Callback,
    ColumnMapping,
    Lender,
    OverdueAccount,
    PlacementBatch,
    PlacementBatchPart,
    PlacementRowError,
    User,
)
from cases.selectors import mask_email, mask_phone
from compliance.audit import audit_log, audit_log_many

from .columns import BY_KEY, RECALL_COLUMNS, resolve_header
from .reader import ENCODINGS, FileFormatError, Sniffed, iter_rows, sniff
from .validation import CleanRow, RowValidator

log = logging.getLogger(__name__)

CHUNK_ROWS = 5000
MAX_STORED_ERRORS = 50_000  # every error is counted; beyond this many they are not stored one by one
# Statuses a recall leaves alone: already out of collection, or finished.
RECALL_SKIP = ("recalled", "closed", "paid", "settled")
COMPARED = ("balance", "principal", "due_date", "last_payment_date", "currency", "product")
# What a later file may change on an existing borrower: phones and emails are added to (never
# removed), the address replaced. Name and identity stay.
BORROWER_MERGED = ("phones", "emails", "address")
ACCOUNT_CHANGE_COLUMNS = "id, borrower_id, external_ref, old, new"


# ---------------------------------------------------------------------------------------------
# Registration and approval


def lender_register(
    *,
    name: str,
    registration_no: str,
    contact_name: str,
    contact_phone: str,
    contact_email: str,
    username: str,
    password: str,
    kind: str = "",
) -> Lender:
    """Public sign-up: a pending lender and its first (inactive) user, activated on approval."""
    from stdnum.cn import uscc

    errors: dict[str, str] = {}
    name = name.strip()
    if not name:
        errors["name"] = _("Give the lender's name.")
    if registration_no and not uscc.is_valid(registration_no):
        errors["registration_no"] = _("Not a valid unified social credit code (18 characters with a check character).")
    if User.objects.filter(username__iexact=username).exists():
        errors["username"] = _("This username is taken.")
    try:
        password_validation.validate_password(password, User(username=username, email=contact_email))
    except ValidationError as exc:
        errors["password"] = " ".join(exc.messages)
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        code = f"{slugify(name)[:30] or 'lender'}-{secrets.token_hex(3)}"
        lender = Lender(
            name=name, code=code, kind=kind, status=Lender.Status.PENDING,
            registration_no=uscc.compact(registration_no) if registration_no else "",
            contact_name=contact_name, contact_phone=contact_phone, contact_email=contact_email,
        )
        lender.full_clean()
        lender.save()
        user = User(username=username, email=contact_email, role=User.Role.LENDER, lender=lender, is_active=False)
        user.set_password(password)
        user.full_clean()
        user.save()
        audit_log(
            action="cases.lender.registered", actor=None, actor_label=username, lender_id=lender.pk, subject=lender,
            data={"name": name, "registration_no": lender.registration_no, "user": username,
                  "contact_email": contact_email},
        )
        return lender


def lender_approve(*, actor: User, lender: Lender) -> Lender:
    """Activate a pending (or suspended) lender and its users."""
    if not actor.is_supervisor:
        raise PermissionDenied(_("Only supervisors and administrators approve lenders."))
    with transaction.atomic():
        lender = Lender.objects.select_for_update().get(pk=lender.pk)
        if lender.status == Lender.Status.ACTIVE:
            raise ValidationError(_("This lender is already active."))
        before = lender.status
        lender.status, lender.approved_by, lender.approved_at = Lender.Status.ACTIVE, actor, timezone.now()
        lender.save(update_fields=["status", "approved_by", "approved_at"])
        users = list(lender.users.filter(is_active=False).values_list("username", flat=True))
        lender.users.filter(role=User.Role.LENDER).update(is_active=True)
        audit_log(
            action="cases.lender.approved", actor=actor, lender_id=lender.pk, subject=lender,
            data={"from": before, "to": lender.status, "activated_users": users},
        )
        return lender


def lender_reject(*, actor: User, lender: Lender, reason: str = "") -> Lender:
    """Refuse a registration (or suspend a lender): it cannot sign in or upload."""
    if not actor.is_supervisor:
        raise PermissionDenied(_("Only supervisors and administrators approve lenders."))
    with transaction.atomic():
        lender = Lender.objects.select_for_update().get(pk=lender.pk)
        before = lender.status
        lender.status = Lender.Status.SUSPENDED
        lender.save(update_fields=["status"])
        lender.users.update(is_active=False)
        audit_log(
            action="cases.lender.suspended", actor=actor, lender_id=lender.pk, subject=lender,
            data={"from": before, "to": lender.status, "reason": reason[:500]},
        )
        return lender


def column_mapping_save(*, actor: User, lender: Lender, mapping: dict[str, str]) -> ColumnMapping:
    """Save the lender's own header names (``{their header: canonical key}``)."""
    valid = set(BY_KEY) | {c.key for c in RECALL_COLUMNS}
    clean = {str(k).strip(): v for k, v in mapping.items() if str(k).strip() and v}
    bad = sorted(v for v in clean.values() if v not in valid)
    if bad:
        raise ValidationError({"mapping": _("Unknown canonical column(s): %(cols)s") % {"cols": ", ".join(bad)}})
    with transaction.atomic():
        obj, _created = ColumnMapping.objects.select_for_update().get_or_create(lender=lender)
        before = obj.mapping
        obj.mapping = clean
        obj.save()
        audit_log(
            action="cases.column_mapping.saved", actor=actor, lender_id=lender.pk, subject=obj,
            data={"from": before, "to": clean},
        )
        return obj


# ---------------------------------------------------------------------------------------------
# Uploads


def _sha256(fh: IO[bytes]) -> str:
    digest = hashlib.sha256()
    for block in iter(lambda: fh.read(1 << 20), b""):
        digest.update(block)
    fh.seek(0)
    return digest.hexdigest()


def placement_batch_create(
    *,
    actor: User,
    file: UploadedFile,
    kind: str = PlacementBatch.Kind.PLACEMENT,
    mode: str = PlacementBatch.Mode.PARTIAL,
    encoding: str = "",
    language: str = "",
) -> PlacementBatch:
    """Store an uploaded file as a pending batch and queue its processing (after commit)."""
    lender = actor.lender if actor.is_lender_user else None
    if lender is None or not actor.is_active:
        raise PermissionDenied(_("Only lender users upload placement files."))
    if lender.status != Lender.Status.ACTIVE:
        raise PermissionDenied(_("Your lender account is not active yet; it cannot upload."))
    errors = {}
    if kind not in PlacementBatch.Kind.values:
        errors["kind"] = _("Unknown kind.")
    if mode not in PlacementBatch.Mode.values:
        errors["mode"] = _("Unknown mode.")
    if encoding not in ENCODINGS and encoding != "gbk":
        errors["encoding"] = _("Unknown encoding.")
    if not file or not getattr(file, "size", 0):
        errors["file"] = _("The file is empty.")
    if errors:
        raise ValidationError(errors)
    sha = _sha256(file)
    from cases.tasks import placement_batch_process_task

    with transaction.atomic():
        batch = PlacementBatch(
            lender=lender, uploaded_by=actor, kind=kind, mode=mode, original_name=(file.name or "upload")[:255],
            sha256=sha, encoding="gb18030" if encoding == "gbk" else encoding,
            options={"language": language or translation.get_language() or "zh-hans"},
        )
        # Stored under a short safe name (FileField max_length 100); the user's name is kept in original_name.
        suffix = "".join(c for c in Path(file.name or "").suffix.lower() if c.isalnum() or c == ".")[:8]
        batch.file.save(f"{lender.code[:30]}-{sha[:16]}{suffix}", file, save=False)
        batch.save()
        audit_log(
            action="cases.placement.uploaded", actor=actor, lender_id=lender.pk, subject=batch,
            data={"kind": kind, "mode": mode, "file": batch.original_name, "sha256": sha, "size": file.size},
        )
        transaction.on_commit(lambda: placement_batch_process_task.delay(batch.pk))
    return batch


# ---------------------------------------------------------------------------------------------
# Processing


def _progress(batch_id: int, **fields) -> None:
    # Runs outside the apply transaction (autocommit in the worker) so the portal sees it at once.
    PlacementBatch.objects.filter(pk=batch_id).update(**fields)


def placement_batch_process(*, batch_id: int) -> PlacementBatch:
    """Validate and apply one batch. Idempotent: an applied or rejected batch is returned unchanged; a
    failed or interrupted one is processed again, skipping the shares it already applied. A batch that
    another worker is processing right now (PostgreSQL) is returned unchanged too."""
    with _batch_run_lock(batch_id=batch_id) as acquired:
        if not acquired:
            # A re-delivered task while the first is still running: two runs would reset each other's
            # progress and row errors and race for the same shares.
            log.info("placement batch %s is being processed by another worker; left to it", batch_id)
            batch = PlacementBatch.objects.select_related("lender", "uploaded_by").get(pk=batch_id)
            batch.run_busy = True  # the task retries later: the other run may be a dead worker's last statement
            return batch
        return _process(batch_id)


@contextlib.contextmanager
def _batch_run_lock(*, batch_id: int) -> Iterator[bool]:
    """One run of a batch at a time (PostgreSQL; SQLite has one writer anyway). A session-level
    advisory lock, held for the whole run whatever transactions it commits. Inside a caller's
    transaction the transaction-level form is taken instead: it is released with that transaction,
    even one that failed and can no longer run the unlock (a session lock would outlive it)."""
    if connection.vendor != "postgresql":
        yield True
        return
    session = not connection.in_atomic_block
    fn = "pg_try_advisory_lock" if session else "pg_try_advisory_xact_lock"
    with connection.cursor() as cur:
        cur.execute(f"SELECT {fn}(%s, %s::integer)", [LOCK_BATCH_RUN, batch_id])
        acquired = cur.fetchone()[0]
    try:
        yield acquired
    finally:
        if acquired and session:
            try:
                with connection.cursor() as cur:
                    cur.execute("SELECT pg_advisory_unlock(%s, %s::integer)", [LOCK_BATCH_RUN, batch_id])
            except Exception:  # noqa: BLE001 - a lost connection has released it; do not hide the real error
                log.warning("could not release the run lock of placement batch %s", batch_id)


def _process(batch_id: int) -> PlacementBatch:
    batch = PlacementBatch.objects.select_related("lender", "uploaded_by").get(pk=batch_id)
    if batch.state in (PlacementBatch.State.APPLIED, PlacementBatch.State.REJECTED):
        return batch
    # A re-delivered task (worker crashed) starts again: drop what the previous attempt stored.
    PlacementRowError.objects.filter(batch_id=batch.pk).delete()
    now = timezone.now()
    _progress(batch.pk, state=PlacementBatch.State.PROCESSING, started_at=now, processed_rows=0, error_count=0,
              created_count=0, updated_count=0, unchanged_count=0, error_message="")
    language = batch.options.get("language") or "zh-hans"
    with translation.override(language):
        try:
            if batch.lender.status != Lender.Status.ACTIVE:
                return _finish(batch, state=PlacementBatch.State.REJECTED,
                               message=_("The lender is not active; the file was not applied."))
            earlier = (
                PlacementBatch.objects.filter(lender_id=batch.lender_id, kind=batch.kind, sha256=batch.sha256,
                                              state=PlacementBatch.State.APPLIED)
                .exclude(pk=batch.pk).order_by("pk").first()
            )
            if earlier is not None:
                batch.report = {"already_applied": earlier.pk}
                return _finish(batch, state=PlacementBatch.State.APPLIED, total=earlier.total_rows,
                               created=0, updated=0, unchanged=earlier.total_rows - earlier.error_count,
                               message=_("This file was already applied (batch %(id)s); nothing changed.") % {"id": earlier.pk})
            return _run(batch)
        except FileFormatError as exc:
            return _finish(batch, state=PlacementBatch.State.REJECTED, message=_("The file cannot be read: %(why)s") % {"why": exc})
        except Exception as exc:  # noqa: BLE001 - any crash marks the batch failed, visibly, then re-raises
            log.exception("placement batch %s failed", batch.pk)
            message = f"{exc.__class__.__name__}: {exc}"[:2000]
            parts = list(PlacementBatchPart.objects.filter(batch_id=batch.pk)
                         .values_list("parts", "created_count", "updated_count"))
            if parts:
                message = _("%(done)s of %(parts)s shares were applied; process the batch again to apply the rest.") % {
                    "done": len(parts), "parts": parts[0][0]} + " " + message
            # The shares that committed did create and update accounts: the failed batch says so.
            # Rows read and errors are left as the run's progress counted them.
            _finish(batch, state=PlacementBatch.State.FAILED, message=message,
                    created=sum(p[1] for p in parts), updated=sum(p[2] for p in parts))
            raise


def _finish(batch: PlacementBatch, *, state: str, message: str = "", total: int | None = None,
            created: int | None = None, updated: int | None = None, unchanged: int | None = None,
            errors: int | None = None) -> PlacementBatch:
    """Record the batch's outcome and audit it. Only the counts given are written; the others keep
    what the run's progress stored (read back for the audit event and the caller), since the
    in-memory batch never saw those updates."""
    batch.state = state
    batch.error_message = message
    batch.finished_at = timezone.now()
    counts: dict[str, int] = {}
    if total is not None:
        counts["total_rows"] = counts["processed_rows"] = total
    for name, value in (("created_count", created), ("updated_count", updated),
                        ("unchanged_count", unchanged), ("error_count", errors)):
        if value is not None:
            counts[name] = value
    for name, value in counts.items():
        setattr(batch, name, value)
    with transaction.atomic():
        batch.save(update_fields=["state", "error_message", "finished_at", "report", "encoding", "options", *counts])
        live = [f for f in ("total_rows", "processed_rows", "created_count", "updated_count", "unchanged_count",
                            "error_count") if f not in counts]
        if live:
            batch.refresh_from_db(fields=live)
        audit_log(
            action=f"cases.placement.{state}", actor=batch.uploaded_by, lender_id=batch.lender_id, subject=batch,
            data={"kind": batch.kind, "mode": batch.mode, "file": batch.original_name, "rows": batch.total_rows,
                  "created": batch.created_count, "updated": batch.updated_count,
                  "unchanged": batch.unchanged_count, "errors": batch.error_count,
                  "message": message[:500], **({"already_applied": batch.report["already_applied"]}
                                               if "already_applied" in batch.report else {})},
        )
    return batch


class _Errors:
    """Row errors buffered and written in bulk; counts every failing row, stores up to a cap."""

    def __init__(self, batch_id: int, *, cap: int = MAX_STORED_ERRORS):
        self.batch_id = batch_id
        self.cap = cap
        self.rows = 0
        self.stored = 0
        self.buffer: list[PlacementRowError] = []

    def add(self, line: int, problems: list[tuple[str, str]]) -> None:
        self.rows += 1
        for column, reason in problems:
            if self.stored < self.cap:
                self.buffer.append(PlacementRowError(batch_id=self.batch_id, line=line, column=column[:100], reason=reason[:500]))
                self.stored += 1

    def flush(self) -> None:
        if self.buffer:
            PlacementRowError.objects.bulk_create(self.buffer, batch_size=2000)
            self.buffer = []


def _run(batch: PlacementBatch) -> PlacementBatch:
    mapping = ColumnMapping.objects.filter(lender_id=batch.lender_id).values_list("mapping", flat=True).first() or {}
    errors = _Errors(batch.pk)
    with batch.file.open("rb") as fh:
        sniffed = sniff(fh, encoding=batch.encoding)
        batch.encoding = sniffed.encoding
        batch.options = {**batch.options, "format": sniffed.kind, "detected_encoding": sniffed.encoding}
        _progress(batch.pk, total_rows=sniffed.estimated_rows)
        rows = iter_rows(fh, sniffed)
        try:
            return _run_rows(batch, rows, mapping, errors, sniffed=sniffed)
        finally:
            rows.close()


def _run_rows(batch: PlacementBatch, rows, mapping: dict, errors: _Errors, *, sniffed: Sniffed) -> PlacementBatch:
    first = next(rows, None)
    if first is None:
        raise FileFormatError(_("the file has no header row"))
    header = resolve_header(first[1], mapping=mapping, kind=batch.kind)
    batch.report = {
        "columns": {key: name for _i, key, name in header.positions},
        "ignored_columns": header.ignored,
    }
    problems = [(name, _("Required column is missing.")) for name in
                (str(BY_KEY[k].label) if k in BY_KEY else k for k in header.missing)]
    problems += [(name, _("Column given twice.")) for name in header.duplicates]
    if problems:
        errors.add(first[0], problems)
        errors.flush()
        return _finish(batch, state=PlacementBatch.State.REJECTED, errors=1,
                       message=_("The header row is not usable: fix the columns and upload again."))
    today = timezone.localdate()
    validate = RowValidator(positions=header.positions, kind=batch.kind,
                            default_jurisdiction=batch.lender.default_jurisdiction, today=today)
    stage = (_PgStage if connection.vendor == "postgresql" else _OrmStage)(batch=batch)
    timings = batch.report.setdefault("timings", {})
    t0 = time.perf_counter()
    helper = None
    try:
        # A large CSV is read by a helper process too, each validating every other chunk of lines:
        # validation is Python, one core per process. Started inside the try: if starting it fails,
        # the stage is still closed (its staging table dropped).
        helper = _StageHelper.start(batch=batch, stage=stage, sniffed=sniffed, today=today, mapping=mapping)
        shares = 2 if helper else 1
        batch.report["read_processes"] = shares
        if helper:
            errors.cap = MAX_STORED_ERRORS // 2  # the helper stores the other half
        processed = _stage_rows(stage=stage, rows=rows, validate=validate, errors=errors, share=0, shares=shares)
        if helper:
            done = helper.wait()
            processed += done["processed"]
            errors.rows += done["errors"]
        timings["read_validate_stage_s"] = round(time.perf_counter() - t0, 3)
        t1 = time.perf_counter()
        stage.check(errors)  # duplicates inside the file, unknown references in a recall
        errors.flush()
        timings["check_s"] = round(time.perf_counter() - t1, 3)
        _progress(batch.pk, processed_rows=processed, total_rows=processed, error_count=errors.rows)
        valid = stage.count
        if errors.rows and batch.mode == PlacementBatch.Mode.ALL_OR_NOTHING:
            return _finish(batch, state=PlacementBatch.State.REJECTED, total=processed, errors=errors.rows,
                           message=_("%(n)s row(s) failed validation; nothing was applied (all-or-nothing).") % {"n": errors.rows})
        t2 = time.perf_counter()
        _progress(batch.pk, state=PlacementBatch.State.APPLYING)
        with transaction.atomic():
            # One batch per lender at a time: borrower matching must see the previous batch's rows.
            stage.lock()
            created, updated = stage.apply()
            timings["apply_s"] = round(time.perf_counter() - t2, 3)
            return _finish(batch, state=PlacementBatch.State.APPLIED, total=processed, errors=errors.rows,
                           created=created, updated=updated, unchanged=valid - created - updated)
    finally:
        if helper:
            helper.stop()
        stage.close()


def _stage_rows(*, stage, rows, validate: RowValidator, errors: _Errors, share: int, shares: int) -> int:
    """Validate this process's chunks of lines (chunk i goes to share i % shares) into the stage;
    returns how many lines were read. Errors are buffered; progress is added every chunk."""
    counter = {"processed": 0}

    def valid_rows() -> Iterator[CleanRow]:
        processed = reported_errors = 0
        for i, (line, values) in enumerate(rows):
            if shares > 1 and (i // CHUNK_ROWS) % shares != share:
                continue
            clean, problems = validate(line, values)
            processed += 1
            if clean is None:
                errors.add(line, problems)
            else:
                yield clean
            if processed % CHUNK_ROWS == 0:
                stage.progress(rows=CHUNK_ROWS, errors=errors.rows - reported_errors)
                reported_errors = errors.rows
        counter["processed"] = processed
        stage.progress(rows=processed % CHUNK_ROWS, errors=errors.rows - reported_errors)

    stage.load(valid_rows(), errors)
    errors.flush()
    return counter["processed"]


HELPER_DB_ENV = "PLACEMENT_HELPER_DB"  # the helper's connection settings (JSON), read by stage_helper
HELPER_DB_KEYS = ("NAME", "USER", "PASSWORD", "HOST", "PORT", "OPTIONS")


def _helper_db_settings(db: dict) -> str:
    """The connection settings the helper process must use, as JSON (raises TypeError if OPTIONS
    hold something JSON cannot carry)."""
    return json.dumps({k: db[k] for k in HELPER_DB_KEYS if k in db})


class _StageHelper:
    """A second process reading the same CSV and staging the other half of its chunks
    (``python -m cases.importers.stage_helper``). Used on PostgreSQL for large CSV files when the
    task is not inside a caller's transaction (the helper's connection must see the batch)."""

    def __init__(self, proc: subprocess.Popen, log: IO[bytes]):
        self.proc, self.log = proc, log

    @classmethod
    def start(cls, *, batch: PlacementBatch, stage, sniffed: Sniffed, today: date,
              mapping: dict) -> _StageHelper | None:
        if (not isinstance(stage, _PgStage) or stage.alone or sniffed.kind != "csv"
                or batch.kind != PlacementBatch.Kind.PLACEMENT or settings.PLACEMENT_APPLY_WORKERS < 2
                or sniffed.estimated_rows < 2 * settings.PLACEMENT_ROWS_PER_WORKER):
            return None
        try:
            path = batch.file.path
        except NotImplementedError:  # remote storage: only this process can read it
            return None
        try:
            db = _helper_db_settings(connection.settings_dict)
        except (TypeError, ValueError):  # OPTIONS the helper cannot be given (not JSON): read alone
            log.warning("placement batch %s: database OPTIONS not serialisable; no helper reader", batch.pk)
            return None
        # The connection's own settings, not a URL rebuilt from them: a URL loses OPTIONS (sslmode,
        # ...) and cannot carry a Unix-socket HOST; NAME is the one in use (a test database, say).
        env = {**os.environ, HELPER_DB_ENV: db,
               "DJANGO_SETTINGS_MODULE": os.environ.get("DJANGO_SETTINGS_MODULE", "servicing.settings")}
        stderr = tempfile.TemporaryFile()  # noqa: SIM115 - closed in stop()
        proc = subprocess.Popen(  # noqa: S603 - our own module, arguments are ids and dates
            [sys.executable, "-m", "cases.importers.stage_helper", str(batch.pk), path, sniffed.encoding,
             today.isoformat(), str(CHUNK_ROWS), str(os.getpid()), json.dumps(mapping)],
            cwd=settings.BASE_DIR, env=env, stdout=subprocess.PIPE, stderr=stderr,
        )
        return cls(proc, stderr)

    def wait(self) -> dict:
        out, _err = self.proc.communicate()
        if self.proc.returncode != 0:
            self.log.seek(0)
            tail = self.log.read()[-1500:].decode("utf-8", "replace")
            raise RuntimeError(f"the helper reading the file failed (exit {self.proc.returncode}): {tail}")
        return json.loads(out.decode().strip().splitlines()[-1])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


# ---------------------------------------------------------------------------------------------
# Staging: PostgreSQL (COPY into a temporary table, then set-based SQL)

_COPY_ESCAPE = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
PLACEMENT_STAGE_COLUMNS = (
    "line", "external_ref", "borrower_key", "borrower_name", "national_id", "phones", "emails", "address", "region",
    "jurisdiction", "time_zones", "product", "principal", "balance", "currency", "due_date", "last_payment_date",
    "days_past_due", "bucket",
)


def _c(value) -> str:
    if value is None:
        return "\\N"
    text = str(value)
    if "\\" in text or "\t" in text or "\n" in text or "\r" in text:
        return text.translate(_COPY_ESCAPE)
    return text


def _json_list(items: list[str]) -> str:
    # Phones ("+" and digits) and IANA zones need no JSON escaping; anything else goes through json.dumps.
    if not items:
        return "[]"
    if any('"' in i or "\\" in i for i in items):
        return json.dumps(items, ensure_ascii=False)
    return '["' + '","'.join(items) + '"]'


def copy_line(row: CleanRow) -> str:
    """One staging row in PostgreSQL COPY text format."""
    # Fast path: the free-text fields need no COPY escaping (nearly always). The other fields are
    # validated to digits, "+", codes from fixed sets or ISO dates, so they never need it.
    free = row.external_ref + row.borrower_name + row.address + row.region + row.product + row.email
    if "\\" in free or "\t" in free or "\n" in free or "\r" in free or '"' in row.email:
        return _copy_line_escaped(row)
    phones = row.phones
    return "\t".join((
        str(row.line), row.external_ref, row.borrower_key, row.borrower_name, row.national_id,
        ('["' + '","'.join(phones) + '"]') if phones else "[]", f'["{row.email}"]' if row.email else "[]",
        row.address, row.region, row.jurisdiction, f'["{row.time_zone}"]' if row.time_zone else "[]", row.product,
        str(row.principal), str(row.balance), row.currency, row.due_date.isoformat(),
        row.last_payment_date.isoformat() if row.last_payment_date else "\\N", str(row.days_past_due), row.bucket,
    )) + "\n"


def _copy_line_escaped(row: CleanRow) -> str:
    return "\t".join((
        str(row.line), _c(row.external_ref), _c(row.borrower_key), _c(row.borrower_name), _c(row.national_id),
        _c(_json_list(row.phones)), _c(_json_list([row.email] if row.email else [])),
        _c(row.address), _c(row.region), row.jurisdiction,
        _c(_json_list([row.time_zone] if row.time_zone else [])), _c(row.product),
        str(row.principal), str(row.balance), row.currency, row.due_date.isoformat(),
        row.last_payment_date.isoformat() if row.last_payment_date else "\\N", str(row.days_past_due), row.bucket,
    )) + "\n"


class _IterFile:
    """A read-only text file over an iterator of strings: COPY pulls rows as they are validated, so the
    database parses and stores one part while Python validates the next (two cores busy, memory flat)."""

    def __init__(self, parts: Iterator[str]):
        self.parts = parts
        self.buffer = ""

    def read(self, size: int = -1) -> str:
        pieces, have = [self.buffer], len(self.buffer)
        target = size if size and size > 0 else 1 << 30
        for part in self.parts:
            pieces.append(part)
            have += len(part)
            if have >= target:
                break
        data = "".join(pieces)
        if size and size > 0:
            self.buffer, data = data[size:], data[:size]
        else:
            self.buffer = ""
        return data

    readline = read


class _PgStage:
    COPY_BLOCK = 1 << 18

    def __init__(self, *, batch: PlacementBatch, create: bool = True):
        self.batch = batch
        self.kind = batch.kind
        self.count = 0
        # An unlogged table, not a temporary one: a large batch is applied by several connections.
        # It is rebuilt from the file on every attempt, so it needs no crash safety.
        self.table = f"placement_stage_{batch.pk}"
        # Inside a caller's transaction (a test, say) other connections cannot see the staged rows:
        # the batch is then applied by this connection alone.
        self.alone = connection.in_atomic_block
        # Progress goes through a second, autocommit connection: the main one is busy with the COPY.
        main = connections[DEFAULT_DB_ALIAS]
        self.side = type(main)(dict(main.settings_dict), alias="placement_progress")
        if not create:  # the helper process fills the table the task created
            return
        with connection.cursor() as cur:
            cur.execute(f"DROP TABLE IF EXISTS {self.table} CASCADE")
            if self.kind == PlacementBatch.Kind.RECALL:
                cur.execute(f"CREATE UNLOGGED TABLE {self.table} (line integer, external_ref text, reason text)")
            else:
                # part: which share of the batch a row goes to; computed by the database during the COPY.
                cur.execute(
                    f"CREATE UNLOGGED TABLE {self.table} (line integer, external_ref text,"
                    ' borrower_key text COLLATE "C" NOT NULL,'
                    " borrower_name text, national_id text, phones jsonb, emails jsonb, address text, region text,"
                    " jurisdiction text, time_zones jsonb, product text, principal numeric(14,2), balance numeric(14,2),"
                    " currency text, due_date date, last_payment_date date, days_past_due integer, bucket text,"
                    f" part smallint GENERATED ALWAYS AS (hashtext(borrower_key) & {PART_BUCKETS - 1}) STORED)"
                )

    def progress(self, *, rows: int, errors: int) -> None:
        if self.alone:
            # The caller's transaction holds the batch row (it reset the counters): an update from
            # another connection would wait for it forever. Nobody outside sees progress then anyway.
            return
        # Added, not set: the helper process reports its own lines into the same counters.
        with self.side.cursor() as cur:
            cur.execute("UPDATE cases_placementbatch SET processed_rows = processed_rows + %s,"
                        " error_count = error_count + %s WHERE id = %s", [rows, errors, self.batch.pk])

    def load(self, rows: Iterator[CleanRow], errors: _Errors) -> None:
        if self.kind == PlacementBatch.Kind.RECALL:
            lines = (f"{r.line}\t{_c(r.external_ref)}\t{_c(r.reason)}\n" for r in rows)
            columns = "line, external_ref, reason"
        else:
            lines = map(copy_line, rows)
            columns = ", ".join(PLACEMENT_STAGE_COLUMNS)
        with connection.cursor() as cur:
            cur.copy_expert(f"COPY {self.table} ({columns}) FROM STDIN", _IterFile(lines), self.COPY_BLOCK)

    def check(self, errors: _Errors) -> None:
        ref_column = self.batch.report["columns"]["external_ref"]
        with connection.cursor() as cur:  # every process has staged its rows by now
            cur.execute(f"SELECT count(*) FROM {self.table}")
            self.count = cur.fetchone()[0]
        with transaction.atomic(), connection.cursor() as cur:
            cur.execute("SET LOCAL work_mem = '256MB'")
            # The first line with a reference wins; later ones are errors (and leave the staging table).
            cur.execute(f"SELECT external_ref FROM {self.table} GROUP BY external_ref HAVING count(*) > 1 LIMIT 1")
            if cur.fetchone():
                cur.execute(
                    f"DELETE FROM {self.table} s USING (SELECT line, row_number() OVER (PARTITION BY external_ref"
                    f" ORDER BY line) AS n FROM {self.table}) d WHERE d.n > 1 AND s.line = d.line"
                    f" RETURNING s.line, s.external_ref")
                dups = sorted(cur.fetchall())
                for line, ref in dups:
                    errors.add(line, [(ref_column, _("Duplicate external reference %(ref)s (already on an earlier line).") % {"ref": ref})])
                self.count -= len(dups)
            if self.kind == PlacementBatch.Kind.RECALL:
                cur.execute(
                    f"DELETE FROM {self.table} s WHERE NOT EXISTS (SELECT 1 FROM cases_overdueaccount a"
                    f" WHERE a.lender_id = %s AND a.external_ref = s.external_ref) RETURNING s.line, s.external_ref",
                    [self.batch.lender_id],
                )
                unknown = sorted(cur.fetchall())
                for line, ref in unknown:
                    errors.add(line, [(ref_column, _("Unknown external reference %(ref)s.") % {"ref": ref})])
                self.count -= len(unknown)
        with connection.cursor() as cur:
            cur.execute(f"ANALYZE {self.table}")

    def lock(self) -> None:
        # A transaction-level advisory lock rather than a lock on the lender row: it serialises the
        # lender's batches without blocking agents' writes that reference the lender meanwhile.
        with connection.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s, %s::integer)", [LOCK_PLACEMENTS, self.batch.lender_id])

    def apply(self) -> tuple[int, int]:
        if self.kind == PlacementBatch.Kind.RECALL:
            with connection.cursor() as cur:
                cur.execute("SET LOCAL work_mem = '256MB'")
                cur.execute("SET CONSTRAINTS ALL IMMEDIATE")
            return _pg_recall(self.table, self.batch)
        return _pg_place_shares(self.table, self.batch, self.count, alone=self.alone)

    def close(self) -> None:
        self.side.close()
        try:
            with connection.cursor() as cur:
                cur.execute(f"DROP TABLE IF EXISTS {self.table} CASCADE")  # with the views of its shares
        except Exception:  # noqa: BLE001 - the session may already be gone
            log.warning("could not drop %s", self.table)


_BKEY_SQL = "CASE WHEN national_id <> '' THEN 'id:' || national_id ELSE 'pn:' || coalesce(phones->>0, '') || '|' || name END"


class _Timed:
    """Wraps a cursor to record how long each set-based statement takes (kept in the batch report)."""

    def __init__(self, cur, timings: dict):
        self.cur, self.timings, self.n = cur, timings, 0

    def execute(self, sql: str, params=None):
        self.n += 1
        t0 = time.perf_counter()
        self.cur.execute(sql, params)
        self.timings[f"sql{self.n}"] = round(time.perf_counter() - t0, 3)

    def __getattr__(self, name):
        return getattr(self.cur, name)


# Shares of a large batch: rows go to one of PART_BUCKETS buckets by a hash of the borrower key (so a
# borrower, and every account of it, belongs to exactly one share); share p of n takes the buckets
# b with b % n == p.
PART_BUCKETS = 64
LOCK_PLACEMENTS = 0x504C  # advisory-lock namespace ("PL") for one batch per lender at a time
LOCK_BATCH_RUN = 0x5052  # advisory-lock namespace ("PR") for one run of a given batch at a time


def _share_count(rows: int, *, alone: bool) -> int:
    if alone:
        return 1
    return max(1, min(settings.PLACEMENT_APPLY_WORKERS, rows // max(1, settings.PLACEMENT_ROWS_PER_WORKER)))


def _pg_place_shares(table: str, batch: PlacementBatch, rows: int, *, alone: bool) -> tuple[int, int]:
    """Apply the staged rows share by share: share 0 here, in the caller's transaction (committed
    with the batch's result), the others at once in threads with their own connections, each
    committing with its PlacementBatchPart row. Shares applied by an earlier attempt are skipped.

    ``alone`` (inside a caller's transaction, where no other connection sees the staging table): a
    new batch is one share; the shares an earlier attempt left are applied here one after another."""
    done = {p.part: p for p in PlacementBatchPart.objects.filter(batch_id=batch.pk)}
    shares = next(iter(done.values())).parts if done else _share_count(rows, alone=alone)
    borrower_changes = _pg_borrower_updates(table, batch)
    others = [p for p in range(1, shares) if p not in done]
    timings = batch.report.setdefault("timings", {})
    main = None
    threaded = [] if alone else others
    with ThreadPoolExecutor(max_workers=max(1, len(threaded)), thread_name_prefix=f"placement-{batch.pk}") as pool:
        futures = [pool.submit(_pg_place_share_thread, table, batch, p, shares, timings) for p in threaded]
        if alone:
            for p in others:
                _pg_place_share_recorded(table, batch, p, shares, timings)
        if 0 not in done:
            main = _pg_place_share(table, batch, 0, shares, timings)
    # Every thread has ended here (the pool waited): a failed share raises now, and this
    # transaction, with share 0, rolls back; the shares that committed stay, recorded for the retry.
    for fut in futures:
        fut.result()
    # The audit chain is locked only now, after the other shares committed theirs: taking it
    # earlier, while waiting for them, would deadlock with their audit writes.
    batch.report["borrowers_updated"] = _audit_borrower_changes(
        batch, _iter_table(borrower_changes, "id, old, new", json_from=1) if borrower_changes else ())
    if main is not None:
        created, updated, changes = main
        if changes:
            _audit_changes(batch, _iter_table(changes, ACCOUNT_CHANGE_COLUMNS, json_from=3))
        PlacementBatchPart.objects.create(batch_id=batch.pk, part=0, parts=shares, created_count=created,
                                          updated_count=updated)
    parts = PlacementBatchPart.objects.filter(batch_id=batch.pk)
    return sum(p.created_count for p in parts), sum(p.updated_count for p in parts)


def _pg_place_share_thread(table: str, batch: PlacementBatch, part: int, shares: int, timings: dict) -> None:
    try:
        with transaction.atomic():
            created, updated = _pg_place_share_recorded(table, batch, part, shares, timings)
        _progress(batch.pk, created_count=F("created_count") + created, updated_count=F("updated_count") + updated)
    finally:
        connection.close()  # this thread's own connection


def _pg_place_share_recorded(table: str, batch: PlacementBatch, part: int, shares: int,
                             timings: dict) -> tuple[int, int]:
    """Apply share ``part`` (not share 0) with its audit events and its PlacementBatchPart row, in the
    current transaction."""
    created, updated, changes = _pg_place_share(table, batch, part, shares, timings)
    if changes:
        _audit_changes(batch, _iter_table(changes, ACCOUNT_CHANGE_COLUMNS, json_from=3))
    PlacementBatchPart.objects.create(batch_id=batch.pk, part=part, parts=shares, created_count=created,
                                      updated_count=updated)
    return created, updated


def _pg_place_share(table: str, batch: PlacementBatch, part: int, shares: int,
                    timings: dict) -> tuple[int, int, str | None]:
    with connection.cursor() as cur:
        cur.execute("SET LOCAL work_mem = '256MB'")  # sorts and hash joins over the whole file stay in memory
        cur.execute("SET CONSTRAINTS ALL IMMEDIATE")
        source = table
        if shares > 1:
            source = f"{table}_p{part}"
            buckets = [b for b in range(PART_BUCKETS) if b % shares == part]
            # A plain filter on the analysed "part" column, so the planner estimates the share's size.
            cur.execute(f"CREATE OR REPLACE TEMP VIEW {source} AS SELECT * FROM {table}"
                        f" WHERE part IN ({', '.join(map(str, buckets))})")
    return _pg_place(source, batch, suffix=f"{batch.pk}_{part}", timings=timings.setdefault(f"share{part}", {}))


def _existing_borrowers_sql(table: str) -> str:
    """(borrower key, id) of the lender's existing borrowers named in ``table``: by national ID, else by
    first phone + name (the lowest id if several match). Two %s parameters: the lender, twice."""
    return (
        f"(SELECT DISTINCT ON (s.borrower_key) s.borrower_key, b.id FROM {table} s"
        f" JOIN cases_borrower b ON b.national_id = s.national_id"
        f" WHERE b.lender_id = %s AND s.national_id <> '' ORDER BY s.borrower_key, b.id)"
        f" UNION ALL (SELECT DISTINCT ON (s.borrower_key) s.borrower_key, b.id FROM {table} s"
        f" JOIN cases_borrower b ON b.name = s.borrower_name"
        f" WHERE b.lender_id = %s AND s.national_id = '' AND b.phones @> jsonb_build_array(s.phones->>0)"
        f" ORDER BY s.borrower_key, b.id)"
    )


def _merge_contacts_sql(rows_sql: str) -> str:
    """A statement head ending in the CTE ``upd`` (id, old, new): merges into each borrower of
    ``rows_sql`` (id, line, phones, emails, address) the phones and emails it lacks (appended in the
    order they first appear in the file, none removed) and the file's last non-empty address.
    One %s parameter after those of ``rows_sql``: the update time."""
    return (
        f"WITH r AS ({rows_sql}),"
        # The borrowers' current values, looked up one by one by id (LIMIT keeps the planner from
        # turning this into a scan of the whole table, which grows with every lender's borrowers).
        f" cur AS (SELECT i.id, b.phones, b.emails, b.address FROM (SELECT DISTINCT id FROM r) i,"
        f" LATERAL (SELECT phones, emails, address FROM cases_borrower WHERE id = i.id LIMIT 1) b),"
        f" ph AS (SELECT r.id, p.v, min(r.line::bigint * 1000 + p.o) AS pos FROM r,"
        f" jsonb_array_elements_text(r.phones) WITH ORDINALITY AS p(v, o) GROUP BY r.id, p.v),"
        f" em AS (SELECT r.id, e.v, min(r.line::bigint * 1000 + e.o) AS pos FROM r,"
        f" jsonb_array_elements_text(r.emails) WITH ORDINALITY AS e(v, o) GROUP BY r.id, e.v),"
        f" ph_add AS (SELECT ph.id, jsonb_agg(ph.v ORDER BY ph.pos) AS vals FROM ph JOIN cur ON cur.id = ph.id"
        f" WHERE NOT cur.phones @> jsonb_build_array(ph.v) GROUP BY ph.id),"
        f" em_add AS (SELECT em.id, jsonb_agg(em.v ORDER BY em.pos) AS vals FROM em JOIN cur ON cur.id = em.id"
        f" WHERE NOT cur.emails @> jsonb_build_array(em.v) GROUP BY em.id),"
        f" ad AS (SELECT d.id, d.address FROM (SELECT DISTINCT ON (id) id, address FROM r WHERE address <> ''"
        f" ORDER BY id, line DESC) d JOIN cur ON cur.id = d.id WHERE cur.address <> d.address),"
        f" ids AS (SELECT id FROM ph_add UNION SELECT id FROM em_add UNION SELECT id FROM ad),"
        f" cand AS (SELECT cur.id, jsonb_build_object('phones', cur.phones, 'emails', cur.emails, 'address', cur.address)"
        f" AS old, cur.phones || coalesce(ph_add.vals, '[]') AS phones, cur.emails || coalesce(em_add.vals, '[]') AS emails,"
        f" coalesce(ad.address, cur.address) AS address FROM ids JOIN cur ON cur.id = ids.id"
        f" LEFT JOIN ph_add ON ph_add.id = ids.id LEFT JOIN em_add ON em_add.id = ids.id LEFT JOIN ad ON ad.id = ids.id),"
        f" upd AS (UPDATE cases_borrower b SET phones = cand.phones, emails = cand.emails, address = cand.address,"
        f" updated_at = %s FROM cand WHERE b.id = cand.id RETURNING b.id, cand.old,"
        f" jsonb_build_object('phones', b.phones, 'emails', b.emails, 'address', b.address) AS new)"
    )


def _pg_borrower_updates(table: str, batch: PlacementBatch) -> str | None:
    """New contact details for the lender's existing borrowers. Returns the temp table of
    (id, old, new) to audit, or None if nothing changed. Runs before the shares start, so an existing
    borrower row is only ever updated by this transaction."""
    changes, known = f"placement_borrower_changes_{batch.pk}", f"placement_known_{batch.pk}"
    with connection.cursor() as cur:
        cur.execute(f"DROP TABLE IF EXISTS {changes}, {known}")
        # A primary key, for _iter_table's keyset pages (each page an index range, not a scan).
        cur.execute(f"CREATE TEMP TABLE {changes} (id bigint PRIMARY KEY, old jsonb, new jsonb) ON COMMIT DROP")
        cur.execute(f'CREATE TEMP TABLE {known} (bkey text COLLATE "C", id bigint) ON COMMIT DROP')
        cur.execute(f"INSERT INTO {known} {_existing_borrowers_sql(table)}", [batch.lender_id, batch.lender_id])
        if not cur.rowcount:  # a first file: nobody to update
            return None
        cur.execute(f"ANALYZE {known}")
        rows_sql = (f"SELECT m.id, s.line, s.phones, s.emails, s.address FROM {table} s"
                    f" JOIN {known} m ON m.bkey = s.borrower_key")
        cur.execute(f"{_merge_contacts_sql(rows_sql)} INSERT INTO {changes} SELECT * FROM upd", [timezone.now()])
        return changes if cur.rowcount else None


def _pg_place(table: str, batch: PlacementBatch, *, suffix: str, timings: dict) -> tuple[int, int, str | None]:
    """Apply the staged rows of ``table``; returns (created, updated, the temp table of changes to audit)."""
    lender_id, now = batch.lender_id, timezone.now()
    bmap = f"placement_bmap_{suffix}"
    with connection.cursor() as raw:
        cur = _Timed(raw, timings)
        # Borrowers: existing ones by national ID, else by first phone + name; the rest are created.
        # The key -> id map is a narrow side table, cheaper than rewriting every staging row.
        cur.execute(f"DROP TABLE IF EXISTS {bmap}")
        # Keys collate as "C": they are only grouped and joined, and byte order sorts much faster.
        cur.execute(f'CREATE TEMP TABLE {bmap} (bkey text COLLATE "C", id bigint, created boolean) ON COMMIT DROP')
        cur.execute(f"INSERT INTO {bmap} SELECT *, false FROM ({_existing_borrowers_sql(table)}) e",
                    [lender_id, lender_id])
        cur.execute(
            f"WITH ins AS (INSERT INTO cases_borrower (lender_id, name, national_id, phones, emails, address, region,"
            f" jurisdiction, time_zones, sms_consent, email_consent, after_hours_consent, cease, dispute, attorney,"
            f" bankruptcy, deceased, vulnerable, created_at, updated_at)"
            f" SELECT %s, borrower_name, national_id, phones, emails, address, region,"
            f" jurisdiction, time_zones, true, true, false, false, false, false, false, false, false, %s, %s"
            f" FROM (SELECT DISTINCT ON (borrower_key) * FROM {table} s"
            f" WHERE NOT EXISTS (SELECT 1 FROM {bmap} m WHERE m.bkey = s.borrower_key)"
            f" ORDER BY borrower_key, line) d ORDER BY borrower_key RETURNING id, {_BKEY_SQL} AS bkey)"
            f" INSERT INTO {bmap} SELECT bkey, id, true FROM ins",
            [lender_id, now, now])
        cur.execute(f"ANALYZE {bmap}")
        # A new borrower is made from its first line; its other lines add their phones, emails and
        # address (as a later file does for a known borrower). The few keys on several lines go to a
        # small analysed table first, so the merge looks borrowers up by id instead of scanning them.
        multi = f"placement_multi_{suffix}"
        cur.execute(f"DROP TABLE IF EXISTS {multi}")
        cur.execute(f"CREATE TEMP TABLE {multi} ON COMMIT DROP AS SELECT m.bkey, m.id FROM {bmap} m JOIN"
                    f" (SELECT borrower_key FROM {table} GROUP BY borrower_key HAVING count(*) > 1) k"
                    f" ON k.borrower_key = m.bkey WHERE m.created")
        cur.execute(f"ANALYZE {multi}")
        cur.execute(
            _merge_contacts_sql(f"SELECT m.id, s.line, s.phones, s.emails, s.address FROM {table} s"
                                f" JOIN {multi} m ON m.bkey = s.borrower_key") + " SELECT count(*) FROM upd", [now])
        # New borrowers are inserted in borrower-key order (above), and accounts by borrower id (below):
        # the per-row foreign-key check and the borrower_id index then walk the borrowers sequentially
        # instead of at random across a table larger than shared_buffers.
        # Accounts already placed and changed: update, keeping the old values for the audit log.
        changes = f"placement_changes_{suffix}"
        cur.execute(f"DROP TABLE IF EXISTS {changes}")
        cur.execute(  # keyed by id for _iter_table's keyset pages
            f"CREATE TEMP TABLE {changes} (id bigint PRIMARY KEY, borrower_id bigint, external_ref text, old jsonb,"
            f" new jsonb) ON COMMIT DROP")
        cur.execute(
            f"WITH cur AS (SELECT a.id, s.*, jsonb_build_object('balance', a.balance::text, 'principal', a.principal::text,"
            f" 'due_date', a.due_date, 'last_payment_date', a.last_payment_date, 'currency', a.currency,"
            f" 'product', a.product) AS old"
            f" FROM cases_overdueaccount a JOIN {table} s ON a.external_ref = s.external_ref WHERE a.lender_id = %s"
            f" AND (a.balance, a.principal, a.due_date, a.last_payment_date, a.currency, a.product)"
            f" IS DISTINCT FROM (s.balance, s.principal, s.due_date, s.last_payment_date, s.currency, s.product)),"
            f" upd AS (UPDATE cases_overdueaccount a SET balance = cur.balance, principal = cur.principal,"
            f" due_date = cur.due_date, last_payment_date = cur.last_payment_date, currency = cur.currency,"
            f" product = cur.product, days_past_due = cur.days_past_due, bucket = cur.bucket, updated_at = %s"
            f" FROM cur WHERE a.id = cur.id RETURNING a.id, a.borrower_id, a.external_ref, cur.old,"
            f" jsonb_build_object('balance', a.balance::text, 'principal', a.principal::text, 'due_date', a.due_date,"
            f" 'last_payment_date', a.last_payment_date, 'currency', a.currency, 'product', a.product) AS new)"
            f" INSERT INTO {changes} SELECT * FROM upd", [lender_id, now])
        updated = cur.rowcount
        cur.execute(
            f"INSERT INTO cases_overdueaccount (lender_id, borrower_id, external_ref, product, principal, balance,"
            f" currency, due_date, last_payment_date, days_past_due, bucket, status, extra, placed_at, updated_at)"
            f" SELECT %s, m.id, s.external_ref, s.product, s.principal, s.balance, s.currency, s.due_date,"
            f" s.last_payment_date, s.days_past_due, s.bucket, 'new', jsonb_build_object('batch', %s), %s, %s"
            f" FROM {table} s JOIN {bmap} m ON m.bkey = s.borrower_key"
            f" WHERE NOT EXISTS (SELECT 1 FROM cases_overdueaccount a WHERE a.lender_id = %s"
            f" AND a.external_ref = s.external_ref) ORDER BY m.id, s.line",
            [lender_id, batch.pk, now, now, lender_id])
        created = cur.rowcount
    return created, updated, (changes if updated else None)


def _iter_table(table: str, columns: str, *, json_from: int) -> Iterator[tuple]:
    """A temp table's rows in id order, 5,000 at a time (keyset); the columns from ``json_from`` on are jsonb."""
    last = 0
    while True:
        with connection.cursor() as cur:
            cur.execute(f"SELECT {columns} FROM {table} WHERE id > %s ORDER BY id LIMIT 5000", [last])
            rows = cur.fetchall()
        if not rows:
            return
        for r in rows:
            yield (*r[:json_from], *(json.loads(v) if isinstance(v, str) else v for v in r[json_from:]))
        last = rows[-1][0]


def _borrower_diff(old: dict, new: dict) -> dict:
    # The audit log is append-only and kept for years: what changed, with contact details masked.
    return {
        "phones_added": [mask_phone(p) for p in new["phones"] if p not in old["phones"]],
        "emails_added": [mask_email(e) for e in new["emails"] if e not in old["emails"]],
        "address_changed": old["address"] != new["address"],
    }


def _audit_borrower_changes(batch: PlacementBatch, changes) -> int:
    """One ``cases.borrower.updated`` event per borrower whose contact details the file extended."""
    events: list[dict] = []
    n = 0
    for borrower_id, old, new in changes:
        n += 1
        events.append({
            "action": "cases.borrower.updated", "lender_id": batch.lender_id, "subject_type": "cases.borrower",
            "subject_id": borrower_id, "borrower_id": borrower_id,
            "data": {"batch": batch.pk, **_borrower_diff(old, new)},
        })
        if len(events) >= 5000:
            audit_log_many(events=events, actor=batch.uploaded_by)
            events = []
    if events:
        audit_log_many(events=events, actor=batch.uploaded_by)
    return n


def _audit_changes(batch: PlacementBatch, changes) -> None:
    """One ``cases.account.updated`` event per changed account (bulk, in chunks)."""
    events: list[dict] = []
    for account_id, borrower_id, ref, old, new in changes:
        diff = {k: [old.get(k), new.get(k)] for k in COMPARED if str(old.get(k)) != str(new.get(k))}
        events.append({
            "action": "cases.account.updated", "lender_id": batch.lender_id, "subject_type": "cases.overdueaccount",
            "subject_id": account_id, "account_id": account_id, "borrower_id": borrower_id,
            "data": {"batch": batch.pk, "external_ref": ref, "changes": diff},
        })
        if len(events) >= 5000:
            audit_log_many(events=events, actor=batch.uploaded_by)
            events = []
    if events:
        audit_log_many(events=events, actor=batch.uploaded_by)


def _pg_recall(table: str, batch: PlacementBatch) -> tuple[int, int]:
    now = timezone.now()
    changes = f"recall_changes_{batch.pk}"
    with connection.cursor() as cur:
        cur.execute(f"DROP TABLE IF EXISTS {changes}")
        cur.execute(f"CREATE TEMP TABLE {changes} (id bigint PRIMARY KEY, borrower_id bigint, external_ref text,"
                    f" status text, agent_id bigint, reason text) ON COMMIT DROP")
        cur.execute(
            f"WITH cur AS (SELECT a.id, a.status, a.assigned_agent_id, s.reason FROM cases_overdueaccount a"
            f" JOIN {table} s ON a.external_ref = s.external_ref WHERE a.lender_id = %s AND a.status <> ALL(%s)),"
            f" upd AS (UPDATE cases_overdueaccount a SET status = 'recalled', assigned_agent_id = NULL,"
            f" locked_by_id = NULL, locked_until = NULL, updated_at = %s FROM cur WHERE a.id = cur.id"
            f" RETURNING a.id, a.borrower_id, a.external_ref, cur.status, cur.assigned_agent_id, cur.reason)"
            f" INSERT INTO {changes} SELECT * FROM upd", [batch.lender_id, list(RECALL_SKIP), now])
        updated = cur.rowcount
        cur.execute(f"UPDATE cases_callback SET status = 'cancelled' WHERE status = 'scheduled'"
                    f" AND account_id IN (SELECT id FROM {changes})")
    events: list[dict] = []
    for row in _iter_table(changes, "id, borrower_id, external_ref, status, agent_id, reason", json_from=6):
        events.append(_recall_event(batch.lender_id, batch.pk, *row))
        if len(events) >= 5000:
            audit_log_many(events=events, actor=batch.uploaded_by)
            events = []
    if events:
        audit_log_many(events=events, actor=batch.uploaded_by)
    return 0, updated


def _recall_event(lender_id, batch_id, account_id, borrower_id, ref, status, agent_id, reason) -> dict:
    return {
        "action": "cases.account.recalled", "lender_id": lender_id, "subject_type": "cases.overdueaccount",
        "subject_id": account_id, "account_id": account_id, "borrower_id": borrower_id,
        "data": {"batch": batch_id, "external_ref": ref, "from": status, "to": "recalled", "from_agent": agent_id,
                 "reason": reason or ""},
    }


# ---------------------------------------------------------------------------------------------
# Staging: portable ORM path (SQLite, the embedded run). Same results, chunked ORM writes.


class _OrmStage:
    def __init__(self, *, batch: PlacementBatch):
        self.batch = batch
        self.kind = batch.kind
        self.count = 0
        self.spool = tempfile.TemporaryFile()  # noqa: SIM115 - closed in close()
        self.seen: set[str] = set()
        self.created_borrowers: set[int] = set()  # by this batch: a later chunk's lines merge in unaudited

    def progress(self, *, rows: int, errors: int) -> None:
        self._errors.flush()
        _progress(self.batch.pk, processed_rows=F("processed_rows") + rows, error_count=F("error_count") + errors)

    def load(self, rows: Iterator[CleanRow], errors: _Errors) -> None:
        self._errors = errors
        chunk: list[CleanRow] = []
        for row in rows:
            chunk.append(row)
            if len(chunk) >= CHUNK_ROWS:
                self._load_chunk(chunk, errors)
                chunk = []
        self._load_chunk(chunk, errors)

    def _load_chunk(self, rows: list[CleanRow], errors: _Errors) -> None:
        keep = []
        for r in rows:
            if r.external_ref in self.seen:
                errors.add(r.line, [(self.batch.report["columns"]["external_ref"],
                                     _("Duplicate external reference %(ref)s (already on an earlier line).") % {"ref": r.external_ref})])
                continue
            self.seen.add(r.external_ref)
            keep.append(r)
        if self.kind == PlacementBatch.Kind.RECALL and keep:
            known = set(OverdueAccount.objects.filter(lender_id=self.batch.lender_id,
                                                      external_ref__in=[r.external_ref for r in keep])
                        .values_list("external_ref", flat=True))
            for r in [r for r in keep if r.external_ref not in known]:
                errors.add(r.line, [(self.batch.report["columns"]["external_ref"],
                                     _("Unknown external reference %(ref)s.") % {"ref": r.external_ref})])
            keep = [r for r in keep if r.external_ref in known]
        if keep:
            pickle.dump(keep, self.spool)
            self.count += len(keep)

    def check(self, errors: _Errors) -> None:
        """Duplicates and unknown references were found while loading."""

    def lock(self) -> None:
        Lender.objects.select_for_update().filter(pk=self.batch.lender_id).first()

    def _chunks(self) -> Iterator[list[CleanRow]]:
        self.spool.seek(0)
        while True:
            try:
                yield pickle.load(self.spool)  # noqa: S301 - our own temp file, written above
            except EOFError:
                return

    def apply(self) -> tuple[int, int]:
        created = updated = 0
        for rows in self._chunks():
            if self.kind == PlacementBatch.Kind.RECALL:
                updated += _orm_recall(self.batch, rows)
            else:
                c, u = _orm_place(self.batch, rows, created_borrowers=self.created_borrowers)
                created, updated = created + c, updated + u
        return created, updated

    def close(self) -> None:
        self.spool.close()


def _orm_borrowers(batch: PlacementBatch, rows: list[CleanRow], *, created_borrowers: set[int]) -> dict[str, int]:
    lender_id = batch.lender_id
    ids = {r.national_id for r in rows if r.national_id}
    existing: dict[str, Borrower] = {}
    for b in Borrower.objects.filter(lender_id=lender_id, national_id__in=ids).order_by("id"):
        existing.setdefault("id:" + b.national_id, b)
    names = {r.borrower_name for r in rows if not r.national_id}
    for b in Borrower.objects.filter(lender_id=lender_id, name__in=names).order_by("id"):
        for phone in b.phones:
            existing.setdefault(f"pn:{phone}|{b.name}", b)
    _orm_merge_contacts(batch, rows, existing, audit_skip=created_borrowers)
    found = {key: b.pk for key, b in existing.items()}
    new: dict[str, Borrower] = {}
    for r in rows:  # made from its first line; the others add their contact details
        if r.borrower_key not in found and r.borrower_key not in new:
            new[r.borrower_key] = Borrower(
                lender_id=lender_id, name=r.borrower_name, national_id=r.national_id, phones=[],
                emails=[], address="", region=r.region, jurisdiction=r.jurisdiction,
                time_zones=[r.time_zone] if r.time_zone else [],
            )
        if r.borrower_key in new:
            _merge_row(new[r.borrower_key], r)
    for key, b in zip(new, Borrower.objects.bulk_create(list(new.values())), strict=True):
        found[key] = b.pk
        created_borrowers.add(b.pk)
    return found


def _merge_row(b: Borrower, r: CleanRow) -> None:
    b.phones = b.phones + [p for p in r.phones if p not in b.phones]
    if r.email and r.email not in b.emails:
        b.emails = [*b.emails, r.email]
    if r.address:
        b.address = r.address


def _orm_merge_contacts(batch: PlacementBatch, rows: list[CleanRow], existing: dict[str, Borrower], *,
                        audit_skip: set[int]) -> None:
    """The ORM twin of the PostgreSQL merge (``_merge_contacts_sql``): new phones and emails
    appended, the last address; audited for borrowers that were there before this batch."""
    before: dict[int, dict] = {}
    touched: dict[int, Borrower] = {}
    for r in rows:
        b = existing.get(r.borrower_key)
        if b is None:
            continue
        before.setdefault(b.pk, {"phones": list(b.phones), "emails": list(b.emails), "address": b.address})
        touched[b.pk] = b
        _merge_row(b, r)
    changed = [b for pk, b in touched.items()
               if {"phones": b.phones, "emails": b.emails, "address": b.address} != before[pk]]
    now = timezone.now()
    for b in changed:
        b.updated_at = now
    Borrower.objects.bulk_update(changed, [*BORROWER_MERGED, "updated_at"])
    n = _audit_borrower_changes(batch, ((b.pk, before[b.pk], {k: getattr(b, k) for k in BORROWER_MERGED})
                                        for b in changed if b.pk not in audit_skip))
    batch.report["borrowers_updated"] = batch.report.get("borrowers_updated", 0) + n


def _orm_place(batch: PlacementBatch, rows: list[CleanRow], *, created_borrowers: set[int]) -> tuple[int, int]:
    borrowers = _orm_borrowers(batch, rows, created_borrowers=created_borrowers)
    existing = {a.external_ref: a for a in OverdueAccount.objects.filter(
        lender_id=batch.lender_id, external_ref__in=[r.external_ref for r in rows])}
    to_create, to_update, changes = [], [], []
    for r in rows:
        a = existing.get(r.external_ref)
        if a is None:
            to_create.append(OverdueAccount(
                lender_id=batch.lender_id, borrower_id=borrowers[r.borrower_key], external_ref=r.external_ref,
                product=r.product, principal=r.principal, balance=r.balance, currency=r.currency, due_date=r.due_date,
                last_payment_date=r.last_payment_date, days_past_due=r.days_past_due, bucket=r.bucket,
                status=OverdueAccount.Status.NEW, extra={"batch": batch.pk},
            ))
            continue
        old = {k: getattr(a, k) for k in COMPARED}
        new = {k: getattr(r, k) for k in COMPARED}
        if old == new:
            continue
        for k, v in new.items():
            setattr(a, k, v)
        a.days_past_due, a.bucket, a.updated_at = r.days_past_due, r.bucket, timezone.now()
        to_update.append(a)
        changes.append((a.pk, a.borrower_id, a.external_ref, _jsonish(old), _jsonish(new)))
    OverdueAccount.objects.bulk_create(to_create)
    OverdueAccount.objects.bulk_update(to_update, [*COMPARED, "days_past_due", "bucket", "updated_at"])
    _audit_changes(batch, changes)
    return len(to_create), len(to_update)


def _jsonish(values: dict) -> dict:
    return {k: (f"{v:.2f}" if isinstance(v, Decimal) else v.isoformat() if isinstance(v, date) else v)
            for k, v in values.items()}


def _orm_recall(batch: PlacementBatch, rows: list[CleanRow]) -> int:
    reasons = {r.external_ref: r.reason for r in rows}
    accounts = list(OverdueAccount.objects.filter(lender_id=batch.lender_id, external_ref__in=list(reasons))
                    .exclude(status__in=RECALL_SKIP).order_by("pk"))
    return _accounts_recall_apply(lender_id=batch.lender_id, batch_id=batch.pk, accounts=accounts,
                                  reasons=reasons, actor=batch.uploaded_by)


def _accounts_recall_apply(*, lender_id: int, batch_id: int | None, accounts: list[OverdueAccount],
                           reasons: dict[str, str], actor: User | None) -> int:
    """Recall ``accounts`` (already chosen: the lender's, not in RECALL_SKIP): status "recalled",
    unassigned and unlocked, their scheduled callbacks cancelled, one audit event each with the
    status and agent they had and the reason for their reference. The caller holds the transaction.
    Returns how many were recalled."""
    ids = [a.pk for a in accounts]
    OverdueAccount.objects.filter(pk__in=ids).update(
        status=OverdueAccount.Status.RECALLED, assigned_agent=None, locked_by=None, locked_until=None,
        updated_at=timezone.now())
    Callback.objects.filter(account_id__in=ids, status=Callback.Status.SCHEDULED).update(status=Callback.Status.CANCELLED)
    if accounts:
        audit_log_many(events=[_recall_event(lender_id, batch_id, a.pk, a.borrower_id, a.external_ref, a.status,
                                             a.assigned_agent_id, reasons.get(a.external_ref, ""))
                               for a in accounts], actor=actor)
    return len(ids)


# ---------------------------------------------------------------------------------------------
# Recall by API (a short list of references, applied at once)

MAX_RECALL_REFS = 1000


def accounts_recall(*, actor: User, refs: list[str], reason: str = "") -> dict:
    """Take accounts back from collection now: status "recalled", unassigned, audited one by one."""
    lender = actor.lender if actor.is_lender_user else None
    if lender is None or lender.status != Lender.Status.ACTIVE:
        raise PermissionDenied(_("Only users of an active lender recall accounts."))
    refs = [str(r).strip() for r in refs if str(r).strip()]
    if not refs:
        raise ValidationError({"external_refs": _("Give at least one external reference.")})
    if len(refs) > MAX_RECALL_REFS:
        raise ValidationError({"external_refs": _("At most %(n)s references per request; upload a recall file for more.") % {"n": MAX_RECALL_REFS}})
    with transaction.atomic():
        # Locked in primary-key order, as every writer of several accounts does: two requests over
        # overlapping references then queue instead of deadlocking.
        accounts = list(OverdueAccount.objects.select_for_update().filter(lender=lender, external_ref__in=refs)
                        .order_by("pk"))
        recalled = [a for a in accounts if a.status not in RECALL_SKIP]
        _accounts_recall_apply(lender_id=lender.pk, batch_id=None, accounts=recalled,
                               reasons=dict.fromkeys(refs, reason[:500]), actor=actor)
    known = {a.external_ref for a in accounts}
    return {
        "recalled": sorted(a.external_ref for a in recalled),
        "unchanged": sorted(a.external_ref for a in accounts if a.status in RECALL_SKIP),
        "unknown": sorted(r for r in set(refs) if r not in known),
    }
