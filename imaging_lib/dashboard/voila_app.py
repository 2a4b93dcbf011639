"""The Voilà application the dashboards run: Voilà 0.5 with the platform's hardening.

``python -m imaging_lib.dashboard.voila_app FOLDER [Voilà options]`` (the command line
:func:`imaging_lib.dashboard.server.voila_argv` builds) runs :class:`DashboardVoila`, the
standalone Voilà application with four changes, each made once for every request rather
than per handler:

* **Token, or the Hub.** It is read from ``IMAGING_DASHBOARD_TOKEN`` in the process
  environment (never argv, where ``ps`` shows it to every local user) and removed from the
  environment before any kernel starts. Without one, a random token is made. There is no
  way to turn authentication off. Run as a JupyterHub service (``--DashboardVoila.hub=True``)
  it signs visitors in through the Hub instead (:mod:`~imaging_lib.dashboard.hub_auth`):
  each kernel belongs to its visitor, learns their name and roles from this server, and
  no other user can reach it.
* **Host and Origin.** Voilà sets jupyter_server's ``allow_remote_access``, so its own Host
  check never runs. A tornado routing rule placed before every other route (pages, APIs,
  kernel websockets, static files) answers 403 to a request whose ``Host`` or ``Origin``
  :class:`~imaging_lib.dashboard.hosts.AllowedHosts` refuses (DNS rebinding, cross-site
  websockets). Allow-listed proxy names also go to jupyter_server's ``allow_origin_pat``.
* **Kernels.** :class:`DashboardKernelManager` starts at most ``max_kernels`` kernels (a
  render over the cap gets an HTTP 503 page saying the dashboards are busy), and hides the
  token from the request URL Voilà hands each kernel (``QUERY_STRING``, ``VOILA_REQUEST_URL``).
  Voilà lets only comm and kernel-info messages through from the browser: an
  ``execute_request`` is dropped before it reaches a kernel. With ``pool_size`` above 0
  the study browser is kept rendered ahead of its visitors in that many kernels
  (:mod:`~imaging_lib.dashboard.pool`, Voilà's preheated kernels, handed out safely).
  Kernels talk to the server over IPC sockets in Voilà's private connection folder
  rather than loopback TCP, and are not sent SIGINT before they are shut down
  (:class:`QuietShutdownKernelManager`).
* **Server pages.** jupyter_server's login, logout and error pages link their styles through
  ``static_url``, which Voilà leaves without a ``static_path``, so ``/logout`` and every
  jupyter_server error page failed with an empty 500. They now get jupyter_server's static
  files (Voilà serves them under ``voila/static/``); :data:`TEMPLATES` adds the 403 (no role) and 503 pages.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2
import voila.app
from jupyter_server import DEFAULT_STATIC_FILES_PATH
from jupyter_server.services.kernels.kernelmanager import AsyncMappingKernelManager, ServerKernelManager
from jupyter_server.utils import url_path_join
from tornado import httputil, web
from tornado.routing import Matcher, Rule
from traitlets import Bool, Integer, List, Unicode, default
from voila.app import Voila

from .. import settings
from ..identity import TEAM
from .hosts import AllowedHosts
from .hub_auth import CURRENT_VISITOR, HubAuthorizer, HubIdentityProvider, own_kernels_only, without_hub_credentials
from .pool import pooled_kernel_manager

__all__ = ["TEMPLATES", "DashboardKernelManager", "DashboardVoila", "ForeignRequestHandler", "main"]

TEMPLATES = Path(__file__).resolve().parent / "templates"
"""Page templates that take precedence over jupyter_server's (``403.html``, ``503.html``)."""

KERNEL_ROUTES = ("api/kernels/", "voila/api/shutdown/", "voila/query/", "voila/execution/")
"""Path prefixes (under the base URL) of the routes that name a kernel id."""

BUSY_MESSAGE = (
    "All %d dashboard sessions are in use. Close a dashboard tab you no longer need, or try again "
    "in a few minutes: the sessions of closed pages end by themselves."
)


class QuietShutdownKernelManager(ServerKernelManager):
    """jupyter_server's manager of one kernel, without the interrupt jupyter_client sends before a shutdown.

    A kernel still starting (a pool refill when the server stops) dies of that SIGINT with
    a ``KeyboardInterrupt`` traceback in the server's log, and a busy one logs "KeyboardInterrupt
    caught in kernel". The shutdown request, then the kill after the grace time, stop it anyway.
    """

    async def _async_interrupt_kernel(self) -> None:
        if self.shutting_down:
            return
        await super()._async_interrupt_kernel()


class DashboardKernelManager(AsyncMappingKernelManager):
    """jupyter_server's kernel manager with a cap on live kernels and the token kept from them.

    Starting a kernel over :attr:`max_kernels` (counting those still starting) raises
    ``tornado.web.HTTPError(503)``, which the page handler turns into the busy page; no
    kernel is started and none is killed. Any environment value that holds
    :attr:`hidden_token` (Voilà passes the request URL, query included) gets ``<hidden>``
    in its place.

    With :attr:`per_visitor` (the Hub's sign-in), a kernel starts only for the request's
    :data:`~imaging_lib.dashboard.hub_auth.CURRENT_VISITOR`, with the visitor's identity in
    place of the service's Hub credentials, and :meth:`may_use` lets only them use it.
    """

    per_visitor = Bool(False, config=True, help="Each kernel belongs to the signed-in visitor it was started for.")

    max_kernels = Integer(
        int(str(settings.DASHBOARD_MAX_KERNELS.default)), config=True, help="Most kernels alive (or starting) at once."
    )

    @default("kernel_manager_class")
    def _default_kernel_manager_class(self) -> str:
        return "imaging_lib.dashboard.voila_app.QuietShutdownKernelManager"

    def __init__(self, **kwargs: Any) -> None:
        self._starting = 0
        self._owners: dict[str, str] = {}
        self.hidden_token = ""
        super().__init__(**kwargs)

    async def start_kernel(self, **kwargs: Any) -> str:  # type: ignore[override]
        """Start a kernel unless :attr:`max_kernels` are alive or starting.

        Raises
        ------
        tornado.web.HTTPError
            503, when the cap is reached.
        """
        existing = kwargs.get("kernel_id")
        if existing is None or existing not in self:
            live = len(self.list_kernel_ids()) + self._starting
            if live >= self.max_kernels:
                self.log.warning("refusing a new dashboard kernel: %d of %d in use", live, self.max_kernels)
                raise self.busy_error()
        pooled = (kwargs.get("env") or {}).get("VOILA_PREHEAT") == "True"  # started ahead of its visitor
        visitor = None if pooled else CURRENT_VISITOR.get()
        if self.per_visitor:
            if visitor is None and not pooled:
                raise web.HTTPError(403, "No signed-in visitor to start a dashboard kernel for")
            who = visitor.kernel_environment() if visitor is not None else {settings.ACCESS.name: TEAM}
            kwargs["env"] = {**without_hub_credentials(kwargs.get("env") or os.environ), **who}
        if self.hidden_token and kwargs.get("env"):
            kwargs["env"] = {name: self._hide_token(value) for name, value in kwargs["env"].items()}
        self._starting += 1
        try:
            kernel_id = await super().start_kernel(**kwargs)
        finally:
            self._starting -= 1
        if self.per_visitor and visitor is not None:
            self._owners[kernel_id] = visitor.name
        return kernel_id

    async def shutdown_all(self, now: bool = False) -> None:  # type: ignore[override]  # async in jupyter_server
        """Kill every kernel at once when the server stops (``now`` is always true).

        A kernel asked to shut down while it runs a cell (a pool refill) logs a ZMQ error
        for the reply it can no longer send. Dashboard kernels hold nothing to save (store
        writes are atomic), so they are killed instead.
        """
        await super().shutdown_all(now=True)

    def busy_error(self) -> web.HTTPError:
        """The 503 a visitor over the cap gets (the busy page)."""
        return web.HTTPError(503, BUSY_MESSAGE, self.max_kernels, reason="Dashboards busy")

    def may_use(self, kernel_id: str, user_name: str) -> bool:
        """Whether ``user_name`` may reach kernel ``kernel_id``: its owner only, with :attr:`per_visitor`."""
        return not self.per_visitor or self._owners.get(kernel_id) == user_name

    def remove_kernel(self, kernel_id: str) -> Any:
        """Forget the kernel and its owner."""
        self._owners.pop(kernel_id, None)
        return super().remove_kernel(kernel_id)

    def _hide_token(self, value: str) -> str:
        for form in {self.hidden_token, quote(self.hidden_token, safe="")}:
            value = value.replace(form, "<hidden>")
        return value


class _UntrustedNotebookFilter(logging.Filter):
    """Drops jupyter_server's "Notebook ... is not trusted", logged at every render of every dashboard.

    Trust decides whether a notebook's stored JavaScript outputs are shown in JupyterLab;
    Voilà runs the dashboards' notebooks either way, so the warning says nothing to the
    operator (and their notebooks are package data, signed by no one's key).
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return record.msg != "Notebook %s is not trusted"


class _TokenInUrlFilter(logging.Filter):
    """Masks ``token=...`` in the URLs a log line quotes (tornado's access and error lines quote the query)."""

    _TOKEN = re.compile(r"([?&]token=)[^&\s\"']+")

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "token=" in message:
            record.msg, record.args = self._TOKEN.sub(r"\1<hidden>", message), ()
        return True


class _RefusedHostOrOrigin(Matcher):
    """Matches the requests :meth:`AllowedHosts.refusal` refuses, with the reason."""

    def __init__(self, hosts: AllowedHosts) -> None:
        self.hosts = hosts

    def match(self, request: httputil.HTTPServerRequest) -> dict[str, Any] | None:
        headers = request.headers
        origin = headers.get("Origin") or headers.get("Sec-WebSocket-Origin")
        reason = self.hosts.refusal(headers.get("Host"), origin)
        return None if reason is None else {"path_kwargs": {"reason": reason}}


class ForeignRequestHandler(web.RequestHandler):
    """Answers 403, in plain text, to a request with a foreign Host or Origin (any method)."""

    def prepare(self) -> None:
        """Refuse before any handler of the dashboards sees the request."""
        reason = self.path_kwargs["reason"]
        web.app_log.warning("refused %s %s: %s", self.request.method, self.request.path, reason)
        self.set_status(403)
        self.set_header("Content-Type", "text/plain; charset=UTF-8")
        self.finish(f"403 Forbidden: {reason}\n")


def _origin_pattern(names: list[str]) -> str:
    return r"https?://(" + "|".join(re.escape(name) for name in names) + r")(:\d+)?$"


class DashboardVoila(Voila):
    """Voilà with a mandatory token (or the Hub's sign-in), a Host/Origin guard and a kernel cap."""

    allowed_hosts = List(Unicode(), config=True, help="Extra host names to answer to (a reverse proxy's public name).")
    hub = Bool(
        False, config=True, help="Sign visitors in through JupyterHub (run as a Hub service) instead of a token."
    )
    pool_size = Integer(0, config=True, help="Study browsers kept rendered ahead of their visitors (0: none).")

    def initialize(self, argv: Any = None) -> None:
        """Parse the command line, then take the token from the environment (or use the Hub) and cap the kernels."""
        super().initialize(argv)
        self.log.addFilter(_UntrustedNotebookFilter())
        for logger in (
            self.log,
            *(logging.getLogger(f"tornado.{name}") for name in ("access", "application", "general")),
        ):
            logger.addFilter(_TokenInUrlFilter())  # a busy page's 503 line quotes the URL, token and all
        token = settings.read(settings.DASHBOARD_TOKEN)
        os.environ.pop(settings.DASHBOARD_TOKEN.name, None)  # kernels inherit this environment
        if self.hub:
            self.identity_provider_class = HubIdentityProvider
            self.authorizer_class = HubAuthorizer
            self.token = None  # no token argument: the Hub's provider has its own
            self.auto_token = True
            self.config.DashboardKernelManager.per_visitor = True
        elif token:
            self.token = token
        elif not self.token:  # none, or "": jupyter_server makes a random one and logs it once
            self.token = None  # the trait allows None: Voila's 'no token given'
            self.auto_token = True
        self.voila_configuration.multi_kernel_manager_class = DashboardKernelManager
        self.voila_configuration.file_allowlist = []  # /voila/files/ serves without asking for the token
        self.config.KernelManager.transport = "ipc"  # sockets in the private connection folder, not loopback TCP
        self.config.DashboardPool.pool_size = self.pool_size

    def init_settings(self) -> dict[str, Any]:
        """Voilà's settings, its kernel manager built by :func:`~imaging_lib.dashboard.pool.pooled_kernel_manager`.

        Voilà builds it through a module function that knows only its own pool; this
        method has it build the dashboards' instead, for this one call.
        """
        stock = voila.app.voila_kernel_manager_factory
        voila.app.voila_kernel_manager_factory = lambda base, *_args, **_kwargs: pooled_kernel_manager(
            base, self.pool_size
        )
        try:
            return super().init_settings()
        finally:
            voila.app.voila_kernel_manager_factory = stock

    def listen(self) -> None:
        """Harden the tornado application Voilà has built, then serve it."""
        self._harden(self.app)
        super().listen()

    def _harden(self, app: web.Application) -> None:
        hosts = AllowedHosts.for_address(self.ip, self.allowed_hosts)
        router = app.default_router
        guard = Rule(_RefusedHostOrOrigin(hosts), ForeignRequestHandler)
        router.rules.insert(0, router.process_rule(guard))
        if hosts.proxies:  # jupyter_server's own websocket Origin check must agree
            app.settings["allow_origin_pat"] = _origin_pattern(sorted(hosts.proxies))
        app.settings["static_path"] = DEFAULT_STATIC_FILES_PATH
        app.settings["static_url_prefix"] = url_path_join(self.server_url or self.base_url, "voila/static/")
        self.kernel_manager.hidden_token = self.identity_provider.token
        if self.hub:
            _own_kernels_only(app, self.server_url or self.base_url)
        for name in ("voila_jinja2_env", "jinja2_env"):  # Voilà's pages, then jupyter_server's
            env = app.settings[name]
            env.loader = jinja2.ChoiceLoader([jinja2.FileSystemLoader(str(TEMPLATES)), env.loader])


def _own_kernels_only(app: web.Application, base_url: str) -> None:
    """Put :class:`~imaging_lib.dashboard.hub_auth.OwnKernelsOnly` in front of every route naming a kernel."""
    prefixes = tuple(url_path_join(base_url, prefix) for prefix in KERNEL_ROUTES)
    for host_rule in app.default_router.rules:
        for rule in getattr(host_rule.target, "rules", ()):
            pattern = getattr(rule.matcher, "regex", None)
            if pattern is not None and pattern.pattern.startswith(prefixes) and isinstance(rule.target, type):
                rule.target = own_kernels_only(rule.target)


main = DashboardVoila.launch_instance

if __name__ == "__main__":
    main()
