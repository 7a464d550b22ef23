"""The email sender returns the id the ESP's tracking webhooks report (anymail's ``anymail_status``), not our own
Message-ID, whenever anymail sent the message; with plain Django mail, our Message-ID as before."""

from __future__ import annotations

from types import SimpleNamespace

from django.core import mail

from reminders.senders import DjangoEmailSender, OutboundMessage, _esp_message_id

MESSAGE = OutboundMessage(key="reminder-42", channel="email", to="b1@example.com", body="Due soon.", subject="Due")


def test_the_esps_id_through_anymail(settings):
    settings.EMAIL_BACKEND = "anymail.backends.test.EmailBackend"
    mail.outbox = []
    provider_id = DjangoEmailSender().send(MESSAGE)
    sent = mail.outbox[0]
    assert provider_id == str(sent.anymail_status.message_id)
    assert provider_id != sent.extra_headers["Message-ID"]


def test_our_message_id_without_anymail(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    mail.outbox = []
    provider_id = DjangoEmailSender().send(MESSAGE)
    assert provider_id == mail.outbox[0].extra_headers["Message-ID"] and provider_id.startswith("<")


def test_the_id_of_our_recipient_when_anymail_reports_several():
    status = SimpleNamespace(message_id={"esp-1", "esp-2"}, recipients={
        "b1@example.com": SimpleNamespace(message_id="esp-1"), "x@example.com": SimpleNamespace(message_id="esp-2")})
    assert _esp_message_id(SimpleNamespace(anymail_status=status), "b1@example.com") == "esp-1"
    assert _esp_message_id(SimpleNamespace(anymail_status=status), "y@example.com") is None
    assert _esp_message_id(SimpleNamespace(anymail_status=SimpleNamespace(message_id=None)), "b1@example.com") is None
    assert _esp_message_id(SimpleNamespace(), "b1@example.com") is None
