"""Helpers for placement tests: real sample files from tests/fixtures, uploaded through the service."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


def fixture_file(name: str) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, (FIXTURES / name).read_bytes())


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture
def upload():
    """Create a batch from a fixture file and process it in-process (as the task would)."""
    from cases.importers.services import placement_batch_create, placement_batch_process

    def run(user, name: str, **kw):
        batch = placement_batch_create(actor=user, file=fixture_file(name), language="en", **kw)
        return placement_batch_process(batch_id=batch.pk)

    return run


@pytest.fixture
def shared_media(settings, monkeypatch):
    """Request before ``celery_worker``: the worker process must read uploads from the same MEDIA_ROOT."""
    monkeypatch.setenv("MEDIA_ROOT", str(settings.MEDIA_ROOT))
    return settings.MEDIA_ROOT
