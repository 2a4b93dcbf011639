"""Serve the Voilà dashboards of ``imaging_lib/dashboard/apps/`` behind a token.

``imaging-lab dashboard`` runs Voilà 0.5 (a jupyter_server 2 application) on the dashboards
folder through :mod:`imaging_lib.dashboard.voila_app`, which hardens it: with the token every
page, ``/voila/render/...``, ``/api/kernels/<id>`` and the kernel websockets answer only to
requests that carry it (pages redirect to ``/login``, APIs answer 403); requests whose
``Host`` or ``Origin`` is not the served address (DNS rebinding, other sites) get 403; and at
most ``max_kernels`` kernels live at once (a visitor over the cap gets a 503 "busy" page).

There is always a token: ``IMAGING_DASHBOARD_TOKEN`` if set and not empty, else a random one,
printed once with the URL. It reaches the Voilà process through its environment, never its
command line, and that process removes it before any kernel starts. Off loopback a token
shorter than :data:`~imaging_lib.limits.DASHBOARD_TOKEN_MIN_LENGTH` is refused.

Uploads and volumes travel in chunks of at most 4 MiB, so tornado's stock websocket limit
(10 MiB) stands. ``/voila/files/`` is closed (it serves files without
asking for the token), and the kernels get an absolute ``IMAGING_STORE`` because Voilà
starts them in the notebook's folder.

Each visitor gets a kernel. The study browser is kept rendered ahead of its visitors in
``pool_size`` pre-started kernels (``IMAGING_DASHBOARD_POOL_SIZE``, counted in the cap;
:mod:`~imaging_lib.dashboard.pool`), so a team opening it at once sees it at once.
Voilà's page asks for its kernel's shutdown when it is
closed, but behind a token that request is refused (it carries no XSRF token), so kernels
whose page has gone (no websocket open) are culled after :data:`KERNEL_CULL_IDLE_SECONDS`
idle seconds instead; kernels with an open page are never culled.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from importlib import resources
from pathlib import Path
from urllib.parse import quote

from .. import settings
from ..errors import ImagingError, InsecureServing
from ..limits import DASHBOARD_TOKEN_MIN_LENGTH
from .hosts import is_loopback, parse_host_list

__all__ = [
    "DEFAULT_IP",
    "DEFAULT_PORT",
    "KERNEL_CULL_IDLE_SECONDS",
    "TOKEN_ENV",
    "DashboardServer",
    "apps_dir",
    "dashboard_env",
    "dashboard_url",
    "read_allowed_hosts",
    "read_max_kernels",
    "read_pool_size",
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
WILDCARD_IPS = ("", "0.0.0.0", "::")

LANDING_PAGE = "voila/render/index.ipynb"
"""Where a visitor lands: the dashboards' index (not Voilà's file list)."""


def apps_dir() -> Path:
    """Return the folder of the dashboard notebooks (package data, so a wheel install has them)."""
    return Path(str(resources.files(__package__) / "apps"))


def resolve_token(token: str | None = None, environ: Mapping[str, str] | None = None) -> str:
    """Return the token to serve with: ``token``, else ``$IMAGING_DASHBOARD_TOKEN``, else random.

    An empty token counts as none: there is no way to serve without a token.

    Parameters
    ----------
    token : str, optional
        An explicit token.
    environ : mapping, optional
        Where to look for ``IMAGING_DASHBOARD_TOKEN`` (default ``os.environ``).

    Returns
    -------
    str
        A non-empty token.
    """
    return token or settings.read(settings.DASHBOARD_TOKEN, environ) or secrets.token_urlsafe(32)


def read_allowed_hosts(environ: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """Return the extra host names of ``IMAGING_DASHBOARD_ALLOWED_HOSTS`` (a reverse proxy's)."""
    return parse_host_list(settings.read(settings.DASHBOARD_ALLOWED_HOSTS, environ))


def read_max_kernels(environ: Mapping[str, str] | None = None) -> int:
    """Return the cap on live dashboard kernels from ``IMAGING_DASHBOARD_MAX_KERNELS``.

    Raises
    ------
    ValueError
        If the setting is not a positive integer.
    """
    value = str(settings.read(settings.DASHBOARD_MAX_KERNELS, environ))
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"{settings.DASHBOARD_MAX_KERNELS.name} must be a positive integer, not {value!r}")
    return int(value)


def read_pool_size(environ: Mapping[str, str] | None = None) -> int:
    """Return how many study browsers to keep rendered ahead of visitors, from ``IMAGING_DASHBOARD_POOL_SIZE``.

    Raises
    ------
    ValueError
        If the setting is not a whole number (0 turns the pool off).
    """
    value = str(settings.read(settings.DASHBOARD_POOL_SIZE, environ))
    if not value.isdigit():
        raise ValueError(f"{settings.DASHBOARD_POOL_SIZE.name} must be a whole number, not {value!r}")
    return int(value)


def _check_token(ip: str, token: str) -> None:
    if not is_loopback(ip) and len(token) < DASHBOARD_TOKEN_MIN_LENGTH:
        raise InsecureServing(
            ip,
            f"refusing to serve the dashboards on an address other machines reach with a token shorter than "
            f"{DASHBOARD_TOKEN_MIN_LENGTH} characters; unset {TOKEN_ENV} (a random token is made) or set a longer one",
        )


def voila_argv(
    apps: str | os.PathLike[str],
    *,
    port: int = DEFAULT_PORT,
    ip: str = DEFAULT_IP,
    python: str = sys.executable,
    cull_idle_seconds: int = KERNEL_CULL_IDLE_SECONDS,
    max_kernels: int | None = None,
    allowed_hosts: Sequence[str] = (),
    pool_size: int | None = None,
) -> list[str]:
    """Return the command line that serves ``apps`` with the dashboards' Voilà.

    The token is not on it: pass it in the environment (see :func:`dashboard_env`).

    Parameters
    ----------
    apps : path
        Folder of dashboard notebooks (Voilà serves its tree and renders each notebook), or one notebook.
    port : int
        TCP port; Voilà does not move to another port if it is taken.
    ip : str
        Address to bind; requests must name it (or one of ``allowed_hosts``) in their Host header.
    python : str
        Interpreter that runs :mod:`imaging_lib.dashboard.voila_app` (its kernels run the same environment).
    cull_idle_seconds : int
        Idle seconds after which a kernel with no page connected is shut down.
    max_kernels : int, optional
        Most kernels alive at once (a visitor over it gets a 503 page); default :func:`read_max_kernels`.
    allowed_hosts : sequence of str
        Extra host names to answer to (a reverse proxy's public name).
    pool_size : int, optional
        Study browsers kept rendered ahead of visitors (0: none); default :func:`read_pool_size`.

    Returns
    -------
    list of str
    """
    if max_kernels is None:
        max_kernels = read_max_kernels()
    if pool_size is None:
        pool_size = read_pool_size()
    return [
        python,
        "-m",
        "imaging_lib.dashboard.voila_app",
        os.fspath(apps),
        "--no-browser",
        f"--port={port}",
        "--Voila.port_retries=0",
        f"--Voila.ip={ip}",
        *(f"--DashboardVoila.allowed_hosts={name}" for name in allowed_hosts),
        f"--DashboardKernelManager.max_kernels={max_kernels}",
        f"--DashboardVoila.pool_size={min(pool_size, max_kernels)}",
        f"--MappingKernelManager.cull_idle_timeout={cull_idle_seconds}",
        f"--MappingKernelManager.cull_interval={max(1, min(60, cull_idle_seconds // 2))}",
        "--MappingKernelManager.cull_connected=False",
    ]


def _url_host(ip: str) -> str:
    """The host part of a URL to a server bound to ``ip`` (a wildcard: this machine's name)."""
    host = socket.gethostname() if ip in WILDCARD_IPS else ip
    return f"[{host}]" if ":" in host else host


def dashboard_url(ip: str, port: int, token: str, path: str = "") -> str:
    """Return the URL of a dashboard page, with the token in the query when there is one.

    Parameters
    ----------
    ip, port : str, int
        Where the server listens (a wildcard address gives this machine's host name).
    token : str
        The server's token (``""``: the URL without it).
    path : str
        Path under the server root, e.g. ``"voila/render/studies.ipynb"``.
    """
    url = f"http://{_url_host(ip)}:{port}/{path.lstrip('/')}"
    return f"{url}?token={quote(token)}" if token else url


def dashboard_env(
    store_url: str | None = None, environ: Mapping[str, str] | None = None, *, token: str
) -> dict[str, str]:
    """Return the environment of the Voilà process (its kernels get it without the token).

    The store is made absolute because Voilà starts each kernel in its notebook's folder.
    ``IMAGING_DASHBOARD_TOKEN`` carries the token to the Voilà process, which removes it
    from its environment before starting kernels, so notebooks never see it.

    Parameters
    ----------
    store_url : str, optional
        Store of the dashboards; default ``$IMAGING_STORE`` or ``./data/store``.
    environ : mapping, optional
        Environment to start from (default ``os.environ``).
    token : str
        The dashboards' token.
    """
    env = dict(os.environ if environ is None else environ)
    store = store_url or str(settings.read(settings.STORE, env))
    if "://" not in store:
        store = str(Path(store).resolve())
    env[STORE_ENV] = store
    env[TOKEN_ENV] = token
    return env


def _free_port(ip: str) -> int:
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.bind((ip if ip != "localhost" else "127.0.0.1", 0))
        return int(probe.getsockname()[1])


class DashboardServer:
    """A running dashboards' Voilà process: its URL, token and process handle.

    Parameters
    ----------
    process : subprocess.Popen
        The Voilà process.
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
        local = "127.0.0.1" if self.ip in WILDCARD_IPS else self.ip
        probe = dashboard_url(local, self.port, "", "voila/static/voila.js")
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
    max_kernels: int | None = None,
    allowed_hosts: Sequence[str] | None = None,
    pool_size: int | None = None,
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
        Base environment of the server and its kernels; the settings are read from it too.
    output : int, optional
        Where the server's log goes (``subprocess.DEVNULL``, a file descriptor); default inherited.
    cull_idle_seconds : int
        See :func:`voila_argv`.
    max_kernels : int, optional
        Most kernels alive at once; default :func:`read_max_kernels`.
    allowed_hosts : sequence of str, optional
        Extra host names to answer to; default :func:`read_allowed_hosts`.
    pool_size : int, optional
        Study browsers kept rendered ahead of visitors; default :func:`read_pool_size`.

    Returns
    -------
    DashboardServer

    Raises
    ------
    InsecureServing
        If ``ip`` is not loopback and the token is short.
    ImagingError
        If the server exits or does not answer.
    """
    token = resolve_token(token, environ)
    _check_token(ip, token)
    port = port or _free_port(ip)
    argv = voila_argv(
        apps or apps_dir(),
        port=port,
        ip=ip,
        cull_idle_seconds=cull_idle_seconds,
        max_kernels=read_max_kernels(environ) if max_kernels is None else max_kernels,
        allowed_hosts=read_allowed_hosts(environ) if allowed_hosts is None else allowed_hosts,
        pool_size=read_pool_size(environ) if pool_size is None else pool_size,
    )
    env = dashboard_env(store_url, environ, token=token)
    process = subprocess.Popen(argv, env=env, stdout=output, stderr=output, start_new_session=True)
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
    announce: Callable[[str], None] | None = None,
) -> int:
    """Serve the dashboards until interrupted; say once where, with the token.

    Parameters
    ----------
    port, ip, store_url, apps, environ
        See :func:`start_dashboard`.
    announce : callable, optional
        Called once with ``"Dashboards: <URL of the landing page, token included>"`` when
        the server answers (the command line prints it).

    Returns
    -------
    int
        The Voilà process's exit code (0 after Ctrl-C or SIGTERM, which stop Voilà too).
    """
    server = start_dashboard(apps, port=port, ip=ip, store_url=store_url, environ=environ)
    if announce is not None:
        announce(f"Dashboards: {server.url(LANDING_PAGE)}")
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
