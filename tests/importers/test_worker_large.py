"""A file large enough for two readers and two shares, through the API and a real Celery worker."""

from __future__ import annotations

import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from cases.models import Borrower, OverdueAccount, PlacementBatch, PlacementBatchPart
from tests import factories as f

from .test_worker import wait_done

pytestmark = [pytest.mark.worker, pytest.mark.postgres]

ROWS = 12_000  # three chunks of 5,000 lines: the helper process reads the second


@pytest.fixture
def celery_worker_env() -> dict[str, str]:
    return {"PLACEMENT_APPLY_WORKERS": "2", "PLACEMENT_ROWS_PER_WORKER": "1000"}


def _file() -> SimpleUploadedFile:
    from stdnum.cn import ric

    out = io.StringIO()
    out.write("合同编号,借款人姓名,身份证号,手机号,逾期金额,到期日\n")
    for i in range(ROWS):
        body = f"3101011985{(i % 12) + 1:02d}{(i % 28) + 1:02d}{i % 1000:03d}"
        balance = "abc" if i == 7_777 else f"{1000 + i}.00"  # one bad row, in the helper's chunk
        out.write(f"W-{i:06d},借款人{i % 4000},{body}{ric.calc_check_digit(body)},139{i:08d},{balance},2026-03-01\n")
    return SimpleUploadedFile("large.csv", out.getvalue().encode())


def test_a_large_file_is_read_by_two_processes_and_applied_in_shares(shared_media, celery_worker):
    user = f.user(role="lender", lender=f.lender())
    client = APIClient()
    client.force_authenticate(user)
    r = client.post("/api/v1/placements/", {"file": _file()}, format="multipart")
    assert r.status_code == 202, r.content
    d = wait_done(client, r.data["id"], timeout=120)
    assert (d["state"], d["total_rows"], d["created_count"], d["error_count"]) == ("applied", ROWS, ROWS - 1, 1), d
    assert [(e["line"], e["column"]) for e in d["row_errors"]] == [(7_779, "逾期金额")]
    batch = PlacementBatch.objects.get(pk=r.data["id"])
    assert batch.report["read_processes"] == 2
    assert sorted(PlacementBatchPart.objects.filter(batch=batch).values_list("part", "parts")) == [(0, 2), (1, 2)]
    assert OverdueAccount.objects.filter(lender=user.lender).count() == ROWS - 1
    assert Borrower.objects.filter(lender=user.lender).count() == ROWS - 1  # every national ID differs
