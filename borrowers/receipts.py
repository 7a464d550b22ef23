"""Delivery receipts: a provider tells us later whether a message reached the phone or mailbox.

SMS receipts come to ``POST /hooks/sms/status/`` (JSON ``{"message_id": ..., "status": ...}`` signed like
the inbound webhook, X-Signature = hex HMAC-SHA256 of the body); email receipts come through anymail's
own tracking webhooks (``/hooks/email/<esp>/tracking/``, which check the provider's signature or basic
auth) and its ``tracking`` signal. Both end in ``delivery_receipt_apply``, which updates the attempt's
outcome and audits it in one transaction. The id is looked up in messages sent by the borrowers app
(MessageDelivery) and in reminders (Reminder.provider_message_id)."""

from __future__ import annotations

from django.db import transaction
from django.dispatch import receiver

from cases.models import ContactAttempt
from compliance.audit import audit_log

from .models import MessageDelivery

# Provider words -> our two outcomes; anything else (queued, sent, opened...) changes nothing.
RECEIPT_STATUS = {
    "delivered": "delivered",
    "failed": "failed", "undelivered": "failed", "bounced": "failed", "rejected": "failed",
}


def message_delivery_record(*, attempt: ContactAttempt, channel: str, provider_message_id: str) -> MessageDelivery:
    """The provider took the message (after the gate recorded the attempt): its id, for the receipts, audited."""
    with transaction.atomic():
        row = MessageDelivery.objects.create(attempt=attempt, channel=channel, provider_message_id=provider_message_id)
        audit_log(action="borrowers.message.sent", actor=None, actor_label="provider", lender_id=attempt.lender_id,
                  subject=row, account_id=attempt.account_id, borrower_id=attempt.borrower_id,
                  data={"attempt_id": attempt.pk, "channel": channel, "provider_message_id": provider_message_id})
    return row


def message_send_failed(*, attempt: ContactAttempt, error: str) -> None:
    """The provider refused a message the gate had recorded as delivered: the attempt says failed, audited
    (the same event a reminder's failed send writes). It still counts as placed for the caps."""
    with transaction.atomic():
        attempt = ContactAttempt.objects.select_for_update().get(pk=attempt.pk)
        if attempt.outcome == ContactAttempt.Outcome.FAILED:
            return
        before = attempt.outcome
        ContactAttempt.objects.filter(pk=attempt.pk).update(outcome=ContactAttempt.Outcome.FAILED)
        audit_log(action="cases.contact_attempt.outcome_changed", actor_label="provider", lender_id=attempt.lender_id,
                  subject=attempt, account_id=attempt.account_id, borrower_id=attempt.borrower_id,
                  data={"attempt_id": attempt.pk, "from": before, "to": ContactAttempt.Outcome.FAILED,
                        "error": error[:300]})


def delivery_receipt_apply(*, channel: str, provider_message_id: str, status: str, detail: str = "") -> bool:
    """True when a known message's attempt was updated. Idempotent: a repeated receipt changes nothing;
    a "delivered" after a "failed" is ignored (providers may send them out of order)."""
    from reminders.models import Reminder

    outcome = RECEIPT_STATUS.get(status.strip().lower())
    if outcome is None or not provider_message_id:
        return False
    with transaction.atomic():
        delivery = (MessageDelivery.objects.select_for_update()
                    .filter(channel=channel, provider_message_id=provider_message_id).first())
        if delivery is not None:
            attempt_id = delivery.attempt_id
        else:
            attempt_id = (Reminder.objects.filter(channel=channel, provider_message_id=provider_message_id)
                          .values_list("contact_attempt_id", flat=True).first())
        if attempt_id is None:
            return False
        attempt = ContactAttempt.objects.select_for_update().get(pk=attempt_id)
        # "Failed" is final on either path (a reminder has no delivery row, so its attempt says it).
        if attempt.outcome == ContactAttempt.Outcome.FAILED:
            return False
        if delivery is not None and delivery.status in (MessageDelivery.Status.FAILED, outcome):
            return False
        before = attempt.outcome
        if before != outcome and before in (ContactAttempt.Outcome.DELIVERED, ContactAttempt.Outcome.FAILED):
            ContactAttempt.objects.filter(pk=attempt.pk).update(outcome=outcome)
        if delivery is not None:
            delivery.status, delivery.detail = outcome, detail[:300]
            delivery.save(update_fields=["status", "detail", "updated_at"])
        audit_log(action="borrowers.message.receipt", lender_id=attempt.lender_id, subject=attempt,
                  account_id=attempt.account_id, borrower_id=attempt.borrower_id, actor_label="provider",
                  data={"channel": channel, "provider_message_id": provider_message_id, "status": status,
                        "outcome_before": before, "outcome": outcome, "detail": detail[:300]})
    return True


def _anymail_tracking(sender, event, esp_name, **kwargs):
    """anymail has already checked the webhook's signature / basic auth before sending this signal."""
    delivery_receipt_apply(channel="email", provider_message_id=event.message_id or "",
                           status=str(event.event_type or ""), detail=str(event.description or "")[:300])


def connect_signals() -> None:
    from anymail.signals import tracking

    receiver(tracking, dispatch_uid="borrowers.delivery_receipt")(_anymail_tracking)
