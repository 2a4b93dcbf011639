"""run_tasks and Job with generic tasks on real Dask clusters (LocalCluster and processes).

The batch pipeline itself (models, resume, dying workers) is tested in ``test_batch.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import cloudpickle
import pytest

from imaging_lib.errors import UnreadableImage
from imaging_lib.jobs import JobView, run_tasks
from imaging_lib.store import layout
from imaging_lib.store.objects import Store

# Test modules are imported by path (pytest importlib mode), so workers could not import
# them by name: ship this module's task functions by value.
cloudpickle.register_pickle_by_value(sys.modules[__name__])


def sleepy_task(item: str) -> dict:
    """Sleep a little and return where it ran; ``bad-*`` items raise a plain ValueError."""
    time.sleep(0.4)
    if item.startswith("bad"):
        raise ValueError(f"{item} is bad")
    return {"item": item, "pid": os.getpid()}


def counting_task(item: str, folder: str) -> dict:
    """Count attempts in ``folder``; fail per the item's name: transient once, always, or as bad input."""
    attempts = Path(folder, item)
    attempts.mkdir(parents=True, exist_ok=True)
    attempt = len(list(attempts.iterdir())) + 1
    (attempts / f"{attempt}-{os.getpid()}").touch()
    if item == "flaky" and attempt == 1:
        raise ConnectionError("store hiccup")
    if item == "always-timeout":
        raise TimeoutError("store keeps timing out")
    if item == "bad-input":
        raise UnreadableImage(f"volumes/{item}.nii.gz", "not a NIfTI file")
    return {"attempt": attempt}


def test_counts_results_errors_and_final_record(local_dask_client, tmp_path):
    store = Store(tmp_path / "store")
    items = [f"item-{index}" for index in range(7)] + ["bad-1"]
    job = run_tasks("test", items, sleepy_task, store, client=local_dask_client, skipped=["item-0"])

    running_seen = []
    while not job.finished:
        counts = job.counts
        running_seen.append(counts["running"])
        assert sum(counts[state] for state in ("pending", "running", "done", "failed", "skipped")) == 8
        time.sleep(0.05)
    job.wait()

    # two single-threaded workers: never more than two items run at once, and some did run
    assert 0 < max(running_seen) <= 2
    assert job.counts == {"pending": 0, "running": 0, "done": 6, "failed": 1, "skipped": 1, "total": 8}
    assert job.errors == {"bad-1": {"error_type": "ValueError", "error": "bad-1 is bad"}}
    assert sorted(job.results) == [f"item-{index}" for index in range(1, 7)]
    assert len({summary["pid"] for summary in job.results.values()}) == 2  # both workers worked
    assert job.throughput_per_minute > 0 and job.eta_seconds == 0.0

    record = store.read_json(layout.job_record_key(job.job_id))
    assert record["status"] == "finished" and record["finished_at"]
    assert record["counts"] == job.counts
    assert record["errors"] == [{"item": "bad-1", "error_type": "ValueError", "error": "bad-1 is bad"}]
    assert record["items"]["item-0"] == {"state": "skipped"}
    assert record["items"]["item-3"]["state"] == "done" and record["items"]["item-3"]["seconds"] >= 0.4
    assert record["dashboard_link"] == local_dask_client.dashboard_link
    assert record["dashboard_link"].startswith("http://127.0.0.1:")


def test_transient_errors_are_retried_and_input_errors_are_not(local_dask_client, tmp_path):
    import functools

    attempts = tmp_path / "attempts"
    task = functools.partial(counting_task, folder=str(attempts))
    items = ["fine", "flaky", "always-timeout", "bad-input"]
    job = run_tasks("test", items, task, Store(tmp_path / "store"), client=local_dask_client, retries=2).wait(120)

    tries = {item: len(list((attempts / item).iterdir())) for item in items}
    assert tries == {"fine": 1, "flaky": 2, "always-timeout": 3, "bad-input": 1}
    assert job.results["flaky"] == {"attempt": 2}
    assert job.errors == {
        "always-timeout": {"error_type": "TimeoutError", "error": "store keeps timing out"},
        "bad-input": {"error_type": "UnreadableImage", "error": "volumes/bad-input.nii.gz: not a NIfTI file"},
    }


def test_all_items_skipped_finishes_at_once(local_dask_client, tmp_path):
    store = Store(tmp_path / "store")
    job = run_tasks("test", ["a", "b"], sleepy_task, store, client=local_dask_client, skipped=["a", "b"]).wait(30)
    assert job.counts["skipped"] == 2 and job.counts["done"] == 0
    assert JobView(store, job.job_id).finished


def test_duplicate_items_are_refused(local_dask_client, tmp_path):
    with pytest.raises(ValueError, match="unique"):
        run_tasks("test", ["a", "a"], sleepy_task, Store(tmp_path / "store"), client=local_dask_client)


READ_RECORD = """
import json, sys, time
from imaging_lib.jobs import JobView
from imaging_lib.store.objects import Store
view = JobView(Store(sys.argv[1]), sys.argv[2])
record = view.snapshot()
while record["status"] == "running" and record["counts"]["done"] < int(sys.argv[3]):
    time.sleep(0.05)
    record = view.snapshot()
print(json.dumps(record))
"""


def read_record_in_another_process(store: Store, job_id: str, min_done: int = 0) -> dict:
    """Read a job record through :class:`JobView` in a fresh Python process.

    The reader polls until the record shows ``min_done`` items done or the job finished.
    """
    done = subprocess.run(
        [sys.executable, "-c", READ_RECORD, store.url, job_id, str(min_done)],
        capture_output=True, text=True, check=True, timeout=120,
    )  # fmt: skip
    return json.loads(done.stdout)


@pytest.mark.slow
def test_record_is_followed_from_another_process_on_a_process_cluster(dask_process_cluster, tmp_path):
    store = Store(tmp_path / "store")
    with dask_process_cluster.client() as client:
        items = [f"item-{index}" for index in range(16)]
        workers = set(client.scheduler_info()["workers"])
        job = run_tasks("test", items, sleepy_task, store, client=client)
        seen = read_record_in_another_process(store, job.job_id, min_done=2)
        job.wait(120)
    final = read_record_in_another_process(store, job.job_id)

    assert seen["status"] == "running" and seen["job_id"] == job.job_id
    assert seen["counts"]["total"] == 16
    assert 2 <= seen["counts"]["done"] < 16 and seen["counts"]["pending"] > 0
    assert seen["eta_seconds"] is None or seen["eta_seconds"] > 0
    assert seen["scheduler"] == dask_process_cluster.scheduler_address
    assert final["status"] == "finished"
    assert final["counts"]["done"] == 16 and final["counts"]["pending"] == 0
    assert {entry["worker"] for entry in final["items"].values()} == workers
