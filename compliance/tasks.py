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
