"""Lender portal in the browser (issue 12): an upload with row errors is "applied with errors" (amber),
the errors show the reference and the refused value, and download as a file to fix and upload again.
Processed in-process (eager), as in the embedded run, through the page's upload-with-progress form."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from cases.models import OverdueAccount
from tests import factories as f
from tests.e2e.conftest import login

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
pytestmark = [pytest.mark.e2e, pytest.mark.postgres]


@pytest.fixture
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


def test_lender_uploads_a_file_with_errors_and_downloads_the_error_file(page, media):
    user = f.user(role="lender", lender=f.lender(code="alpha"))
    login(page, user.username)
    page.goto(page.base_url + "/portal/")
    assert page.get_attribute("#format-link", "href") == "/portal/format/"
    with page.expect_download() as tpl:
        page.click("#template-en-csv")
    assert Path(tpl.value.path()).read_text(encoding="utf-8-sig").startswith("external_ref,borrower_name,")

    page.set_input_files("#id_file", str(FIXTURES / "placements_utf8.csv"))
    page.click("#upload-form button[type=submit]")
    page.wait_for_url("**/portal/batches/*/")
    state = page.locator("#batch-state")
    assert state.get_attribute("data-display") == "applied_with_errors"
    assert "warn" in state.get_attribute("class") and state.inner_text() == "Applied with errors"
    assert "being processed" not in page.inner_text("main")
    row = page.locator("#row-errors tbody tr").first
    assert row.locator("td").nth(1).inner_text() == "U-005" and '=HYPERLINK("x")' in row.inner_text()

    with page.expect_download() as dl:
        page.click("#download-errors")
    rows = list(csv.reader(io.StringIO(Path(dl.value.path()).read_text(encoding="utf-8-sig"))))
    assert rows[0][0] == "external_ref" and rows[0][-1] == "Errors in this row"
    assert [r[0] for r in rows[1:]] == ["U-005"] and rows[1][rows[0].index("balance")].startswith("'=")

    # Fixed and uploaded again: the one row is created, the reasons column is ignored.
    rows[1][rows[0].index("balance")] = "800.00"
    fixed = Path(dl.value.path()).with_name("fixed.csv")
    with fixed.open("w", encoding="utf-8", newline="") as fh:
        csv.writer(fh).writerows(rows)
    page.goto(page.base_url + "/portal/")
    page.set_input_files("#id_file", str(fixed))
    page.click("#upload-form button[type=submit]")
    page.wait_for_url("**/portal/batches/*/")
    assert page.get_attribute("#batch-state", "data-display") == "applied"
    assert page.inner_text("#count-created") == "1" and page.inner_text("#count-errors") == "0"
    assert OverdueAccount.objects.get(lender=user.lender, external_ref="U-005").balance == 800

    # The same first file again: names the batch it repeats and shows that batch's errors.
    page.goto(page.base_url + "/portal/")
    page.set_input_files("#id_file", str(FIXTURES / "placements_utf8.csv"))
    page.click("#upload-form button[type=submit]")
    page.wait_for_url("**/portal/batches/*/")
    assert "placements_utf8.csv" in page.inner_text("#batch-repeats")
    assert page.locator("#row-errors tbody tr").first.locator("td").nth(1).inner_text() == "U-005"


def test_upload_shows_a_progress_bar_while_the_server_works(page, media, monkeypatch):
    """The request of an in-process (embedded) run returns only when the file is processed: the form shows
    the bytes sent, then an indeterminate bar, until the batch page loads."""
    import time

    from cases.views import portal

    create = portal.services.placement_batch_create

    def slow_create(**kw):
        time.sleep(2)  # stands for a large file being processed in the request
        return create(**kw)

    monkeypatch.setattr(portal.services, "placement_batch_create", slow_create)
    login(page, f.user(role="lender", lender=f.lender(code="beta")).username)
    page.goto(page.base_url + "/portal/")
    assert page.locator("#upload-status").is_hidden()
    page.set_input_files("#id_file", str(FIXTURES / "placements_gbk.csv"))
    page.click("#upload-form button[type=submit]")
    page.wait_for_selector("#upload-status:visible")
    page.wait_for_function("document.getElementById('upload-text').textContent.indexOf('being processed') !== -1")
    assert page.locator("#upload-form button[type=submit]").is_disabled()
    assert page.get_attribute("#upload-progress", "value") is None  # indeterminate once the bytes are sent
    page.wait_for_url("**/portal/batches/*/")
    assert page.get_attribute("#batch-state", "data-display") == "applied"
