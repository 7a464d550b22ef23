"""Sign-in with a limit on failures per username (every path: login page, admin, API session)."""

from __future__ import annotations

import contextlib

from django.conf import settings
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.forms import AuthenticationForm
from django.contrib.auth.signals import user_logged_in
from django.core.exceptions import PermissionDenied, ValidationError
from django.dispatch import receiver
from django.utils.translation import gettext as _

from .throttle import LOGIN_FAILURES


class ThrottledModelBackend(ModelBackend):
    def authenticate(self, request, username=None, password=None, **kwargs):
        if username and LOGIN_FAILURES.retry_after(ident=username):
            raise PermissionDenied  # refused without checking the password; counted as a failed sign-in
        user = super().authenticate(request, username=username, password=password, **kwargs)
        if username:
            if user is None:
                LOGIN_FAILURES.hit(ident=username)
            else:
                LOGIN_FAILURES.reset(ident=username)
        return user


class ThrottledAuthenticationForm(AuthenticationForm):
    """Says why when a username is locked out, instead of "wrong password"."""

    throttle_message = ""

    def clean(self):
        username = self.cleaned_data.get("username")
        wait = LOGIN_FAILURES.retry_after(ident=username) if username else 0
        if not wait:
            return super().clean()
        with contextlib.suppress(ValidationError):
            super().clean()  # refused by the backend, and audited as a failed sign-in like any other
        self.throttle_message = _("Too many failed sign-ins for this username. Try again in %(minutes)s minute(s).") % {
            "minutes": (wait + 59) // 60}
        raise ValidationError(self.throttle_message, code="throttled")


@receiver(user_logged_in, dispatch_uid="servicing.session_expiry")
def staff_sessions_end_with_the_browser(sender, request, user, **kwargs):
    """Staff see borrowers' data: their session cookie lasts until the browser closes (and at most
    SESSION_COOKIE_AGE on the server), so a shared or unattended machine does not keep them signed in."""
    if request is not None and hasattr(request, "session") and (
        user.is_staff or getattr(user, "role", "") in settings.SESSION_BROWSER_CLOSE_ROLES
    ):
        request.session.set_expiry(0)
