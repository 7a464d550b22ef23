"""Real message channels: the HTTP SMS adapter against a provider double on 127.0.0.1 (a real HTTP
server speaking the Messages API shape), delivery receipts by signed webhook and by anymail's signal."""

from __future__ import annotations

import base64
import json
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.urls import reverse

from borrowers.models import MessageDelivery
from borrowers.services import access_link_send, sms_signature
from cases.models import ContactAttempt
from compliance.models import AuditEvent
from reminders.senders import HttpSmsSender, OutboundMessage, SendError
from tests import factories as f
from tests.cases.test_workspace import zone_at_local_hour

pytestmark = pytest.mark.django_db


class ProviderDouble(ThreadingHTTPServer):
    """Accepts ``POST /2010-04-01/Accounts/AC1/Messages.json`` with basic auth AC1:tok; answers like the provider."""

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.received: list[dict] = []
        self.fail = False


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):  # keep test output quiet
        pass

    def do_POST(self):  # noqa: N802 - http.server's name
        server: ProviderDouble = self.server  # type: ignore[assignment]
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        auth_ok = self.headers.get("Authorization") == "Basic " + base64.b64encode(b"AC1:tok").decode()
        if self.path != "/2010-04-01/Accounts/AC1/Messages.json" or not auth_ok or server.fail:
            code, answer = (500, {"message": "boom"}) if server.fail else (401, {"message": "unauthorized"})
        else:
            fields = {k: v[0] for k, v in urllib.parse.parse_qs(body.decode()).items()}
            server.received.append(fields)
            code, answer = 201, {"sid": f"SM{len(server.received):032d}", "status": "queued", "to": fields["To"]}
        data = json.dumps(answer).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def provider(settings):
    server = ProviderDouble()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    settings.REMINDER_SMS_BACKEND = "reminders.senders.HttpSmsSender"
    settings.SMS_API_BASE_URL = f"http://127.0.0.1:{server.server_address[1]}"
    settings.SMS_API_ACCOUNT, settings.SMS_API_TOKEN, settings.SMS_API_FROM = "AC1", "tok", "+8610690000"
    settings.SMS_STATUS_CALLBACK_URL = "https://example.invalid/hooks/sms/status/"
    settings.SMS_WEBHOOK_SECRET = "receipt-secret"
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def account():
    return f.account(lender=f.lender(), zones=(zone_at_local_hour(12),))


def _receipt(client, payload: dict, *, secret_ok: bool = True):
    body = json.dumps(payload).encode()
    sig = sms_signature(body) if secret_ok else "0" * 64
    return client.post(reverse("borrowers:sms-status"), body, content_type="application/json", HTTP_X_SIGNATURE=sig)


def test_link_goes_through_the_http_provider(provider, account):
    token = access_link_send(account=account, actor=None, channel="sms")
    [sent] = provider.received
    assert sent["From"] == "+8610690000" and "/b/l/" in sent["Body"]
    assert sent["StatusCallback"].endswith("/hooks/sms/status/")
    delivery = MessageDelivery.objects.get()
    assert delivery.provider_message_id == f"SM{1:032d}" and delivery.status == "sent"
    assert delivery.attempt.account_id == account.pk and token.pk
    sent_event = AuditEvent.objects.get(action="borrowers.message.sent")
    assert (sent_event.account_id, sent_event.data["provider_message_id"]) == (account.pk, f"SM{1:032d}")


def test_provider_error_and_bad_credentials_raise_send_error(provider):
    message = OutboundMessage(key="k1", channel="sms", to="+8613800000000", body="hi")
    with pytest.raises(SendError, match="HTTP 401"):
        HttpSmsSender(token="wrong").send(message)
    provider.fail = True
    with pytest.raises(SendError, match="HTTP 500"):
        HttpSmsSender().send(message)
    assert provider.received == []


def test_signed_receipt_updates_the_attempt_and_is_audited(client, provider, account):
    access_link_send(account=account, actor=None, channel="sms")
    delivery = MessageDelivery.objects.get()
    assert _receipt(client, {"message_id": delivery.provider_message_id, "status": "undelivered"},
                    secret_ok=False).status_code == 403
    assert ContactAttempt.objects.get(pk=delivery.attempt_id).outcome == "delivered"
    r = _receipt(client, {"message_id": delivery.provider_message_id, "status": "undelivered", "error": "30003"})
    assert r.json() == {"updated": True}
    assert ContactAttempt.objects.get(pk=delivery.attempt_id).outcome == "failed"
    e = AuditEvent.objects.get(action="borrowers.message.receipt")
    assert (e.account_id, e.data["outcome_before"], e.data["outcome"]) == (account.pk, "delivered", "failed")
    # A late "delivered" after a failure, a repeat, and an unknown id change nothing.
    assert _receipt(client, {"message_id": delivery.provider_message_id, "status": "delivered"}).json() == {
        "updated": False}
    assert _receipt(client, {"message_id": "SMnope", "status": "failed"}).json() == {"updated": False}
    assert ContactAttempt.objects.get(pk=delivery.attempt_id).outcome == "failed"
    assert AuditEvent.objects.filter(action="borrowers.message.receipt").count() == 1


def test_email_receipt_through_anymail_tracking_signal(settings, account):
    from anymail.signals import AnymailTrackingEvent, tracking

    settings.REMINDER_EMAIL_BACKEND = "reminders.senders.LocmemSender"
    from cases.models import Borrower

    Borrower.objects.filter(pk=account.borrower_id).update(emails=["b@example.com"], email_consent=True)
    account.borrower.refresh_from_db()
    access_link_send(account=account, actor=None, channel="email")
    delivery = MessageDelivery.objects.get(channel="email")
    tracking.send(sender=object, event=AnymailTrackingEvent(event_type="bounced",
                                                            message_id=delivery.provider_message_id,
                                                            description="mailbox unavailable"), esp_name="Test")
    assert ContactAttempt.objects.get(pk=delivery.attempt_id).outcome == "failed"
    delivery.refresh_from_db()
    assert (delivery.status, delivery.detail) == ("failed", "mailbox unavailable")


def test_receipt_for_a_reminder_sent_through_the_provider(client, provider, account):
    from django.utils import timezone

    from reminders import services as reminders

    r = reminders.reminder_create(account=account, kind="promise_due", channel="sms", due_at=timezone.now())
    assert reminders.reminder_send(reminder_id=r.pk) == "sent"
    r.refresh_from_db()
    assert r.provider_message_id == f"SM{1:032d}" and len(provider.received) == 1
    assert _receipt(client, {"message_id": r.provider_message_id, "status": "failed"}).json() == {"updated": True}
    assert ContactAttempt.objects.get(pk=r.contact_attempt_id).outcome == "failed"
