"""Cluster profiles: which one a process uses, who may switch it, and clear errors when a cluster cannot be had."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import dask
import dask_gateway  # noqa: F401  # its config defaults exist before a test overrides one
import pytest

from imaging_lib import identity
from imaging_lib.errors import ClusterUnavailable, PermissionDenied, SignInExpired
from imaging_lib.jobs import cluster
from imaging_lib.jobs.cluster import PROFILES, describe_profile, get_client, resolve_profile, select_profile
from imaging_lib.jobs.gateway import GatewayOptions, gateway_cluster
from support.servers import free_port


@pytest.fixture(autouse=True)
def clean(monkeypatch):
    for name in (
        "IMAGING_DASK_PROFILE",
        "IMAGING_DASK_SCHEDULER",
        "IMAGING_ACCESS",
        "IMAGING_USER",
        "IMAGING_USER_GROUPS",
        "JUPYTERHUB_API_TOKEN",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(cluster, "_selected_profile", None)
    monkeypatch.setattr(identity, "_bound_listeners", [])


def test_the_profile_is_the_setting_else_scheduler_with_an_address_else_local(monkeypatch):
    assert resolve_profile() == "local" and "local Dask cluster" in describe_profile()
    monkeypatch.setenv("IMAGING_DASK_SCHEDULER", "tcp://10.0.0.1:8786")
    assert resolve_profile() == "scheduler" and describe_profile() == "the Dask scheduler tcp://10.0.0.1:8786"
    monkeypatch.setenv("IMAGING_DASK_PROFILE", "gateway")
    assert resolve_profile() == "gateway" and resolve_profile("local") == "local"
    monkeypatch.setenv("IMAGING_DASK_PROFILE", "cloud")
    with pytest.raises(ValueError, match="unknown Dask profile 'cloud'"):
        resolve_profile()
    assert PROFILES == ("local", "scheduler", "gateway")


def test_only_an_admin_selects_the_profile_of_a_team_process(monkeypatch):
    monkeypatch.setenv("IMAGING_ACCESS", "team")
    monkeypatch.setenv("IMAGING_USER", "alice")
    monkeypatch.setenv("IMAGING_USER_GROUPS", "researcher")
    with pytest.raises(PermissionDenied, match="may not choose where batches run"):
        select_profile("gateway")
    assert resolve_profile() == "local"
    monkeypatch.setenv("IMAGING_USER_GROUPS", "admin")
    assert select_profile("gateway") == "gateway" and resolve_profile() == "gateway"
    with pytest.raises(ValueError):
        select_profile("nowhere")


def test_the_scheduler_profile_needs_an_address(monkeypatch):
    monkeypatch.setenv("IMAGING_DASK_PROFILE", "scheduler")
    with pytest.raises(ValueError, match="IMAGING_DASK_SCHEDULER"):
        get_client()


def test_the_gateway_profile_without_an_address_or_a_token_says_what_is_missing(monkeypatch):
    with dask.config.set({"gateway.address": None}), pytest.raises(ClusterUnavailable, match="DASK_GATEWAY__ADDRESS"):
        get_client(profile="gateway")
    with dask.config.set({"gateway.address": "http://127.0.0.1:9"}), pytest.raises(SignInExpired, match="sign in"):
        get_client(profile="gateway")


def test_a_gateway_that_is_down_is_a_clear_error(monkeypatch):
    address = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    with pytest.raises(ClusterUnavailable, match="not reachable") as down:
        gateway_cluster(address=address, token="a-token")
    assert down.value.source == address and "Traceback" not in str(down.value)


def test_gateway_options_come_from_the_settings_and_are_checked(monkeypatch):
    assert GatewayOptions.from_settings({}) == GatewayOptions()
    options = GatewayOptions.from_settings(
        {
            "IMAGING_DASK_WORKER_CORES": "2",
            "IMAGING_DASK_WORKER_MEMORY_GIB": "3.5",
            "IMAGING_DASK_WORKER_GPUS": "1",
            "IMAGING_DASK_ADAPT_MIN": "1",
            "IMAGING_DASK_ADAPT_MAX": "3",
        }
    )
    assert options.cluster_options() == {"worker_cores": 2, "worker_memory": 3.5, "worker_gpus": 1}
    assert (options.adapt_minimum, options.adapt_maximum) == (1, 3)
    with pytest.raises(ValueError, match="IMAGING_DASK_WORKER_CORES must be a number"):
        GatewayOptions.from_settings({"IMAGING_DASK_WORKER_CORES": "many"})
    with pytest.raises(ValueError, match="adaptive bounds"):
        GatewayOptions(adapt_minimum=4, adapt_maximum=2)
    with pytest.raises(ValueError, match="positive"):
        GatewayOptions(worker_cores=0)


def test_get_client_connects_to_an_address_and_reuses_it(dask_process_cluster, monkeypatch):
    monkeypatch.setenv("IMAGING_DASK_SCHEDULER", dask_process_cluster.scheduler_address)
    client = get_client()
    assert get_client(dask_process_cluster.scheduler_address) is client
    assert client.scheduler.address == dask_process_cluster.scheduler_address
    assert len(client.scheduler_info()["workers"]) == 2
    # the workers run torch single-threaded and without Dask's malloc trim threshold
    environ = client.run(lambda: (os.environ.get("OMP_NUM_THREADS"), os.environ.get("MALLOC_TRIM_THRESHOLD_")))
    assert set(environ.values()) == {("1", None)}
    client.close()


@pytest.mark.slow
def test_get_client_starts_one_local_cluster_per_process():
    script = """
import json, os
from imaging_lib.jobs import get_client
client = get_client()
assert get_client() is client
workers = client.scheduler_info()["workers"]
environ = client.run(lambda: [os.environ.get("OMP_NUM_THREADS"), os.environ.get("MALLOC_TRIM_THRESHOLD_")])
print(json.dumps({"workers": len(workers), "cpus": os.cpu_count(), "link": client.dashboard_link,
                  "nthreads": sorted({w["nthreads"] for w in workers.values()}), "environ": list(environ.values())}))
client.close(); client.cluster.close()
"""
    env = {key: value for key, value in os.environ.items() if key != "IMAGING_DASK_SCHEDULER"}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=180, env=env)
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found["workers"] == found["cpus"] and found["nthreads"] == [1]
    assert all(environ == ["1", None] for environ in found["environ"])
    assert found["link"].startswith("http://127.0.0.1:")
