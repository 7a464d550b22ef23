"""Admin for operators. History rows (attempts) are read-only here: outreach is recorded only
through the compliance gate (agent workspace or API), never by editing rows."""

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin

from . import models


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(models.User)
class UserAdmin(BaseUserAdmin):
    list_display = ("username", "role", "lender", "is_active", "last_login")
    list_filter = ("role", "lender", "is_active")
    fieldsets = BaseUserAdmin.fieldsets + (("Role", {"fields": ("role", "lender", "lenders", "jurisdictions", "time_zone")}),)
    add_fieldsets = BaseUserAdmin.add_fieldsets + (("Role", {"fields": ("role", "lender")}),)


@admin.register(models.Lender)
class LenderAdmin(admin.ModelAdmin):
    list_display = ("name", "code", "kind", "status", "created_at")
    list_filter = ("status",)
    search_fields = ("name", "code")


@admin.register(models.Borrower)
class BorrowerAdmin(admin.ModelAdmin):
    list_display = ("name", "lender", "jurisdiction", "cease", "dispute", "attorney", "bankruptcy", "deceased")
    list_filter = ("lender", "jurisdiction", "cease", "dispute")
    search_fields = ("name",)
    list_select_related = ("lender",)


@admin.register(models.OverdueAccount)
class OverdueAccountAdmin(admin.ModelAdmin):
    list_display = ("external_ref", "lender", "borrower", "balance", "currency", "bucket", "status", "assigned_agent")
    list_filter = ("lender", "status", "bucket")
    search_fields = ("external_ref", "borrower__name")
    list_select_related = ("lender", "borrower", "assigned_agent")
    raw_id_fields = ("borrower", "assigned_agent", "locked_by")


@admin.register(models.ContactAttempt)
class ContactAttemptAdmin(ReadOnlyAdmin):
    list_display = ("occurred_at", "account", "channel", "outcome", "agent", "source", "policy_code")
    list_filter = ("channel", "outcome", "source")
    list_select_related = ("account", "agent")


for model in (models.PromiseToPay, models.RepaymentPlan, models.Instalment, models.Payment, models.Note,
              models.Callback, models.PlacementBatch, models.PlacementRowError):
    admin.site.register(model, ReadOnlyAdmin)
