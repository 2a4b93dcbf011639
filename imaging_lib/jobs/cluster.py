"""The Dask client of the platform, from one of three cluster profiles.

* ``local``: a :func:`start_local_cluster` per process (the default, one person on a laptop);
* ``scheduler``: the scheduler at an address (``IMAGING_DASK_SCHEDULER``, ``--scheduler``),
  started with ``dask scheduler`` / ``dask worker``, on Kubernetes or HPC;
* ``gateway``: the user's own cluster from a Dask Gateway, signed in with their JupyterHub
  token (:mod:`~imaging_lib.jobs.gateway`).

The profile is ``IMAGING_DASK_PROFILE``, else ``scheduler`` when ``IMAGING_DASK_SCHEDULER``
is set, else ``local``. An admin may switch a process's profile (:func:`select_profile`,
the dashboards' selector); nobody else may.
"""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING

from .. import settings

if TYPE_CHECKING:
    from distributed import Client, LocalCluster

__all__ = [
    "PROFILES",
    "SCHEDULER_ENV",
    "describe_profile",
    "get_client",
    "resolve_profile",
    "select_profile",
    "start_local_cluster",
]


SCHEDULER_ENV = settings.DASK_SCHEDULER.name

PROFILES = ("local", "scheduler", "gateway")
"""The cluster profiles, in the order selectors list them."""


_local_client: Client | None = None


_remote_clients: dict[str, Client] = {}


_client_lock = threading.Lock()


_selected_profile: str | None = None


def resolve_profile(profile: str | None = None) -> str:
    """Return the profile to use: ``profile``, the admin's selection, the setting, or the default.

    Raises
    ------
    ValueError
        If the profile is not one of :data:`PROFILES`.
    """
    chosen = profile or _selected_profile or settings.read(settings.DASK_PROFILE)
    if chosen is None:
        chosen = "scheduler" if settings.read(settings.DASK_SCHEDULER) else "local"
    if chosen not in PROFILES:
        raise ValueError(
            f"unknown Dask profile {chosen!r}: {settings.DASK_PROFILE.name} is one of {', '.join(PROFILES)}"
        )
    return chosen


def select_profile(profile: str) -> str:
    """Make ``profile`` this process's profile (later :func:`get_client` calls use it); admins only.

    Raises
    ------
    imaging_lib.errors.PermissionDenied
        If the acting user is not an admin (``select_cluster``).
    ValueError
        If the profile is unknown.
    """
    global _selected_profile
    from ..identity import require

    require("select_cluster")
    _selected_profile = resolve_profile(profile)
    return _selected_profile


def describe_profile(profile: str | None = None) -> str:
    """Where a batch started now runs, in words for a page: ``"a local Dask cluster started with it"``..."""
    chosen = resolve_profile(profile)
    if chosen == "scheduler":
        return f"the Dask scheduler {settings.read(settings.DASK_SCHEDULER) or '(no address set)'}"
    if chosen == "gateway":
        from .gateway import gateway_address

        return f"your own Dask Gateway cluster ({gateway_address() or 'no gateway address set'})"
    return "a local Dask cluster started with it"


def start_local_cluster(
    n_workers: int | None = None,
    threads_per_worker: int = 1,
    dashboard_address: str = "127.0.0.1:0",
) -> LocalCluster:
    """Start a :class:`distributed.LocalCluster` of process workers on 127.0.0.1.

    Workers get ``OMP_NUM_THREADS=1`` (Dask's default) and *no* ``MALLOC_TRIM_THRESHOLD_``:
    Dask's default of 65536 made torch tasks 45-75 % slower on the reference machine.

    Parameters
    ----------
    n_workers : int, optional
        Worker processes; default one per CPU core.
    threads_per_worker : int
        Threads per worker process.
    dashboard_address : str
        Where the scheduler's dashboard listens.

    Returns
    -------
    distributed.LocalCluster
    """
    import dask
    from distributed import LocalCluster

    with dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}):
        cluster = LocalCluster(
            n_workers=n_workers or os.cpu_count() or 1,
            threads_per_worker=threads_per_worker,
            processes=True,
            host="127.0.0.1",
            dashboard_address=dashboard_address,
        )
    os.environ.pop("MALLOC_TRIM_THRESHOLD_", None)
    return cluster


def get_client(address: str | None = None, *, profile: str | None = None) -> Client:
    """Return a Dask client for ``address``, or for the profile's cluster.

    ``local`` starts a :func:`start_local_cluster` once per process (one single-threaded
    worker per core, dashboard on 127.0.0.1) and reuses it. ``scheduler`` (or any
    ``address``: a ``dask scheduler``, Kubernetes or HPC cluster) keeps one client per
    address while it is connected. ``gateway`` keeps one client to the user's gateway
    cluster while it runs; once the gateway has shut it down when idle, the next call
    gets a new one.

    Parameters
    ----------
    address : str, optional
        Scheduler address (implies the ``scheduler`` profile).
    profile : str, optional
        One of :data:`PROFILES`; default :func:`resolve_profile`.

    Returns
    -------
    distributed.Client

    Raises
    ------
    ValueError
        If the profile is unknown, or ``scheduler`` has no address.
    imaging_lib.errors.ClusterUnavailable
        If the gateway cannot be reached or refuses the cluster.
    imaging_lib.errors.SignInExpired
        If the gateway refuses the user's Hub token.
    """
    global _local_client
    from distributed import Client

    chosen = "scheduler" if address else resolve_profile(profile)
    with _client_lock:
        if chosen == "gateway":
            return _gateway_client()
        if chosen == "scheduler":
            address = address or settings.read(settings.DASK_SCHEDULER)
            if address is None:
                raise ValueError(f"the scheduler profile needs an address: set {SCHEDULER_ENV}")
            client = _remote_clients.get(address)
            if client is None or client.status != "running":
                client = _remote_clients[address] = Client(address, set_as_default=False)
            return client
        if _local_client is None or _local_client.status != "running":
            _local_client = Client(start_local_cluster(dashboard_address="127.0.0.1:8787"), set_as_default=False)
        return _local_client


def _gateway_client() -> Client:
    """A client of the user's running gateway cluster (a new cluster once the gateway stopped the last one)."""
    from .gateway import gateway_cluster

    cluster = gateway_cluster()
    key = f"gateway:{cluster.name}"
    client = _remote_clients.get(key)
    if client is None or client.status != "running":
        client = _remote_clients[key] = cluster.get_client(set_as_default=False)
    return client
