"""Start a team's JupyterHub (and a Dask Gateway beside it) on this machine: ``imaging-lab hub``.

:func:`start_hub` runs ``jupyterhub -f deploy/jupyterhub/jupyterhub_config.py`` (or a
site file that loads it) with the settings that file reads in its environment, and
returns once the Hub answers through its proxy. With a gateway it first starts
``dask-gateway-server -f deploy/dask-gateway/dask_gateway_config.py``, sharing a fresh
random API token with the Hub (in both environments, never on a command line) and
pointing every user's process at it (``DASK_GATEWAY__ADDRESS``).

:func:`serve_hub` is the command: it serves until Ctrl-C and stops both. With ``demo``
it first fills the store as ``make demo`` does and signs in two sample users, ``alice``
(researcher and reviewer) and ``bob`` (viewer), with a random password kept in the
Hub's state folder (``deploy/jupyterhub/demo_config.py``).
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .. import settings
from ..errors import ImagingError
from .config import GATEWAY, HubSite

__all__ = [
    "DEMO_PASSWORD_FILE",
    "DEMO_USERS",
    "DEPLOY",
    "HubServer",
    "demo_password",
    "hub_environment",
    "serve_hub",
    "start_gateway",
    "start_hub",
]

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
"""The repository's ``deploy/`` folder (configurations of the Hub and the gateway)."""
DEMO_USERS = {"alice": ("researcher", "reviewer"), "bob": ("viewer",)}
"""The sample users of ``imaging-lab hub --demo`` and their role groups."""
DEMO_PASSWORD_FILE = "demo-password"
"""File in the Hub's state folder holding the demo users' password (mode 0600)."""
DEFAULT_GATEWAY_ADDRESS = "http://127.0.0.1:8790"
PROXY_PID_FILE = "jupyterhub-proxy.pid"
"""The proxy's pid file in the Hub's state folder (``deploy/jupyterhub/jupyterhub_config.py`` names it)."""
BIN = Path(sys.executable).parent


def _deploy_file(*parts: str) -> Path:
    path = DEPLOY.joinpath(*parts)
    if not path.exists():
        raise ImagingError(
            path, "no such configuration: the deploy/ folder comes with the source repository; pass --config"
        )
    return path


def demo_password(state: Path) -> str:
    """The demo users' password: made once (random) in ``state``, then kept."""
    path = state / DEMO_PASSWORD_FILE
    if not path.exists():
        state.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as out:
            out.write(secrets.token_urlsafe(12))
    return path.read_text().strip()


def hub_environment(
    environ: Mapping[str, str] | None = None, *, gateway_address: str | None = None, store_url: str | None = None
) -> dict[str, str]:
    """The environment of the Hub (and so of its services and users' servers).

    The store is made absolute; with ``gateway_address``, a fresh random gateway token
    is set (``IMAGING_DASK_GATEWAY_TOKEN``) together with ``DASK_GATEWAY__ADDRESS``.
    """
    env = dict(os.environ if environ is None else environ)
    store = store_url or str(settings.read(settings.STORE, env))
    env[settings.STORE.name] = store if "://" in store else str(Path(store).resolve())
    env[settings.HUB_STATE.name] = str(Path(str(settings.read(settings.HUB_STATE, env))).resolve())
    env["PATH"] = os.pathsep.join((str(BIN), env.get("PATH", "")))
    if gateway_address:
        env["DASK_GATEWAY__ADDRESS"] = gateway_address
        env[settings.DASK_GATEWAY_TOKEN.name] = secrets.token_hex(32)
    return env


@dataclass
class HubServer:
    """A running Hub (its proxy, services and users' servers are its children) and maybe a gateway."""

    site: HubSite
    hub: subprocess.Popen
    gateway: subprocess.Popen | None = None
    environment: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        """The Hub's public URL."""
        return self.site.public_url

    def wait_ready(self, timeout: float = 120.0) -> None:
        """Block until the Hub and the dashboards' service answer through the proxy.

        Raises
        ------
        ImagingError
            If the Hub exits or they do not answer within ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        for path in ("hub/api/", "services/dashboards/voila/static/voila.js"):
            while not _answers(f"{self.url}/{path}"):
                if self.hub.poll() is not None:
                    raise ImagingError(self.url, f"jupyterhub exited with code {self.hub.returncode}")
                if time.monotonic() > deadline:
                    raise ImagingError(self.url, f"the Hub did not answer {path} within {timeout:.0f} s")
                time.sleep(0.3)

    def stop(self, timeout: float = 20.0) -> None:
        """Stop the Hub (it stops its proxy, services and servers), then the gateway (and its clusters).

        A proxy the Hub left behind (stopped while starting) is stopped through its pid file.
        """
        for process in (self.hub, self.gateway):
            if process is None or process.poll() is not None:
                continue
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        _stop_orphaned_proxy(self.site.state / PROXY_PID_FILE)


def _stop_orphaned_proxy(pid_file: Path) -> None:
    import psutil

    try:
        proxy = psutil.Process(int(pid_file.read_text().strip()))
        if "configurable-http-proxy" in " ".join(proxy.cmdline()):
            proxy.terminate()
            proxy.wait(10)
    except (OSError, ValueError, psutil.Error):
        return


def _answers(url: str) -> bool:
    """Whether ``url`` is routed and served (the proxy answers 404 until the Hub adds the route)."""
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            return response.status < 500
    except urllib.error.HTTPError as exc:
        return exc.code < 500 and exc.code != 404
    except OSError:
        return False


def start_gateway(
    environment: Mapping[str, str], *, config: str | os.PathLike[str] | None = None, output: int | None = None
) -> subprocess.Popen:
    """Start ``dask-gateway-server`` for the Hub of ``environment`` (see :func:`hub_environment`).

    It gets what JupyterHub gives a service: the gateway's Hub token, the Hub's API URL
    and its service name, in its environment.
    """
    site = HubSite.from_settings(environment)
    env = {
        **environment,
        "JUPYTERHUB_API_TOKEN": str(site.gateway_token),
        "JUPYTERHUB_API_URL": f"{site.public_url}/hub/api",
        "JUPYTERHUB_SERVICE_NAME": GATEWAY,
    }
    env.pop(settings.DASK_GATEWAY_TOKEN.name, None)
    config = config or _deploy_file("dask-gateway", "dask_gateway_config.py")
    argv = [str(BIN / "dask-gateway-server"), "-f", os.fspath(config)]
    return subprocess.Popen(argv, env=env, stdout=output, stderr=output, start_new_session=True)


def start_hub(
    *,
    config: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
    gateway: bool = False,
    gateway_config: str | os.PathLike[str] | None = None,
    store_url: str | None = None,
    output: int | None = None,
    timeout: float = 120.0,
) -> HubServer:
    """Start JupyterHub with the platform's configuration (and a gateway) and return once it answers.

    Parameters
    ----------
    config : path, optional
        The Hub configuration; default ``deploy/jupyterhub/jupyterhub_config.py``.
    environ : mapping, optional
        Base environment (its settings: ``IMAGING_HUB_URL``, ``IMAGING_HUB_STATE``...).
    gateway : bool
        Also start a Dask Gateway (at ``DASK_GATEWAY__ADDRESS``, default 127.0.0.1:8790).
    gateway_config : path, optional
        Default ``deploy/dask-gateway/dask_gateway_config.py``.
    store_url : str, optional
        The store of every user; default ``IMAGING_STORE``.
    output : int, optional
        Where the Hub's and the gateway's logs go (default inherited).
    timeout : float
        Seconds to wait for the Hub and the dashboards' service.

    Returns
    -------
    HubServer

    Raises
    ------
    ImagingError
        If the configuration is missing or the Hub does not start.
    """
    base = dict(os.environ if environ is None else environ)
    address = (base.get("DASK_GATEWAY__ADDRESS") or DEFAULT_GATEWAY_ADDRESS) if gateway else None
    environment = hub_environment(base, gateway_address=address, store_url=store_url)
    site = HubSite.from_settings(environment)
    site.state.mkdir(parents=True, exist_ok=True)
    config = config or _deploy_file("jupyterhub", "jupyterhub_config.py")
    gateway_process = start_gateway(environment, config=gateway_config, output=output) if gateway else None
    argv = [str(BIN / "jupyterhub"), "-f", os.fspath(config)]
    hub = subprocess.Popen(argv, env=environment, cwd=site.state, stdout=output, stderr=output, start_new_session=True)
    server = HubServer(site, hub, gateway_process, environment)
    try:
        server.wait_ready(timeout)
    except BaseException:
        server.stop()
        raise
    return server


def serve_hub(
    *,
    config: str | os.PathLike[str] | None = None,
    gateway: bool = False,
    demo: bool = False,
    store_url: str | None = None,
    announce: Callable[[str], None] | None = None,
) -> int:
    """``imaging-lab hub``: serve the team setup until interrupted.

    Parameters
    ----------
    config : path, optional
        The Hub configuration (default ``deploy/jupyterhub/jupyterhub_config.py``, or
        ``demo_config.py`` with ``demo``).
    gateway : bool
        Start a Dask Gateway too (implied by ``demo``).
    demo : bool
        Fill the store as ``make demo`` does, then sign in the :data:`DEMO_USERS`.
    store_url : str, optional
        Default ``IMAGING_STORE``.
    announce : callable, optional
        Called with each line a person needs: the Hub's URL, and with ``demo`` the sample
        users and their password (the command line prints them).

    Returns
    -------
    int
        The Hub's exit status (0 after Ctrl-C or SIGTERM).
    """
    if demo:
        from distributed import Client

        from ..demo import prepare_demo
        from ..jobs import start_local_cluster
        from ..store.objects import Store

        config = config or _deploy_file("jupyterhub", "demo_config.py")
        gateway = True
        demo_password(HubSite.from_settings().state)
        with start_local_cluster() as cluster, Client(cluster, set_as_default=False) as client:
            prepare_demo(Store(store_url), client)
    server = start_hub(config=config, gateway=gateway, store_url=store_url)
    say = announce or (lambda line: None)
    say(f"JupyterHub: {server.url}/")
    if demo:
        password = demo_password(server.site.state)
        users = ", ".join(f"{name} ({' and '.join(roles)})" for name, roles in DEMO_USERS.items())
        say(f"Sign in as {users}; password: {password}")
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        return server.hub.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        server.stop()
        signal.signal(signal.SIGTERM, previous)


def _interrupt(signum: int, frame: object) -> None:
    """Turn SIGTERM into KeyboardInterrupt so the Hub and the gateway are stopped with this process."""
    raise KeyboardInterrupt
