"""Audit sign-ins, sign-outs and failed sign-ins; drop cached policies when one changes (connected in ComplianceConfig.ready)."""

from __future__ import annotations

from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.db import transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from .audit import audit_log
from .models import Policy
from .selectors import policy_cache_clear


def _client(request) -> dict:
    if request is None:
        return {}
    return {
        "ip": request.META.get("REMOTE_ADDR", ""),
        "user_agent": request.META.get("HTTP_USER_AGENT", "")[:200],
    }


@receiver(user_logged_in, dispatch_uid="compliance.audit.login")
def audit_login(sender, request, user, **kwargs):
    with transaction.atomic():
        audit_log(action="auth.login", actor=user, lender_id=getattr(user, "lender_id", None), subject=user,
                  data={"username": user.get_username(), "role": getattr(user, "role", ""), **_client(request)})


@receiver(user_logged_out, dispatch_uid="compliance.audit.logout")
def audit_logout(sender, request, user, **kwargs):
    if user is None:  # session had already expired: nobody to attribute
        return
    with transaction.atomic():
        audit_log(action="auth.logout", actor=user, lender_id=getattr(user, "lender_id", None), subject=user,
                  data={"username": user.get_username(), **_client(request)})


@receiver(user_login_failed, dispatch_uid="compliance.audit.login_failed")
def audit_login_failed(sender, credentials, request=None, **kwargs):
    # Django has already masked the password in ``credentials``; keep only the name tried.
    username = str(credentials.get("username", ""))[:150]
    with transaction.atomic():
        audit_log(action="auth.login_failed", actor_label="anonymous", data={"username": username, **_client(request)})


@receiver([post_save, post_delete], sender=Policy, dispatch_uid="compliance.policy.cache_clear")
def policy_changed(sender, **kwargs):
    policy_cache_clear()
