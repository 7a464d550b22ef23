"""Turning compliance decisions and audit codes into what the workspace shows (translated)."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from django.conf import settings
from django.utils import dateformat
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext

from compliance import rules
from compliance.messages import violation_text

_HOURS = _("Outside the hours the borrower may be contacted")
# Plain-language title per rule code of the seeded policies; the engine's own (English) message
# stays available as the detail. Unknown codes (a new policy) fall back to that message.
RULE_TITLES = {
    "CN.QUIET_HOURS": _HOURS,
    "US.FDCPA.TIME_OF_DAY": _HOURS,
    "AU.CONTACT_HOURS": _("Outside the allowed contact hours, or a public holiday"),
    "CN.UNANSWERED_PER_NUMBER": _("Daily limit of unanswered calls to this number reached"),
    "CN.CONVERSATIONS_PER_DAY": _("Daily limit of conversations with the borrower reached"),
    "CN.THIRD_PARTY": _("Third parties may be contacted only when the borrower is unreachable"),
    "CN.VISIT_TWO_COLLECTORS": _("Field visits need at least two collectors"),
    "US.REGF.CALL_FREQUENCY": _("Call limit for this debt in 7 days reached"),
    "US.REGF.POST_CONVERSATION": _("No calls within 7 days after a telephone conversation"),
    "US-MA.940CMR.TELEPHONE_FREQUENCY": _("Massachusetts limit of 2 calls per 7 days reached"),
    "AU.CONTACTS_PER_WEEK": _("Weekly contact limit reached"),
    "AU.CONTACTS_PER_MONTH": _("Monthly contact limit reached"),
    "HOLD.CEASE": _("The borrower asked us to stop contacting them"),
    "HOLD.DISPUTE": _("The debt is disputed; outreach is suspended"),
    "HOLD.ATTORNEY": _("The borrower is represented by an attorney"),
    "HOLD.BANKRUPTCY": _("The borrower is in bankruptcy"),
    "HOLD.DECEASED": _("The borrower is recorded as deceased"),
    "BORROWER.CONVENIENT_TIMES": _("Outside the times the borrower said suit them"),
}


FORMAT = "Y-m-d H:i D"


def agent_zone(user) -> ZoneInfo:
    try:
        return ZoneInfo(getattr(user, "time_zone", "") or settings.TIME_ZONE)
    except (ValueError, KeyError):
        return ZoneInfo(settings.TIME_ZONE)


def fmt_in(dt: datetime, tz: ZoneInfo | str) -> str:
    tz = ZoneInfo(tz) if isinstance(tz, str) else tz
    return dateformat.format(dt.astimezone(tz), FORMAT)


def present_decision(decision: rules.Decision | None, *, borrower, user, channel: str = "",
                     needs_collector: bool = False) -> dict:
    """A template-friendly view of a decision: why not, and when next, in the borrower's and the agent's time.

    ``needs_collector``: the outreach (a field visit) would be lawful with a second collector named.
    ``next_local`` is the next lawful time in the agent's zone, rounded up to the minute, for a
    one-click callback at that time.
    """
    if decision is None:
        return {"unknown": True, "allowed": False, "violations": [], "channel": channel}
    nxt = decision.next_allowed_at
    tz = agent_zone(user)
    local_next = ""
    if nxt and not decision.allowed:
        up = nxt.astimezone(tz)
        if up.second or up.microsecond:
            up = up.replace(second=0, microsecond=0) + timedelta(minutes=1)
        local_next = up.strftime("%Y-%m-%dT%H:%M")
    return {
        "needs_collector": needs_collector and not decision.allowed,
        "next_local": local_next,
        "unknown": False,
        "allowed": decision.allowed,
        "channel": channel,
        "policy": f"{decision.policy_code} v{decision.policy_version}",
        "violations": [
            {"title": RULE_TITLES.get(v.code, text), "code": v.code, "citation": pgettext("policy", v.citation), "message": text}
            for v, text in ((v, violation_text(v)) for v in decision.violations)
        ],
        "next_at": nxt if not decision.allowed else None,
        "next_iso": nxt.isoformat() if nxt and not decision.allowed else "",
        "next_borrower": [(z, fmt_in(nxt, z)) for z in borrower.zones] if nxt and not decision.allowed else [],
        "next_agent": fmt_in(nxt, tz) if nxt and not decision.allowed else "",
        "agent_zone": str(tz),
    }


def page_query(request) -> str:
    """The request's GET parameters without ``page``, for the pager's links (templates/_pager.html)."""
    params = request.GET.copy()
    params.pop("page", None)
    return params.urlencode()
