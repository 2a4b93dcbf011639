"""The ``gateway`` profile against a real ``dask-gateway-server`` (local backend) signed in through the test JupyterHub.

A batch submitted with alice's Hub token runs on her own gateway cluster (nobody else sees
it), gives the same results as the same batch on a LocalCluster, shows in the job monitor,
and the gateway shuts the cluster down once idle; the next batch gets a new one, with the
worker options asked for. Tokens the gateway refuses and options beyond its bounds are
typed errors.
"""

from __future__ import annotations

import shutil
import time

import dask
import numpy as np
import pytest
from dask_gateway import Gateway, JupyterHubAuth

from imaging_lib.errors import ClusterUnavailable, SignInExpired
from imaging_lib.ingestion import ingest
from imaging_lib.jobs import cluster, run_batch
from imaging_lib.jobs.cluster import get_client
from imaging_lib.jobs.gateway import GatewayOptions, gateway_cluster
from imaging_lib.models import DEMO_MODEL_URI
from imaging_lib.sample_data import pydicom_file
from imaging_lib.store.catalog import Catalog
from imaging_lib.store.objects import Store
from support.demo_store import TEST_PARAMS
from widgets.job_monitor import JobMonitor

pytestmark = [pytest.mark.slow]

BATCH_TIMEOUT = 420
COMPARED = ("label", "probability", "slice_probabilities", "most_suspicious_slice", "model_id", "model_checksum")


@pytest.fixture(scope="module")
def two_stores(tmp_path_factory):
    """The same two ingested studies in two stores (the same UIDs): one for each cluster."""
    root = tmp_path_factory.mktemp("gateway-stores")
    local = Store(root / "local")
    ingest([pydicom_file("MR_small.dcm"), pydicom_file("CT_small.dcm")], local, progress=False)
    shutil.copytree(local.url, root / "gateway")
    return local, Store(root / "gateway")


@pytest.fixture
def as_alice(team_hub, monkeypatch):
    token, token_id = team_hub.token("alice")
    for name, value in {
        "JUPYTERHUB_API_TOKEN": token,
        "IMAGING_ACCESS": "team",
        "IMAGING_USER": "alice",
        "IMAGING_USER_GROUPS": "researcher",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(cluster, "_remote_clients", {})
    with dask.config.set({"gateway.address": team_hub.gateway_address}):
        yield token


def _clusters(team_hub, token: str) -> list:
    return Gateway(team_hub.gateway_address, auth=JupyterHubAuth(api_token=token)).list_clusters()


def _result_records(store: Store) -> dict[str, dict]:
    return {record["study_uid"]: record for record in Catalog(store).records("result_record").values()}


def _assert_same_outcome(found: dict, expected: dict) -> None:
    """The same prediction, bit for bit; the same explanation up to the last bits of LIME's linear fit.

    The ridge fit of LIME runs in BLAS, whose results may differ in the last unit of
    precision between two processes (memory alignment picks the SIMD path).
    """
    assert {k: found.get(k) for k in COMPARED} == {k: expected.get(k) for k in COMPARED}
    mine, theirs = found["explanation"], expected["explanation"]
    assert set(mine) == set(theirs)
    assert (mine["slice_index"], mine["label"]) == (theirs["slice_index"], theirs["label"])
    assert mine["top_segments"] == theirs["top_segments"]
    for key in ("intercept", "local_prediction", "score", "probability"):
        assert mine[key] == pytest.approx(theirs[key], rel=1e-9, abs=1e-12), key
    assert mine["weights"] == pytest.approx(theirs["weights"], rel=1e-9, abs=1e-12)


def test_a_batch_on_the_gateway_runs_on_the_users_cluster_like_the_local_run_and_stops_when_idle(
    team_hub, two_stores, as_alice, local_dask_client, monkeypatch
):
    local_store, gateway_store = two_stores
    local = run_batch("all", local_store, DEMO_MODEL_URI, local_dask_client, params=TEST_PARAMS).wait(BATCH_TIMEOUT)
    assert local.counts["done"] == 2

    client = get_client(profile="gateway")
    job = run_batch("all", gateway_store, DEMO_MODEL_URI, client, params=TEST_PARAMS).wait(BATCH_TIMEOUT)
    assert job.counts["done"] == 2, job.errors

    (mine,) = _clusters(team_hub, as_alice)
    assert client.scheduler.address.endswith(mine.name)  # alice's own cluster ran it
    erin_token, _ = team_hub.token("erin")
    assert _clusters(team_hub, erin_token) == []  # another user does not even see it

    expected, found = _result_records(local_store), _result_records(gateway_store)
    assert set(found) == set(expected) and len(found) == 2
    for study_uid, record in found.items():
        _assert_same_outcome(record, expected[study_uid])
        assert record["provenance"]["created_by"] == "alice"
        np.testing.assert_allclose(
            gateway_store.read_volume(record["explanation_key"]).array,
            local_store.read_volume(expected[study_uid]["explanation_key"]).array,
            rtol=1e-6,
            atol=1e-9,
        )

    rows = JobMonitor(gateway_store).refresh()
    assert list(rows.loc[rows["job_id"] == job.job_id, ["status", "progress"]].itertuples(index=False)) == [
        ("finished", "2 / 2")
    ]

    deadline = time.monotonic() + 120  # the test gateway stops clusters after 8 idle seconds
    while _clusters(team_hub, as_alice) and time.monotonic() < deadline:
        time.sleep(2)
    assert _clusters(team_hub, as_alice) == [], "the idle cluster was not shut down"

    monkeypatch.setenv("IMAGING_DASK_WORKER_GPUS", "1")
    monkeypatch.setenv("IMAGING_DASK_ADAPT_MIN", "1")
    again = get_client(profile="gateway")  # a new cluster, with the options asked for
    try:
        (renewed,) = _clusters(team_hub, as_alice)
        assert renewed.name != mine.name and again.scheduler.address.endswith(renewed.name)
        again.wait_for_workers(1, timeout=120)
        workers = again.scheduler_info()["workers"].values()
        assert [worker["resources"] for worker in workers] == [{"GPU": 1}]
        assert [worker["nthreads"] for worker in workers] == [1]
    finally:
        Gateway(team_hub.gateway_address, auth=JupyterHubAuth(api_token=as_alice)).stop_cluster(renewed.name)


def test_tokens_the_gateway_refuses_are_a_sign_in_error(team_hub, as_alice):
    with pytest.raises(SignInExpired, match="refused your JupyterHub token"):
        gateway_cluster(token="not-a-token")
    bob_token, _ = team_hub.token("bob")  # a viewer: no access to the gateway service
    with pytest.raises(SignInExpired):
        gateway_cluster(token=bob_token)
    revoked, revoked_id = team_hub.token("alice")
    assert team_hub.api("DELETE", f"users/alice/tokens/{revoked_id}", revoked).status_code == 204
    with pytest.raises(SignInExpired) as expired:
        gateway_cluster(token=revoked)
    assert expired.value.source == team_hub.gateway_address


def test_options_beyond_the_gateways_bounds_are_refused(team_hub, as_alice):
    with pytest.raises(ClusterUnavailable, match="refused the cluster"):
        gateway_cluster(GatewayOptions(worker_cores=64))
    assert _clusters(team_hub, as_alice) == []
