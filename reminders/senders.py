"""Pluggable sender backends for borrower reminders (SMS, email), chosen like Django's email backends.

Settings ``REMINDER_SMS_BACKEND`` / ``REMINDER_EMAIL_BACKEND`` name a class; ``get_sender(channel)``
builds it. Every message carries ``key`` = the reminder's idempotency key, used as the provider
message id.

Exactly-once, and why it holds: the reminder row is claimed in the database before sending, so two
workers never send the same reminder concurrently. The remaining risk is a crash *between* the
provider accepting a message and the row being marked sent. A backend with ``supports_lookup``
(file, locmem, or an SMS gateway that accepts a client message id and lets you query it) answers
``lookup(key)`` and de-duplicates ``send`` by key, so the recovering worker finds the message and
only marks the row sent. A backend without lookup (console, SMTP) cannot tell; for it a crashed row
whose send had started is marked failed ("outcome unknown") for a supervisor to check rather than
re-sent: at most once, never twice.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import threading
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

from django.conf import settings
from django.utils.module_loading import import_string


@dataclass(frozen=True)
class OutboundMessage:
    key: str
    channel: str  # "sms" | "email"
    to: str
    body: str
    subject: str = ""


class SendError(Exception):
    """A (possibly transient) failure to hand the message to the provider; the reminder is retried."""


class BaseSender:
    supports_lookup = False

    def send(self, message: OutboundMessage) -> str:
        """Deliver and return the provider's message id. Raise SendError on failure."""
        raise NotImplementedError

    def lookup(self, key: str) -> str | None:
        """Provider message id if a message with this key was already accepted, else None."""
        raise NotImplementedError


class ConsoleSender(BaseSender):
    """Writes messages to stdout (development). No lookup: a crash mid-send is reported, not re-sent."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stdout

    def send(self, message: OutboundMessage) -> str:
        self.stream.write(f"[{message.channel} to {message.to}] {message.subject} {message.body} (id {message.key})\n")
        self.stream.flush()
        return message.key


class FileSender(BaseSender):
    """One JSON file per message id in ``REMINDER_OUTBOX_DIR``; idempotent by key across processes."""

    supports_lookup = True

    def __init__(self, directory: str | os.PathLike | None = None):
        self.directory = Path(directory or settings.REMINDER_OUTBOX_DIR)

    def path_for(self, key: str) -> Path:
        return self.directory / f"{hashlib.sha256(key.encode()).hexdigest()[:40]}.json"

    def lookup(self, key: str) -> str | None:
        return key if self.path_for(key).exists() else None

    def send(self, message: OutboundMessage) -> str:
        self.directory.mkdir(parents=True, exist_ok=True)
        final = self.path_for(message.key)
        tmp = self.directory / f".{uuid.uuid4().hex}.tmp"
        tmp.write_text(json.dumps(asdict(message), ensure_ascii=False), encoding="utf-8")
        try:
            os.link(tmp, final)  # atomic and exclusive: a second send of the same key changes nothing
        except FileExistsError:
            pass
        finally:
            tmp.unlink(missing_ok=True)
        return message.key

    def messages(self) -> list[dict]:
        if not self.directory.exists():
            return []
        return [json.loads(p.read_text(encoding="utf-8")) for p in sorted(self.directory.glob("*.json"))]


class LocmemSender(BaseSender):
    """In-memory outbox for tests (one process). ``fail_next`` makes the next sends raise SendError."""

    supports_lookup = True
    outbox: dict[str, OutboundMessage] = {}
    calls: list[str] = []
    fail_next = 0
    _lock = threading.Lock()

    def send(self, message: OutboundMessage) -> str:
        with self._lock:
            LocmemSender.calls.append(message.key)
            if LocmemSender.fail_next > 0:
                LocmemSender.fail_next -= 1
                raise SendError("simulated provider failure")
            LocmemSender.outbox.setdefault(message.key, message)
        return message.key

    def lookup(self, key: str) -> str | None:
        return key if key in LocmemSender.outbox else None

    @classmethod
    def reset(cls) -> None:
        cls.outbox, cls.calls, cls.fail_next = {}, [], 0


class DjangoEmailSender(BaseSender):
    """Email through Django's mail framework (``EMAIL_BACKEND``: SMTP in production).

    The Message-ID is derived from the key so a receiving system can de-duplicate, but SMTP offers no
    lookup, hence ``supports_lookup = False`` (see the module docstring). Through an anymail backend the
    ESP's own id is returned instead: its tracking webhooks report that id, not our Message-ID.
    """

    def send(self, message: OutboundMessage) -> str:
        from django.core.mail import EmailMessage

        domain = settings.REMINDER_FROM_EMAIL.rpartition("@")[2] or "localhost"
        msgid = f"<{hashlib.sha256(message.key.encode()).hexdigest()[:32]}@{domain}>"
        email = EmailMessage(
            subject=message.subject, body=message.body, from_email=settings.REMINDER_FROM_EMAIL,
            to=[message.to], headers={"Message-ID": msgid, "X-Idempotency-Key": message.key},
        )
        try:
            email.send(fail_silently=False)
        except Exception as exc:  # smtplib / socket errors: retry with backoff
            raise SendError(f"{type(exc).__name__}: {exc}") from exc
        return _esp_message_id(email, message.to) or msgid


def _esp_message_id(email, to: str) -> str | None:
    """The id anymail's ESP gave the sent message (``anymail_status``), None without anymail. For several
    recipients it is a set; ours is then found by address. The test backend's ids are ints (0 is one)."""
    status = getattr(email, "anymail_status", None)
    esp_id = getattr(status, "message_id", None)
    if isinstance(esp_id, set):
        recipient = (getattr(status, "recipients", None) or {}).get(to)
        esp_id = getattr(recipient, "message_id", None)
    return None if esp_id is None or esp_id == "" else str(esp_id)


class HttpSmsSender(BaseSender):
    """SMS through an HTTP provider with Twilio's Messages API shape: ``POST {base}/2010-04-01/Accounts/
    {account}/Messages.json`` (form fields To, From, Body, StatusCallback; HTTP basic auth), answered
    with JSON ``{"sid": ..., "status": ...}``. The base URL is a setting (``SMS_API_BASE_URL``) so a test
    double on 127.0.0.1 speaks the same shape. Delivery receipts arrive later at the status webhook.
    No lookup by our key in this API, so ``supports_lookup = False`` (at most once, see above)."""

    def __init__(self, *, base_url: str | None = None, account: str | None = None, token: str | None = None,
                 sender: str | None = None, timeout: float = 10.0):
        self.base_url = (base_url or settings.SMS_API_BASE_URL).rstrip("/")
        self.account = account or settings.SMS_API_ACCOUNT
        self.token = token or settings.SMS_API_TOKEN
        self.sender = sender or settings.SMS_API_FROM
        self.timeout = timeout

    def send(self, message: OutboundMessage) -> str:
        import base64
        import urllib.error
        import urllib.parse
        import urllib.request

        if not (self.base_url and self.account and self.token):
            raise SendError("SMS provider is not configured (SMS_API_BASE_URL, SMS_API_ACCOUNT, SMS_API_TOKEN)")
        fields = {"To": message.to, "From": self.sender, "Body": message.body}
        if settings.SMS_STATUS_CALLBACK_URL:
            fields["StatusCallback"] = settings.SMS_STATUS_CALLBACK_URL
        auth = base64.b64encode(f"{self.account}:{self.token}".encode()).decode()
        request = urllib.request.Request(
            f"{self.base_url}/2010-04-01/Accounts/{urllib.parse.quote(self.account)}/Messages.json",
            data=urllib.parse.urlencode(fields).encode(), method="POST",
            headers={"Authorization": f"Basic {auth}", "Content-Type": "application/x-www-form-urlencoded",
                     "Accept": "application/json", "X-Idempotency-Key": message.key})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310 - configured URL
                payload = json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as exc:  # 4xx/5xx: the provider refused; retried with backoff
            raise SendError(f"HTTP {exc.code}: {exc.read()[:300]!r}") from exc
        except (OSError, ValueError) as exc:
            raise SendError(f"{type(exc).__name__}: {exc}") from exc
        sid = str(payload.get("sid") or "")
        if not sid:
            raise SendError(f"no message id in the provider's answer: {str(payload)[:300]}")
        return sid


def get_sender(channel: str) -> BaseSender:
    path = settings.REMINDER_EMAIL_BACKEND if channel == "email" else settings.REMINDER_SMS_BACKEND
    return import_string(path)()
