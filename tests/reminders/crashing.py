"""A file sender for worker tests: counts every send() call and can kill the worker mid-send.

``calls.log`` gets one line per call to ``send`` *before* de-duplication, i.e. what a provider
that does not de-duplicate would deliver, so "exactly one line" proves the retry did not re-send.
``REMINDER_CRASH_MARKER`` names a file whose content picks the crash point: ``before`` (after the
send was marked started, before the provider got it) or ``after`` (provider accepted, row not yet
marked sent). ``os._exit`` is a hard kill: no cleanup, no ack, like a lost machine.
"""

from __future__ import annotations

import os
from pathlib import Path

from reminders.senders import FileSender, OutboundMessage


class CountingCrashingFileSender(FileSender):
    def send(self, message: OutboundMessage) -> str:
        marker = os.environ.get("REMINDER_CRASH_MARKER", "")
        mode = Path(marker).read_text().strip() if marker and Path(marker).exists() else ""
        if mode == "before":
            os._exit(1)
        self.directory.mkdir(parents=True, exist_ok=True)
        with open(self.directory / "calls.log", "a", encoding="utf-8") as log:
            log.write(message.key + "\n")
        provider_id = super().send(message)
        if mode == "after":
            os._exit(1)
        return provider_id


def calls(directory: Path) -> list[str]:
    path = Path(directory) / "calls.log"
    return path.read_text(encoding="utf-8").split() if path.exists() else []
