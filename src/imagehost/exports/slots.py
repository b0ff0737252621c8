"""How many exports run at once in this process (EXPORT_CONCURRENCY). Each one holds a worker thread
while it writes an XLSX, a database connection while it reads its rows, and a client connection for
as long as the client takes to read: past the limit a new export is refused at once (ExportsBusy,
503 with Retry-After) rather than queued behind exports that may take minutes."""

from __future__ import annotations

from imagehost.errors import ExportsBusy

# What a refused client is told to wait: long enough for a typical export to end.
RETRY_AFTER_SECONDS = 30


class ExportSlot:
    """One running export; giving it back twice is harmless (an answer ends once, its error path too)."""

    def __init__(self, slots: ExportSlots) -> None:
        self._slots = slots
        self._held = True

    def release(self) -> None:
        if self._held:
            self._held = False
            self._slots.running -= 1


class ExportSlots:
    """Counted on the event loop alone (taken and given back there), so no lock is needed."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.running = 0

    def take(self, what: str, who: str) -> ExportSlot:
        if self.running >= self.limit:
            raise ExportsBusy(limit=self.limit, seconds=RETRY_AFTER_SECONDS, what=what, who=who)
        self.running += 1
        return ExportSlot(self)
