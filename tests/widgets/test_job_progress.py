"""Tests of the live JobProgress widget on real jobs running on a LocalCluster."""

from __future__ import annotations

import sys
import time

import cloudpickle

from imaging_lib.jobs import JobView, run_tasks
from imaging_lib.store.objects import Store
from widgets.job_progress import JobProgress

cloudpickle.register_pickle_by_value(sys.modules[__name__])


def slow_task(item: str) -> dict:
    """Take a moment; ``bad-*`` items fail with a ValueError."""
    time.sleep(0.5)
    if item.startswith("bad"):
        raise ValueError(f"{item} cannot be processed")
    return {"item": item}


def test_progress_follows_a_running_job_live(local_dask_client, tmp_path):
    store = Store(tmp_path / "store")
    items = [f"study-{index}" for index in range(6)] + ["bad-1"]
    job = run_tasks("batch", items, slow_task, store, client=local_dask_client, skipped=["study-0"])
    progress = JobProgress(job, poll=0.1)
    values: list[int] = []
    progress.bar.observe(lambda change: values.append(change["new"]), names="value")
    assert "running" in progress.header.value and progress.bar.max == 7 and progress.following

    job.wait(120)
    progress.join(30)

    # the bar moved while the job ran, never backwards, and ended full
    assert len(set(values)) >= 3 and values == sorted(values) and values[-1] == 7
    assert progress.bar.bar_style == "warning"  # finished with a failure
    assert "finished" in progress.header.value and job.job_id in progress.header.value
    assert f'href="{local_dask_client.dashboard_link}"' in progress.header.value
    assert "done <b>5</b>" in progress.counts.value and "failed <b>1</b>" in progress.counts.value
    assert "skipped <b>1</b>" in progress.counts.value
    assert "<td>bad-1</td>" in progress.errors.value and "<code>ValueError</code>" in progress.errors.value


def test_progress_of_a_job_record_written_by_another_process(local_dask_client, tmp_path):
    store = Store(tmp_path / "store")
    job = run_tasks("batch", ["a", "b", "c"], slow_task, store, client=local_dask_client).wait(120)
    progress = JobProgress(JobView(Store(store.url), job.job_id))

    assert progress.record == store.read_json(f"records/jobs/{job.job_id}.json")
    assert progress.bar.value == progress.bar.max == 3 and progress.bar.bar_style == "success"
    assert "done <b>3</b>" in progress.counts.value and progress.errors.value == ""
    assert not progress.following  # a finished job is not followed
