"""Inbound SMS webhook: HMAC-signed; STOP / 退订 / TD opts the number out at once; replies reach the timeline."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest
from django.urls import reverse

from cases.models import Borrower, ContactAttempt
from cases.selectors import account_timeline
from compliance.models import AuditEvent
from tests import factories as f

pytestmark = pytest.mark.django_db
SECRET = "test-sms-secret"


def _post(client, payload: dict, secret: str = SECRET):
    body = json.dumps(payload, ensure_ascii=False).encode()
    sig = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return client.post(reverse("borrowers:sms-inbound"), body, content_type="application/json",
                       HTTP_X_SIGNATURE=sig)


@pytest.fixture
def account(settings):
    settings.SMS_WEBHOOK_SECRET = SECRET
    return f.account(lender=f.lender())


@pytest.mark.parametrize("word", ["STOP", "退订", "td"])
def test_stop_with_a_valid_signature_opts_out(client, account, word):
    number = account.borrower.phones[0]
    response = _post(client, {"from": number, "text": word})
    assert response.status_code == 200 and response.json()["stop"] is True
    assert Borrower.objects.get(pk=account.borrower_id).opted_out == ["+86" + number]
    assert AuditEvent.objects.filter(action="cases.borrower.opted_out", borrower_id=account.borrower_id).exists()


def test_invalid_signature_is_refused_and_changes_nothing(client, account):
    number = account.borrower.phones[0]
    response = _post(client, {"from": number, "text": "STOP"}, secret="wrong")
    assert response.status_code == 403
    assert Borrower.objects.get(pk=account.borrower_id).opted_out == []
    assert not ContactAttempt.objects.exists()


def test_no_secret_configured_refuses_everything(client, account, settings):
    settings.SMS_WEBHOOK_SECRET = ""
    assert _post(client, {"from": account.borrower.phones[0], "text": "STOP"}, secret="").status_code == 403


def test_a_reply_appears_in_the_case_timeline(client, account):
    _post(client, {"from": "+86" + account.borrower.phones[0], "text": "I will pay Friday"})
    attempt = ContactAttempt.objects.get(account=account)
    assert attempt.direction == "inbound" and attempt.notes == "I will pay Friday"
    assert any(e.kind == "attempt" and e.obj.pk == attempt.pk for e in account_timeline(account=account))
    assert Borrower.objects.get(pk=account.borrower_id).opted_out == []
