"""Fixed-window counters in Django's cache (Redis when CACHE_URL is set, so every web process
shares them): failed sign-ins per username, public lender sign-ups per client address."""

from __future__ import annotations

import time
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache


@dataclass(frozen=True)
class Limit:
    name: str
    setting: str  # settings.<setting> = (max events, window in seconds)

    @property
    def rule(self) -> tuple[int, int]:
        return getattr(settings, self.setting)

    def _key(self, ident: str) -> str:
        return f"throttle:{self.name}:{ident.strip().lower()}"

    def retry_after(self, *, ident: str) -> int:
        """Seconds until ``ident`` may try again (0: it may now)."""
        limit, _window = self.rule
        entry = cache.get(self._key(ident))
        if not entry or entry[0] < limit:
            return 0
        return max(1, int(entry[1] - time.time()))

    def hit(self, *, ident: str) -> None:
        limit, window = self.rule
        key, now = self._key(ident), time.time()
        entry = cache.get(key)
        if not entry or entry[1] <= now:
            entry = (0, now + window)  # a new window starts at the first event
        # Not atomic across processes; a few extra tries in a race do not weaken a limit this size.
        cache.set(key, (entry[0] + 1, entry[1]), timeout=max(1, int(entry[1] - now)) + 1)

    def reset(self, *, ident: str) -> None:
        cache.delete(self._key(ident))


LOGIN_FAILURES = Limit("login", "THROTTLE_LOGIN_FAILURES")
LENDER_SIGNUPS = Limit("signup", "THROTTLE_LENDER_SIGNUPS")


def client_address(request) -> str:
    # REMOTE_ADDR must be the client's: behind a proxy, have the proxy or a middleware set it.
    return request.META.get("REMOTE_ADDR", "") if request is not None else ""
