"""JobMonitor: job records from the store, and a batch on the studies without a result."""

from __future__ import annotations

import time
from collections import Counter

from imaging_lib.ingestion.batch import ingest
from imaging_lib.jobs.batch import model_identity
from imaging_lib.models import DEMO_MODEL_URI
from imaging_lib.sample_data import pydicom_file
from imaging_lib.store import layout
from imaging_lib.store.catalog import Catalog
from imaging_lib.store.objects import Store
from support.demo_store import TEST_PARAMS
from widgets.job_monitor import JobMonitor, job_rows, studies_without_result


def test_without_a_result_means_no_result_of_this_model_id_and_checksum_and_no_batch_on_it(tmp_path):
    store = Store(tmp_path / "store")
    for uid in "abcde":
        store.write_json(layout.study_record_key(uid), {"study_uid": uid, "series": []})
    for uid, model_id, sha in (("a", "m", "11"), ("d", "m", "22"), ("e", "other", "11")):
        store.write_json(
            layout.result_record_key(uid, model_id), {"study_uid": uid, "model_id": model_id, "model_checksum": sha}
        )
    store.write_json(
        layout.job_record_key("batch-1"),
        {"job_id": "batch-1", "kind": "batch", "items": {"b": {"state": "running"}, "c": {"state": "failed"}}},
    )
    catalog = Catalog(store)
    # a: has it; b: a batch works on it; d: the same name retrained (another checksum); e: another model
    assert studies_without_result(catalog, "m", "11") == ["c", "d", "e"]
    assert studies_without_result(Catalog(Store(tmp_path / "empty")), "m", "11") == []


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


def test_a_model_that_cannot_be_loaded_disables_the_button_and_says_why(demo_store, tmp_path):
    monitor = JobMonitor(demo_store, model_uri=str(tmp_path / "no_such_model.json"))
    assert monitor.run_button.disabled and monitor.run_button.description == "The model cannot be loaded"
    assert "no_such_model.json" in monitor.run_button.tooltip
    assert len(monitor.table.rows) >= 1  # the jobs are still listed


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


def test_while_a_job_runs_a_refresh_reads_only_the_records_that_changed(tmp_path, local_dask_client, monkeypatch):
    store = Store(tmp_path / "store")
    ingest([pydicom_file("CT_small.dcm"), pydicom_file("MR_small.dcm")], store, progress=False)
    monitor = JobMonitor(store, client=local_dask_client, params=TEST_PARAMS, poll=0.1)
    reads: Counter[str] = Counter()
    writes: Counter[str] = Counter()
    refreshes: list[float] = []
    read_many, write_bytes, refresh = store.read_many, store.write_bytes, monitor.refresh

    def counting_read_many(keys, **kwargs):
        keys = list(keys)
        reads.update(keys)
        return read_many(keys, **kwargs)

    def counting_write_bytes(key, data):
        writes[key] += 1
        return write_bytes(key, data)

    def counting_refresh():
        refreshes.append(time.monotonic())
        return refresh()

    monkeypatch.setattr(store, "read_many", counting_read_many)  # this process's store only: workers get a copy
    monkeypatch.setattr(store, "write_bytes", counting_write_bytes)
    monkeypatch.setattr(monitor, "refresh", counting_refresh)

    job = monitor.start_batch().wait(180)
    deadline = time.monotonic() + 30
    while monitor.table.rows[0]["status"] != "finished" and time.monotonic() < deadline:
        time.sleep(0.1)
    monitor.stop()
    assert job.counts["done"] == 2 and monitor.table.rows[0]["status"] == "finished"
    assert len(refreshes) >= 5, refreshes  # the monitor refreshed all along the job

    job_key = layout.job_record_key(job.job_id)
    result_keys = set(Catalog(Store(store.url)).results()["record_key"])  # read without counting
    assert len(result_keys) == 2
    # each result is read once though every refresh asks which studies have one; the job record
    # only when it was rewritten; study records never (the listing says which studies there are)
    assert all(reads[key] == 1 for key in result_keys), reads
    assert 1 <= reads[job_key] <= writes[job_key] and reads[job_key] < len(refreshes)
    assert not [key for key in reads if key.startswith(layout.STUDY_RECORDS)]
    reads.clear()
    monitor.refresh()
    assert not reads  # nothing changed: nothing read
    assert monitor.missing == [] and monitor.run_button.disabled
    assert monitor.launcher.model_identity() == model_identity(DEMO_MODEL_URI)
