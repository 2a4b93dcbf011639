"""Following a job: the counts, rates and errors of its items, its record read from any process, a progress bar.

A job's items are each in one of :data:`ITEM_STATES`. :func:`count_states`,
:func:`item_errors`, :func:`throughput_per_minute` and :func:`eta_seconds` compute what a
job record shows from its items; :class:`~imaging_lib.jobs.runner.Job` writes them,
:class:`JobView` reads them back from the store in another process (a dashboard), and
:func:`follow_with_progress_bar` draws them as a tqdm bar (the command line, the demo).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol, TextIO

from ..store import layout, records

if TYPE_CHECKING:
    from ..store.objects import Store

__all__ = [
    "ITEM_STATES",
    "JobView",
    "count_states",
    "eta_seconds",
    "follow_with_progress_bar",
    "item_errors",
    "throughput_per_minute",
]

ITEM_STATES = ("pending", "running", "done", "failed", "skipped")


def count_states(items: Mapping[str, Mapping[str, Any]]) -> dict[str, int]:
    """Number of items in each of :data:`ITEM_STATES`, and ``total``."""
    counts = dict.fromkeys(ITEM_STATES, 0)
    for entry in items.values():
        counts[entry["state"]] += 1
    counts["total"] = len(items)
    return counts


def item_errors(items: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, str]]:
    """Item -> ``{"error_type", "error"}`` for every item whose failure has been collected."""
    return {
        item: {"error_type": entry["error_type"], "error": entry["error"]}
        for item, entry in items.items()
        if "error_type" in entry
    }


def throughput_per_minute(counts: Mapping[str, int], elapsed: float) -> float:
    """Items ended (done or failed, not skipped) per minute of ``elapsed`` seconds."""
    return 60.0 * (counts["done"] + counts["failed"]) / elapsed if elapsed > 0 else 0.0


def eta_seconds(counts: Mapping[str, int], elapsed: float) -> float | None:
    """Seconds until every item has ended at the rate so far; None before the first one ends."""
    remaining = counts["pending"] + counts["running"]
    if remaining == 0:
        return 0.0
    rate = throughput_per_minute(counts, elapsed) / 60.0
    return remaining / rate if rate > 0 else None


class FollowedJob(Protocol):
    """What :func:`follow_with_progress_bar` needs of a job (a :class:`~imaging_lib.jobs.runner.Job`)."""

    job_id: str

    @property
    def counts(self) -> dict[str, int]: ...

    @property
    def finished(self) -> bool: ...

    def wait(self, timeout: float | None = None) -> Any: ...


class JobView:
    """A job followed through its record in the store, from any process (e.g. a dashboard).

    Parameters
    ----------
    store : Store
    job_id : str
    """

    def __init__(self, store: Store, job_id: str) -> None:
        self.store = store
        self.job_id = job_id

    def snapshot(self) -> dict[str, Any]:
        """The job record as last written by the process running the job.

        Raises
        ------
        imaging_lib.errors.MissingRecord
            If no job of that id has written a record.
        """
        return records.read_record(self.store, layout.job_record_key(self.job_id))

    @property
    def finished(self) -> bool:
        """Whether the record says every item has ended."""
        return self.snapshot()["status"] == "finished"


def follow_with_progress_bar(job: FollowedJob, *, file: TextIO | None = None, poll: float = 0.5) -> FollowedJob:
    """Show a tqdm bar of ``job`` until it ends (the ``imaging-lab run`` progress bar).

    Parameters
    ----------
    job : imaging_lib.jobs.Job
    file : text stream, optional
        Where the bar is drawn; default stderr.
    poll : float
        Seconds between updates.

    Returns
    -------
    imaging_lib.jobs.Job
        The ended job.
    """
    from ..progress_bar import progress_bar

    counts = job.counts
    options: dict[str, Any] = {"total": counts["total"], "initial": counts["skipped"], "unit": "study"}
    with progress_bar(file=file, desc=job.job_id, **options) as bar:
        while True:
            ended = job.finished
            counts = job.counts
            bar.n = counts["done"] + counts["failed"] + counts["skipped"]
            bar.set_postfix(running=counts["running"], failed=counts["failed"], refresh=False)
            bar.update(0)  # drawn if due (a log file gets one line at the end)
            if ended:
                return job
            try:
                job.wait(poll)
            except TimeoutError:
                continue
