"""Following a job: counts, rates and errors from its items, its record read back, the command line's bar."""

from __future__ import annotations

import io
import sys

import cloudpickle
import pytest

from imaging_lib.errors import MissingRecord
from imaging_lib.jobs import run_tasks
from imaging_lib.jobs.progress import (
    ITEM_STATES,
    JobView,
    count_states,
    eta_seconds,
    follow_with_progress_bar,
    item_errors,
    throughput_per_minute,
)
from imaging_lib.store import layout, records
from imaging_lib.store.objects import Store

cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import test modules by name

ITEMS = {
    "a": {"state": "done", "seconds": 1.0},
    "b": {"state": "failed", "error_type": "UnreadableImage", "error": "a.nii: not NIfTI"},
    "c": {"state": "running"},
    "d": {"state": "pending"},
    "e": {"state": "pending"},
    "f": {"state": "skipped"},
}


def test_counts_errors_throughput_and_eta_come_from_the_items():
    counts = count_states(ITEMS)
    assert counts == {"pending": 2, "running": 1, "done": 1, "failed": 1, "skipped": 1, "total": 6}
    assert list(counts)[: len(ITEM_STATES)] == list(ITEM_STATES)
    assert item_errors(ITEMS) == {"b": {"error_type": "UnreadableImage", "error": "a.nii: not NIfTI"}}
    assert throughput_per_minute(counts, 30.0) == pytest.approx(4.0)  # 2 ended (skipped do not count) in 30 s
    assert eta_seconds(counts, 30.0) == pytest.approx(45.0)  # 3 left at 4 a minute
    assert throughput_per_minute(counts, 0.0) == 0.0
    assert eta_seconds(count_states({"x": {"state": "pending"}}), 10.0) is None  # nothing ended yet
    assert eta_seconds(count_states({"x": {"state": "skipped"}}), 10.0) == 0.0


def test_a_job_view_reads_the_record_written_by_the_job(tmp_path):
    store = Store(tmp_path / "store")
    view = JobView(store, "batch-1")
    with pytest.raises(MissingRecord):
        view.snapshot()
    state = {"status": "running", "counts": count_states(ITEMS), "items": ITEMS}
    for status in ("running", "finished"):
        record = records.job_record(
            "batch-1", "batch", state={**state, "status": status}, parameters={}, created_at=records.now()
        )
        store.write_json(layout.job_record_key("batch-1"), record)
        assert view.snapshot()["counts"]["pending"] == 2
        assert view.finished == (status == "finished")


def echo(item: str) -> dict:
    return {"item": item}


def test_the_progress_bar_follows_a_job_to_its_end(local_dask_client, tmp_path):
    store = Store(tmp_path / "store")
    job = run_tasks("test", ["a", "b", "c"], echo, store, client=local_dask_client, skipped=["c"])
    drawn = io.StringIO()
    assert follow_with_progress_bar(job, file=drawn, poll=0.05) is job
    assert job.finished and job.counts["done"] == 2
    bar = drawn.getvalue()
    assert job.job_id in bar and "3/3" in bar and "study" in bar
    assert "\r" not in bar and bar.count("\n") == 1  # not a terminal: one line, not a redraw per poll
