"""JobMonitor: job records from the store, and a batch on the studies without a result."""

from __future__ import annotations

import time

import pandas as pd

from imaging_lib.ingestion.batch import ingest
from imaging_lib.sample_data import pydicom_file
from imaging_lib.store.catalog import Catalog
from imaging_lib.store.objects import Store
from support.demo_store import TEST_PARAMS
from widgets.job_monitor import JobMonitor, job_rows, studies_without_result


def test_studies_without_result_leave_out_those_a_batch_is_working_on():
    studies = pd.DataFrame({"study_uid": ["a", "b", "c", "d"]})
    results = pd.DataFrame({"study_uid": ["a"]})
    running = [{"kind": "batch", "created_at": "1", "items": {"b": {"state": "running"}, "c": {"state": "failed"}}}]
    assert studies_without_result(studies, results, running) == ["c", "d"]
    assert studies_without_result(studies.iloc[:0], results, []) == []


def test_the_demo_batch_is_listed_as_finished(demo_store):
    rows = job_rows(Catalog(demo_store).jobs())
    batch = rows[rows["kind"] == "batch"].iloc[-1]
    assert batch["status"] == "finished"
    assert batch["progress"] == "7 / 7" and batch["failed"] == 0
    monitor = JobMonitor(demo_store)
    assert monitor.run_button.disabled and "Analyse 0 studies" in monitor.run_button.description
    monitor.table.selected = batch["job_id"]
    progress = monitor.progress_area.children[0]
    assert progress.record["job_id"] == batch["job_id"] and "finished" in progress.header.value


def test_the_button_runs_a_batch_on_the_studies_without_a_result(tmp_path, local_dask_client):
    store = Store(tmp_path / "store")
    ingest([pydicom_file("CT_small.dcm")], store, progress=False)
    monitor = JobMonitor(store, client=local_dask_client, params=TEST_PARAMS, poll=0.2)
    assert not monitor.run_button.disabled and "Analyse 1 study" in monitor.run_button.description
    monitor.run_button.click()
    job = monitor.job.wait(180)
    assert job.counts["done"] == 1
    deadline = time.monotonic() + 30
    while monitor.table.rows[0]["status"] != "finished" and time.monotonic() < deadline:
        time.sleep(0.2)  # the monitor's own thread refreshes the table
    assert monitor.table.rows[0]["status"] == "finished"
    assert monitor.run_button.disabled
    assert len(Catalog(store).results()) == 1
    monitor.stop()
