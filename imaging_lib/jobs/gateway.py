"""The ``gateway`` cluster profile: the user's own Dask cluster from a Dask Gateway, signed in through JupyterHub.

A team deployment (``docs/deploy.md``, the "daskhub" pairing) runs ``dask-gateway-server``
next to JupyterHub. Each user's process proves who it is with its own Hub token
(``JUPYTERHUB_API_TOKEN``: the Hub sets it in a researcher's JupyterLab, the dashboards'
service in a visitor's kernel), and the gateway gives that user their own cluster: its
scheduler and workers run apart from everyone else's, and only its owner can list or
reach it.

:func:`gateway_cluster` reuses the user's running cluster or asks for a new one with the
worker options of :class:`GatewayOptions` (cores, memory, GPUs: the gateway bounds what
it grants), and makes it adapt between the given bounds. The gateway shuts a cluster
down by itself after its configured idle time (``deploy/dask-gateway/``). The gateway's
address is Dask's standard configuration (``gateway.address``, set by
``DASK_GATEWAY__ADDRESS`` as daskhub does).

Failures are typed: no address or an unreachable gateway is
:class:`~imaging_lib.errors.ClusterUnavailable`; a missing, expired or revoked token is
:class:`~imaging_lib.errors.SignInExpired`.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .. import settings
from ..errors import ClusterUnavailable, SignInExpired

if TYPE_CHECKING:
    from dask_gateway import GatewayCluster

__all__ = ["GATEWAY_TOKEN_ENV", "GatewayOptions", "gateway_address", "gateway_cluster"]

GATEWAY_TOKEN_ENV = "JUPYTERHUB_API_TOKEN"
"""Where the user's Hub token is (the name JupyterHub and dask-gateway use)."""


def _number(setting: settings.Setting, environ: Mapping[str, str] | None, kind: type = int) -> Any:
    value = settings.read(setting, environ)
    try:
        number = kind(value)
    except (TypeError, ValueError):
        raise ValueError(f"{setting.name} must be a number, not {value!r}") from None
    if number < 0:
        raise ValueError(f"{setting.name} must not be negative, not {value!r}")
    return number


@dataclass(frozen=True)
class GatewayOptions:
    """What to ask the gateway for: worker size and adaptive bounds.

    Attributes
    ----------
    worker_cores : int
    worker_memory_gib : float
    worker_gpus : int
        GPUs per worker; workers then declare a ``GPU`` resource that tasks may request.
    adapt_minimum, adapt_maximum : int
        Fewest and most workers while the cluster adapts to its load.
    """

    worker_cores: int = 1
    worker_memory_gib: float = 2.0
    worker_gpus: int = 0
    adapt_minimum: int = 0
    adapt_maximum: int = 4

    def __post_init__(self) -> None:
        if self.worker_cores < 1 or self.worker_memory_gib <= 0 or self.worker_gpus < 0:
            raise ValueError(f"worker options must be positive: {self}")
        if not 0 <= self.adapt_minimum <= self.adapt_maximum or self.adapt_maximum < 1:
            raise ValueError(f"adaptive bounds must satisfy 0 <= minimum <= maximum, maximum >= 1: {self}")

    @classmethod
    def from_settings(cls, environ: Mapping[str, str] | None = None) -> GatewayOptions:
        """The options of the ``IMAGING_DASK_WORKER_*`` and ``IMAGING_DASK_ADAPT_*`` settings.

        Raises
        ------
        ValueError
            If a setting is not a number or the bounds are inconsistent.
        """
        return cls(
            worker_cores=_number(settings.DASK_WORKER_CORES, environ),
            worker_memory_gib=_number(settings.DASK_WORKER_MEMORY_GIB, environ, float),
            worker_gpus=_number(settings.DASK_WORKER_GPUS, environ),
            adapt_minimum=_number(settings.DASK_ADAPT_MIN, environ),
            adapt_maximum=_number(settings.DASK_ADAPT_MAX, environ),
        )

    def cluster_options(self) -> dict[str, Any]:
        """The cluster options of ``deploy/dask-gateway/dask_gateway_config.py``, by name."""
        return {
            "worker_cores": self.worker_cores,
            "worker_memory": self.worker_memory_gib,
            "worker_gpus": self.worker_gpus,
        }


def gateway_address() -> str | None:
    """The gateway's address from Dask's configuration (``gateway.address``), or None."""
    import dask
    import dask_gateway  # noqa: F401  # registers the gateway.* defaults

    address = dask.config.get("gateway.address", None)
    return str(address) if address else None


def _failure(address: str, exc: BaseException) -> Exception:
    """The typed error for what the gateway client raised."""
    import aiohttp
    from dask_gateway.client import GatewayClusterError, GatewayServerError

    refused_token = isinstance(exc, aiohttp.ClientResponseError) and exc.status in (401, 403)
    # A token the Hub does not know comes back as the gateway's 500 "... verifying user's JupyterHub API token".
    if refused_token or (isinstance(exc, GatewayServerError) and "JupyterHub API token" in str(exc)):
        return SignInExpired(
            address,
            "the gateway refused your JupyterHub token (expired, revoked, or your role may not start clusters): "
            "sign in again and reload the page",
        )
    if isinstance(exc, (aiohttp.ClientConnectionError, OSError, TimeoutError)):
        return ClusterUnavailable(address, f"the Dask Gateway is not reachable ({type(exc).__name__}); ask an admin")
    if isinstance(exc, (GatewayClusterError, GatewayServerError, ValueError, aiohttp.ClientResponseError)):
        return ClusterUnavailable(address, f"the Dask Gateway refused the cluster: {exc}")
    return ClusterUnavailable(address, f"{type(exc).__name__}: {exc}")


def gateway_cluster(
    options: GatewayOptions | None = None,
    *,
    address: str | None = None,
    token: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> GatewayCluster:
    """Return the user's running gateway cluster, or a new one, adapting within the options' bounds.

    Parameters
    ----------
    options : GatewayOptions, optional
        Default :meth:`GatewayOptions.from_settings`.
    address : str, optional
        The gateway's URL; default :func:`gateway_address`.
    token : str, optional
        The user's JupyterHub token; default ``$JUPYTERHUB_API_TOKEN``.
    environ : mapping, optional
        Where to read the settings and the token (default ``os.environ``).

    Returns
    -------
    dask_gateway.GatewayCluster
        Not shut down when closed: the gateway stops it after its idle time.

    Raises
    ------
    ClusterUnavailable
        No gateway address, the gateway is down, or it refused the cluster (options out of bounds).
    SignInExpired
        No token, or the gateway (through the Hub) refused it.
    """
    from dask_gateway import Gateway, JupyterHubAuth

    environ = os.environ if environ is None else environ
    options = options or GatewayOptions.from_settings(environ)
    address = address or gateway_address()
    if not address:
        raise ClusterUnavailable(
            "gateway profile", "no Dask Gateway address: set DASK_GATEWAY__ADDRESS (see docs/deploy.md)"
        )
    token = token or environ.get(GATEWAY_TOKEN_ENV)
    if not token:
        raise SignInExpired(address, "no JupyterHub token in this process: open it through the Hub (sign in)")
    gateway = Gateway(address, auth=JupyterHubAuth(api_token=token))
    try:
        existing = gateway.list_clusters()  # the user's pending or running clusters
        if existing:
            cluster = gateway.connect(existing[0].name, shutdown_on_close=False)
        else:
            cluster = gateway.new_cluster(shutdown_on_close=False, **options.cluster_options())
        cluster.adapt(minimum=options.adapt_minimum, maximum=options.adapt_maximum)
    except Exception as exc:
        _discard(gateway)
        raise _failure(address, exc) from exc
    return cluster


def _discard(gateway: Any) -> None:
    """Close a gateway client that failed, now.

    Left to the garbage collector, its ``__del__`` closes it whenever collection happens to
    run, for instance while a Dask client starts in the same thread: both take distributed's
    class-wide LoopRunner lock, and the thread deadlocks. A second ``close()`` raises, so its
    loop runner is dropped once closed and ``__del__`` has nothing left to do.
    """
    with contextlib.suppress(Exception):
        gateway.close()
    vars(gateway).pop("_loop_runner", None)
