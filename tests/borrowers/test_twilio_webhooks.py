"""Twilio-format SMS webhooks: form parameters signed with X-Twilio-Signature (HMAC-SHA1 keyed with the
auth token over the URL and the sorted parameters), beside our JSON + X-Signature format."""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid

import pytest
from django.urls import reverse

from borrowers.models import MessageDelivery
from borrowers.services import access_link_send
from borrowers.webhooks import twilio_signature
from cases.models import Borrower, ContactAttempt
from cases.selectors import account_timeline
from compliance.models import AuditEvent
from tests import factories as f
from tests.borrowers.test_channels import provider  # noqa: F401 - the provider double fixture
from tests.cases.test_workspace import zone_at_local_hour

pytestmark = pytest.mark.django_db
TOKEN = "twilio-auth-token"
PUBLIC = "https://collect.example.com"


def reference_signature(token: str, url: str, params: dict[str, str | list[str]]) -> str:
    """Written from Twilio's description, independently of borrowers.webhooks: the URL, then each
    parameter name followed by its value(s), names sorted; HMAC-SHA1 with the auth token; base64."""
    data = url
    for name in sorted(params):
        values = params[name] if isinstance(params[name], list) else [params[name]]
        for value in sorted(values):
            data += name + value
    return base64.b64encode(hmac.new(token.encode("utf-8"), data.encode("utf-8"), hashlib.sha1).digest()).decode()


def _post(client, name: str, params: dict, *, url: str | None = None, token: str = TOKEN, sent: dict | None = None,
          signature: str | None = None):
    """POST ``sent`` (default: ``params``) form-encoded, signed over ``params`` for ``url`` (default: the
    public URL the provider was given)."""
    path = reverse(f"borrowers:{name}")
    sig = signature if signature is not None else reference_signature(token, url or PUBLIC + path, params)
    return client.post(path, sent if sent is not None else params, HTTP_X_TWILIO_SIGNATURE=sig)


@pytest.fixture
def twilio(settings):
    settings.SMS_API_TOKEN = TOKEN
    settings.SMS_WEBHOOK_PUBLIC_URL_BASE = PUBLIC
    settings.SMS_WEBHOOK_SECRET = "json-secret"


@pytest.fixture
def account():
    return f.account(lender=f.lender(), zones=(zone_at_local_hour(12),))


def _inbound(account, body: str, sid: str | None = None) -> dict:
    return {"MessageSid": sid or "SM" + uuid.uuid4().hex, "AccountSid": "AC1", "From": "+86" + account.borrower.phones[0],
            "To": "+8610690000", "Body": body, "NumMedia": "0"}


# ---- the signature itself ---------------------------------------------------------------------------


def test_known_vectors_from_twilios_helper_library():
    """Test vectors of Twilio's Python helper library (tests/unit/test_request_validator.py)."""
    url = "https://mycompany.com/myapp.php?foo=1&bar=2"
    params = {"CallSid": "CA1234567890ABCDE", "Digits": "1234", "From": "+14158675309", "To": "+18005551212",
              "Caller": "+14158675309"}
    assert twilio_signature(token="12345", url=url, params=params.items()) == "RSOYDt4T1cUTdK1PDd93/VVr8B8="
    assert reference_signature("12345", url, params) == "RSOYDt4T1cUTdK1PDd93/VVr8B8="
    # A repeated parameter: its values sorted too.
    repeated = [("Sid", "CA123"), ("SidAccount", "AC123"), ("Digits", "5678"), ("Digits", "1234")]
    assert twilio_signature(token="12345", url=url, params=repeated) == "IK+Dwps556ElfBT0I3Rgjkr1wJU="
    # Signed with the scheme's default port written out.
    with_port = url.replace(".com", ".com:443")
    assert twilio_signature(token="12345", url=with_port, params=params.items()) == "kvajT1Ptam85bY51eRf/AJRuM3w="


def test_the_same_vector_through_the_view(client, settings, account):
    """Twilio's vector, posted to our URL: the view builds the URL and parameters as the signer did."""
    settings.SMS_API_TOKEN, settings.SMS_WEBHOOK_PUBLIC_URL_BASE = "12345", "https://mycompany.com"
    path = reverse("borrowers:sms-status")
    params = {"MessageSid": "SMnope", "MessageStatus": "delivered"}
    sig = reference_signature("12345", "https://mycompany.com" + path + "?foo=1&bar=2", params)
    r = client.post(path + "?foo=1&bar=2", params, HTTP_X_TWILIO_SIGNATURE=sig)
    assert r.status_code == 200 and r.json() == {"updated": False}
    # With the default port the same request is accepted (Twilio's libraries accept both forms).
    sig443 = reference_signature("12345", "https://mycompany.com:443" + path + "?foo=1&bar=2", params)
    assert client.post(path + "?foo=1&bar=2", params, HTTP_X_TWILIO_SIGNATURE=sig443).status_code == 200


# ---- inbound ----------------------------------------------------------------------------------------


def test_signed_stop_opts_out_and_answers_empty_twiml(client, twilio, account):
    r = _post(client, "sms-inbound", _inbound(account, "STOP"))
    assert r.status_code == 200 and r["Content-Type"].startswith("text/xml")
    assert r.content.decode().endswith("<Response/>")
    number = "+86" + account.borrower.phones[0]
    assert Borrower.objects.get(pk=account.borrower_id).opted_out == [number]
    assert AuditEvent.objects.filter(action="cases.borrower.opted_out", borrower_id=account.borrower_id).exists()
    attempt = ContactAttempt.objects.get(account=account)
    assert (attempt.direction, attempt.channel, attempt.notes) == ("inbound", "sms", "STOP")


def test_chinese_stop_word_and_a_reply_reach_the_timeline(client, twilio, account):
    assert _post(client, "sms-inbound", _inbound(account, "我周五还款")).status_code == 200
    attempt = ContactAttempt.objects.get(account=account)
    assert any(e.kind == "attempt" and e.obj.pk == attempt.pk for e in account_timeline(account=account))
    assert Borrower.objects.get(pk=account.borrower_id).opted_out == []
    assert _post(client, "sms-inbound", _inbound(account, "退订")).status_code == 200
    assert Borrower.objects.get(pk=account.borrower_id).opted_out == ["+86" + account.borrower.phones[0]]


@pytest.mark.parametrize("how", ["wrong token", "garbage", "empty", "other url", "no token configured"])
def test_bad_signature_is_refused_and_changes_nothing(client, twilio, account, settings, how):
    params = _inbound(account, "STOP")
    events_before = AuditEvent.objects.count()
    if how == "wrong token":
        r = _post(client, "sms-inbound", params, token="not-the-token")
    elif how == "garbage":
        r = _post(client, "sms-inbound", params, signature="bm90IGEgc2lnbmF0dXJl")
    elif how == "empty":
        r = _post(client, "sms-inbound", params, signature="")
    elif how == "other url":
        r = _post(client, "sms-inbound", params, url="https://attacker.example/hooks/sms/inbound/")
    else:
        settings.SMS_API_TOKEN = ""
        r = _post(client, "sms-inbound", params, token="")
    assert r.status_code == 403
    assert Borrower.objects.get(pk=account.borrower_id).opted_out == []
    assert not ContactAttempt.objects.exists()
    assert AuditEvent.objects.count() == events_before


def test_no_signature_header_at_all_is_refused(client, twilio, account):
    r = client.post(reverse("borrowers:sms-inbound"), _inbound(account, "STOP"))  # form, unsigned
    assert r.status_code == 403
    assert Borrower.objects.get(pk=account.borrower_id).opted_out == []


@pytest.mark.parametrize("change", [
    {"Body": "STOP"},                          # a harmless text signed, STOP sent
    {"From": "+8613999999999"},                # another number
    {"Extra": "1"},                            # a parameter added
])
def test_parameters_changed_after_signing_are_refused(client, twilio, account, change):
    signed = _inbound(account, "hello")
    r = _post(client, "sms-inbound", signed, sent={**signed, **change})
    assert r.status_code == 403
    assert not ContactAttempt.objects.exists()
    assert Borrower.objects.get(pk=account.borrower_id).opted_out == []


def test_a_parameter_removed_after_signing_is_refused(client, twilio, account):
    signed = _inbound(account, "STOP")
    sent = {k: v for k, v in signed.items() if k != "NumMedia"}
    assert _post(client, "sms-inbound", signed, sent=sent).status_code == 403


def test_behind_a_proxy_the_public_base_decides_the_url(client, twilio, account, settings):
    """Twilio signed https://collect.example.com/...; Django sees http://testserver/.... Without the
    setting that signature cannot match; signing for what Django sees works only without it."""
    params = _inbound(account, "hello")
    path = reverse("borrowers:sms-inbound")
    settings.SMS_WEBHOOK_PUBLIC_URL_BASE = ""
    assert _post(client, "sms-inbound", params).status_code == 403
    assert _post(client, "sms-inbound", params, url="http://testserver" + path).status_code == 200
    settings.SMS_WEBHOOK_PUBLIC_URL_BASE = PUBLIC + "/"
    assert _post(client, "sms-inbound", params, url="http://testserver" + path).status_code == 403
    assert _post(client, "sms-inbound", params).status_code == 200


def test_signed_but_without_from_is_a_bad_request(client, twilio, account):
    params = {"MessageSid": "SM1", "Body": "STOP"}
    assert _post(client, "sms-inbound", params).status_code == 400


def test_the_json_format_still_works_beside_twilios(client, twilio, account):
    import json

    body = json.dumps({"from": account.borrower.phones[0], "text": "STOP"}).encode()
    sig = hmac.new(b"json-secret", body, hashlib.sha256).hexdigest()
    r = client.post(reverse("borrowers:sms-inbound"), body, content_type="application/json", HTTP_X_SIGNATURE=sig)
    assert r.status_code == 200 and r.json()["stop"] is True
    # Our signature header does not make a Twilio request valid, nor the reverse.
    params = _inbound(account, "STOP")
    assert client.post(reverse("borrowers:sms-inbound"), params, HTTP_X_SIGNATURE=sig).status_code == 403


# ---- status callbacks -------------------------------------------------------------------------------


def test_status_callbacks_update_the_attempt(client, twilio, provider, account, settings):  # noqa: F811
    settings.SMS_API_TOKEN = "tok"  # the provider double's credentials; the callback is signed with it
    settings.SMS_STATUS_CALLBACK_URL = PUBLIC + reverse("borrowers:sms-status")
    access_link_send(account=account, actor=None, channel="sms")
    assert provider.received[0]["StatusCallback"] == settings.SMS_STATUS_CALLBACK_URL
    delivery = MessageDelivery.objects.get()
    sid = delivery.provider_message_id

    def callback(status: str, **extra):
        params = {"MessageSid": sid, "SmsSid": sid, "AccountSid": "AC1", "MessageStatus": status,
                  "SmsStatus": status, "To": "+86" + account.borrower.phones[0], **extra}
        return _post(client, "sms-status", params, token="tok")

    assert callback("sent").json() == {"updated": False}  # queued/sent change nothing
    assert callback("delivered").json() == {"updated": True}
    delivery.refresh_from_db()
    assert delivery.status == "delivered"
    assert ContactAttempt.objects.get(pk=delivery.attempt_id).outcome == "delivered"

    assert callback("undelivered", ErrorCode="30003").json() == {"updated": True}
    delivery.refresh_from_db()
    assert (delivery.status, delivery.detail) == ("failed", "30003")
    assert ContactAttempt.objects.get(pk=delivery.attempt_id).outcome == "failed"
    last = AuditEvent.objects.filter(action="borrowers.message.receipt").order_by("-id").first()
    assert (last.data["status"], last.data["outcome"], last.actor_label) == ("undelivered", "failed", "provider")


def test_status_callback_with_a_bad_signature_changes_nothing(client, twilio, provider, account,  # noqa: F811
                                                               settings):
    settings.SMS_API_TOKEN = "tok"
    access_link_send(account=account, actor=None, channel="sms")
    delivery = MessageDelivery.objects.get()
    params = {"MessageSid": delivery.provider_message_id, "MessageStatus": "delivered"}
    signed_delivered_sent_failed = _post(client, "sms-status", params, token="tok",
                                         sent={**params, "MessageStatus": "failed"})
    assert signed_delivered_sent_failed.status_code == 403
    assert _post(client, "sms-status", {**params, "MessageStatus": "failed"}, token="wrong").status_code == 403
    assert ContactAttempt.objects.get(pk=delivery.attempt_id).outcome == "delivered"
    delivery.refresh_from_db()
    assert delivery.status == "sent"
    assert not AuditEvent.objects.filter(action="borrowers.message.receipt").exists()


def test_a_replayed_inbound_message_is_recorded_once(client, twilio, account):
    """The signature has no timestamp: the same MessageSid posted again is answered alike but not recorded."""
    params = _inbound(account, "我周五还款", sid="SM" + "b" * 32)
    for _ in range(2):
        r = _post(client, "sms-inbound", params)
        assert r.status_code == 200 and r.content.decode().endswith("<Response/>")
    assert ContactAttempt.objects.filter(account=account).count() == 1
    _post(client, "sms-inbound", _inbound(account, "再说一次"))  # another message: recorded
    assert ContactAttempt.objects.filter(account=account).count() == 2
