"""A real team deployment for tests: JupyterHub with configurable-http-proxy, the dashboards service, a Dask Gateway.

:func:`start_test_hub` runs ``imaging_lib.hub.server.start_hub`` (what ``imaging-lab hub``
runs) with a site file that loads ``deploy/jupyterhub/jupyterhub_config.py`` and changes
only what a test needs: free ports, a shared-password authenticator with the users of
:data:`USERS` in their role groups, users' servers as this account, a one-second token
cache. The gateway (``deploy/dask-gateway/dask_gateway_config.py`` with a short idle
time) signs users in through this Hub.

:meth:`TestHub.sign_in` signs a user in with ``requests`` as a browser does (the Hub's
login form, then the OAuth dance to the dashboards); :meth:`TestHub.cookies_for` gives
the cookies to a playwright context.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

import requests

from imaging_lib.hub.server import DEPLOY, HubServer, start_hub

from .servers import REPO_ROOT, free_port

__all__ = ["GATEWAY_IDLE_SECONDS", "USERS", "TestHub", "start_test_hub"]

USERS: dict[str, tuple[str, ...]] = {
    "alice": ("researcher", "reviewer"),
    "bob": ("viewer",),
    "carol": (),
    "dave": ("admin",),
    "erin": ("reviewer",),
}
"""Test users and their role groups: carol has none; dave is also a Hub admin."""
GATEWAY_IDLE_SECONDS = 8

SITE_CONFIG = """
import os
from imaging_lib.hub import config as imaging

load_subconfig({deploy!r})
c = get_config()
site = imaging.HubSite.from_settings()
c.JupyterHub.hub_bind_url = "http://127.0.0.1:{hub_port}"
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{proxy_api_port}"
c.JupyterHub.authenticator_class = "shared-password"
c.SharedPasswordAuthenticator.user_password = {password!r}
c.SharedPasswordAuthenticator.admin_password = {admin_password!r}
c.Authenticator.allowed_users = {users!r}
c.Authenticator.admin_users = {{"dave"}}
c.JupyterHub.load_groups = imaging.role_groups({groups!r})
c.JupyterHub.spawner_class = "simple"
c.SimpleLocalProcessSpawner.home_dir_template = {homes!r}
c.Spawner.args = ["--allow-root"] if os.geteuid() == 0 else []
c.Spawner.start_timeout = 120
c.JupyterHub.services = [imaging.dashboards_service(site, token_cache_seconds=1, max_kernels=12)]
if site.gateway_token:
    c.JupyterHub.services.append(imaging.gateway_service(site))
"""

GATEWAY_CONFIG = """
load_subconfig({deploy!r})
c = get_config()
c.ClusterConfig.idle_timeout = {idle}
c.ClusterConfig.cluster_max_workers = 2
c.DaskGateway.log_level = "DEBUG"
"""


@dataclass
class TestHub:
    """A running test Hub: its server handle, passwords and log."""

    server: HubServer
    password: str
    admin_password: str
    log_path: Path
    root: Path
    sessions: dict[str, requests.Session] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def dashboards(self) -> str:
        return f"{self.url}/services/dashboards/"

    @property
    def gateway_address(self) -> str:
        return self.server.environment["DASK_GATEWAY__ADDRESS"]

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def sign_in(self, user: str) -> requests.Session:
        """A new ``requests`` session signed in to the Hub and to the dashboards as ``user``."""
        session = requests.Session()
        login = session.get(f"{self.url}/hub/login", timeout=30)
        xsrf = re.search(r'name="_xsrf" value="([^"]+)"', login.text).group(1)
        password = self.admin_password if user == "dave" else self.password
        response = session.post(
            f"{self.url}/hub/login",
            data={"username": user, "password": password, "_xsrf": xsrf},
            allow_redirects=False,
            timeout=30,
        )
        assert response.status_code == 302, (response.status_code, response.text[:500])
        # The OAuth dance: the dashboards send us to the Hub, which sends us back with a code.
        session.get(self.dashboards, timeout=60)  # the folder listing: no kernel started
        return session

    def cookies_for(self, session: requests.Session) -> list[dict]:
        """The session's cookies for a playwright context."""
        return [
            {"name": c.name, "value": c.value, "domain": "127.0.0.1", "path": c.path or "/"} for c in session.cookies
        ]

    def token(self, user: str, session: requests.Session | None = None, note: str = "test") -> tuple[str, str]:
        """A new Hub API token of ``user`` (made through their signed-in session): ``(token, token_id)``."""
        session = session or self.sign_in(user)
        xsrf = session.cookies.get("_xsrf", path="/hub/")
        response = session.post(
            f"{self.url}/hub/api/users/{user}/tokens",
            json={"note": note, "expires_in": 3600},
            headers={"X-XSRFToken": xsrf or ""},
            timeout=30,
        )
        response.raise_for_status()
        body = response.json()
        return body["token"], body["id"]

    def api(self, method: str, path: str, token: str, **kwargs) -> requests.Response:
        """A Hub REST API call with ``token``."""
        return requests.request(
            method, f"{self.url}/hub/api/{path.lstrip('/')}", headers={"Authorization": f"token {token}"}, timeout=30,
            **kwargs,
        )  # fmt: skip

    def stop(self) -> None:
        self.server.stop()
        shutil.rmtree(self.root / "jupyter", ignore_errors=True)


def _jupyter_environment(root: Path) -> dict[str, str]:
    env = {}
    for name, folder in (
        ("JUPYTER_CONFIG_DIR", "config"),
        ("JUPYTER_RUNTIME_DIR", "runtime"),
        ("IPYTHONDIR", "ipython"),
    ):
        (root / "jupyter" / folder).mkdir(parents=True, exist_ok=True)
        env[name] = str(root / "jupyter" / folder)
    return env


def start_test_hub(root: Path, *, store_url: str, gateway: bool = True, extra_env: dict | None = None) -> TestHub:
    """Start the test Hub (and gateway) with ``root`` as its state folder and ``store_url`` as everyone's store."""
    root.mkdir(parents=True, exist_ok=True)
    password, admin_password = secrets.token_urlsafe(12), secrets.token_urlsafe(32)
    groups: dict[str, list[str]] = {}
    for user, roles in USERS.items():
        for role in roles:
            groups.setdefault(role, []).append(user)
    site_config = root / "site_config.py"
    site_config.write_text(
        SITE_CONFIG.format(
            deploy=str(DEPLOY / "jupyterhub" / "jupyterhub_config.py"),
            hub_port=free_port(),
            proxy_api_port=free_port(),
            password=password,
            admin_password=admin_password,
            users=set(USERS),
            groups=groups,
            homes=str(root / "home" / "{username}"),
        )
    )
    gateway_config = root / "gateway_config.py"
    gateway_config.write_text(
        GATEWAY_CONFIG.format(deploy=str(DEPLOY / "dask-gateway" / "dask_gateway_config.py"), idle=GATEWAY_IDLE_SECONDS)
    )
    env = {
        **os.environ,
        **_jupyter_environment(root),
        "IMAGING_HUB_URL": f"http://127.0.0.1:{free_port()}",
        "IMAGING_HUB_STATE": str(root / "state"),
        "IMAGING_HUB_DASHBOARDS_PORT": str(free_port()),
        "DASK_GATEWAY__ADDRESS": f"http://127.0.0.1:{free_port()}",
        "PYTHONPATH": os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p),
        "PATH": os.pathsep.join((str(Path(sys.executable).parent), os.environ.get("PATH", ""))),
        **(extra_env or {}),
    }
    for name in (
        "IMAGING_USER",
        "IMAGING_USER_GROUPS",
        "IMAGING_ACCESS",
        "JUPYTERHUB_API_TOKEN",
        "IMAGING_DASK_SCHEDULER",
    ):
        env.pop(name, None)
    log_path = root / "hub.log"
    with open(log_path, "wb") as log:
        try:
            server = start_hub(
                config=site_config,
                environ=env,
                gateway=gateway,
                gateway_config=gateway_config,
                store_url=store_url,
                output=log.fileno(),
                timeout=180,
            )
        except Exception as exc:
            raise RuntimeError(f"{exc}\n{log_path.read_text(errors='replace')[-6000:]}") from exc
    (root / "users.json").write_text(json.dumps(USERS))
    return TestHub(server, password, admin_password, log_path, root)
