"""The progress of one ingest: its tqdm bar and a caller's ``on_progress(done, total)`` (a dashboard's live count)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["Progress", "ProgressCallback"]

ProgressCallback = Callable[[int, int], None]


class Progress:
    """Counts what is done of how much, moves a tqdm bar and tells ``on_progress`` after each move.

    The counts are kept here, not read from the bar: a disabled bar (``progress=False``)
    does not count.

    Parameters
    ----------
    bar : tqdm.tqdm
        The bar (disabled when no bar is wanted).
    on_progress : callable, optional
        Called with ``(done, total)``.
    """

    def __init__(self, bar: Any, on_progress: ProgressCallback | None = None) -> None:
        self.bar = bar
        self.on_progress = on_progress
        self.done = 0
        self.total = 0

    def __repr__(self) -> str:
        return f"Progress({self.done}/{self.total})"

    def grow(self, count: int) -> None:
        """Add ``count`` to the total."""
        if count:
            self.total += count
            self.bar.total = self.total
            self.bar.refresh()
            self._report()

    def advance(self, count: int = 1) -> None:
        """Count ``count`` more done (negative: an attempt started again)."""
        if count:
            self.done += count
            self.bar.update(count)
            self._report()

    def _report(self) -> None:
        if self.on_progress is not None:
            self.on_progress(self.done, self.total)
