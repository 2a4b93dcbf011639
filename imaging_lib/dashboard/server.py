"""Serve the Voilà dashboards of ``imaging_lib/dashboard/apps/`` behind a token.

``imaging-lab dashboard`` runs the standalone ``voila`` server (a jupyter_server 2
application) on the dashboards folder. Voilà 0.5 takes its token as ``--token=...``
(``Voila.token``, handed to jupyter_server's ``IdentityProvider``); with a token set every
page, ``/voila/render/...``, ``/api/kernels/<id>`` and the kernel websockets answer only
to requests that carry it (pages redirect to ``/login``, APIs answer 403). The token is
random unless ``IMAGING_DASHBOARD_TOKEN`` is set; an empty ``IMAGING_DASHBOARD_TOKEN``
turns authentication off, which is only allowed on a loopback address.

Uploads reach the kernel as one websocket message, so tornado's
``websocket_max_message_size`` (10 MiB by default) is raised to :data:`UPLOAD_LIMIT_BYTES`
through ``--Voila.tornado_settings``. ``/voila/files/`` is closed (it serves files without
asking for the token), and the kernels get an absolute ``IMAGING_STORE`` because Voilà
starts them in the notebook's folder.

Each visitor gets a kernel. Voilà's page asks for its kernel's shutdown when it is
closed, but behind a token that request is refused (it carries no XSRF token), so kernels
whose page has gone (no websocket open) are culled after :data:`KERNEL_CULL_IDLE_SECONDS`
idle seconds instead; kernels with an open page are never culled.
"""

from __future__ import annotations

import ipaddress
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from urllib.parse import quote

from .. import settings
from ..errors import ImagingError, InsecureServing
from ..limits import UPLOAD_LIMIT_BYTES, WEBSOCKET_MAX_MESSAGE_SIZE

__all__ = [
    "DEFAULT_IP",
    "DEFAULT_PORT",
    "KERNEL_CULL_IDLE_SECONDS",
    "TOKEN_ENV",
    "UPLOAD_LIMIT_BYTES",
    "WEBSOCKET_MAX_MESSAGE_SIZE",
    "DashboardServer",
    "apps_dir",
    "dashboard_env",
    "dashboard_url",
    "is_loopback",
    "resolve_token",
    "serve_dashboard",
    "start_dashboard",
    "voila_argv",
]

DEFAULT_IP = "127.0.0.1"
DEFAULT_PORT = 8866
TOKEN_ENV = settings.DASHBOARD_TOKEN.name
STORE_ENV = settings.STORE.name
KERNEL_CULL_IDLE_SECONDS = 300
"""Idle seconds after which a dashboard kernel with no page connected is shut down."""


def apps_dir() -> Path:
    """Return the folder of the dashboard notebooks (package data, so a wheel install has them)."""
    return Path(str(resources.files(__package__) / "apps"))


def is_loopback(ip: str) -> bool:
    """Return whether ``ip`` only accepts connections from this machine.

    Parameters
    ----------
    ip : str
        An IPv4/IPv6 address or ``"localhost"``; ``""`` and ``"0.0.0.0"`` mean every
        interface and are not loopback.
    """
    if ip == "localhost":
        return True
    try:
        return ipaddress.ip_address(ip.strip("[]")).is_loopback
    except ValueError:
        return False


def resolve_token(token: str | None = None, environ: Mapping[str, str] | None = None) -> str:
    """Return the token to serve with: ``token``, else ``$IMAGING_DASHBOARD_TOKEN``, else random.

    Parameters
    ----------
    token : str, optional
        An explicit token; ``""`` means no authentication.
    environ : mapping, optional
        Where to look for ``IMAGING_DASHBOARD_TOKEN`` (default ``os.environ``).

    Returns
    -------
    str
        The token, or ``""`` when authentication was explicitly turned off.
    """
    if token is not None:
        return token
    environ = os.environ if environ is None else environ
    if TOKEN_ENV in environ:
        return environ[TOKEN_ENV]
    return secrets.token_urlsafe(32)


def _check_secure(ip: str, token: str) -> None:
    if not token and not is_loopback(ip):
        raise InsecureServing(
            ip,
            "refusing to serve the dashboards on a non-loopback address without a token; "
            f"unset {TOKEN_ENV} (a random token is made) or set it to a secret",
        )


def voila_argv(
    apps: str | os.PathLike[str],
    *,
    port: int = DEFAULT_PORT,
    ip: str = DEFAULT_IP,
    token: str,
    python: str = sys.executable,
    cull_idle_seconds: int = KERNEL_CULL_IDLE_SECONDS,
) -> list[str]:
    """Return the command line that serves ``apps`` with Voilà.

    Parameters
    ----------
    apps : path
        Folder of dashboard notebooks (Voilà serves its tree and renders each notebook).
    port : int
        TCP port; Voilà does not move to another port if it is taken.
    ip : str
        Address to bind.
    token : str
        Token every request must carry; ``""`` only on a loopback ``ip``.
    python : str
        Interpreter whose ``voila`` module runs (its kernels run the same environment).
    cull_idle_seconds : int
        Idle seconds after which a kernel with no page connected is shut down.

    Returns
    -------
    list of str

    Raises
    ------
    InsecureServing
        If ``token`` is empty and ``ip`` is not a loopback address.
    """
    _check_secure(ip, token)
    tornado_settings = {"websocket_max_message_size": WEBSOCKET_MAX_MESSAGE_SIZE}
    return [
        python,
        "-m",
        "voila",
        os.fspath(apps),
        "--no-browser",
        f"--port={port}",
        "--Voila.port_retries=0",
        f"--Voila.ip={ip}",
        f"--token={token}",
        f"--Voila.tornado_settings={json.dumps(tornado_settings)}",
        "--VoilaConfiguration.file_allowlist=[]",
        f"--MappingKernelManager.cull_idle_timeout={cull_idle_seconds}",
        f"--MappingKernelManager.cull_interval={max(1, min(60, cull_idle_seconds // 2))}",
        "--MappingKernelManager.cull_connected=False",
    ]


def dashboard_url(ip: str, port: int, token: str, path: str = "") -> str:
    """Return the URL of a dashboard page, with the token in the query when there is one.

    Parameters
    ----------
    ip, port : str, int
        Where the server listens.
    token : str
        The server's token (``""`` for none).
    path : str
        Path under the server root, e.g. ``"voila/render/studies.ipynb"``.
    """
    host = f"[{ip}]" if ":" in ip else ip
    url = f"http://{host}:{port}/{path.lstrip('/')}"
    return f"{url}?token={quote(token)}" if token else url


def dashboard_env(store_url: str | None = None, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Return the environment of the Voilà process and its kernels.

    The store is made absolute because Voilà starts each kernel in its notebook's folder.
    ``IMAGING_DASHBOARD_TOKEN`` is removed so notebooks never see the token.

    Parameters
    ----------
    store_url : str, optional
        Store of the dashboards; default ``$IMAGING_STORE`` or ``./data/store``.
    environ : mapping, optional
        Environment to start from (default ``os.environ``).
    """
    env = dict(os.environ if environ is None else environ)
    store = store_url or str(settings.read(settings.STORE, env))
    if "://" not in store:
        store = str(Path(store).resolve())
    env[STORE_ENV] = store
    env.pop(TOKEN_ENV, None)
    return env


def _free_port(ip: str) -> int:
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.bind((ip if ip != "localhost" else "127.0.0.1", 0))
        return int(probe.getsockname()[1])


class DashboardServer:
    """A running Voilà process: its URL, token and process handle.

    Parameters
    ----------
    process : subprocess.Popen
        The ``voila`` process.
    ip, port, token : str, int, str
        Where it listens and the token it asks for.
    """

    def __init__(self, process: subprocess.Popen, ip: str, port: int, token: str) -> None:
        self.process = process
        self.ip = ip
        self.port = port
        self.token = token

    def url(self, path: str = "", *, with_token: bool = True) -> str:
        """Return the URL of ``path`` on this server, with the token unless told otherwise."""
        return dashboard_url(self.ip, self.port, self.token if with_token else "", path)

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Block until the server answers HTTP.

        Raises
        ------
        ImagingError
            If the process exits or does not answer within ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        probe = self.url("voila/static/voila.js", with_token=False)
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ImagingError(self.url(with_token=False), f"voila exited with code {self.process.returncode}")
            try:
                with urllib.request.urlopen(probe, timeout=2):
                    return
            except urllib.error.HTTPError:
                return
            except OSError:
                time.sleep(0.2)
        raise ImagingError(self.url(with_token=False), f"voila did not answer within {timeout:.0f} s")

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server (and with it every dashboard kernel)."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_dashboard(
    apps: str | os.PathLike[str] | None = None,
    *,
    port: int = DEFAULT_PORT,
    ip: str = DEFAULT_IP,
    token: str | None = None,
    store_url: str | None = None,
    environ: Mapping[str, str] | None = None,
    output: int | None = None,
    cull_idle_seconds: int = KERNEL_CULL_IDLE_SECONDS,
) -> DashboardServer:
    """Start Voilà on the dashboards and return once it answers.

    Parameters
    ----------
    apps : path, optional
        Folder of dashboard notebooks; default :func:`apps_dir`.
    port : int
        TCP port; ``0`` picks a free one.
    ip : str
        Address to bind (loopback by default).
    token : str, optional
        See :func:`resolve_token`.
    store_url : str, optional
        See :func:`dashboard_env`.
    environ : mapping, optional
        Base environment of the server and its kernels.
    output : int, optional
        Where the server's log goes (``subprocess.DEVNULL``, a file descriptor); default inherited.
    cull_idle_seconds : int
        See :func:`voila_argv`.

    Returns
    -------
    DashboardServer

    Raises
    ------
    InsecureServing
        If there is no token and ``ip`` is not loopback.
    ImagingError
        If the server exits or does not answer.
    """
    token = resolve_token(token, environ)
    _check_secure(ip, token)
    port = port or _free_port(ip)
    argv = voila_argv(apps or apps_dir(), port=port, ip=ip, token=token, cull_idle_seconds=cull_idle_seconds)
    process = subprocess.Popen(
        argv, env=dashboard_env(store_url, environ), stdout=output, stderr=output, start_new_session=True
    )
    server = DashboardServer(process, ip, port, token)
    try:
        server.wait_ready()
    except BaseException:
        server.stop()
        raise
    return server


def serve_dashboard(
    *,
    port: int = DEFAULT_PORT,
    ip: str = DEFAULT_IP,
    store_url: str | None = None,
    apps: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> int:
    """Serve the dashboards until interrupted, printing the URL with the token once.

    Parameters
    ----------
    port, ip, store_url, apps, environ
        See :func:`start_dashboard`.

    Returns
    -------
    int
        The Voilà process's exit code (0 after Ctrl-C or SIGTERM, which stop Voilà too).
    """
    server = start_dashboard(apps, port=port, ip=ip, store_url=store_url, environ=environ)
    print(f"Dashboards: {server.url()}", flush=True)
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        return server.process.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        server.stop()
        signal.signal(signal.SIGTERM, previous)


def _interrupt(signum: int, frame: object) -> None:
    """Turn SIGTERM into KeyboardInterrupt so the Voilà process is stopped with this one."""
    raise KeyboardInterrupt
