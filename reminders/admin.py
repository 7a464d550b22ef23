from django.contrib import admin

from .models import Notification, Reminder


@admin.register(Reminder)
class ReminderAdmin(admin.ModelAdmin):
    list_display = ("idempotency_key", "kind", "channel", "state", "due_at", "next_attempt_at", "attempts")
    list_filter = ("state", "kind", "channel")
    search_fields = ("idempotency_key", "account__external_ref")
    raw_id_fields = ("account", "promise", "instalment", "callback", "recipient", "contact_attempt", "lender")

    # State changes go through reminders.services (audited); the admin is for reading.
    def has_change_permission(self, request, obj=None):
        return False

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Notification)
class NotificationAdmin(admin.ModelAdmin):
    list_display = ("key", "user", "kind", "due_at", "read_at")
    list_filter = ("kind",)
    raw_id_fields = ("user", "account")
