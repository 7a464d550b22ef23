"""Message templates per lender and language: variables checked on save, used by the borrower-page link."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import translation

from borrowers.messages import message_send, message_template_save
from borrowers.models import MessageTemplate
from borrowers.services import access_link_send
from cases.models import ContactAttempt
from cases.services import contact_attempt_record
from compliance.models import AuditEvent
from tests import factories as f
from tests.cases.test_workspace import zone_at_local_hour

pytestmark = pytest.mark.django_db


@pytest.fixture
def boss():
    return f.user(role="supervisor")


@pytest.fixture
def account():
    return f.account(lender=f.lender(), zones=(zone_at_local_hour(12),))


@pytest.mark.parametrize(("kind", "body", "why"), [
    ("borrower_link", "Hi {name}, see {url} {secret}", "Unknown variables: secret"),
    ("borrower_link", "Hi {name}, call us", "must use: url"),
    ("contact_request", "Please ask {name} to call us about {balance}", "may not name the debt"),
    ("contact_request", "Please ask {name} to call us about the overdue loan", "may not name the debt"),
    ("contact_request", "Please ask {name} to call {url}", "Unknown variables: url"),
])
def test_bad_templates_are_refused_on_save(boss, account, kind, body, why):
    with translation.override("en"), pytest.raises(ValidationError) as exc:
        message_template_save(actor=boss, lender=account.lender, kind=kind, language="en", subject="", body=body)
    assert why in " ".join(exc.value.messages)
    assert not MessageTemplate.objects.exists()


def test_only_supervisors_save(account):
    with pytest.raises(ValidationError):
        message_template_save(actor=f.user(role="agent"), lender=account.lender, kind="contact_request",
                              language="en", subject="", body="Please ask {name} to call {callback_number}.")


def test_supervisor_page_saves_and_audits_then_link_uses_it(client, boss, account, outbox):
    client.force_login(boss)
    r = client.post(reverse("borrowers:templates"), {
        "lender": account.lender.pk, "kind": "borrower_link", "language": "zh-hans", "subject": "",
        "body": "{name}您好，{lender}账户信息：{url}（{hours}小时内有效）"})
    assert r.status_code == 302
    row = MessageTemplate.objects.get()
    assert AuditEvent.objects.get(action="borrowers.template.saved").data["kind"] == "borrower_link"
    token = access_link_send(account=account, actor=None, channel="sms")
    body = outbox[f"borrower-link-{token.pk}"].body
    assert body.startswith(f"{account.borrower.name}您好，{account.lender.name}账户信息：")
    assert "/b/l/" in body and "退订" in body  # the opt-out is added when the template lacks it
    # Another lender keeps the built-in text.
    other = f.account(lender=f.lender(), zones=(zone_at_local_hour(12),))
    token2 = access_link_send(account=other, actor=None, channel="sms")
    assert "您好" not in outbox[f"borrower-link-{token2.pk}"].body
    # Saving again replaces the row (one per lender, kind and language).
    message_template_save(actor=boss, lender=account.lender, kind="borrower_link", language="zh-hans",
                          subject="", body="{url}")
    assert MessageTemplate.objects.get().pk == row.pk


def test_third_party_message_from_a_stored_template(boss, account, outbox):
    agent = f.user(role="agent")
    message_template_save(actor=boss, lender=account.lender, kind="contact_request", language="zh-hans",
                          subject="", body="请转告{name}回电 {callback_number}")
    for _i in range(3):  # the borrower is unreachable: only then may a third party be contacted (CN)
        contact_attempt_record(account=account, actor=agent, channel="call", outcome="no_answer")
    attempt = message_send(account=account, actor=agent, channel="sms", party="third_party", to="13900000000",
                           kind="contact_request", values={"callback_number": "400-800-1234"})
    assert attempt.party == ContactAttempt.Party.THIRD_PARTY
    assert outbox[f"message-{attempt.pk}"].body == f"请转告{account.borrower.name}回电 400-800-1234"


def test_editor_lists_every_kind_with_its_variables_and_help(client, boss):
    client.force_login(boss)
    with translation.override("en"):
        page = client.get(reverse("borrowers:templates"), HTTP_ACCEPT_LANGUAGE="en").content.decode()

    def row(kind):
        return page.split(f'data-kind="{kind}"')[1].split("</tr>")[0]

    promise, instalment, link, third = row("promise_due"), row("instalment_due"), row("borrower_link"), \
        row("contact_request")
    for html in (promise, instalment):
        assert "{amount}" in html and "{due_date}" in html and "{ref}" in html and "{name}" in html
        assert "{callback_number}" not in html and "{agent}" not in html  # nothing supplies them in a reminder
        assert "1,234.50 CNY" in html  # the help text says what {amount} looks like
    assert "{seq}" in instalment and "{seq}" not in promise
    assert "{url}" in link
    assert "{balance}" not in third and "{lender}" not in third and "{name}" in third
    # The form offers the new kinds.
    assert 'value="promise_due"' in page and 'value="instalment_due"' in page


def test_editor_saves_a_reminder_template_and_refuses_an_unknown_variable(client, boss, account):
    client.force_login(boss)
    url = reverse("borrowers:templates")
    r = client.post(url, {"lender": account.lender.pk, "kind": "promise_due", "language": "en", "subject": "",
                          "body": "{name}, {amount} is due on {due_date} ({ref}). {secret}"})
    assert r.status_code == 200 and not MessageTemplate.objects.exists()
    assert "secret" in r.content.decode()
    r = client.post(url, {"lender": account.lender.pk, "kind": "promise_due", "language": "en", "subject": "",
                          "body": "{name}, {amount} is due on {due_date} ({ref})."})
    assert r.status_code == 302
    row = MessageTemplate.objects.get()
    assert (row.kind, row.language) == ("promise_due", "en")
    assert AuditEvent.objects.get(action="borrowers.template.saved").data["kind"] == "promise_due"
