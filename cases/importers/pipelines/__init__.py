"""The two ways a placement batch is staged and applied, behind one interface (``base.Stage``):
``postgres`` (COPY and set-based SQL, shares applied in parallel) and ``orm`` (SQLite, the embedded
run). ``stage_for`` picks one by the database vendor; the orchestration in ``services`` never asks."""

from __future__ import annotations

import contextlib
from datetime import date

from django.db import connection

from cases.models import PlacementBatch

from ..reader import Sniffed
from . import orm, postgres
from .base import Stage


def _postgres() -> bool:
    return connection.vendor == "postgresql"


def stage_for(*, batch: PlacementBatch) -> Stage:
    return postgres.PgStage(batch=batch) if _postgres() else orm.OrmStage(batch=batch)


def batch_run_lock(*, batch_id: int) -> contextlib.AbstractContextManager[bool]:
    """One run of a batch at a time (PostgreSQL; SQLite has one writer anyway)."""
    return postgres.batch_run_lock(batch_id=batch_id) if _postgres() else contextlib.nullcontext(True)


def helper_start(*, batch: PlacementBatch, stage: Stage, sniffed: Sniffed, today: date,
                 mapping: dict) -> postgres.StageHelper | None:
    """A second reader process for a large CSV (PostgreSQL only: it returns None for another stage)."""
    return postgres.StageHelper.start(batch=batch, stage=stage, sniffed=sniffed, today=today, mapping=mapping)


__all__ = ["Stage", "batch_run_lock", "helper_start", "stage_for"]
