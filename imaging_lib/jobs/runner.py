"""Long jobs on Dask distributed: one task per item, and a live job record.

:func:`run_tasks` submits one task per item (a study, a report) and returns a :class:`Job`
whose state -- counts of pending, running, done, failed and skipped items, per-item errors
with their typed error names, throughput and ETA (:mod:`~imaging_lib.jobs.progress`) -- is
kept current in the store under :func:`imaging_lib.store.layout.job_record_key`, so a
dashboard in another process can follow it with :class:`~imaging_lib.jobs.progress.JobView`.
The prediction batch (:mod:`imaging_lib.jobs.batch`) and the reports
(:mod:`imaging_lib.reports`) run on it.

Failures are per item: an error in one item is recorded with its type and message and
the other items go on. Transient errors (``OSError`` and its kin, e.g. a store hiccup)
are retried in place ``retries`` times; errors about the input
(:class:`~imaging_lib.errors.ImagingError`) are not. Work lost with a dying worker is
recomputed by Dask (up to ``distributed.scheduler.allowed-failures`` deaths); tasks write
their outputs atomically under deterministic keys, so a recomputation overwrites and
never duplicates, and the model cache is per process, so a restarted worker loads afresh.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import CancelledError
from typing import TYPE_CHECKING, Any

from ..errors import ImagingError
from ..store import layout, records
from .cluster import get_client
from .progress import count_states, eta_seconds, item_errors, throughput_per_minute

if TYPE_CHECKING:
    from distributed import Client, Future

    from ..store.objects import Store

__all__ = ["TRANSIENT_ERRORS", "Job", "run_tasks"]

TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (OSError, TimeoutError, ConnectionError)

logger = logging.getLogger(__name__)


def _run_item(
    pickled_task: bytes,
    item: str,
    topic: str,
    retries: int,
    transient_errors: tuple[type[BaseException], ...],
    retry_delay: float,
) -> dict[str, Any]:
    """Run the task on ``item`` on a worker, retrying transient errors; return its outcome.

    The task comes cloudpickled (see :func:`run_tasks`). A transient error is retried in
    place up to ``retries`` times, after ``retry_delay`` seconds doubling each time; an
    :class:`~imaging_lib.errors.ImagingError` (bad input) or any other error propagates at
    once, so the future errs and the job records the item as failed.
    """
    import cloudpickle

    task = cloudpickle.loads(pickled_task)
    worker_address = _announce_running(topic, item)
    started = time.perf_counter()
    for attempt in range(retries + 1):
        try:
            summary = dict(task(item))
            break
        except transient_errors as exc:
            if isinstance(exc, ImagingError) or attempt == retries:
                raise
            logger.warning("%s: transient %s, retry %d of %d", item, type(exc).__name__, attempt + 1, retries)
            time.sleep(retry_delay * 2**attempt)
    return {
        "summary": summary,
        "seconds": time.perf_counter() - started,
        "worker": worker_address,
        "attempts": attempt + 1,
    }


def _announce_running(topic: str, item: str) -> str | None:
    """Tell the job's client that ``item`` started; return this worker's address."""
    from distributed import get_worker

    try:
        worker = get_worker()
    except ValueError:  # not on a worker (e.g. run in process): nobody to tell
        return None
    worker.log_event(topic, {"item": item})
    return worker.address


class Job:
    """Handle of a running set of tasks, one per item; its record lives in the store.

    Made by :func:`run_tasks`. A monitor thread follows the futures and the workers'
    start events, and rewrites the job record (at most every ``min_interval`` seconds,
    and at least every ``heartbeat`` seconds while running) until every item has ended.

    Attributes
    ----------
    job_id : str
    kind : str
        What the items are (``"batch"``, ``"report"``).
    created_by : str or None
        Who started it, as its record says (None: the current user).
    store : Store
    dashboard_link : str or None
        The Dask dashboard of the client the job runs on.
    results : dict
        Item -> summary returned by the task, for the items done so far.
    """

    def __init__(
        self,
        job_id: str,
        kind: str,
        items: Sequence[str],
        store: Store,
        client: Client,
        meta: Mapping[str, Any],
        *,
        skipped: Iterable[str] = (),
        min_interval: float = 0.5,
        heartbeat: float = 5.0,
        created_by: str | None = None,
    ) -> None:
        self.job_id = job_id
        self.created_by = created_by
        self.kind = kind
        self.store = store
        self.client = client
        self.dashboard_link = _dashboard_link(client)
        self.meta = dict(meta)
        self.results: dict[str, dict[str, Any]] = {}
        self.created_at = records.now()
        self.finished_at: str | None = None
        self._started = time.monotonic()
        self._ended_at: float | None = None
        skipped_set = set(skipped)
        self._items: dict[str, dict[str, Any]] = {
            item: {"state": "skipped" if item in skipped_set else "pending"} for item in items
        }
        self._futures: dict[str, Future] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._finished = threading.Event()
        self._min_interval = min_interval
        self._heartbeat = heartbeat
        self._topic = f"imaging-job-{job_id}"
        self._monitor: threading.Thread | None = None

    # -- state -------------------------------------------------------------------------
    def _state(self) -> tuple[dict[str, dict[str, Any]], dict[str, int]]:
        """A consistent copy of the items and their counts."""
        with self._lock:
            items = {item: dict(entry) for item, entry in self._items.items()}
        return items, count_states(items)

    @property
    def counts(self) -> dict[str, int]:
        """Number of items in each state (``pending running done failed skipped``) and ``total``."""
        return self._state()[1]

    @property
    def errors(self) -> dict[str, dict[str, str]]:
        """Item -> ``{"error_type", "error"}`` for every failed item."""
        return item_errors(self._state()[0])

    @property
    def finished(self) -> bool:
        """Whether every item has ended and the final record is written."""
        return self._finished.is_set()

    @property
    def elapsed_seconds(self) -> float:
        """Wall time from submission to the end (or to now while running)."""
        end = self._ended_at if self._ended_at is not None else time.monotonic()
        return end - self._started

    @property
    def throughput_per_minute(self) -> float:
        """Items ended (done or failed, not skipped) per minute of wall time."""
        return throughput_per_minute(self.counts, self.elapsed_seconds)

    @property
    def eta_seconds(self) -> float | None:
        """Estimated seconds until every item has ended; None before the first one ends."""
        return eta_seconds(self.counts, self.elapsed_seconds)

    def snapshot(self) -> dict[str, Any]:
        """The job record: what is written to the store, as a JSON-able dict."""
        items, counts = self._state()
        elapsed = self.elapsed_seconds
        eta = eta_seconds(counts, elapsed)
        state = {
            "status": "finished" if self._ended_at is not None else "running",
            "updated_at": records.now(),
            "finished_at": self.finished_at,
            "counts": counts,
            "errors": [{"item": item, **error} for item, error in item_errors(items).items()],
            "items": items,
            "elapsed_seconds": round(elapsed, 3),
            "throughput_per_minute": round(throughput_per_minute(counts, elapsed), 3),
            "eta_seconds": None if eta is None else round(eta, 1),
            "dashboard_link": self.dashboard_link,
            "scheduler": self.client.scheduler.address if self.client.scheduler else None,
            "driver": {"host": socket.gethostname(), "pid": os.getpid()},
        }
        return records.job_record(
            self.job_id,
            self.kind,
            state=state,
            parameters=self.meta,
            created_at=self.created_at,
            created_by=self.created_by,
        )

    def wait(self, timeout: float | None = None) -> Job:
        """Block until every item has ended and the final record is written.

        Parameters
        ----------
        timeout : float, optional
            Seconds to wait at most.

        Returns
        -------
        Job
            This job, for chaining (``run_batch(...).wait().counts``).

        Raises
        ------
        TimeoutError
            If the job has not ended within ``timeout``.
        """
        if not self._finished.wait(timeout):
            raise TimeoutError(f"job {self.job_id} still running after {timeout} s: {self.counts}")
        return self

    def __repr__(self) -> str:
        counts = self.counts
        return (
            f"<Job {self.job_id} {self.kind} {counts['done']}/{counts['total']} done,"
            f" {counts['failed']} failed, {counts['skipped']} skipped, dashboard {self.dashboard_link}>"
        )

    def _repr_html_(self) -> str:
        from html import escape

        link = self.dashboard_link
        dashboard = f' &middot; <a href="{escape(link)}" target="_blank">Dask dashboard</a>' if link else ""
        counts = ", ".join(f"{state} {count}" for state, count in self.counts.items())
        return f"<div><b>Job {escape(self.job_id)}</b> ({escape(self.kind)}): {counts}{dashboard}</div>"

    # -- running -----------------------------------------------------------------------
    def _start(
        self,
        task: Callable[[str], Mapping[str, Any]],
        retries: int,
        transient_errors: tuple[type[BaseException], ...],
        retry_delay: float,
    ) -> None:
        import cloudpickle

        self.client.subscribe_topic(self._topic, self._on_running)
        self._write_record()
        run_item = functools.partial(
            _run_item,
            cloudpickle.dumps(task),
            topic=self._topic,
            retries=retries,
            transient_errors=transient_errors,
            retry_delay=retry_delay,
        )
        for item, entry in self._items.items():
            if entry["state"] != "pending":
                continue
            future = self.client.submit(run_item, item, key=f"{self.kind}-{self.job_id}-{item}", pure=False)
            self._futures[item] = future
            future.add_done_callback(functools.partial(self._on_done, item))
        self._monitor = threading.Thread(target=self._follow, name=f"job-{self.job_id}", daemon=True)
        self._monitor.start()

    # Both handlers run on the client's event loop, in the order the scheduler told of
    # them: an item leaves "running" before the next item on that worker enters it.
    def _on_running(self, event: tuple[float, Mapping[str, Any]]) -> None:
        item = event[1]["item"]
        with self._lock:
            entry = self._items.get(item)
            if entry is not None and entry["state"] == "pending":
                entry["state"] = "running"
        self._wake.set()

    def _on_done(self, item: str, future: Future) -> None:
        with self._lock:
            self._items[item]["state"] = "done" if future.status == "finished" else "failed"
        self._wake.set()

    def _follow(self) -> None:
        last_write = time.monotonic()
        dirty = False
        while self._futures:
            self._wake.wait(timeout=self._min_interval if dirty else self._heartbeat)
            dirty = dirty or self._wake.is_set()
            self._wake.clear()
            self._collect()
            if not self._futures:
                break
            if time.monotonic() - last_write >= (self._min_interval if dirty else self._heartbeat):
                self._write_record()
                last_write, dirty = time.monotonic(), False
        self._ended_at = time.monotonic()
        self.finished_at = records.now()
        try:
            self.client.unsubscribe_topic(self._topic)
        except Exception:  # the client may already be closing; nothing left to hear
            logger.debug("could not unsubscribe from %s", self._topic, exc_info=True)
        self._write_record()
        self._finished.set()

    def _collect(self) -> None:
        """Take the outcome of every ended future: summary and timing, or the error."""
        for item, future in list(self._futures.items()):
            if not future.done():
                continue
            if future.status == "finished":
                outcome = future.result()
                self.results[item] = outcome.pop("summary")
                entry = {"state": "done", **outcome}
            else:
                error = future.exception() if future.status == "error" else CancelledError("task cancelled")
                entry = {"state": "failed", "error_type": type(error).__name__, "error": str(error)}
            with self._lock:
                self._items[item] = entry
            del self._futures[item]

    def _write_record(self) -> None:
        try:
            self.store.write_json(layout.job_record_key(self.job_id), self.snapshot())
        except OSError:  # a store hiccup must not kill the monitor; the next write catches up
            logger.warning("could not write the record of job %s", self.job_id, exc_info=True)


def _dashboard_link(client: Client) -> str | None:
    try:
        return client.dashboard_link
    except (AttributeError, KeyError):  # scheduler without a dashboard
        return None


def run_tasks(
    kind: str,
    items: Sequence[str],
    task: Callable[[str], Mapping[str, Any]],
    store: Store,
    *,
    client: Client | None = None,
    retries: int = 2,
    skipped: Iterable[str] = (),
    meta: Mapping[str, Any] | None = None,
    transient_errors: tuple[type[BaseException], ...] = TRANSIENT_ERRORS,
    retry_delay: float = 0.5,
    min_interval: float = 0.5,
) -> Job:
    """Submit ``task(item)`` for each item not ``skipped``; return the running :class:`Job`.

    Parameters
    ----------
    kind : str
        What the items are, e.g. ``"batch"`` or ``"report"``; part of the job id.
    items : sequence of str
        Item identifiers (study UIDs, report names); unique.
    task : callable
        ``task(item) -> dict`` (a small JSON-able summary); runs on a worker. It ships
        with cloudpickle, so functions of modules registered with
        ``cloudpickle.register_pickle_by_value`` need not be installed on the workers.
    store : Store
        Where the job record is kept.
    client : distributed.Client, optional
        Default :func:`get_client()`.
    retries : int
        Times a task is retried after a transient error (``transient_errors``).
    skipped : iterable of str
        Items not to run (already done); they count as ``skipped``.
    meta : mapping, optional
        JSON-able fields added to the job record (model, parameters...).
    transient_errors : tuple of exception types
        Errors worth retrying; :class:`~imaging_lib.errors.ImagingError` never is.
    retry_delay : float
        Seconds before the first retry; doubled before each next one.
    min_interval : float
        Least seconds between two writes of the job record.

    Returns
    -------
    Job

    Raises
    ------
    ValueError
        If ``items`` holds duplicates.
    """
    items = list(items)
    if len(set(items)) != len(items):
        raise ValueError(f"{kind} job: items must be unique")
    job_id = f"{kind}-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"
    job = Job(
        job_id,
        kind,
        items,
        store,
        client or get_client(),
        meta or {},
        skipped=skipped,
        min_interval=min_interval,
    )
    job._start(task, retries, transient_errors, retry_delay)
    return job
