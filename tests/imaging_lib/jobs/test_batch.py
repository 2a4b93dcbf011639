"""Tests of the batch pipeline on the real sample studies, on a LocalCluster and on separate processes.

``process_study`` in process; ``run_batch`` with model loads counted per worker, resume,
a corrupt study, the ``imaging-lab run`` driver killed and restarted, and a worker killed
with SIGKILL (the nanny restarts it) in the middle of a 20-study batch.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from imaging_lib.errors import UnreadableImage
from imaging_lib.jobs import pipeline_params, process_study, run_batch
from imaging_lib.models import DEMO_MODEL_URI, load_counts, load_model
from imaging_lib.store import layout
from imaging_lib.store.catalog import Catalog
from imaging_lib.store.objects import Store
from support.dask_cluster import wait_for_restart
from support.studies import ingest_samples, make_cohort

# small LIME runs keep the batches quick; the same parameters give the same results
PARAMS = {"num_samples": 60, "segmentation": "slic", "batch_size": 10}


@pytest.fixture(scope="module")
def model():
    return load_model(DEMO_MODEL_URI)


@pytest.fixture(scope="module")
def reference(tmp_path_factory, model) -> dict[str, dict]:
    """Result records of a clean in-process run on each sample: ``{"brain"|"nifti": record}``."""
    store = Store(tmp_path_factory.mktemp("reference") / "store")
    records = {}
    for name, uid in ingest_samples(store).items():
        process_study(uid, store.url, DEMO_MODEL_URI, PARAMS, model_checksum=model.checksum)
        records[name] = store.read_json(layout.result_record_key(uid, model.model_id))
    return records


def assert_same_prediction(record: dict, expected: dict) -> None:
    """Same label, slice and probabilities as a clean run (up to float noise of thread counts)."""
    assert record["label"] == expected["label"]
    assert record["most_suspicious_slice"] == expected["most_suspicious_slice"]
    np.testing.assert_allclose(record["probability"], expected["probability"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(record["slice_probabilities"], expected["slice_probabilities"], rtol=1e-5, atol=1e-6)


def assert_one_complete_result_per_study(store: Store, uids: list[str], model, source_of, reference) -> None:
    """Exactly one result and one heat map per study, each whole, and no write left half done."""
    for uid in uids:
        assert store.list(f"{layout.RESULT_RECORDS}{uid}/") == [layout.result_record_key(uid, model.model_id)]
        assert store.list(f"explanations/{uid}/") == [layout.explanation_key(uid, model.model_id)]
        record = store.read_json(layout.result_record_key(uid, model.model_id))
        assert record["study_uid"] == uid and record["model_checksum"] == model.checksum
        assert_same_prediction(record, reference[source_of[uid]])
        heatmap = store.read_volume(record["explanation_key"])
        assert heatmap.shape == tuple(store.read_json(layout.study_record_key(uid))["shape"])
    leftovers = [path for path in Path(store.url).rglob("*") if path.name.startswith(".")]
    assert leftovers == []


def corrupt_volume(store: Store, uid: str) -> str:
    """Overwrite a stored study's volume with bytes that are not NIfTI; return its key."""
    key = store.read_json(layout.study_record_key(uid))["volume_key"]
    store.write_bytes(key, b"\x1f\x8b this is not a gzipped NIfTI volume")
    return key


# ------------------------------------------------------------------------- in process
def test_process_study_writes_result_and_heatmap_and_is_idempotent(tmp_path, model, reference):
    store = Store(tmp_path / "store")
    uid = ingest_samples(store)["brain"]
    summary = process_study(uid, store.url, DEMO_MODEL_URI, PARAMS, model_checksum=model.checksum)

    record = store.read_json(summary["result_key"])
    assert summary == {
        "study_uid": uid,
        "model_id": model.model_id,
        "label": record["label"],
        "probability": record["probability"],
        "most_suspicious_slice": record["most_suspicious_slice"],
        "result_key": layout.result_record_key(uid, model.model_id),
        "explanation_key": layout.explanation_key(uid, model.model_id),
    }
    assert record["model_checksum"] == model.checksum and record["provenance"]["parameters"] == pipeline_params(PARAMS)
    assert record["provenance"]["library_version"] and record["provenance"]["created_at"]
    assert record["patient_pseudonym"].startswith("ANON")
    assert len(record["slice_probabilities"]) == 20
    assert record["explanation"]["slice_index"] == record["most_suspicious_slice"]
    assert record["explanation"]["provenance"]["parameters"]["num_samples"] == PARAMS["num_samples"]
    assert record["explanation"]["weights"]
    rule = model.spec.decision_rule  # the study's score is the model's own aggregate of its slices
    assert record["probability"] == pytest.approx(rule.score(record["slice_probabilities"]))
    assert record["decision"] == rule.to_dict() and (record["label"] == "lesion") == rule.is_positive(
        record["probability"]
    )
    assert_same_prediction(record, reference["brain"])

    volume = store.read_volume(store.read_json(layout.study_record_key(uid))["volume_key"])
    heatmap = store.read_volume(summary["explanation_key"])
    assert heatmap.shape == volume.shape
    np.testing.assert_allclose(heatmap.affine, volume.affine)
    explained = record["most_suspicious_slice"]
    assert np.any(heatmap.array[:, :, explained] != 0)
    assert not np.any(np.delete(heatmap.array, explained, axis=2))

    results = Catalog(store).results()
    assert list(results["study_uid"]) == [uid] and results["label"].iloc[0] == record["label"]

    # a second run (a task Dask recomputes) overwrites the same two objects with the same content
    process_study(uid, store.url, DEMO_MODEL_URI, PARAMS, model_checksum=model.checksum)
    again = store.read_json(summary["result_key"])
    assert store.list(f"{layout.RESULT_RECORDS}{uid}/") == [summary["result_key"]]
    assert store.list(f"explanations/{uid}/") == [summary["explanation_key"]]
    assert again["slice_probabilities"] == record["slice_probabilities"]
    np.testing.assert_array_equal(store.read_volume(summary["explanation_key"]).array, heatmap.array)


def test_process_study_of_a_corrupt_volume_raises_a_typed_error(tmp_path, model):
    store = Store(tmp_path / "store")
    uid = ingest_samples(store)["nifti"]
    key = corrupt_volume(store, uid)
    with pytest.raises(UnreadableImage, match=key):
        process_study(uid, store.url, DEMO_MODEL_URI, PARAMS, model_checksum=model.checksum)
    assert store.list(layout.RESULT_RECORDS) == []


def test_unknown_parameters_are_refused_before_anything_runs(tmp_path):
    with pytest.raises(ValueError, match="num_sample"):
        run_batch([], Store(tmp_path / "store"), DEMO_MODEL_URI, params={"num_sample": 10})


# ------------------------------------------------------------------------- LocalCluster
def test_batch_on_local_cluster_loads_the_model_once_per_worker(local_dask_client, tmp_path, model, reference):
    store = Store(tmp_path / "store")
    uids, source_of = make_cohort(store, 6)
    job = run_batch("all", store, DEMO_MODEL_URI, local_dask_client, params=PARAMS).wait(300)

    assert job.counts == {"pending": 0, "running": 0, "done": 6, "failed": 0, "skipped": 0, "total": 6}
    assert_one_complete_result_per_study(store, uids, model, source_of, reference)
    # one load per worker process, not per task (6 tasks on 2 workers)
    loads = local_dask_client.run(load_counts)
    assert [counts.get(DEMO_MODEL_URI) for counts in loads.values()] == [1, 1]

    record = store.read_json(layout.job_record_key(job.job_id))
    assert record["status"] == "finished" and record["counts"] == job.counts
    started_with = record["provenance"]["parameters"]
    assert started_with["model_id"] == model.model_id and started_with["model_checksum"] == model.checksum
    assert started_with["pipeline"] == pipeline_params(PARAMS)
    assert {entry["worker"] for entry in record["items"].values()} == set(loads)
    assert job.results[uids[0]]["label"] == reference[source_of[uids[0]]]["label"]
    assert list(Catalog(store).jobs()["job_id"]) == [job.job_id]


def test_resume_skips_studies_with_a_result_of_the_same_model_and_checksum(local_dask_client, tmp_path, model):
    store = Store(tmp_path / "store")
    uids, _ = make_cohort(store, 4)
    run_batch(uids[:3], store, DEMO_MODEL_URI, local_dask_client, params=PARAMS).wait(300)
    first = {uid: store.read_json(layout.result_record_key(uid, model.model_id)) for uid in uids[:3]}

    # a result made with other weights (same id, another checksum) does not count as done
    stale = {**first[uids[0]], "model_checksum": "0" * 64}
    store.write_json(layout.result_record_key(uids[0], model.model_id), stale)
    job = run_batch("all", store, DEMO_MODEL_URI, local_dask_client, params=PARAMS).wait(300)

    assert job.counts["skipped"] == 2 and job.counts["done"] == 2
    assert sorted(job.results) == sorted([uids[0], uids[3]])
    for uid in uids[1:3]:  # untouched: not recomputed
        assert store.read_json(layout.result_record_key(uid, model.model_id)) == first[uid]
    assert store.read_json(layout.result_record_key(uids[0], model.model_id))["model_checksum"] == model.checksum

    forced = run_batch(uids[1:2], store, DEMO_MODEL_URI, local_dask_client, params=PARAMS, resume=False).wait(300)
    assert forced.counts["done"] == 1 and forced.counts["skipped"] == 0


def test_a_corrupt_study_fails_alone_with_its_typed_error(local_dask_client, tmp_path, model):
    store = Store(tmp_path / "store")
    uids, _ = make_cohort(store, 4)
    key = corrupt_volume(store, uids[1])
    job = run_batch(uids, store, DEMO_MODEL_URI, local_dask_client, retries=2, params=PARAMS).wait(300)

    assert job.counts["done"] == 3 and job.counts["failed"] == 1
    record = store.read_json(layout.job_record_key(job.job_id))
    assert record["errors"] == [job.errors[uids[1]] | {"item": uids[1]}]
    assert record["errors"][0]["error_type"] == "UnreadableImage" and key in record["errors"][0]["error"]
    assert record["items"][uids[1]]["state"] == "failed"
    assert not store.exists(layout.result_record_key(uids[1], model.model_id))
    assert all(store.exists(layout.result_record_key(uid, model.model_id)) for uid in uids if uid != uids[1])


def test_workers_refuse_a_model_changed_after_the_driver_verified_it(local_dask_client, tmp_path):
    """The spec is swapped (weights and their pin untouched) after the driver verified the model:
    every study fails with ModelChecksumMismatch on the workers, and the batch still finishes."""
    import json
    import shutil

    from imaging_lib import models
    from imaging_lib.errors import ModelChecksumMismatch

    folder = tmp_path / "model"
    shutil.copytree(Path(models.__file__).parent, folder, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    uri = str(folder / "demo_lesion_cnn.json")
    verified = load_model(uri)  # the driver's verification, cached in this process
    spec = json.loads(Path(uri).read_text())
    Path(uri).write_text(json.dumps({**spec, "positive_class": "no_lesion"}))

    store = Store(tmp_path / "store")
    uids, _ = make_cohort(store, 3)
    job = run_batch(uids, store, uri, local_dask_client, params=PARAMS).wait(300)
    assert job.counts["failed"] == 3 and job.counts["done"] == 0 and job.finished
    assert {error["error_type"] for error in job.errors.values()} == {"ModelChecksumMismatch"}
    assert store.list(layout.RESULT_RECORDS) == []
    record = store.read_json(layout.job_record_key(job.job_id))
    assert record["status"] == "finished"
    assert record["provenance"]["parameters"]["model_checksum"] == verified.checksum

    # a task that reaches a worker without the pin is refused too
    with pytest.raises(ModelChecksumMismatch, match="pinned"):
        local_dask_client.submit(process_study, uids[0], store.url, uri, PARAMS, model_checksum="").result()


# ------------------------------------------------------------------------- separate processes
def result_times(store: Store, model) -> dict[str, str]:
    """Study UID -> ``created_at`` of its result, for every result in the store."""
    keys = [key for key in store.list(layout.RESULT_RECORDS) if key.endswith(f"/{model.model_id}.json")]
    return {record["study_uid"]: record["provenance"]["created_at"] for record in store.read_json_many(keys).values()}


def start_driver(store: Store, scheduler: str, log: Path) -> subprocess.Popen:
    """``imaging-lab run`` in its own process, driving the batch on the process cluster."""
    command = [
        str(Path(sys.executable).with_name("imaging-lab")), "run", "--store", store.url, "--model", DEMO_MODEL_URI,
        "--scheduler", scheduler, "--num-samples", str(PARAMS["num_samples"]),
        "--segmentation", PARAMS["segmentation"], "--batch-size", str(PARAMS["batch_size"]),
    ]  # fmt: skip
    with log.open("w") as out:
        return subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)


@pytest.mark.slow
def test_resume_after_the_driver_is_killed_mid_batch(dask_process_cluster, tmp_path, model, reference):
    store = Store(tmp_path / "store")
    uids, source_of = make_cohort(store, 12)

    driver = start_driver(store, dask_process_cluster.scheduler_address, tmp_path / "first.log")
    deadline = time.monotonic() + 300
    while len(result_times(store, model)) < 2:
        assert driver.poll() is None, (tmp_path / "first.log").read_text()
        assert time.monotonic() < deadline, "no study finished in time"
        time.sleep(0.1)
    driver.send_signal(signal.SIGKILL)
    driver.wait()
    finished_at_kill = result_times(store, model)
    assert 2 <= len(finished_at_kill) < len(uids), "the kill did not land mid-batch"
    (first_job,) = [key for key in store.list(layout.JOB_RECORDS)]
    assert store.read_json(first_job)["status"] == "running"  # its driver died

    restarted = start_driver(store, dask_process_cluster.scheduler_address, tmp_path / "second.log")
    assert restarted.wait(timeout=600) == 0, (tmp_path / "second.log").read_text()
    output = (tmp_path / "second.log").read_text()

    assert_one_complete_result_per_study(store, uids, model, source_of, reference)
    final = result_times(store, model)
    assert {uid: final[uid] for uid in finished_at_kill} == finished_at_kill  # not recomputed
    (second_job,) = [key for key in store.list(layout.JOB_RECORDS) if key != first_job]
    second = store.read_json(second_job)
    assert second["status"] == "finished"
    assert second["counts"]["failed"] == 0 and second["counts"]["pending"] == second["counts"]["running"] == 0
    assert second["counts"]["skipped"] >= len(finished_at_kill)
    assert second["counts"]["skipped"] + second["counts"]["done"] == len(uids)
    assert f"done {second['counts']['done']}" in output

    with dask_process_cluster.client() as client:
        loads = client.run(load_counts)
    assert all(counts.get(DEMO_MODEL_URI, 0) <= 1 for counts in loads.values())


@pytest.mark.slow
def test_batch_survives_a_worker_killed_mid_run(dask_process_cluster, tmp_path, model, reference):
    store = Store(tmp_path / "store")
    uids, source_of = make_cohort(store, 20)

    with dask_process_cluster.client() as client:
        before = dask_process_cluster.worker_pids(client)
        job = run_batch(uids, store, DEMO_MODEL_URI, client, params=PARAMS)
        while job.counts["done"] < 3:
            assert not job.finished
            time.sleep(0.05)
        busy = [address for address, keys in client.processing().items() if keys]
        victim = before[busy[0]]
        os.kill(victim, signal.SIGKILL)  # the worker process, not its nanny
        job.wait(600)
        after = wait_for_restart(client, len(before), victim)
        loads = client.run(load_counts)

    assert job.counts == {"pending": 0, "running": 0, "done": 20, "failed": 0, "skipped": 0, "total": 20}
    assert_one_complete_result_per_study(store, uids, model, source_of, reference)
    record = store.read_json(layout.job_record_key(job.job_id))
    assert record["status"] == "finished" and record["counts"] == job.counts and record["errors"] == []
    assert victim not in after.values() and len(after) == 2
    assert [counts.get(DEMO_MODEL_URI) for counts in loads.values()] == [1, 1]  # the new worker too
    # the restarted worker ran studies of this batch after the kill
    assert {entry["worker"] for entry in record["items"].values()} & (set(after) - set(before))
