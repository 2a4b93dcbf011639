# Dask Gateway for imaging-lab: each signed-in user gets Dask clusters of their own, sized within bounds.
#
# `imaging-lab hub --gateway` starts `dask-gateway-server -f` on this file, and gives it in its
# environment what JupyterHub gives a service: JUPYTERHUB_API_TOKEN (the gateway's Hub token, the
# same as IMAGING_DASK_GATEWAY_TOKEN for the Hub), JUPYTERHUB_API_URL and JUPYTERHUB_SERVICE_NAME
# (dask-gateway). DASK_GATEWAY__ADDRESS, the gateway's address for everyone, gives the port to serve.
# On Kubernetes the daskhub Helm chart writes its own configuration (docs/deploy.md).

import sys
from urllib.parse import urlsplit

import dask
import dask_gateway  # noqa: F401  (registers the gateway.* configuration)
from dask_gateway_server.options import Float, Integer, Options

c = get_config()  # noqa: F821  (defined by dask-gateway-server when it loads this file)

# --- Where it serves: the address users' processes are given (HTTP API and schedulers on one port) --
address = urlsplit(dask.config.get("gateway.address") or "http://127.0.0.1:8790")
c.Proxy.address = f"{address.hostname}:{address.port}"
c.Proxy.tcp_address = f"{address.hostname}:{address.port}"

# --- Who: users prove who they are with their JupyterHub token; only the Hub's answer counts ------------
c.DaskGateway.authenticator_class = "dask_gateway_server.auth.JupyterHubAuthenticator"

# --- How clusters run: processes on this machine, as the gateway's account ------------------------------
# UnsafeLocalBackend does not separate users' processes (one machine, one team). LocalBackend runs
# each user's cluster as their own system account (needs root and PAM users); KubeBackend on Kubernetes.
c.DaskGateway.backend_class = "dask_gateway_server.backends.local.UnsafeLocalBackend"
c.ClusterConfig.scheduler_cmd = [sys.executable, "-m", "distributed.cli.dask_scheduler"]
c.ClusterConfig.worker_cmd = [sys.executable, "-m", "distributed.cli.dask_worker"]
c.ClusterConfig.idle_timeout = 600  # seconds without work before a cluster is shut down
c.ClusterConfig.cluster_max_workers = 8
c.LocalBackend.inherited_environment = ["PATH", "PYTHONPATH", "VIRTUAL_ENV", "LANG", "LC_ALL", "HOME"]


# --- What users may ask for (imaging_lib.jobs.gateway.GatewayOptions sends these by name) -----------
def worker_resources(options, user):
    """Worker size from the user's options; GPUs become the ``GPU`` resource training tasks request."""
    # A dict value keeps the resource's name as written (a __GPU suffix would be lower-cased to "gpu").
    gpus = {"DASK_DISTRIBUTED__WORKER__RESOURCES": repr({"GPU": options.worker_gpus})} if options.worker_gpus else {}
    return {
        "worker_cores": options.worker_cores,
        "worker_memory": f"{options.worker_memory}G",
        "environment": {"OMP_NUM_THREADS": str(options.worker_cores), **gpus},
    }


c.Backend.cluster_options = Options(
    Integer("worker_cores", default=1, min=1, max=4, label="Worker cores"),
    Float("worker_memory", default=2, min=0.5, max=16, label="Worker memory (GiB)"),
    Integer("worker_gpus", default=0, min=0, max=1, label="Worker GPUs"),
    handler=worker_resources,
)
