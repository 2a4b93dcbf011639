"""TrainingProgress: the trials' table and live curves, from a real training job's record."""

from __future__ import annotations

import time

import pytest

from imaging_lib.jobs import JobView, run_training
from imaging_lib.store.objects import Store
from imaging_lib.training import TrainingParams, grid
from support.training_store import SLOW_PARAMS, TEST_PARAMS, build_training_store
from widgets.training_progress import TrainingProgress, curves, trial_rows


@pytest.fixture
def store(tmp_path):
    store = Store(tmp_path / "store")
    build_training_store(store)
    return store


def test_the_plot_follows_a_running_job_to_its_end(local_dask_client, store):
    trials = grid(TrainingParams.from_mapping({**SLOW_PARAMS, "epochs": 10}), {"learning_rate": [0.003, 0.01]})
    job = run_training(store, trials, client=local_dask_client)
    progress = TrainingProgress(job, poll=0.1)
    seen = set()
    while progress.following:
        seen.add(tuple(len(line["x"]) for line in progress.auc_chart.series))
        time.sleep(0.05)
    progress.join(60)
    assert len(seen) > 2, f"the curves did not grow while the job ran: {seen}"
    assert [len(line["x"]) for line in progress.auc_chart.series] == [10, 10]
    assert [line["name"] for line in progress.loss_chart.series] == [
        "trial-00 train", "trial-00 validation", "trial-01 train", "trial-01 validation"
    ]  # fmt: skip
    assert progress.loss_chart.series[1]["dash"] and progress.auc_chart.y_max == 1.0


def test_rows_and_curves_come_from_the_job_record_in_another_process(local_dask_client, store):
    job = run_training(store, {**TEST_PARAMS, "epochs": 3}, client=local_dask_client).wait(120)
    record = JobView(store, job.job_id).snapshot()
    (row,) = trial_rows(record)
    entry = record["metrics"]["trials"]["trial-00"]
    assert row["status"] == "finished" and row["epoch"] == "3 / 3" and row["model_id"] == entry["model_id"]
    assert row["val_auc"] == entry["epochs"][-1]["val_auc"]
    (auc,) = curves(record, "val_auc")
    assert auc["x"] == [1, 2, 3] and auc["y"] == [e["val_auc"] for e in entry["epochs"]]
    progress = TrainingProgress(JobView(store, job.job_id))
    assert not progress.following and entry["model_id"] in progress.table.value
    assert "finished" in progress.header.value and progress.loss_chart.series == curves(record, "loss")


def test_a_failed_trial_shows_its_error():
    record = {
        "job_id": "training-x",
        "status": "finished",
        "errors": [{"item": "trial-00", "error_type": "InvalidTrainingSet", "error": "no accepted labels"}],
        "metrics": {"trials": {"trial-00": {"status": "failed", "epochs": [], "parameters": {"epochs": 5},
                                            "error": {"error_type": "InvalidTrainingSet", "error": "no <b>labels"}}}},
    }  # fmt: skip
    (row,) = trial_rows(record)
    assert row["note"] == "InvalidTrainingSet: no <b>labels" and row["epoch"] == "0 / 5"

    class Source:
        def snapshot(self):
            return record

    progress = TrainingProgress(Source(), follow=False)
    assert "no &lt;b&gt;labels" in progress.table.value and "no accepted labels" in progress.errors.value
