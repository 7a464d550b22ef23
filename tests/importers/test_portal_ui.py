"""Lender portal, issue 12: row errors with reference and value, the error file to fix and upload again,
"applied with errors", identical re-uploads, the blank templates and the format page."""

from __future__ import annotations

import csv
import io

import pytest
from django.urls import reverse
from openpyxl import load_workbook

from cases.importers.columns import resolve_header
from cases.models import OverdueAccount
from tests import factories as f

from .conftest import fixture_file

pytestmark = pytest.mark.django_db


@pytest.fixture
def lender_client(client):
    user = f.user(role="lender", lender=f.lender(code="alpha"))
    client.force_login(user)
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "en"
    client.user = user
    return client


def _csv(response) -> list[list[str]]:
    body = b"".join(response.streaming_content).decode("utf-8-sig")
    return list(csv.reader(io.StringIO(body)))


def test_row_errors_show_reference_and_value_and_download_as_a_file_to_fix(lender_client, upload, tmp_path):
    batch = upload(lender_client.user, "placements_utf8.csv")  # U-005's balance is a formula: refused
    err = batch.row_errors.get()
    assert (err.line, err.external_ref, err.column, err.value) == (6, "U-005", "balance", '=HYPERLINK("x")')
    page = lender_client.get(reverse("portal-batch", args=[batch.pk])).content.decode()
    assert "<td>U-005</td>" in page and "=HYPERLINK(&quot;x&quot;)" in page and 'id="download-errors"' in page

    rows = _csv(lender_client.get(reverse("portal-batch-errors", args=[batch.pk])))
    header, row = rows[0], rows[1]
    assert len(rows) == 2 and header[:2] == ["external_ref", "borrower_name"] and header[-1] == "Errors in this row"
    values = dict(zip(header, row, strict=True))
    assert values["external_ref"] == "U-005" and values["national_id"] == "310101198506151232"
    assert values["balance"] == "'=HYPERLINK(\"x\")"  # formula-safe
    assert "balance" in values["Errors in this row"]

    # The lender fixes the value and uploads the file again, reason column and all.
    values["balance"] = "800.00"
    out = io.StringIO()
    csv.writer(out).writerows([header, [values[h] for h in header]])
    from django.core.files.uploadedfile import SimpleUploadedFile

    from cases.importers.services import placement_batch_create, placement_batch_process

    fixed = placement_batch_create(actor=lender_client.user, file=SimpleUploadedFile("fixed.csv", out.getvalue().encode()),
                                   language="en")
    fixed = placement_batch_process(batch_id=fixed.pk)
    assert (fixed.state, fixed.created_count, fixed.error_count) == ("applied", 1, 0)
    assert OverdueAccount.objects.get(lender=lender_client.user.lender, external_ref="U-005").balance == 800


def test_error_file_keeps_phones_usable_on_upload_again(lender_client, upload):
    """The formula-safe quote before "+86…" must not make the number invalid when the file comes back."""
    body = ("external_ref,borrower_name,phones,balance,due_date\n"
            "P-1,张三,+86 138-0013-8000,abc,2025-01-01\n").encode()
    from django.core.files.uploadedfile import SimpleUploadedFile

    from cases.importers.services import placement_batch_create, placement_batch_process

    batch = placement_batch_process(batch_id=placement_batch_create(
        actor=lender_client.user, file=SimpleUploadedFile("p.csv", body), language="en").pk)
    header, row = _csv(lender_client.get(reverse("portal-batch-errors", args=[batch.pk])))
    assert row[2] == "'+86 138-0013-8000"
    row[3] = "100"
    out = io.StringIO()
    csv.writer(out).writerows([header, row])
    again = placement_batch_process(batch_id=placement_batch_create(
        actor=lender_client.user, file=SimpleUploadedFile("p2.csv", out.getvalue().encode()), language="en").pk)
    assert (again.created_count, again.error_count) == (1, 0)
    assert OverdueAccount.objects.get(external_ref="P-1").borrower.phones == ["13800138000"]


def test_applied_with_errors_is_amber_and_a_clean_batch_green(lender_client, upload):
    with_errors = upload(lender_client.user, "placements_utf8.csv")
    clean = upload(lender_client.user, "placements_gbk.csv")
    p = lender_client.get(reverse("portal-batch-progress", args=[with_errors.pk])).json()
    assert (p["state"], p["display"], p["tone"], p["state_display"]) == ("applied", "applied_with_errors", "warn",
                                                                          "Applied with errors")
    assert lender_client.get(reverse("portal-batch-progress", args=[clean.pk])).json()["tone"] == "ok"
    home = lender_client.get(reverse("portal-home")).content.decode()
    assert '<span class="badge warn" data-display="applied_with_errors">Applied with errors</span>' in home
    assert '<span class="badge ok" data-display="applied">Applied</span>' in home
    page = lender_client.get(reverse("portal-batch", args=[with_errors.pk])).content.decode()
    assert "being processed" not in page and 'class="badge warn"' in page


def test_reupload_names_the_batch_it_repeats_and_shows_its_errors(lender_client, upload):
    first = upload(lender_client.user, "placements_utf8.csv")
    again = upload(lender_client.user, "placements_utf8.csv")
    assert again.report["already_applied"] == first.pk and again.row_errors.count() == 0
    page = lender_client.get(reverse("portal-batch", args=[again.pk])).content.decode()
    assert 'id="batch-repeats"' in page and reverse("portal-batch", args=[first.pk]) in page
    assert "<td>U-005</td>" in page  # the first batch's row errors
    rows = _csv(lender_client.get(reverse("portal-batch-errors", args=[again.pk])))
    assert [r[0] for r in rows[1:]] == ["U-005"]


def test_upload_redirects_without_a_stale_being_processed_message(lender_client, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        r = lender_client.post(reverse("portal-home"), {"file": fixture_file("placements_utf8.csv"), "kind": "placement",
                                                        "mode": "partial", "encoding": ""})
    page = lender_client.get(r["Location"]).content.decode()
    assert "being processed" not in page and "Applied with errors" in page


def test_error_file_of_another_lender_is_404(client, upload):
    a = f.user(role="lender", lender=f.lender(code="a"))
    b = f.user(role="lender", lender=f.lender(code="b"))
    batch = upload(b, "placements_utf8.csv")
    client.force_login(a)
    assert client.get(reverse("portal-batch-errors", args=[batch.pk])).status_code == 404


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_templates_have_every_column_and_are_read_back_by_the_importer(lender_client, lang):
    body = lender_client.get(reverse("portal-template", args=[lang, "csv"])).content.decode("utf-8-sig")
    header = next(csv.reader(io.StringIO(body)))
    resolved = resolve_header(header)
    assert not resolved.missing and not resolved.ignored and not resolved.duplicates and len(header) == 18  # 15 + interest, fees, costs (balance parts)
    assert ("合同编号" in header) == (lang == "zh")
    xlsx = lender_client.get(reverse("portal-template", args=[lang, "xlsx"]))
    ws = load_workbook(io.BytesIO(xlsx.content), read_only=True).worksheets[0]
    assert [c.value for c in next(ws.iter_rows(max_row=1))] == header
    assert lender_client.get(reverse("portal-template", args=[lang, "pdf"])).status_code == 404


def test_upload_card_links_to_the_format_and_the_templates(lender_client):
    home = lender_client.get(reverse("portal-home")).content.decode()
    assert reverse("portal-format") in home and reverse("portal-template", args=["zh", "xlsx"]) in home
    doc = lender_client.get(reverse("portal-format")).content.decode()
    assert "external_ref" in doc and "合同编号" in doc


# ---------------------------------------------------------------------------------------------
# Registration


def _register(client, **over):
    data = {"name": "和信消费金融", "kind": "consumer_finance", "registration_no": "91110000600037341L",
            "contact_name": "刘经理", "contact_phone": "13800000000", "contact_email": "ops@hexin.example",
            "username": "hexin", "password": "A-strong-pass-2026", **over}
    return client.post(reverse("lender-register"), data, HTTP_ACCEPT_LANGUAGE="en")


def test_registration_requires_a_valid_credit_code_and_a_kind(client):
    from cases.models import Lender

    r = _register(client, registration_no="", kind="")
    page = r.content.decode()
    assert r.status_code == 200 and not Lender.objects.exists()
    assert page.count("This field is required.") == 2
    r = _register(client, registration_no="91110000600037341X", kind="pawnshop")
    page = r.content.decode()
    assert "Not a valid unified social credit code" in page and "Select a valid choice" in page
    assert not Lender.objects.exists()
    assert _register(client).status_code == 302
    lender = Lender.objects.get()
    assert (lender.kind, lender.registration_no) == ("consumer_finance", "91110000600037341L")
    client.force_login(f.user(role="supervisor"))
    assert "Consumer finance company" in client.get(reverse("lender-approvals"), HTTP_ACCEPT_LANGUAGE="en").content.decode()


def test_registration_refuses_a_duplicate_name_case_insensitively(client):
    from cases.models import Lender

    Lender.objects.create(name="Hexin Consumer Finance", code="hexin-cf", status="active")
    r = _register(client, name="  hexin   CONSUMER finance ", registration_no="91110000600037340H")
    assert r.status_code == 200 and "A lender with this name is already registered." in r.content.decode()
    assert Lender.objects.count() == 1
    assert _register(client, name="Another Finance", registration_no="91110000600037340H").status_code == 302
    r = _register(client, name="Third Finance", registration_no="91110000600037340H", username="third")
    assert "A lender with this unified social credit code is already registered." in r.content.decode()


# ---------------------------------------------------------------------------------------------
# My accounts and the results file: labels, days past due, separators, local times


def test_accounts_and_results_file_are_readable_in_both_languages(lender_client):
    from datetime import datetime
    from decimal import Decimal
    from zoneinfo import ZoneInfo

    acc = f.account(lender=lender_client.user.lender, balance="1234567.80")
    when = datetime(2026, 11, 30, 2, 5, 7, 123456, tzinfo=ZoneInfo("UTC"))  # 10:05 in Shanghai
    OverdueAccount.objects.filter(pk=acc.pk).update(status="in_contact", days_past_due=45)
    page = lender_client.get(reverse("portal-accounts")).content.decode()
    assert "1,234,567.80 CNY" in page and "In contact" in page and '<td class="num">45 ' in page
    zh = lender_client.get(reverse("portal-accounts"), HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    assert "1,234,567.80 CNY" in zh

    from cases.importers.selectors import local_minute, money

    assert money(Decimal("1234567.8")) == "1,234,567.80" and local_minute(when) == "2026-11-30 10:05"
    rows = _csv(lender_client.get(reverse("portal-export-csv")))
    header, row = rows[0], dict(zip(rows[0], rows[1], strict=True))
    assert header[:3] == ["External reference", "Status", "Balance"]
    assert (row["Status"], row["Balance"], row["Days past due"]) == ("In contact", "1,234,567.80", "45")
    assert "." not in row["Updated"].split(" ")[1] and len(row["Updated"]) == 16  # no seconds or microseconds
    zh_rows = _csv(lender_client.get(reverse("portal-export-csv"), HTTP_ACCEPT_LANGUAGE="zh-hans"))
    assert zh_rows[0][0] == "外部编号" and zh_rows[1][1] == "联系中" and zh_rows[1][2] == "1,234,567.80"
    # The JSON export stays machine-readable: codes, plain decimals, ISO times.
    import json

    data = json.loads(b"".join(lender_client.get(reverse("portal-export-json")).streaming_content))
    assert (data[0]["status"], data[0]["balance"]) == ("in_contact", "1234567.80") and "T" in data[0]["updated_at"]
