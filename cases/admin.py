"""Admin for operators. History rows (attempts) are read-only here: outreach is recorded only
through the compliance gate (agent workspace or API), never by editing rows."""

from django.contrib import admin
from django.contrib.admin.utils import unquote
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.db import models as db_models
from django.db import transaction

from compliance.admin import ReadOnlyAdmin
from compliance.audit import SECRET_KEYS, audit_log

from . import models


def _audit_value(value):
    """A form value as audit data: related rows by primary key (the audit log stores ids, not reprs)."""
    if isinstance(value, db_models.Model):
        return value.pk
    if isinstance(value, db_models.QuerySet):
        return sorted(v.pk for v in value)
    if isinstance(value, list | tuple) and value and all(isinstance(v, db_models.Model) for v in value):
        return sorted(v.pk for v in value)  # a many-to-many field's initial value
    return value


def _is_secret(name: str) -> bool:
    return "password" in name or name in SECRET_KEYS


class AuditedAdminMixin:
    """Admin edits are state changes like any other: each add, change or delete writes
    ``admin.<app>.<model>.added|changed|deleted`` in the same transaction as the write.

    Changed fields are logged with old and new values, except secrets (passwords, national ID),
    which are named but never logged - not even as hashes.
    """

    def _audit(self, request, obj, verb: str, data: dict) -> None:
        ids = {}
        if isinstance(obj, models.OverdueAccount):
            ids = {"account_id": obj.pk, "borrower_id": obj.borrower_id}
        elif isinstance(obj, models.Borrower):
            ids = {"borrower_id": obj.pk}
        audit_log(
            action=f"admin.{obj._meta.label_lower}.{verb}", actor=request.user, subject=obj,
            lender_id=obj.pk if isinstance(obj, models.Lender) else getattr(obj, "lender_id", None), data=data, **ids,
        )

    def save_model(self, request, obj, form, change):
        # A new object has no old values (form.initial holds only defaults then).
        changes = {
            name: {"from": _audit_value(form.initial.get(name)) if change else None,
                   "to": _audit_value(form.cleaned_data.get(name))}
            for name in form.changed_data if not _is_secret(name)
        }
        with transaction.atomic():
            super().save_model(request, obj, form, change)
            self._audit(request, obj, "changed" if change else "added",
                        {"fields": list(form.changed_data), "changes": changes})

    def delete_model(self, request, obj):
        with transaction.atomic():
            # Written first: after the delete the object has no primary key left to name.
            self._audit(request, obj, "deleted", {"object": str(obj)})
            super().delete_model(request, obj)

    def delete_queryset(self, request, queryset):
        # The changelist's "delete selected" action bypasses delete_model.
        with transaction.atomic():
            for obj in queryset:
                self._audit(request, obj, "deleted", {"object": str(obj)})
            super().delete_queryset(request, queryset)


@admin.register(models.User)
class UserAdmin(AuditedAdminMixin, BaseUserAdmin):
    list_display = ("username", "role", "lender", "is_active", "last_login")
    list_filter = ("role", "lender", "is_active")
    fieldsets = BaseUserAdmin.fieldsets + (("Role", {"fields": ("role", "lender", "lenders", "jurisdictions", "time_zone")}),)
    add_fieldsets = BaseUserAdmin.add_fieldsets + (("Role", {"fields": ("role", "lender")}),)

    def user_change_password(self, request, id, form_url=""):
        # The password form saves without save_model; audit that it changed (never the hash).
        with transaction.atomic():
            user = self.get_object(request, unquote(id))
            response = super().user_change_password(request, id, form_url)
            if request.method == "POST" and user is not None:
                fresh = models.User.objects.get(pk=user.pk)
                if fresh.password != user.password:
                    self._audit(request, fresh, "password_changed", {"usable": fresh.has_usable_password()})
            return response


@admin.register(models.Lender)
class LenderAdmin(AuditedAdminMixin, admin.ModelAdmin):
    list_display = ("name", "code", "kind", "status", "created_at")
    list_filter = ("status",)
    search_fields = ("name", "code")


@admin.register(models.Borrower)
class BorrowerAdmin(AuditedAdminMixin, admin.ModelAdmin):
    list_display = ("name", "lender", "jurisdiction", "cease", "dispute", "attorney", "bankruptcy", "deceased")
    list_filter = ("lender", "jurisdiction", "cease", "dispute")
    search_fields = ("name",)
    list_select_related = ("lender",)


@admin.register(models.OverdueAccount)
class OverdueAccountAdmin(AuditedAdminMixin, admin.ModelAdmin):
    list_display = ("external_ref", "lender", "borrower", "balance", "currency", "bucket", "status", "assigned_agent")
    list_filter = ("lender", "status", "bucket")
    search_fields = ("external_ref", "borrower__name")
    list_select_related = ("lender", "borrower", "assigned_agent")
    raw_id_fields = ("borrower", "assigned_agent", "locked_by")


@admin.register(models.ContactAttempt)
class ContactAttemptAdmin(ReadOnlyAdmin):
    list_display = ("occurred_at", "account", "channel", "outcome", "state", "is_breach", "agent", "source",
                    "policy_code")
    list_filter = ("channel", "outcome", "state", "is_breach", "source")
    list_select_related = ("account", "agent")


for model in (models.PromiseToPay, models.RepaymentPlan, models.Instalment, models.Payment, models.Note,
              models.Callback, models.PlacementBatch, models.PlacementRowError):
    admin.site.register(model, ReadOnlyAdmin)
