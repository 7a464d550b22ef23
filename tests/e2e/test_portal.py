"""Lender portal in the browser: registration and approval, uploads of real files (UTF-8, GBK, XLSX, broken)
processed by a real Celery worker with the progress bar, account search, results download, isolation."""

from __future__ import annotations

from pathlib import Path

import pytest

from cases.models import Lender, OverdueAccount, User
from tests import factories as f
from tests.e2e.conftest import login

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
pytestmark = [pytest.mark.e2e, pytest.mark.postgres]


@pytest.fixture
def shared_media(settings, tmp_path, monkeypatch):
    """The live server (in-process) and the worker process must see the same uploads."""
    settings.MEDIA_ROOT = tmp_path / "media"
    monkeypatch.setenv("MEDIA_ROOT", str(settings.MEDIA_ROOT))


@pytest.fixture
def worker(shared_media, celery_worker):
    from servicing.celery import app

    before = app.conf.CELERY_TASK_ALWAYS_EAGER
    app.conf.CELERY_TASK_ALWAYS_EAGER = False  # the namespaced key is the one that counts (see tests/importers)
    yield celery_worker
    app.conf.CELERY_TASK_ALWAYS_EAGER = before


def upload(page, name: str, *, encoding: str = "", mode: str = "partial", kind: str = "placement") -> str:
    page.goto(page.base_url + "/portal/")
    page.set_input_files("#id_file", str(FIXTURES / name))
    page.select_option("#id_kind", kind)
    page.select_option("#id_mode", mode)
    page.select_option("#id_encoding", encoding)
    page.click("#upload-form button[type=submit]")
    page.wait_for_url("**/portal/batches/*/")
    # The page polls the progress endpoint and reloads when the worker has finished.
    page.wait_for_selector("#batch-state[data-state=applied], #batch-state[data-state=rejected], #batch-state[data-state=failed]",
                           timeout=60_000)
    assert page.get_attribute("#batch-progress", "value") == "100"
    return page.get_attribute("#batch-state", "data-state")


def test_lender_uploads_files_and_reads_results(page, worker):
    user = f.user(role="lender", lender=f.lender(code="alpha"))
    login(page, user.username)
    assert page.url.endswith("/portal/")  # the lender's home

    assert upload(page, "placements_utf8.csv") == "applied"
    assert page.inner_text("#count-created") == "4" and page.inner_text("#count-errors") == "1"
    assert page.inner_text("#row-errors tbody tr td:first-child") == "6"

    assert upload(page, "placements_gbk.csv", encoding="gb18030") == "applied"
    assert page.inner_text("#count-created") == "3"
    assert upload(page, "placements.xlsx") == "applied"
    assert page.inner_text("#count-created") == "2" and page.inner_text("#count-errors") == "1"
    assert upload(page, "placements_broken.csv", mode="all_or_nothing") == "rejected"
    assert "nothing was applied" in page.inner_text("#batch-message")
    assert page.locator("#row-errors tbody tr").count() == 7
    assert not OverdueAccount.objects.filter(external_ref="B-001").exists()
    assert "placement_batch_process_task" in worker["log"].read_text()  # really the worker, not in-process

    page.goto(page.base_url + "/portal/")
    assert page.locator("#batches tbody tr").count() == 4
    page.goto(page.base_url + "/portal/accounts/")
    page.fill("#id_q", "赵六")
    page.click("#account-search button[type=submit]")
    refs = page.locator("#accounts tbody tr").evaluate_all("rows => rows.map(r => r.dataset.ref)")
    assert sorted(refs) == ["C-001", "X-001"]
    page.goto(page.base_url + "/portal/")
    with page.expect_download() as dl:
        page.click("#export-csv")
    body = Path(dl.value.path()).read_text(encoding="utf-8-sig")
    assert body.splitlines()[0].startswith("External reference,Status,Balance") and "U-001" in body and "X-002" in body


def test_registration_approval_and_isolation(page, shared_media):
    page.goto(page.base_url + "/lenders/register/")
    page.fill("#id_name", "和信消费金融")
    page.fill("#id_registration_no", "91110000600037341L")
    page.select_option("#id_kind", "consumer_finance")
    page.fill("#id_contact_name", "刘经理")
    page.fill("#id_contact_phone", "13800000000")
    page.fill("#id_contact_email", "ops@hexin.example")
    page.fill("#id_username", "hexin")
    page.fill("#id_password", "A-strong-pass-2026")
    page.click("#register-form button[type=submit]")
    page.wait_for_selector("#register-done")
    assert Lender.objects.get(name="和信消费金融").status == "pending"
    assert User.objects.get(username="hexin").is_active is False

    sup = f.user(role="supervisor")
    login(page, sup.username)
    page.goto(page.base_url + "/lenders/approvals/")
    page.click("#pending-lenders tr[data-lender] button:has-text('Approve')")
    page.wait_for_load_state("networkidle")
    assert "No lenders are waiting" in page.inner_text("#pending-lenders")
    page.context.clear_cookies()

    other = f.user(role="lender", lender=f.lender(code="other"))
    other_acc = f.account(lender=other.lender)
    login(page, "hexin", "A-strong-pass-2026")
    assert page.url.endswith("/portal/")
    page.goto(page.base_url + "/portal/accounts/")
    assert other_acc.external_ref not in page.inner_text("main")
    from cases.models import PlacementBatch

    theirs = PlacementBatch.objects.create(lender=other.lender, uploaded_by=other, original_name="x.csv", sha256="x")
    response = page.goto(page.base_url + f"/portal/batches/{theirs.pk}/")
    assert response.status == 404
    assert page.goto(page.base_url + f"/portal/batches/{theirs.pk}/progress/").status == 404
