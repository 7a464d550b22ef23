"""Fixtures for reminders: a controllable clock shared with worker processes, sender outboxes, workers."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from django.db import connection

from reminders.senders import LocmemSender
from servicing import clock as clock_module
from tests.conftest import ROOT

CN = ZoneInfo("Asia/Shanghai")


class Clock:
    def __init__(self, path: Path):
        self.path = path

    def set(self, at: datetime) -> None:
        clock_module.set_clock(path=self.path, frozen=at)

    def real(self) -> None:
        clock_module.set_clock(path=self.path)


@pytest.fixture
def test_clock(tmp_path, monkeypatch) -> Clock:
    """Frozen time for this process and every worker started afterwards (SERVICING_CLOCK_FILE)."""
    path = tmp_path / "clock.json"
    monkeypatch.setenv(clock_module.ENV, str(path))
    return Clock(path)


def cn(day_offset: int, hour: int, minute: int = 0) -> datetime:
    """A wall-clock time in China, ``day_offset`` days from today."""
    today = datetime.now(CN).date() + timedelta(days=day_offset)
    return datetime(today.year, today.month, today.day, hour, minute, tzinfo=CN)


@pytest.fixture
def locmem_sender(settings):
    settings.REMINDER_SMS_BACKEND = "reminders.senders.LocmemSender"
    settings.REMINDER_EMAIL_BACKEND = "reminders.senders.LocmemSender"
    LocmemSender.reset()
    yield LocmemSender
    LocmemSender.reset()


@pytest.fixture
def outbox(tmp_path, settings, monkeypatch) -> Path:
    """A file outbox shared by this process and workers (counting sender, see crashing.py)."""
    directory = tmp_path / "outbox"
    backend = "tests.reminders.crashing.CountingCrashingFileSender"
    settings.REMINDER_SMS_BACKEND = settings.REMINDER_EMAIL_BACKEND = backend
    settings.REMINDER_OUTBOX_DIR = directory
    monkeypatch.setenv("REMINDER_SMS_BACKEND", backend)
    monkeypatch.setenv("REMINDER_EMAIL_BACKEND", backend)
    monkeypatch.setenv("REMINDER_OUTBOX_DIR", str(directory))
    return directory


@pytest.fixture
def start_worker(transactional_db, require_postgres, redis_url):
    """Start real ``celery worker`` processes (solo pool) with extra environment; all stopped at teardown."""
    from servicing.celery import app

    db = connection.settings_dict
    db_url = f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    app.control.purge()
    started: list[tuple[subprocess.Popen, object, Path]] = []

    def start(**extra_env: str) -> dict:
        node = f"test-rem-{uuid.uuid4().hex[:10]}@localhost"
        env = {**os.environ, "DATABASE_URL": db_url, "REDIS_URL": redis_url, "PYTHONPATH": str(ROOT), **extra_env}
        log_path = ROOT / f".worker-{node}.log"
        log = open(log_path, "w")  # noqa: SIM115 - closed in teardown
        proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "servicing", "worker", "-Q", app.conf.task_default_queue,
             "-n", node, "--pool=solo", "--loglevel=INFO", "--without-gossip", "--without-mingle"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )
        started.append((proc, log, log_path))
        app.conf.CELERY_TASK_ALWAYS_EAGER = False
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                pytest.fail(f"celery worker exited: {log_path.read_text()[-2000:]}")
            if app.control.ping(destination=[node], timeout=1.0):
                return {"node": node, "process": proc, "log": log_path}
        pytest.fail("celery worker did not answer a ping within 60 s")

    yield start
    for proc, log, log_path in started:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
        log.close()
        with contextlib.suppress(FileNotFoundError):
            log_path.unlink()


def wait_for(predicate, timeout: float = 30.0, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("condition not met within timeout")
