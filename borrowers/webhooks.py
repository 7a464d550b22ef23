"""Inbound SMS webhook: ``POST /hooks/sms/inbound/`` with JSON ``{"from": "+86…", "text": "…"}`` and
header ``X-Signature: hex(HMAC-SHA256(SMS_WEBHOOK_SECRET, raw body))``. Bad signature: 403."""

from __future__ import annotations

import json

from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from . import services


@csrf_exempt  # a provider's server calls it; the HMAC signature stands in for the CSRF token
@require_POST
def sms_inbound(request):
    if not services.sms_signature_ok(body=request.body, signature=request.headers.get("X-Signature", "")):
        return JsonResponse({"detail": "bad signature"}, status=403)
    try:
        payload = json.loads(request.body)
        sender, text = str(payload["from"]), str(payload["text"])
    except (ValueError, KeyError, TypeError):
        return JsonResponse({"detail": "expected {\"from\": ..., \"text\": ...}"}, status=400)
    return JsonResponse(services.sms_inbound_receive(from_number=sender, text=text))


@csrf_exempt  # signed like the inbound webhook
@require_POST
def sms_status(request):
    """Delivery receipt: JSON ``{"message_id": "SM…", "status": "delivered|failed|undelivered", "error": "…"}``
    with the same X-Signature. Unknown ids are acknowledged (200) so the provider stops retrying."""
    from .receipts import delivery_receipt_apply

    if not services.sms_signature_ok(body=request.body, signature=request.headers.get("X-Signature", "")):
        return JsonResponse({"detail": "bad signature"}, status=403)
    try:
        payload = json.loads(request.body)
        message_id, status = str(payload["message_id"]), str(payload["status"])
    except (ValueError, KeyError, TypeError):
        return JsonResponse({"detail": "expected {\"message_id\": ..., \"status\": ...}"}, status=400)
    updated = delivery_receipt_apply(channel="sms", provider_message_id=message_id, status=status,
                                     detail=str(payload.get("error", ""))[:300])
    return JsonResponse({"updated": updated})
