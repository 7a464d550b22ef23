"""The application's notion of "now", controllable across processes for tests and drills.

Production: ``now()`` is ``django.utils.timezone.now()``. When the environment variable
``SERVICING_CLOCK_FILE`` names a file, that file controls the clock of every process started with
the variable (the test process and a real Celery worker alike), so a test can move time forward
without mocking: ``{"frozen": "2026-05-01T21:30:00+08:00"}`` pins the time, ``{"offset_seconds": n}``
shifts the real time. A missing or empty file means real time. The file is re-read on every call
(a few microseconds) so a running worker sees a change immediately.
"""

from __future__ import annotations

import json
import os
from datetime import date, datetime, timedelta
from pathlib import Path

from django.utils import timezone

ENV = "SERVICING_CLOCK_FILE"


def _override() -> dict:
    path = os.environ.get(ENV)
    if not path:
        return {}
    try:
        text = Path(path).read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return {}
    return json.loads(text) if text else {}


def now() -> datetime:
    """Aware current time (UTC), honouring a controlled clock when one is configured."""
    real = timezone.now()
    data = _override()
    if data.get("frozen"):
        frozen = datetime.fromisoformat(data["frozen"])
        if timezone.is_naive(frozen):
            raise ValueError(f"{ENV}: frozen time must include an offset")
        return frozen.astimezone(real.tzinfo)
    if data.get("offset_seconds"):
        return real + timedelta(seconds=float(data["offset_seconds"]))
    return real


def localdate(tz=None) -> date:
    return timezone.localtime(now(), tz).date()


def set_clock(*, path: str | os.PathLike, frozen: datetime | None = None, offset_seconds: float | None = None) -> None:
    """Write the control file (tests): pass ``frozen`` or ``offset_seconds``, neither for real time."""
    data: dict = {}
    if frozen is not None:
        if timezone.is_naive(frozen):
            raise ValueError("frozen time must be aware")
        data["frozen"] = frozen.isoformat()
    if offset_seconds is not None:
        data["offset_seconds"] = offset_seconds
    tmp = Path(f"{path}.tmp")
    tmp.write_text(json.dumps(data), encoding="utf-8")
    os.replace(tmp, path)  # atomic: a reader never sees a half-written file
