"""Placement files: column mappings, uploads, and the orchestration of processing a batch.

Applying a batch (``placement_batch_process``, run by Celery):

1. Read and validate the file streaming, in chunks. Valid rows go to a staging area (the pipeline's
   ``Stage``: on PostgreSQL an unlogged table filled with COPY, on SQLite a spooled temp file), row
   errors to PlacementRowError. ``processed_rows`` is committed every chunk so the portal can draw a
   progress bar.
2. All-or-nothing mode with any error: nothing is applied (state "rejected").
3. Otherwise the valid rows are applied set-based by the pipeline (``pipelines.postgres`` or
   ``pipelines.orm``), with the audit events, under a per-lender lock. A small file is applied in one
   transaction: a crash leaves nothing half-written. A large one on PostgreSQL is split by borrower
   into shares applied at once by several connections, each committing with its PlacementBatchPart
   row, so the batch is resumable: processing it again skips the shares already applied. While it
   runs the batch is in state "applying".

On PostgreSQL a batch is processed by one run at a time (an advisory lock on its id): a task delivered
again while the first still runs leaves the batch to it. Lender onboarding is in ``lenders``, recall
by API in ``recall``.
"""

from __future__ import annotations

import hashlib
import logging
import time
from pathlib import Path
from typing import IO

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from cases.models import ColumnMapping, Lender, PlacementBatch, PlacementBatchPart, PlacementRowError, User
from compliance.audit import audit_log

from . import dispatch, pipelines
from .columns import BY_KEY, RECALL_COLUMNS, resolve_header
from .pipelines import base
from .reader import ENCODINGS, FileFormatError, FileLimitError, Sniffed, iter_rows, sniff
from .validation import RowValidator

log = logging.getLogger(__name__)


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
    elif file.size > settings.PLACEMENT_MAX_FILE_BYTES:
        errors["file"] = _("The file is larger than %(limit)s MB; split it into smaller files.") % {
            "limit": settings.PLACEMENT_MAX_FILE_BYTES // 1_000_000}
    if errors:
        raise ValidationError(errors)
    sha = _sha256(file)
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
        # An outbox row, not a publish: the request never waits for (or fails with) the broker.
        dispatch.job_enqueue(batch=batch)
    return batch


# ---------------------------------------------------------------------------------------------
# Processing


def placement_batch_process(*, batch_id: int) -> PlacementBatch:
    """Validate and apply one batch. Idempotent: an applied or rejected batch is returned unchanged; a
    failed or interrupted one is processed again, skipping the shares it already applied. A batch that
    another worker is processing right now (PostgreSQL) is returned unchanged too."""
    with pipelines.batch_run_lock(batch_id=batch_id) as acquired:
        if not acquired:
            # A re-delivered task while the first is still running: two runs would reset each other's
            # progress and row errors and race for the same shares.
            log.info("placement batch %s is being processed by another worker; left to it", batch_id)
            batch = PlacementBatch.objects.select_related("lender", "uploaded_by").get(pk=batch_id)
            batch.run_busy = True  # the task retries later: the other run may be a dead worker's last statement
            return batch
        return _process(batch_id)


def _process(batch_id: int) -> PlacementBatch:
    batch = PlacementBatch.objects.select_related("lender", "uploaded_by").get(pk=batch_id)
    if batch.state in (PlacementBatch.State.APPLIED, PlacementBatch.State.REJECTED):
        return batch
    if batch.state == PlacementBatch.State.FAILED and batch.requeue_count >= settings.PLACEMENT_MAX_REQUEUES:
        return batch  # given up by the sweep: a late re-delivery must not run (and kill a worker) again
    # A re-delivered task (worker crashed) starts again: drop what the previous attempt stored.
    PlacementRowError.objects.filter(batch_id=batch.pk).delete()
    now = timezone.now()
    base.progress(batch.pk, state=PlacementBatch.State.PROCESSING, started_at=now, processed_rows=0, error_count=0,
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
        except FileLimitError as exc:
            return _finish(batch, state=PlacementBatch.State.FAILED,
                           message=_("The file was stopped at a limit: %(why)s") % {"why": exc})
        except FileFormatError as exc:
            return _finish(batch, state=PlacementBatch.State.REJECTED, message=_("The file cannot be read: %(why)s") % {"why": exc})
        except Exception as exc:  # noqa: BLE001 - any crash marks the batch failed, visibly, then re-raises
            log.exception("placement batch %s failed", batch.pk)
            # Lenders never see the exception (a database error names tables and values): the
            # detail goes to the log and to the audit event, which supervisors read.
            detail = f"{exc.__class__.__name__}: {exc}"[:500]
            message = _("The file could not be processed because of an internal error (batch %(id)s). "
                        "Upload it again later; if it keeps failing, contact support.") % {"id": batch.pk}
            parts = list(PlacementBatchPart.objects.filter(batch_id=batch.pk)
                         .values_list("parts", "created_count", "updated_count"))
            if parts:
                message = _("%(done)s of %(parts)s shares were applied; process the batch again to apply the rest.") % {
                    "done": len(parts), "parts": parts[0][0]} + " " + message
            # The shares that committed did create and update accounts: the failed batch says so.
            # Rows read and errors are left as the run's progress counted them.
            _finish(batch, state=PlacementBatch.State.FAILED, message=message, detail=detail,
                    created=sum(p[1] for p in parts), updated=sum(p[2] for p in parts))
            raise


def _finish(batch: PlacementBatch, *, state: str, message: str = "", total: int | None = None,
            created: int | None = None, updated: int | None = None, unchanged: int | None = None,
            errors: int | None = None, detail: str = "") -> PlacementBatch:
    """Record the batch's outcome and audit it (``detail``: for the audit event only). Only the counts given are written; the others keep
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
                  "message": message[:500], **({"error": detail} if detail else {}),
                  **({"already_applied": batch.report["already_applied"]} if "already_applied" in batch.report else {})},
        )
    return batch


def _run(batch: PlacementBatch) -> PlacementBatch:
    mapping = ColumnMapping.objects.filter(lender_id=batch.lender_id).values_list("mapping", flat=True).first() or {}
    errors = base.Errors(batch.pk)
    with batch.file.open("rb") as fh:
        sniffed = sniff(fh, encoding=batch.encoding)
        batch.encoding = sniffed.encoding
        batch.options = {**batch.options, "format": sniffed.kind, "detected_encoding": sniffed.encoding}
        base.progress(batch.pk, total_rows=sniffed.estimated_rows)
        notes: dict = {}
        rows = iter_rows(fh, sniffed, notes=notes)
        try:
            return _run_rows(batch, rows, mapping, errors, sniffed=sniffed, notes=notes)
        finally:
            rows.close()


def _run_rows(batch: PlacementBatch, rows, mapping: dict, errors: base.Errors, *, sniffed: Sniffed,
              notes: dict) -> PlacementBatch:
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
    stage = pipelines.stage_for(batch=batch)
    timings = batch.report.setdefault("timings", {})
    t0 = time.perf_counter()
    helper = None
    try:
        # A large CSV is read by a helper process too, each validating every other chunk of lines:
        # validation is Python, one core per process. Started inside the try: if starting it fails,
        # the stage is still closed (its staging table dropped).
        helper = pipelines.helper_start(batch=batch, stage=stage, sniffed=sniffed, today=today, mapping=mapping)
        shares = 2 if helper else 1
        batch.report["read_processes"] = shares
        if helper:
            errors.cap = base.MAX_STORED_ERRORS // 2  # the helper stores the other half
        processed = base.stage_rows(stage=stage, rows=rows, validate=validate, errors=errors, share=0, shares=shares)
        if helper:
            done = helper.wait()
            processed += done["processed"]
            errors.rows += done["errors"]
        timings["read_validate_stage_s"] = round(time.perf_counter() - t0, 3)
        t1 = time.perf_counter()
        stage.check(errors)  # duplicates inside the file, unknown references in a recall
        errors.flush()
        timings["check_s"] = round(time.perf_counter() - t1, 3)
        base.progress(batch.pk, processed_rows=processed, total_rows=processed, error_count=errors.rows)
        valid = stage.count
        if errors.rows and batch.mode == PlacementBatch.Mode.ALL_OR_NOTHING:
            return _finish(batch, state=PlacementBatch.State.REJECTED, total=processed, errors=errors.rows,
                           message=_("%(n)s row(s) failed validation; nothing was applied (all-or-nothing).") % {"n": errors.rows})
        t2 = time.perf_counter()
        base.progress(batch.pk, state=PlacementBatch.State.APPLYING)
        with transaction.atomic():
            # One batch per lender at a time: borrower matching must see the previous batch's rows.
            stage.lock()
            created, updated = stage.apply()
            timings["apply_s"] = round(time.perf_counter() - t2, 3)
            message = ""
            if "empty_rows_from_line" in notes:
                batch.report["empty_rows_from_line"] = notes["empty_rows_from_line"]
                message = _("Reading stopped at line %(line)s: more than %(n)s empty rows follow it, and rows after "
                            "them, if any, were not read.") % {"line": notes["empty_rows_from_line"],
                                                                "n": f"{settings.PLACEMENT_MAX_EMPTY_ROWS:,}"}
            return _finish(batch, state=PlacementBatch.State.APPLIED, total=processed, errors=errors.rows,
                           created=created, updated=updated, unchanged=valid - created - updated, message=message)
    finally:
        if helper:
            helper.stop()
        stage.close()
