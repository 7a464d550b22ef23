"""Links and messages go through the gate; a message to a third party that names the debt is refused."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from borrowers.messages import message_render, message_send
from borrowers.models import AccessToken
from borrowers.services import access_link_send, token_hash
from cases.models import Borrower, ContactAttempt
from cases.services import ContactRefused
from compliance.models import AuditEvent
from tests import factories as f
from tests.cases.test_workspace import zone_at_local_hour

pytestmark = pytest.mark.django_db


@pytest.fixture
def account():
    return f.account(lender=f.lender(), zones=(zone_at_local_hour(12),))


def test_link_by_sms_passes_the_gate_and_carries_a_working_token(account, outbox):
    row = access_link_send(account=account, actor=None, channel="sms")
    message = outbox[f"borrower-link-{row.pk}"]
    raw = message.body.split("/b/l/")[1].split("/")[0]
    assert AccessToken.objects.get(token_hash=token_hash(raw)) == row  # only the hash is stored
    assert ContactAttempt.objects.filter(account=account, channel="sms", outcome="delivered").count() == 1
    assert "回复" in message.body  # a CN borrower gets the message in Chinese


def test_link_is_not_sent_under_a_hold(account, outbox):
    Borrower.objects.filter(pk=account.borrower_id).update(dispute=True)
    with pytest.raises(ContactRefused):
        access_link_send(account=account, actor=None, channel="sms")
    assert not outbox
    assert not AccessToken.objects.exists()  # the gate first: no token left behind


@pytest.mark.parametrize("template", [
    "Please ask {name} to call {callback_number} about the {balance} {currency} owed.",  # a debt variable
    "Please ask {name} to call us about an overdue loan.",  # the debt in plain words
    "请转告{name}尽快处理欠款。",
])
def test_third_party_message_that_names_the_debt_is_refused(account, outbox, template):
    agent = f.user(role="agent")
    with pytest.raises(ValidationError):
        message_send(account=account, actor=agent, channel="sms", party="third_party", to="13900000000",
                     template=template, values={"callback_number": "400-000-0000"})
    assert not outbox and not ContactAttempt.objects.exists()
    assert AuditEvent.objects.filter(action="borrowers.message.refused", account_id=account.pk).exists()


def test_neutral_third_party_text_and_borrower_text_render(account):
    assert message_render(template="Please ask {name} to call {callback_number}.", party="third_party",
                          account=account, values={"callback_number": "400"}).endswith("call 400.")
    body = message_render(template="{lender}: {balance} {currency} due on {ref}.", party="borrower", account=account)
    assert account.external_ref in body and str(account.balance) in body


def test_agent_sends_a_link_from_the_requests_page(client, account, outbox):
    agent = f.user(role="agent")
    client.force_login(agent)
    url = "/borrowers/link/"
    # Not the agent's account: 404, nothing sent.
    assert client.post(url, {"external_ref": account.external_ref, "channel": "sms"}).status_code == 404
    account.assigned_agent = agent
    account.save(update_fields=["assigned_agent"])
    client.post(url, {"external_ref": account.external_ref, "channel": "sms"})
    assert len(outbox) == 1 and AccessToken.objects.filter(borrower=account.borrower).count() == 1
    Borrower.objects.filter(pk=account.borrower_id).update(cease=True)
    response = client.post(url, {"external_ref": account.external_ref, "channel": "sms"}, follow=True)
    text = response.content.decode()
    assert len(outbox) == 1
    assert "Not sent" in text or "未发送" in text
