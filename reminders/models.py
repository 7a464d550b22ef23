"""Reminders (an outbox of scheduled outreach) and agent notifications.

A Reminder row is the durable record of one message to send: scheduling only inserts rows, so the
web app never needs the broker, and the minute sweep sends whatever is due, catching up after an
outage. ``idempotency_key`` is unique (scheduling the same thing twice inserts nothing) and is
also the message id handed to the sender backend, which lets a retry ask "did this already go?".
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _


class Reminder(models.Model):
    class Kind(models.TextChoices):
        PROMISE_DUE = "promise_due", _("Promise to pay due")
        INSTALMENT_DUE = "instalment_due", _("Instalment due")
        CALLBACK_DUE = "callback_due", _("Callback due")

    class Channel(models.TextChoices):
        SMS = "sms", _("SMS")
        EMAIL = "email", _("Email")
        # To the agent (a notification), not to the borrower: no outreach, no compliance check.
        IN_APP = "in_app", _("Agent notification")

    class State(models.TextChoices):
        SCHEDULED = "scheduled", _("Scheduled")
        DEFERRED = "deferred", _("Deferred")
        SENDING = "sending", _("Sending")
        SENT = "sent", _("Sent")
        CANCELLED = "cancelled", _("Cancelled")
        FAILED = "failed", _("Failed")

    PENDING_STATES = ("scheduled", "deferred")
    FINAL_STATES = ("sent", "cancelled", "failed")

    idempotency_key = models.CharField(max_length=120, unique=True)
    kind = models.CharField(_("kind"), max_length=20, choices=Kind.choices)
    channel = models.CharField(_("channel"), max_length=10, choices=Channel.choices)
    lender = models.ForeignKey("cases.Lender", on_delete=models.PROTECT, related_name="+")
    account = models.ForeignKey("cases.OverdueAccount", on_delete=models.PROTECT, related_name="reminders")
    promise = models.ForeignKey("cases.PromiseToPay", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    instalment = models.ForeignKey("cases.Instalment", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    callback = models.ForeignKey("cases.Callback", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    recipient = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+",
        help_text=_("Agent to notify (in-app reminders)"),
    )
    contact_attempt = models.ForeignKey(
        "cases.ContactAttempt", null=True, blank=True, on_delete=models.PROTECT, related_name="+",
        help_text=_("The outreach recorded by the compliance gate for the latest send attempt"),
    )
    due_at = models.DateTimeField(_("due at"))
    next_attempt_at = models.DateTimeField(_("next attempt at"))
    state = models.CharField(_("state"), max_length=10, choices=State.choices, default=State.SCHEDULED)
    attempts = models.PositiveIntegerField(_("attempts"), default=0)
    last_error = models.TextField(_("last error"), blank=True)
    # Set when a worker claims the row (real time, for stale-claim recovery) and just before the
    # sender is called: a crashed "sending" row without send_started_at certainly sent nothing.
    claim_token = models.UUIDField(null=True, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    send_started_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(_("sent at"), null=True, blank=True)
    provider_message_id = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-due_at", "-id"]
        verbose_name = _("reminder")
        verbose_name_plural = _("reminders")
        indexes = [
            # The sweep: pending rows that are due.
            models.Index(fields=["next_attempt_at"], name="reminder_due_idx", condition=Q(state__in=["scheduled", "deferred"])),
            models.Index(fields=["claimed_at"], name="reminder_sending_idx", condition=Q(state="sending")),
            models.Index(fields=["state", "due_at"]),
            models.Index(fields=["lender", "state", "due_at"]),
            # Delivery receipts look a sent reminder up by the provider's id (borrowers.receipts).
            models.Index(fields=["channel", "provider_message_id"], name="reminder_provider_id_idx",
                         condition=~Q(provider_message_id="")),
        ]

    def __str__(self) -> str:
        return self.idempotency_key


class Notification(models.Model):
    """Something an agent must act on (a callback due, a promise due today)."""

    class Kind(models.TextChoices):
        CALLBACK_DUE = "callback_due", _("Callback due")
        PROMISE_DUE = "promise_due", _("Promise due today")
        INSTALMENT_DUE = "instalment_due", _("Instalment due today")

    key = models.CharField(max_length=120, unique=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notifications")
    account = models.ForeignKey("cases.OverdueAccount", null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    message = models.CharField(max_length=500)
    due_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    read_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["user", "read_at", "created_at"])]

    def __str__(self) -> str:
        return self.message
