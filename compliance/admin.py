from django.contrib import admin

from .models import AuditEvent, AuditVerification, Incident, Policy


class ReadOnlyAdmin(admin.ModelAdmin):
    """History is written by services (audited), never edited in the admin."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = ("id", "created_at", "actor_label", "lender_id", "action", "subject_type", "subject_id")
    list_filter = ("action",)
    show_full_result_count = False


@admin.register(Policy)
class PolicyAdmin(ReadOnlyAdmin):
    list_display = ("code", "version", "name", "status", "effective_from", "published_at")


admin.site.register(AuditVerification, ReadOnlyAdmin)


@admin.register(Incident)
class IncidentAdmin(ReadOnlyAdmin):
    """Read-only: incidents are reviewed on the supervisor console, where the review is audited."""

    list_display = ("id", "created_at", "lender_id", "account_id", "channel", "policy_code", "status")
    list_filter = ("status", "policy_code")
