"""Training as a Dask job, on a real LocalCluster and on real ``dask scheduler``/``dask worker`` processes.

A sweep's trials run in parallel and report every epoch into the job record while they
run; a trial whose worker is SIGKILLed resumes from its checkpoint on another worker and
ends with the right epochs, once, and one model; trials ask for a GPU where workers have
one; bad training sets and a NaN loss end as clear errors in the job record, with the
registry untouched; a job is cancelled from another process.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import cloudpickle
import pytest

from imaging_lib.errors import PermissionDenied
from imaging_lib.identity import identity_for
from imaging_lib.jobs import JobView, run_training
from imaging_lib.jobs.training import gpu_resources
from imaging_lib.models import register_builder
from imaging_lib.models.registry import default_model, ensure_default_model, read_model_record, registered_models
from imaging_lib.store import layout
from imaging_lib.store.objects import Store
from imaging_lib.training import TrainingParams, grid
from support.dask_cluster import DASK, wait_for_restart
from support.training_store import SLOW_PARAMS, TEST_PARAMS, build_training_store

cloudpickle.register_pickle_by_value(sys.modules[__name__])


@pytest.fixture
def store(tmp_path):
    store = Store(tmp_path / "store")
    build_training_store(store)
    return store


def _epochs(record: dict) -> dict[str, list[int]]:
    return {trial: [e["epoch"] for e in entry["epochs"]] for trial, entry in record["metrics"]["trials"].items()}


def test_a_sweep_runs_its_trials_in_parallel_with_live_metrics(local_dask_client, store):
    epochs = 12  # a few seconds: the record (rewritten at most every 0.5 s) is caught between epochs
    trials = grid(TrainingParams.from_mapping({**SLOW_PARAMS, "epochs": epochs}), {"learning_rate": [0.003, 0.01]})
    job = run_training(store, trials, client=local_dask_client)
    view = JobView(store, job.job_id)
    partial, both_running = False, False
    while not job.finished:
        record = view.snapshot()
        counts = [len(epochs) for epochs in _epochs(record).values()]
        partial |= any(0 < n < epochs for n in counts)
        both_running |= [e["status"] for e in record["metrics"]["trials"].values()].count("running") == 2
        time.sleep(0.1)
    record = view.snapshot()
    assert partial, "the job record never showed a trial between its first and last epoch"
    assert both_running, "the two trials never ran at the same time"
    assert record["status"] == "finished" and record["counts"]["done"] == 2 and record["errors"] == []
    assert _epochs(record) == {"trial-00": list(range(1, epochs + 1)), "trial-01": list(range(1, epochs + 1))}
    assert len({item["worker"] for item in record["items"].values()}) == 2
    models = {entry["model_id"] for entry in record["metrics"]["trials"].values()}
    assert models == set(registered_models(store)) and len(models) == 2
    assert record["metrics"]["best_trial"] in ("trial-00", "trial-01")
    assert [e["parameters"]["learning_rate"] for e in record["metrics"]["trials"].values()] == [0.003, 0.01]


def test_training_on_scheduler_and_worker_processes(dask_process_cluster, store):
    rosa = identity_for("rosa", ["researcher"])  # the workers run as another account: the name travels
    with dask_process_cluster.client() as client:
        job = run_training(store, {**TEST_PARAMS, "epochs": 3}, client=client, identity=rosa).wait(300)
    record = JobView(store, job.job_id).snapshot()
    assert record["counts"]["done"] == 1 and _epochs(record) == {"trial-00": [1, 2, 3]}
    assert record["scheduler"] == dask_process_cluster.scheduler_address
    (model_id,) = registered_models(store)
    assert record["metrics"]["trials"]["trial-00"]["model_id"] == model_id
    assert record["provenance"]["created_by"] == "rosa"
    assert read_model_record(store, model_id)["provenance"]["created_by"] == "rosa"


def test_a_trial_resumes_after_its_worker_is_killed(dask_process_cluster, store):
    epochs = 20
    metrics_key = layout.trial_metrics_key
    with dask_process_cluster.client() as client:
        before = dask_process_cluster.worker_pids(client)
        job = run_training(store, {**SLOW_PARAMS, "epochs": epochs}, client=client)
        key = metrics_key(job.job_id, "trial-00")
        while not store.exists(key) or len(store.read_json(key)["epochs"]) < 3:
            assert not job.finished
            time.sleep(0.05)
        busy = [address for address, keys in client.processing().items() if keys]
        victim = before[busy[0]]
        os.kill(victim, signal.SIGKILL)  # the worker process, not its nanny
        job.wait(600)
        after = wait_for_restart(client, len(before), victim)

    metrics = store.read_json(key)
    assert metrics["status"] == "finished"
    assert [e["epoch"] for e in metrics["epochs"]] == list(range(1, epochs + 1))
    assert len(metrics["resumed_from"]) == 1 and metrics["resumed_from"][0] >= 3
    record = JobView(store, job.job_id).snapshot()
    assert record["counts"]["done"] == 1 and record["errors"] == []
    assert _epochs(record) == {"trial-00": list(range(1, epochs + 1))}
    assert list(registered_models(store)) == [metrics["model_id"]]  # one model, no duplicate record
    checkpoints = [k for k in store.list(layout.trial_prefix(job.job_id, "trial-00")) if "checkpoint" in k]
    assert checkpoints == [layout.checkpoint_key(job.job_id, "trial-00", epochs)]
    assert victim not in after.values()


def test_trials_ask_for_a_gpu_when_a_worker_declares_one(store):
    from distributed import Client, LocalCluster

    with (
        LocalCluster(n_workers=0, host="127.0.0.1", dashboard_address="127.0.0.1:0") as cluster,
        Client(cluster, set_as_default=False) as client,
    ):
        workers = [
            subprocess.Popen(
                [str(DASK), "worker", cluster.scheduler_address, "--nthreads", "1", "--no-dashboard", *extra],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for extra in (["--name", "gpu", "--resources", "GPU=1"], ["--name", "cpu"])
        ]
        try:
            client.wait_for_workers(2, timeout=120)
            (gpu_worker,) = [a for a, w in client.scheduler_info()["workers"].items() if w["resources"]]
            assert gpu_resources(client) == {"GPU": 1}
            trials = grid(TrainingParams.from_mapping({**TEST_PARAMS, "epochs": 2}), {"seed": [0, 1]})
            job = run_training(store, trials, client=client).wait(300)
        finally:
            for worker in workers:
                worker.send_signal(signal.SIGTERM)
            for worker in workers:
                worker.wait(30)
    record = JobView(store, job.job_id).snapshot()
    assert record["counts"]["done"] == 2
    assert {item["worker"] for item in record["items"].values()} == {gpu_worker}  # never the idle CPU worker


def test_no_gpu_is_asked_for_on_cpu_workers(local_dask_client):
    assert gpu_resources(local_dask_client) is None


def nan_builder():
    """A builder of modules whose logits are NaN, as a local function: Dask ships it by value to the workers."""

    def nan_net(num_classes: int = 2):
        import torch
        from torch import nn

        class NanModule(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.scale = nn.Parameter(torch.ones(1))

            def forward(self, x):
                return (x.mean(dim=(1, 2, 3)) * self.scale)[:, None].expand(-1, num_classes) * float("nan")

        return NanModule()

    return nan_net


def _break(store: Store, how: str) -> dict:
    """Spoil the training set ``how``; return extra training parameters."""
    from imaging_lib.store.catalog import Catalog

    entries = Catalog(store).training_set()["entries"]
    if how == "empty":
        for key in store.list(layout.LABEL_RECORDS):
            store.delete(key)
    elif how == "single class":
        for entry in entries:
            if entry["study_label"] == "lesion":
                store.delete(layout.label_record_key(entry["study_uid"], entry["version"]))
    elif how == "missing study":
        store.delete(layout.study_record_key(entries[0]["study_uid"]))
    elif how == "nan loss":
        return {"architecture": "nan_net_for_job_tests", "architecture_params": {"num_classes": 2}}
    return {}


@pytest.mark.parametrize(
    ("how", "error_type", "message"),
    [
        ("empty", "InvalidTrainingSet", "no accepted labels"),
        ("single class", "InvalidTrainingSet", "one class only"),
        ("missing study", "InvalidTrainingSet", "study record is missing"),
        ("nan loss", "TrainingDiverged", "the loss became nan"),
    ],
)
def test_bad_input_ends_in_a_clear_error_and_the_registry_is_untouched(
    local_dask_client, store, how, error_type, message
):
    if how == "nan loss":  # in this process too: run_training checks the name before submitting
        local_dask_client.run(register_builder, "nan_net_for_job_tests", nan_builder())
        register_builder("nan_net_for_job_tests", nan_builder())
    ensure_default_model(store)
    before = {key: store.read_bytes(key) for key in store.list("models/") + store.list(layout.MODEL_RECORDS)}
    default = default_model(store)
    extra = _break(store, how)
    job = run_training(store, {**TEST_PARAMS, **extra}, client=local_dask_client).wait(120)
    record = JobView(store, job.job_id).snapshot()
    assert record["counts"]["failed"] == 1
    (error,) = record["errors"]
    assert error["error_type"] == error_type and message in error["error"], error
    trial = record["metrics"]["trials"]["trial-00"]
    assert trial["status"] == "failed" and trial["error"]["error_type"] == error_type
    after = {key: store.read_bytes(key) for key in store.list("models/") + store.list(layout.MODEL_RECORDS)}
    assert after == before and default_model(store) == default
    assert default.load().model_id == default.model_id


def test_a_job_is_cancelled_from_another_process(local_dask_client, store):
    job = run_training(store, {**SLOW_PARAMS, "epochs": 40}, client=local_dask_client)
    key = layout.trial_metrics_key(job.job_id, "trial-00")
    while not store.exists(key) or not store.read_json(key)["epochs"]:
        time.sleep(0.05)
    code = (
        "import sys; from imaging_lib.jobs import cancel_training; from imaging_lib.store import Store; "
        "cancel_training(Store(sys.argv[1]), sys.argv[2], reason='enough')"
    )
    subprocess.run(
        [sys.executable, "-c", code, store.url, job.job_id],
        check=True,
        env={**os.environ, "IMAGING_USER": "ada"},
        timeout=120,
    )
    job.wait(120)
    trial = JobView(store, job.job_id).snapshot()["metrics"]["trials"]["trial-00"]
    assert trial["status"] == "cancelled" and trial["stopped"] == "cancelled by ada: enough"
    assert 1 <= len(trial["epochs"]) < 40 and trial["model_id"] is None
    assert registered_models(store) == {}


def test_an_unknown_architecture_is_refused_before_anything_is_submitted(local_dask_client, store):
    from imaging_lib.errors import InvalidModelSpec
    from imaging_lib.store.catalog import Catalog

    with pytest.raises(InvalidModelSpec, match="unknown architecture 'os.system'"):
        run_training(store, {**TEST_PARAMS, "architecture": "os.system"}, client=local_dask_client)
    with pytest.raises(
        PermissionDenied, match="user vera: may not train models: that needs the role researcher or admin"
    ):
        run_training(
            store, TEST_PARAMS, client=local_dask_client, identity=identity_for("vera", ["viewer", "reviewer"])
        )
    assert Catalog(store).jobs().empty
