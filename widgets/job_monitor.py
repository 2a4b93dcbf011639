"""JobMonitor: the job monitor of the dashboards.

Running and past jobs come from the job records in the store (any process may have
started them: ``imaging-lab run``, a notebook, another dashboard); the table refreshes
itself while a job runs. Selecting a job follows it live with
:class:`~widgets.job_progress.JobProgress` (counts, throughput, ETA, per-study errors,
Dask dashboard link). A button starts a batch on the studies that have no result yet.

No Dask client is made until that button is pressed: a visitor who only watches costs
no cluster. The batch runs on ``$IMAGING_DASK_SCHEDULER`` when set (the cluster of
``make demo`` or a real one), else on a local cluster of this kernel.
"""

from __future__ import annotations

import html
import threading
from collections.abc import Iterable, Mapping
from typing import Any

import ipywidgets
import pandas as pd

from imaging_lib import settings
from imaging_lib.store.catalog import Catalog, job_status_by_study

from .record_table import RecordTable

__all__ = ["JOB_COLUMNS", "JobMonitor", "job_rows", "studies_without_result"]

JOB_COLUMNS = (
    {"name": "created_at", "label": "Started"},
    {"name": "job_id", "label": "Job"},
    {"name": "kind", "label": "Kind"},
    {"name": "status", "label": "Status"},
    {"name": "progress", "label": "Ended / total"},
    {"name": "failed", "label": "Failed"},
    {"name": "throughput_per_minute", "label": "Per minute", "format": "number"},
)


def job_rows(jobs: pd.DataFrame) -> pd.DataFrame:
    """The job table's rows from job records (``Catalog.jobs()``), newest first.

    Parameters
    ----------
    jobs : pandas.DataFrame
        ``Catalog.jobs()``: ``job_id``, ``kind``, ``status``, ``created_at``,
        ``throughput_per_minute`` and ``counts.<state>`` columns.

    Returns
    -------
    pandas.DataFrame
        The :data:`JOB_COLUMNS`.
    """
    columns = [column["name"] for column in JOB_COLUMNS]
    if jobs.empty:
        return pd.DataFrame(columns=columns)

    def count(state: str) -> pd.Series:
        column = f"counts.{state}"
        return jobs[column].fillna(0).astype(int) if column in jobs else pd.Series(0, index=jobs.index)

    rows = jobs.reindex(columns=columns).copy()
    ended = count("done") + count("failed") + count("skipped")
    rows["progress"] = [f"{e} / {t}" for e, t in zip(ended, count("total"), strict=True)]
    rows["failed"] = count("failed")
    rows["created_at"] = pd.to_datetime(rows["created_at"], utc=True).dt.strftime("%Y-%m-%d %H:%M:%S")
    return rows.sort_values("created_at", ascending=False, kind="stable").reset_index(drop=True)


def studies_without_result(
    studies: pd.DataFrame, results: pd.DataFrame, job_records: Iterable[Mapping[str, Any]]
) -> list[str]:
    """Study UIDs that no model has a result for and no batch is working on, sorted."""
    if studies.empty:
        return []
    done = set(results["study_uid"]) if not results.empty else set()
    busy = {uid for uid, state in job_status_by_study(job_records).items() if state in ("pending", "running")}
    return sorted(set(studies["study_uid"]) - done - busy)


class JobMonitor(ipywidgets.VBox):
    """Job table from the store, the selected job followed live, and a batch button.

    Parameters
    ----------
    store : imaging_lib.store.Store
    model_uri : str, optional
        Model of the batches started here; default the store's default model.
    client : distributed.Client, optional
        Where batches run; default :func:`imaging_lib.jobs.get_client`, made on the first batch.
    params : mapping, optional
        Pipeline parameters of the batches (see :data:`imaging_lib.jobs.batch.DEFAULT_PARAMS`).
    poll : float
        Seconds between refreshes of the table while a job runs.
    """

    def __init__(
        self,
        store: Any,
        *,
        model_uri: str | None = None,
        client: Any = None,
        params: Mapping[str, Any] | None = None,
        poll: float = 2.0,
    ) -> None:
        self.store = store
        self.catalog = Catalog(store)
        self.params = params
        self.model_uri = model_uri
        self._client = client
        self.poll = poll
        self.job: Any = None
        self.missing: list[str] = []
        self.table = RecordTable(
            JOB_COLUMNS, key="job_id", sort_by="created_at", ascending=False, empty_message="No jobs yet."
        )
        self.run_button = ipywidgets.Button(icon="play", button_style="primary", layout=ipywidgets.Layout(width="auto"))
        self.refresh_button = ipywidgets.Button(description="Refresh", icon="refresh")
        scheduler = settings.read(settings.DASK_SCHEDULER)
        where = f"the Dask scheduler {html.escape(scheduler)}" if scheduler else "a local Dask cluster started with it"
        self.cluster = ipywidgets.HTML(f"<p class='job-cluster'>A batch started here runs on {where}.</p>")
        self.progress_area = ipywidgets.VBox()
        super().__init__(
            [ipywidgets.HBox([self.run_button, self.refresh_button]), self.cluster, self.table, self.progress_area]
        )
        self.run_button.on_click(lambda _button: self.start_batch())
        self.refresh_button.on_click(lambda _button: self.refresh())
        self.table.observe(self._on_select, names="selected")
        self._stop = threading.Event()
        self._follower: threading.Thread | None = None
        self.refresh()

    def refresh(self) -> pd.DataFrame:
        """Re-read jobs, studies and results from the store; keep following running jobs.

        Returns
        -------
        pandas.DataFrame
            The job table's rows.
        """
        jobs = self.catalog.jobs()
        rows = job_rows(jobs)
        self.table.set_records(rows)
        self.missing = studies_without_result(
            self.catalog.studies(), self.catalog.results(), self.catalog.job_records("batch")
        )
        self.run_button.description = (
            f"Analyse {len(self.missing)} stud{'y' if len(self.missing) == 1 else 'ies'} without a result"
        )
        self.run_button.disabled = not self.missing
        if (rows["status"] == "running").any():
            self._follow_running()
        return rows

    def _follow_running(self) -> None:
        if self._follower is not None and self._follower.is_alive():
            return
        self._follower = threading.Thread(target=self._refresh_while_running, name="job-monitor", daemon=True)
        self._follower.start()

    def _refresh_while_running(self) -> None:
        while not self._stop.wait(self.poll):
            try:
                rows = self.refresh()
            except OSError:  # a store hiccup: try again at the next tick
                continue
            if not (rows["status"] == "running").any():
                return

    def stop(self) -> None:
        """Stop refreshing the table in the background."""
        self._stop.set()

    def _on_select(self, change: Mapping[str, Any]) -> None:
        if change["new"]:
            self.show_job(change["new"])

    def show_job(self, job_id: str) -> Any:
        """Follow one job below the table (what selecting its row does)."""
        from imaging_lib.jobs import JobView

        from .job_progress import JobProgress

        source = self.job if self.job is not None and self.job.job_id == job_id else JobView(self.store, job_id)
        progress = JobProgress(source)
        self.progress_area.children = [progress]
        return progress

    def start_batch(self) -> Any:
        """Start a batch on the studies without a result, select it, follow it.

        Returns
        -------
        imaging_lib.jobs.Job or None
            The job, or None when every study has a result.
        """
        from imaging_lib.jobs import run_batch

        self.refresh()
        if not self.missing:
            return None
        self.run_button.disabled = True
        self.progress_area.children = [ipywidgets.HTML("<i>Starting the batch…</i>")]
        self.job = run_batch(self.missing, self.store, self.model_uri, self._client, params=self.params)
        self.refresh()
        self.table.selected = self.job.job_id
        return self.job
