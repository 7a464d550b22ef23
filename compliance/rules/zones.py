"""Every IANA time zone a jurisdiction spans (pure data).

Used when a borrower's own zone is unknown: the outreach must then be lawful in all of them at
once (Reg F 1006.6(b)(1)(i): with conflicting or missing location information, the time must be
convenient in every location the consumer may be). Never the server's zone. A policy may name its
own list (``"zones"`` in the policy data), which wins over this table.
"""

from __future__ import annotations

JURISDICTION_ZONES: dict[str, tuple[str, ...]] = {
    # The 50 states and DC: Eastern to Hawaii (the zones with distinct offsets or DST rules).
    "US": (
        "America/New_York", "America/Chicago", "America/Denver", "America/Phoenix", "America/Los_Angeles",
        "America/Anchorage", "Pacific/Honolulu",
    ),
    "US-MA": ("America/New_York",),
    "CN": ("Asia/Shanghai",),
    "AU": (
        "Australia/Sydney", "Australia/Melbourne", "Australia/Brisbane", "Australia/Adelaide",
        "Australia/Darwin", "Australia/Perth", "Australia/Hobart",
    ),
}
