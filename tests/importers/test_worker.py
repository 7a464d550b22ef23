"""Real files through the API, processed by a real Celery worker on PostgreSQL (Redis broker)."""

from __future__ import annotations

import time

import pytest
from rest_framework.test import APIClient

from cases.models import Borrower, OverdueAccount
from compliance.audit import audit_verify
from tests import factories as f

from .conftest import fixture_file

pytestmark = [pytest.mark.worker, pytest.mark.postgres]


def wait_done(client: APIClient, batch_id: int, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        d = client.get(f"/api/v1/placements/{batch_id}/").json()
        if d["state"] in ("applied", "rejected", "failed"):
            return d
        time.sleep(0.2)
    raise AssertionError(f"batch {batch_id} still {d['state']} after {timeout} s")


def test_files_through_api_and_worker(shared_media, celery_worker):
    user = f.user(role="lender", lender=f.lender())
    client = APIClient()
    client.force_authenticate(user)
    expected = {
        "placements_utf8.csv": ("applied", 4, 0, 1),
        "placements_bom.csv": ("applied", 3, 0, 0),
        "placements_gbk.csv": ("applied", 0, 0, 0),  # same rows as the BOM file: all unchanged
        "placements.xlsx": ("applied", 2, 0, 1),
        "placements_update.csv": ("applied", 1, 2, 0),
        "placements_broken.csv": ("applied", 2, 0, 7),
        "broken.xlsx": ("rejected", 0, 0, 0),
    }
    for name, (state, created, updated, errors) in expected.items():
        r = client.post("/api/v1/placements/", {"file": fixture_file(name)}, format="multipart")
        assert r.status_code == 202, r.content
        assert r.data["state"] == "pending"
        d = wait_done(client, r.data["id"])
        assert (d["state"], d["created_count"], d["updated_count"], d["error_count"]) == (state, created, updated, errors), (name, d["error_message"], d)
    assert OverdueAccount.objects.filter(lender=user.lender).count() == 4 + 3 + 2 + 1 + 2
    assert Borrower.objects.filter(lender=user.lender, name="赵六").count() == 1  # BOM, GBK and XLSX: one borrower
    # Re-uploading a file changes nothing.
    r = client.post("/api/v1/placements/", {"file": fixture_file("placements_utf8.csv")}, format="multipart")
    d = wait_done(client, r.data["id"])
    assert d["report"]["already_applied"] and (d["created_count"], d["updated_count"]) == (0, 0)
    # Recall by file.
    r = client.post("/api/v1/placements/", {"file": fixture_file("recall.csv"), "kind": "recall"}, format="multipart")
    d = wait_done(client, r.data["id"])
    assert (d["state"], d["updated_count"], d["error_count"]) == ("applied", 2, 1)
    assert OverdueAccount.objects.get(lender=user.lender, external_ref="U-001").status == "recalled"
    assert "placement_batch_process_task" in celery_worker["log"].read_text()
    assert audit_verify(record=False).ok
