"""Lender onboarding: public registration, approval and suspension by a supervisor (all audited)."""

from __future__ import annotations

import secrets

from django.contrib.auth import password_validation
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection, transaction
from django.utils import timezone
from django.utils.text import slugify
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from cases.models import Lender, User
from compliance.audit import audit_log

# Kinds of institution a lender registers as (Lender.kind keeps the code; older free-text values stay).
LENDER_KINDS = (
    ("bank", gettext_lazy("Bank")),
    ("consumer_finance", gettext_lazy("Consumer finance company")),
    ("online_lender", gettext_lazy("Online lender / microfinance company")),
    ("other", gettext_lazy("Other")),
)


def lender_kind_label(kind: str) -> str:
    return str(dict(LENDER_KINDS).get(kind, kind))


def lender_register(
    *,
    name: str,
    registration_no: str,
    contact_name: str,
    contact_phone: str,
    contact_email: str,
    username: str,
    password: str,
    kind: str,
) -> Lender:
    """Public sign-up: a pending lender and its first (inactive) user, activated on approval.

    The unified social credit code is required and checked (python-stdnum: 18 characters, check
    character); a name another lender already has (case-insensitive) is refused, also when two sign-ups race."""
    name = " ".join(name.split())
    with transaction.atomic():
        # Two sign-ups with the same name, code or username at once would both pass the checks: registrations are
        # rare, so one lock serialises them and the checks run under it (SQLite serialises writers by itself).
        if connection.vendor == "postgresql":
            with connection.cursor() as cur:
                cur.execute("SELECT pg_advisory_xact_lock(%s, 0)", [REGISTRATION_LOCK_CLASS])
        _registration_check(name=name, registration_no=registration_no, username=username, password=password,
                            contact_email=contact_email, kind=kind)
        return _lender_insert(name=name, registration_no=registration_no, contact_name=contact_name,
                              contact_phone=contact_phone, contact_email=contact_email, username=username,
                              password=password, kind=kind)


#: Namespace of the registration lock (apart from the person locks of cases.gate).
REGISTRATION_LOCK_CLASS = 20262


def _registration_check(*, name: str, registration_no: str, username: str, password: str, contact_email: str,
                        kind: str) -> None:
    from stdnum.cn import uscc

    errors: dict[str, str] = {}
    if not name:
        errors["name"] = _("Give the lender's name.")
    elif Lender.objects.filter(name__iexact=name).exists():
        errors["name"] = _("A lender with this name is already registered.")
    if kind not in dict(LENDER_KINDS):
        errors["kind"] = _("Choose the kind of institution.")
    if not registration_no.strip():
        errors["registration_no"] = _("Give the unified social credit code.")
    elif not uscc.is_valid(registration_no):
        errors["registration_no"] = _("Not a valid unified social credit code (18 characters with a check character).")
    elif Lender.objects.filter(registration_no=uscc.compact(registration_no)).exists():
        errors["registration_no"] = _("A lender with this unified social credit code is already registered.")
    if User.objects.filter(username__iexact=username).exists():
        errors["username"] = _("This username is taken.")
    try:
        password_validation.validate_password(password, User(username=username, email=contact_email))
    except ValidationError as exc:
        errors["password"] = " ".join(exc.messages)
    if errors:
        raise ValidationError(errors)


def _lender_insert(*, name: str, registration_no: str, contact_name: str, contact_phone: str, contact_email: str,
                   username: str, password: str, kind: str) -> Lender:
    from stdnum.cn import uscc

    # inside lender_register's transaction, under the registration lock
    code = f"{slugify(name)[:30] or 'lender'}-{secrets.token_hex(3)}"
    lender = Lender(
        name=name, code=code, kind=kind, status=Lender.Status.PENDING,
        registration_no=uscc.compact(registration_no),
        contact_name=contact_name, contact_phone=contact_phone, contact_email=contact_email,
    )
    lender.full_clean()
    lender.save()
    user = User(username=username, email=contact_email, role=User.Role.LENDER, lender=lender, is_active=False)
    user.set_password(password)
    user.full_clean()
    user.save()
    audit_log(
        action="cases.lender.registered", actor=None, actor_label=username, lender_id=lender.pk, subject=lender,
        data={"name": name, "kind": kind, "registration_no": lender.registration_no, "user": username,
              "contact_email": contact_email},
    )
    return lender


def lender_approve(*, actor: User, lender: Lender) -> Lender:
    """Activate a pending (or suspended) lender and its users."""
    if not actor.is_supervisor:
        raise PermissionDenied(_("Only supervisors and administrators approve lenders."))
    with transaction.atomic():
        lender = Lender.objects.select_for_update().get(pk=lender.pk)
        if lender.status == Lender.Status.ACTIVE:
            raise ValidationError(_("This lender is already active."))
        before = lender.status
        lender.status, lender.approved_by, lender.approved_at = Lender.Status.ACTIVE, actor, timezone.now()
        lender.save(update_fields=["status", "approved_by", "approved_at"])
        users = list(lender.users.filter(is_active=False).values_list("username", flat=True))
        lender.users.filter(role=User.Role.LENDER).update(is_active=True)
        audit_log(
            action="cases.lender.approved", actor=actor, lender_id=lender.pk, subject=lender,
            data={"from": before, "to": lender.status, "activated_users": users},
        )
        return lender


def lender_reject(*, actor: User, lender: Lender, reason: str = "") -> Lender:
    """Refuse a registration (or suspend a lender): it cannot sign in or upload."""
    if not actor.is_supervisor:
        raise PermissionDenied(_("Only supervisors and administrators approve lenders."))
    with transaction.atomic():
        lender = Lender.objects.select_for_update().get(pk=lender.pk)
        before = lender.status
        lender.status = Lender.Status.SUSPENDED
        lender.save(update_fields=["status"])
        lender.users.update(is_active=False)
        audit_log(
            action="cases.lender.suspended", actor=actor, lender_id=lender.pk, subject=lender,
            data={"from": before, "to": lender.status, "reason": reason[:500]},
        )
        return lender
