"""Celery tasks of the compliance app: thin wrappers around compliance.audit.

Beat (django-celery-beat, seeded by compliance migration 0006, editable in the admin): checkpoints every
5 minutes. Idempotent: a chain whose head has not moved gets no new line.
"""

from __future__ import annotations

from celery import shared_task

from .audit import audit_checkpoint_write


@shared_task
def audit_checkpoint_task() -> int:
    """Append a signed checkpoint for every audit chain that moved; returns how many were written."""
    return len(audit_checkpoint_write())


@shared_task
def audit_verify_task() -> dict:
    """Verify every audit chain (the supervisor's *Verify chain* button); the result is recorded as an
    AuditVerification row, which the audit log page shows. Idempotent: running it twice records two
    verifications of the same chains."""
    from .audit import audit_verify

    result = audit_verify()
    return {"ok": result.ok, "checked": result.checked, "first_broken_id": result.first_broken_id}
