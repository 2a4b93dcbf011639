"""The pieces of ``deploy/jupyterhub/jupyterhub_config.py``: a team's JupyterHub on imaging-lab.

The configuration file stays short and readable (an operator edits it); what it needs
computed lives here, each piece a plain function of :class:`HubSite` (the settings of
one deployment):

* :func:`dashboards_service`: the Voilà dashboards as a Hub-managed service behind Hub
  OAuth (``--DashboardVoila.hub=True``), with the store and cluster settings;
* :func:`gateway_service`: the Dask Gateway registered with the Hub (its API token), so
  the gateway can ask the Hub who owns a user's token;
* :func:`hub_roles`: every signed-in user may open the dashboards (those with no role
  get a page saying so); the groups allowed to run batches may use the gateway;
* :func:`spawner_environment` and :func:`refuse_spawn_without_notebooks`: a researcher's
  JupyterLab learns their groups from the Hub; users without the ``notebooks``
  permission get no server, and a message saying why;
* :func:`landing_url`: researchers land on the Hub's home, everyone else on the dashboards.
"""

from __future__ import annotations

import os
import shutil
import socket
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .. import settings
from ..dashboard.hosts import host_name, parse_host_list
from ..identity import ROLES, TEAM, can, identity_for

__all__ = [
    "DASHBOARDS",
    "GATEWAY",
    "HubSite",
    "dashboards_service",
    "gateway_service",
    "hub_roles",
    "landing_url",
    "platform_environment",
    "proxy_command",
    "refuse_spawn_without_notebooks",
    "role_groups",
    "singleuser_command",
    "spawner_environment",
]

DASHBOARDS = "dashboards"
"""The dashboards' service name: they are served at ``/services/dashboards/``."""
GATEWAY = "dask-gateway"
"""The Dask Gateway's service name (its Hub scope is ``access:services!service=dask-gateway``)."""

PASSED_ON = ("HOME", "JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR", "JUPYTER_RUNTIME_DIR", "IPYTHONDIR", "JUPYTER_PATH")
"""Variables of the Hub's environment passed on to the services and servers it starts, when set."""
SECRET_SETTINGS = (settings.DASHBOARD_TOKEN.name, settings.DASK_GATEWAY_TOKEN.name)
"""Settings never passed on: the single-user token and the gateway's Hub token."""


@dataclass(frozen=True)
class HubSite:
    """One deployment's settings: where the Hub is public, its state, the dashboards' port, the gateway.

    Attributes
    ----------
    public_url : str
        The URL people open (``IMAGING_HUB_URL``).
    state : pathlib.Path
        Folder of the Hub's database and cookie secret (``IMAGING_HUB_STATE``).
    dashboards_port : int
        127.0.0.1 port of the dashboards' service (``IMAGING_HUB_DASHBOARDS_PORT``).
    gateway_token : str or None
        The gateway's Hub API token (``IMAGING_DASK_GATEWAY_TOKEN``); None: no gateway.
    """

    public_url: str
    state: Path
    dashboards_port: int
    gateway_token: str | None = None

    @classmethod
    def from_settings(cls, environ: Mapping[str, str] | None = None) -> HubSite:
        """The site of the ``IMAGING_HUB_*`` and ``IMAGING_DASK_GATEWAY_TOKEN`` settings.

        Raises
        ------
        ValueError
            If the dashboards' port is not a number.
        """
        port = str(settings.read(settings.HUB_DASHBOARDS_PORT, environ))
        if not port.isdigit():
            raise ValueError(f"{settings.HUB_DASHBOARDS_PORT.name} must be a port number, not {port!r}")
        return cls(
            public_url=str(settings.read(settings.HUB_URL, environ)).rstrip("/"),
            state=Path(str(settings.read(settings.HUB_STATE, environ))).resolve(),
            dashboards_port=int(port),
            gateway_token=settings.read(settings.DASK_GATEWAY_TOKEN, environ),
        )

    @property
    def db_url(self) -> str:
        """The Hub's SQLite database in the state folder."""
        return f"sqlite:///{self.state / 'jupyterhub.sqlite'}"

    @property
    def cookie_secret_file(self) -> str:
        """The Hub's cookie secret in the state folder (made by the Hub, mode 0600)."""
        return str(self.state / "jupyterhub_cookie_secret")

    @property
    def dashboards_hosts(self) -> list[str]:
        """Host names the dashboards answer to: the Hub's public one, and ``IMAGING_DASHBOARD_ALLOWED_HOSTS``."""
        host = host_name(urlsplit(self.public_url).netloc)
        names = [socket.gethostname(), socket.getfqdn()] if host in ("", "0.0.0.0", "::") else [host]
        return sorted({*names, *parse_host_list(settings.read(settings.DASHBOARD_ALLOWED_HOSTS))})


def proxy_command() -> list[str]:
    """``configurable-http-proxy`` from the project's npm packages (``package.json``), else from ``PATH``."""
    local = Path(__file__).resolve().parents[2] / "node_modules" / ".bin" / "configurable-http-proxy"
    found = str(local) if local.exists() else shutil.which("configurable-http-proxy")
    return [found or "configurable-http-proxy"]


def platform_environment(environ: Mapping[str, str] | None = None, *, gateway: bool = False) -> dict[str, str]:
    """The environment the Hub gives its services and servers: the platform's settings, team access.

    Every ``IMAGING_*`` setting that is set (but the secrets of :data:`SECRET_SETTINGS`),
    Dask's ``DASK_*`` configuration (``DASK_GATEWAY__ADDRESS``...), and the Jupyter
    folders of :data:`PASSED_ON`; ``IMAGING_ACCESS=team``; with ``gateway``, batches run
    on each user's gateway cluster unless ``IMAGING_DASK_PROFILE`` says otherwise.
    """
    environ = os.environ if environ is None else environ
    environment = {
        name: value
        for name, value in environ.items()
        if value and (name.startswith(("IMAGING_", "DASK_")) or name in PASSED_ON) and name not in SECRET_SETTINGS
    }
    for name in (settings.USER.name, settings.USER_GROUPS.name):
        environment.pop(name, None)  # set per user, never shared
    environment[settings.ACCESS.name] = TEAM
    if gateway:
        environment.setdefault(settings.DASK_PROFILE.name, "gateway")
    return environment


def dashboards_service(
    site: HubSite,
    *,
    python: str = sys.executable,
    apps: str | os.PathLike[str] | None = None,
    token_cache_seconds: int = 60,
    max_kernels: int | None = None,
) -> dict[str, Any]:
    """The Hub service that serves the dashboards: Voilà behind Hub OAuth, at ``/services/dashboards/``.

    Parameters
    ----------
    site : HubSite
    python : str
        The interpreter that runs the dashboards (and their kernels).
    apps : path, optional
        Folder of dashboard notebooks; default the package's.
    token_cache_seconds : int
        How long the service trusts the Hub's answer about a token: a revoked token is
        refused at most this long after.
    max_kernels : int, optional
        Cap on live dashboard kernels; default ``IMAGING_DASHBOARD_MAX_KERNELS``.

    Returns
    -------
    dict
        One entry of ``c.JupyterHub.services``.
    """
    from ..dashboard.server import apps_dir, voila_argv

    prefix = f"/services/{DASHBOARDS}/"
    command = [
        *voila_argv(
            apps or apps_dir(),
            port=site.dashboards_port,
            ip="127.0.0.1",
            python=python,
            max_kernels=max_kernels,
            allowed_hosts=site.dashboards_hosts,
        ),
        "--DashboardVoila.hub=True",
        f"--Voila.base_url={prefix}",
        f"--HubOAuth.cache_max_age={token_cache_seconds}",
    ]
    environment = platform_environment(gateway=site.gateway_token is not None)
    store = environment.get(settings.STORE.name) or str(settings.STORE.default)
    if "://" not in store:
        environment[settings.STORE.name] = str(Path(store).resolve())  # Voilà runs kernels in the apps folder
    return {
        "name": DASHBOARDS,
        "display": True,
        "url": f"http://127.0.0.1:{site.dashboards_port}",
        "command": command,
        "environment": environment,
        "oauth_no_confirm": True,
        "oauth_client_allowed_scopes": [f"access:services!service={GATEWAY}"] if site.gateway_token else [],
        "info": {"description": "Study browser, job monitor and upload: the imaging-lab dashboards"},
    }


def gateway_service(site: HubSite) -> dict[str, Any]:
    """The Dask Gateway as an external Hub service: its name and API token (the gateway runs apart).

    Raises
    ------
    ValueError
        If the site has no gateway token.
    """
    if not site.gateway_token:
        raise ValueError(f"the gateway service needs {settings.DASK_GATEWAY_TOKEN.name}")
    return {"name": GATEWAY, "api_token": site.gateway_token, "display": False}


GATEWAY_PERMISSIONS = ("run_batch", "segment", "train")
"""The permissions that compute on Dask: their roles may use the gateway."""


def _groups_that_can(*permissions: str) -> list[str]:
    return [role for role in ROLES if any(identity_for("", [role]).can(p) for p in permissions)]


def hub_roles(*, gateway: bool) -> list[dict[str, Any]]:
    """The Hub roles of the platform (``c.JupyterHub.load_roles``).

    Every user may reach the dashboards' service (a user with no role group gets a page
    saying so); the groups of :data:`GATEWAY_PERMISSIONS` may also reach the gateway.
    """
    roles: list[dict[str, Any]] = [
        {
            "name": "user",
            "description": "Standard user privileges, and the imaging-lab dashboards",
            "scopes": ["self", f"access:services!service={DASHBOARDS}"],
        }
    ]
    if gateway:
        roles.append(
            {
                "name": "imaging-dask-gateway",
                "description": "Start Dask clusters on the gateway",
                "scopes": [f"access:services!service={GATEWAY}"],
                "groups": _groups_that_can(*GATEWAY_PERMISSIONS),
            }
        )
    return roles


def role_groups(members: Mapping[str, Iterable[str]]) -> dict[str, dict[str, list[str]]]:
    """``c.JupyterHub.load_groups`` for ``{role: [users]}``; every role group is made, empty or not.

    Raises
    ------
    ValueError
        If a key is not a role of :data:`imaging_lib.identity.ROLES`.
    """
    unknown = set(members) - set(ROLES)
    if unknown:
        raise ValueError(f"unknown role groups {sorted(unknown)}; the roles are {', '.join(ROLES)}")
    return {role: {"users": sorted(members.get(role, ()))} for role in ROLES}


def _group_names(user: Any) -> list[str]:
    return sorted(group.name for group in user.groups)


def spawner_environment(environ: Mapping[str, str] | None = None, *, gateway: bool = False) -> dict[str, Any]:
    """``c.Spawner.environment``: :func:`platform_environment` and the user's groups, set by the Hub."""
    environment: dict[str, Any] = dict(platform_environment(environ, gateway=gateway))
    environment[settings.USER_GROUPS.name] = lambda spawner: ",".join(_group_names(spawner.user))
    return environment


def refuse_spawn_without_notebooks(spawner: Any) -> None:
    """``c.Spawner.pre_spawn_hook``: no JupyterLab for users whose roles exclude notebooks.

    Raises
    ------
    imaging_lib.errors.PermissionDenied
        With a message the Hub shows on its spawn page.
    """
    from ..identity import require

    require("notebooks", identity_for(spawner.user.name, _group_names(spawner.user)))


def landing_url(handler: Any) -> str:
    """``c.JupyterHub.default_url``: the Hub's home for notebook users, the dashboards for everyone else."""
    user = handler.current_user
    if user is not None and can("notebooks", identity_for(user.name, _group_names(user))):
        return handler.hub.base_url + "home"
    return f"/services/{DASHBOARDS}/"


def singleuser_command(python: str = sys.executable) -> list[str]:
    """The researchers' JupyterLab: ``jupyterhub-singleuser`` of the platform's environment."""
    return [python, "-m", "jupyterhub.singleuser"]
