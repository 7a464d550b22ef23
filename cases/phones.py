"""Phone numbers in one form, E.164, wherever a rule counts per number ("138 0013 8000",
"13800138000" and "+8613800138000" are one number)."""

from __future__ import annotations

from functools import lru_cache

import phonenumbers
from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _

#: The region a number without a country code is read in, per jurisdiction.
REGIONS = {"CN": "CN", "US": "US", "US-MA": "US", "AU": "AU"}


def phone_e164(raw: str, *, jurisdiction: str = "CN") -> str:
    """``raw`` as E.164 ("+8613800138000"); ValidationError when it is no possible number."""
    text = (raw or "").strip()
    if not text:
        return ""
    try:
        number = phonenumbers.parse(text, REGIONS.get(jurisdiction, "CN"))
    except phonenumbers.NumberParseException:
        number = None
    if number is None or not phonenumbers.is_possible_number(number):
        raise ValidationError({"phone": _("%(value)s is not a phone number.") % {"value": text[:40]}})
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def phone_e164_or_raw(raw: str, *, jurisdiction: str = "CN") -> str:
    """For stored data that may predate normalisation: E.164 when possible, else unchanged."""
    return _e164_or_raw(raw, jurisdiction)


@lru_cache(maxsize=65536)
def _e164_or_raw(raw: str, jurisdiction: str) -> str:
    # Pure, and on the gate's path for every check (the borrower's first number): parsing was about a
    # tenth of a check's time. Bounded, so memory stays flat whatever the number of borrowers.
    try:
        return phone_e164(raw, jurisdiction=jurisdiction)
    except ValidationError:
        return raw
