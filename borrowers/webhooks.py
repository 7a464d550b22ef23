"""SMS webhooks: inbound messages (``POST /hooks/sms/inbound/``) and delivery receipts
(``POST /hooks/sms/status/``), in either of two formats, told apart by the signature header:

* Twilio's own (what ``reminders.senders.HttpSmsSender``'s provider posts): form-encoded parameters
  (inbound: ``From``, ``To``, ``Body``, ``MessageSid``; status callback: ``MessageSid``, ``MessageStatus``,
  ``ErrorCode``) signed with ``X-Twilio-Signature`` = base64(HMAC-SHA1(``SMS_API_TOKEN``, URL + every POST
  parameter's name and value, sorted by name)). The URL is the one Twilio called:
  ``SMS_WEBHOOK_PUBLIC_URL_BASE`` + the request's path and query when set (behind a proxy or TLS
  terminator the URL Django sees differs), else ``request.build_absolute_uri()``. As Twilio's helper
  libraries do, the URL is tried with and without the scheme's default port.
* Ours: JSON (``{"from", "text"}`` / ``{"message_id", "status", "error"}``) with
  ``X-Signature: hex(HMAC-SHA256(SMS_WEBHOOK_SECRET, raw body))``.

A missing or wrong signature, or no secret/token configured, is refused with 403 before anything is read.
Both formats end in the same services (``services.sms_inbound_receive``, ``receipts.delivery_receipt_apply``)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Iterable
from urllib.parse import urlsplit, urlunsplit

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from . import services

TWILIO_SIGNATURE_HEADER = "X-Twilio-Signature"
#: Twilio's answer to an inbound message when nothing is to be sent back (TwiML with no verbs).
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response/>'
#: How long an inbound MessageSid is remembered so that a replayed request is not recorded twice.
INBOUND_REPLAY_SECONDS = 7 * 24 * 3600


# ---- Twilio's signature ---------------------------------------------------------------------------


def twilio_signature(*, token: str, url: str, params: Iterable[tuple[str, str]]) -> str:
    """base64(HMAC-SHA1(token, url + name1 + value1 + name2 + value2 ...)), parameters sorted by name
    (a repeated name's values sorted too, as Twilio's libraries do)."""
    data = url + "".join(name + value for name, value in sorted(params))
    return base64.b64encode(hmac.new(token.encode(), data.encode(), hashlib.sha1).digest()).decode()


def _url_forms(url: str) -> set[str]:
    """The URL as given, without its port, and with the scheme's default port: Twilio may have signed
    either (its libraries accept both)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    userinfo = parts.netloc.rpartition("@")[0]
    prefix = userinfo + "@" if userinfo else ""
    forms = {url, urlunsplit(parts._replace(netloc=prefix + host))}
    default_port = {"https": 443, "http": 80}.get(parts.scheme)
    if parts.port is None and default_port:
        forms.add(urlunsplit(parts._replace(netloc=f"{prefix}{host}:{default_port}")))
    return forms


def twilio_request_url(request: HttpRequest) -> str:
    """The URL Twilio requested. ``SMS_WEBHOOK_PUBLIC_URL_BASE`` (e.g. ``https://collect.example.com``,
    with any path prefix a proxy strips) replaces the scheme and host Django sees."""
    base = settings.SMS_WEBHOOK_PUBLIC_URL_BASE.rstrip("/")
    return base + request.get_full_path() if base else request.build_absolute_uri()


def twilio_signature_ok(*, request: HttpRequest) -> bool:
    """Constant-time check of ``X-Twilio-Signature`` over the URL and the form parameters. No
    ``SMS_API_TOKEN`` configured: refused (never an open webhook)."""
    token = settings.SMS_API_TOKEN
    given = request.headers.get(TWILIO_SIGNATURE_HEADER, "").strip().encode()
    if not token or not given:
        return False
    params = [(name, value) for name, values in request.POST.lists() for value in values]
    ok = False
    for url in sorted(_url_forms(twilio_request_url(request))):
        # Every form is compared (no early exit), each in constant time.
        ok |= hmac.compare_digest(twilio_signature(token=token, url=url, params=params).encode(), given)
    return ok


def _is_twilio(request: HttpRequest) -> bool:
    return TWILIO_SIGNATURE_HEADER in request.headers


def _refused() -> JsonResponse:
    return JsonResponse({"detail": "bad signature"}, status=403)


# ---- views ----------------------------------------------------------------------------------------


@csrf_exempt  # a provider's server calls it; the HMAC signature stands in for the CSRF token
@require_POST
def sms_inbound(request):
    """STOP/退订/TD opts the number out; every reply is recorded on the borrower's timeline. Twilio gets
    an empty TwiML answer (no auto-reply), our JSON format a JSON summary."""
    if _is_twilio(request):
        if not twilio_signature_ok(request=request):
            return _refused()
        sender = request.POST.get("From", "").strip()
        if not sender:
            return JsonResponse({"detail": "expected From and Body"}, status=400)
        # Twilio's signature has no timestamp: a captured request (or a provider retry) could be posted again.
        # One MessageSid is taken once within the replay window; the answer is the same either way.
        sid = request.POST.get("MessageSid", "").strip()
        if not sid or cache.add(f"sms-inbound:{sid}", 1, timeout=INBOUND_REPLAY_SECONDS):
            services.sms_inbound_receive(from_number=sender, text=request.POST.get("Body", ""))
        return HttpResponse(EMPTY_TWIML, content_type="text/xml")
    if not services.sms_signature_ok(body=request.body, signature=request.headers.get("X-Signature", "")):
        return _refused()
    try:
        payload = json.loads(request.body)
        sender, text = str(payload["from"]), str(payload["text"])
    except (ValueError, KeyError, TypeError):
        return JsonResponse({"detail": "expected {\"from\": ..., \"text\": ...}"}, status=400)
    return JsonResponse(services.sms_inbound_receive(from_number=sender, text=text))


@csrf_exempt  # signed like the inbound webhook
@require_POST
def sms_status(request):
    """Delivery receipt. Twilio: ``MessageSid``, ``MessageStatus`` (queued/sent change nothing;
    delivered; failed/undelivered -> failed), ``ErrorCode``. Ours: JSON ``{"message_id": "SM…",
    "status": "delivered|failed|undelivered", "error": "…"}``. Unknown ids are acknowledged (200) so the
    provider stops retrying."""
    from .receipts import delivery_receipt_apply

    if _is_twilio(request):
        if not twilio_signature_ok(request=request):
            return _refused()
        message_id = (request.POST.get("MessageSid") or request.POST.get("SmsSid") or "").strip()
        status = (request.POST.get("MessageStatus") or request.POST.get("SmsStatus") or "").strip()
        if not message_id or not status:
            return JsonResponse({"detail": "expected MessageSid and MessageStatus"}, status=400)
        error = request.POST.get("ErrorCode", "").strip()
    else:
        if not services.sms_signature_ok(body=request.body, signature=request.headers.get("X-Signature", "")):
            return _refused()
        try:
            payload = json.loads(request.body)
            message_id, status = str(payload["message_id"]), str(payload["status"])
        except (ValueError, KeyError, TypeError):
            return JsonResponse({"detail": "expected {\"message_id\": ..., \"status\": ...}"}, status=400)
        error = str(payload.get("error", ""))
    updated = delivery_receipt_apply(channel="sms", provider_message_id=message_id, status=status,
                                     detail=error[:300])
    return JsonResponse({"updated": updated})
