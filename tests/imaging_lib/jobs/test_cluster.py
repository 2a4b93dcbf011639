"""get_client: a scheduler's address from the argument or $IMAGING_DASK_SCHEDULER, else one LocalCluster per process."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from imaging_lib.jobs import get_client


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
