"""A live ipywidgets progress display of a Dask job, for notebooks and dashboards.

``JobProgress(job)`` shows a bar of ended items, the counts (pending, running, done,
failed, skipped), throughput, ETA, a link to the Dask dashboard and a table of per-item
errors with their typed error names. It follows anything with a ``snapshot()`` returning
a job record: a :class:`imaging_lib.jobs.Job` in the process that runs it, or a
:class:`imaging_lib.jobs.JobView` reading the record from the store in another process.
A background thread refreshes it until the job has ended.
"""

from __future__ import annotations

import threading
from html import escape
from typing import Any, Protocol

import ipywidgets

__all__ = ["FollowedRecord", "JobProgress", "JobSource"]


class JobSource(Protocol):
    """Anything that returns the current job record."""

    def snapshot(self) -> dict[str, Any]: ...


def _format_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "unknown"
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


def _counts_html(record: dict[str, Any]) -> str:
    counts = record["counts"]
    parts = [f"{state} <b>{counts[state]}</b>" for state in ("done", "running", "pending", "failed", "skipped")]
    parts.append(f"{record['throughput_per_minute']:.1f} per min")
    if record["status"] != "finished":
        parts.append(f"ETA {_format_seconds(record['eta_seconds'])}")
    else:
        parts.append(f"took {_format_seconds(record['elapsed_seconds'])}")
    return " &middot; ".join(parts)


def _header_html(record: dict[str, Any]) -> str:
    link = record.get("dashboard_link")
    dashboard = f' &middot; <a href="{escape(link)}" target="_blank">Dask dashboard</a>' if link else ""
    return (
        f"<b>Job {escape(record['job_id'])}</b> ({escape(record['kind'])}) &middot; "
        f"<span class='job-status'>{escape(record['status'])}</span>{dashboard}"
    )


def _errors_html(record: dict[str, Any]) -> str:
    if not record["errors"]:
        return ""
    rows = "".join(
        f"<tr><td>{escape(error['item'])}</td><td><code>{escape(error['error_type'])}</code></td>"
        f"<td>{escape(error['error'])}</td></tr>"
        for error in record["errors"]
    )
    return f"<table><thead><tr><th>item</th><th>error</th><th>message</th></tr></thead><tbody>{rows}</tbody></table>"


class FollowedRecord(ipywidgets.VBox):
    """A display of a job record that refreshes itself in a background thread until the job ends.

    Subclasses draw the record in :meth:`refresh` and call :meth:`_start_following` at the
    end of their constructor; :class:`JobProgress` and
    :class:`~widgets.training_progress.TrainingProgress` are two.
    """

    source: JobSource
    poll: float
    record: dict[str, Any]

    def refresh(self) -> dict[str, Any]:
        """Read the job record once and show it; return the record."""
        raise NotImplementedError

    def _start_following(self, follow: bool, name: str) -> None:
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.record = self.refresh()
        if follow and self.record.get("status") != "finished":
            self._thread = threading.Thread(target=self._follow, name=name, daemon=True)
            self._thread.start()

    def _follow(self) -> None:
        while not self._stop.wait(self.poll):
            try:
                record = self.refresh()
            except OSError:  # a store hiccup while following another process: try again
                continue
            if record.get("status") == "finished":
                return

    @property
    def following(self) -> bool:
        """Whether the background thread still refreshes the display."""
        return self._thread is not None and self._thread.is_alive()

    def stop(self) -> None:
        """Stop refreshing (the display keeps its last state)."""
        self._stop.set()

    def join(self, timeout: float | None = None) -> None:
        """Wait until the refresh thread has shown the job's end (or ``timeout`` passes)."""
        if self._thread is not None:
            self._thread.join(timeout)


class JobProgress(FollowedRecord):
    """Live progress of a job: bar, counts, throughput, ETA, dashboard link, errors.

    Parameters
    ----------
    source : Job or JobView
        What to follow; anything with ``snapshot() -> dict`` (a job record).
    poll : float
        Seconds between refreshes.
    follow : bool
        Start the background refresh thread now; if False, call :meth:`refresh` yourself.
    """

    def __init__(self, source: JobSource, *, poll: float = 0.5, follow: bool = True) -> None:
        self.source = source
        self.poll = poll
        self.header = ipywidgets.HTML()
        self.bar = ipywidgets.IntProgress(min=0, max=1, value=0, layout=ipywidgets.Layout(width="100%"))
        self.counts = ipywidgets.HTML()
        self.errors = ipywidgets.HTML()
        super().__init__([self.header, self.bar, self.counts, self.errors])
        self._start_following(follow, "job-progress")

    def refresh(self) -> dict[str, Any]:
        """Read the job record once and show it; return the record."""
        record = self.source.snapshot()
        counts = record["counts"]
        self.bar.max = max(counts["total"], 1)
        self.bar.value = counts["done"] + counts["failed"] + counts["skipped"]
        if record["status"] == "finished":
            self.bar.bar_style = "warning" if counts["failed"] else "success"
        self.header.value = _header_html(record)
        self.counts.value = _counts_html(record)
        self.errors.value = _errors_html(record)
        self.record = record
        return record
