"""JobMonitor: the job monitor of the dashboards.

Running and past jobs come from the job records in the store (any process may have
started them: ``imaging-lab run``, a notebook, another dashboard); the table refreshes
itself while a job runs. Selecting a job follows it live with
:class:`~widgets.job_progress.JobProgress` (counts, throughput, ETA, per-study errors,
Dask dashboard link). A button starts a batch on the studies that have no result yet.

No Dask client is made until that button is pressed: a visitor who only watches costs
no cluster. The batch runs on the cluster of the Dask profile
(:mod:`imaging_lib.jobs.cluster`: a local cluster of this kernel, ``$IMAGING_DASK_SCHEDULER``,
or the user's Dask Gateway cluster); an admin may switch it
(:class:`~widgets.cluster_selector.ClusterSelector`). A cluster that cannot be had (the
gateway is down, the sign-in expired) is said in words under the button.

"Without a result" means without a result of the model the button would run, the same
model id *and* checksum (:meth:`imaging_lib.store.catalog.Catalog.studies_with_result`),
and not being worked on by a batch. The monitor keeps one :class:`Catalog`, so a refresh
re-reads only the records that changed since the last one; batches start through
:class:`~widgets.batch_launcher.BatchLauncher`, as the upload panel's do.

The button needs the ``run_batch`` permission (:mod:`imaging_lib.identity`): hidden
otherwise, and refused on the kernel side.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

import ipywidgets
import pandas as pd

from imaging_lib.errors import ImagingError
from imaging_lib.identity import require
from imaging_lib.store.catalog import Catalog

from .access import gate
from .batch_launcher import BatchLauncher
from .cluster_selector import ClusterSelector
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


def studies_without_result(catalog: Catalog, model_id: str, model_checksum: str) -> list[str]:
    """Study UIDs without a result of this model (id *and* checksum) that no batch is working on, sorted.

    Parameters
    ----------
    catalog : imaging_lib.store.catalog.Catalog
        The store's catalog (kept between calls: it re-reads only what changed).
    model_id, model_checksum : str
        The model's identity (:func:`imaging_lib.jobs.batch.model_identity`).

    Returns
    -------
    list of str
    """
    done = catalog.studies_with_result(model_id, model_checksum)
    busy = {uid for uid, state in catalog.job_status_by_study().items() if state in ("pending", "running")}
    return sorted(set(catalog.study_uids()) - done - busy)


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
        self.launcher = BatchLauncher(store, model_uri=model_uri, client=client, params=params)
        self.poll = poll
        self.job: Any = None
        self.progress: Any = None
        self.missing: list[str] = []
        self.table = RecordTable(
            JOB_COLUMNS, key="job_id", sort_by="created_at", ascending=False, empty_message="No jobs yet."
        )
        self.run_button = gate(
            ipywidgets.Button(icon="play", button_style="primary", layout=ipywidgets.Layout(width="auto")), "run_batch"
        )
        self.refresh_button = ipywidgets.Button(description="Refresh", icon="refresh")
        self.cluster = ClusterSelector()
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
        """Re-read what changed in the store's jobs, studies and results; keep following running jobs.

        Returns
        -------
        pandas.DataFrame
            The job table's rows.
        """
        jobs = self.catalog.jobs()
        rows = job_rows(jobs)
        self.table.set_records(rows)
        try:
            identity = self.launcher.model_identity()
        except ImagingError as exc:  # the page still lists the jobs; the button says why it cannot run
            self.missing = []
            self.run_button.description = "The model cannot be loaded"
            self.run_button.tooltip = str(exc)
        else:
            self.missing = studies_without_result(self.catalog, *identity)
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

        if self.progress is not None and self.progress.record["job_id"] == job_id:
            return self.progress
        if self.progress is not None:
            self.progress.stop()
        source = self.job if self.job is not None and self.job.job_id == job_id else JobView(self.store, job_id)
        self.progress = JobProgress(source)
        self.progress_area.children = [self.progress]
        return self.progress

    def start_batch(self) -> Any:
        """Start a batch on the studies without a result, select it, follow it.

        Returns
        -------
        imaging_lib.jobs.Job or None
            The job, or None when every study has a result or no cluster could be had.

        Raises
        ------
        imaging_lib.errors.PermissionDenied
            If the user may not run batches.
        """
        require("run_batch")
        self.refresh()
        if not self.missing:
            return None
        self.run_button.disabled = True
        if self.progress is not None:
            self.progress.stop()
        self.job = self.launcher.start(self.missing, self.progress_area)
        self.progress = self.launcher.progress
        if self.job is None:  # no cluster to be had: the reason is shown
            self.run_button.disabled = False
            return None
        self.refresh()
        self.table.selected = self.job.job_id
        return self.job
