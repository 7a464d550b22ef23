"""An agent's own SMS or email from the case page: the gate decides before it is sent, the opt-out is added,
a refusal says why, a provider failure leaves the attempt failed (never a "delivered" that was not sent)."""

from __future__ import annotations

import pytest
from django.urls import reverse

from borrowers.models import MessageDelivery
from cases.models import Borrower, ContactAttempt
from compliance.models import AuditEvent
from reminders.senders import LocmemSender
from tests import factories as f
from tests.cases.test_workspace import zone_at_local_hour

pytestmark = pytest.mark.django_db


@pytest.fixture
def case(client):
    agent = f.user(role="agent")
    account = f.account(lender=f.lender(), agent=agent, zones=(zone_at_local_hour(12),))
    client.force_login(agent)
    return {"agent": agent, "account": account, "url": reverse("borrowers:case-message", args=[account.pk])}


def _messages(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def test_the_case_page_offers_the_panel(client, case):
    page = client.get(reverse("case-detail", args=[case["account"].pk])).content.decode()
    assert 'id="panel-message"' in page and case["url"] in page


def test_an_sms_passes_the_gate_is_sent_with_the_opt_out_and_recorded(client, case, outbox):
    r = client.post(case["url"], {"channel": "sms", "text": "请您今天联系我们处理账户。"}, follow=True,
                    HTTP_ACCEPT_LANGUAGE="en")
    assert r.redirect_chain[-1][0].endswith(f"/cases/{case['account'].pk}/#panel-message")
    assert "Message sent." in _messages(r)
    attempt = ContactAttempt.objects.get(account=case["account"])
    assert (attempt.channel, attempt.outcome, attempt.agent, attempt.source) == ("sms", "delivered", case["agent"], "web")
    message = outbox[f"message-{attempt.pk}"]
    assert message.to == attempt.phone and message.body.startswith("请您今天联系我们处理账户。") and "退订" in message.body
    assert MessageDelivery.objects.get(attempt=attempt).provider_message_id == message.key
    assert AuditEvent.objects.filter(action="cases.contact_attempt.recorded", account_id=case["account"].pk).exists()


def test_a_refused_message_is_not_sent_and_says_why(client, case, outbox):
    Borrower.objects.filter(pk=case["account"].borrower_id).update(cease=True)
    r = client.post(case["url"], {"channel": "email", "text": "Please call us."}, follow=True,
                    HTTP_ACCEPT_LANGUAGE="en")
    [shown] = _messages(r)
    assert shown.startswith("Not sent:") and "stop" in shown.lower()
    assert not outbox and not ContactAttempt.objects.exists()
    assert AuditEvent.objects.filter(action="compliance.contact.blocked", account_id=case["account"].pk).exists()


def test_a_provider_failure_leaves_the_attempt_failed_and_audited(client, case, outbox):
    LocmemSender.fail_next = 1
    r = client.post(case["url"], {"channel": "sms", "text": "Please call us."}, follow=True,
                    HTTP_ACCEPT_LANGUAGE="en")
    assert any("recorded as failed" in m for m in _messages(r))
    attempt = ContactAttempt.objects.get(account=case["account"])
    assert attempt.outcome == "failed" and not outbox and not MessageDelivery.objects.exists()
    changed = AuditEvent.objects.get(action="cases.contact_attempt.outcome_changed", account_id=case["account"].pk)
    assert changed.data["to"] == "failed" and "simulated" in changed.data["error"]


def test_bad_input_and_other_peoples_cases(client, case, outbox):
    r = client.post(case["url"], {"channel": "sms", "text": "x" * 501}, follow=True, HTTP_ACCEPT_LANGUAGE="en")
    assert any(m.startswith("Message:") for m in _messages(r)) and not ContactAttempt.objects.exists()
    other = f.account(lender=case["account"].lender, agent=f.user(role="agent"))
    assert client.post(reverse("borrowers:case-message", args=[other.pk]),
                       {"channel": "sms", "text": "hi"}).status_code == 404
    client.force_login(f.user(role="lender", lender=case["account"].lender))
    assert client.post(case["url"], {"channel": "sms", "text": "hi"}).status_code == 403
    assert not outbox and not ContactAttempt.objects.exists()
