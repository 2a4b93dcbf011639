"""Sign-in through JupyterHub for the dashboards' Voilà: who each request is, and whose kernel it may use.

When JupyterHub runs the dashboards as a service (``imaging-lab hub``,
``deploy/jupyterhub/jupyterhub_config.py``), :class:`~imaging_lib.dashboard.voila_app.DashboardVoila`
is started with ``--DashboardVoila.hub=True`` and takes its identity provider from here:

* :class:`HubIdentityProvider` is JupyterHub's own OAuth identity provider for Jupyter
  servers (``jupyterhub.singleuser.extension``, built on ``jupyterhub.services.auth.HubOAuth``):
  a request without a valid Hub token (cookie after the OAuth dance, or header) is sent
  to the Hub's sign-in (pages) or refused with 403 (APIs, websockets). On top it refuses
  a signed-in user whose Hub groups hold no role (a 403 page saying so) and records the
  :class:`Visitor` of the request for the kernel manager.
* The kernel manager starts a visitor's kernel with :meth:`Visitor.kernel_environment`:
  their name, groups and Hub token, set by this server from the Hub's answer, so the
  kernel-side :func:`imaging_lib.identity.require` judges the real user and a forged
  comm message changes nothing. The service's own Hub credentials never reach a kernel.
* :class:`OwnKernelsOnly` makes every route that names a kernel (its REST resource, its
  websocket, Voilà's shutdown) answer 404 to anyone but the kernel's owner.
"""

from __future__ import annotations

import contextvars
import inspect
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from jupyter_server.utils import url_path_join
from jupyterhub.singleuser.extension import JupyterHubAuthorizer as HubAuthorizer
from jupyterhub.singleuser.extension import JupyterHubIdentityProvider
from tornado import web

from .. import settings
from ..identity import ROLES, TEAM, identity_for

__all__ = [
    "CURRENT_VISITOR",
    "HubAuthorizer",
    "HubIdentityProvider",
    "OwnKernelsOnly",
    "Visitor",
    "kernel_id_of",
    "own_kernels_only",
    "without_hub_credentials",
]

NO_ROLE_MESSAGE = (
    "You are signed in as %s, but your account has no role on this platform yet. Ask an administrator "
    "to add you to one of the JupyterHub groups %s."
)


@dataclass(frozen=True)
class Visitor:
    """The signed-in user of a request, as the Hub told this server.

    Attributes
    ----------
    name : str
    groups : tuple of str
        Every Hub group of the user.
    token : str
        The user's OAuth token for this service (lets their kernel use the Dask Gateway as them).
    """

    name: str
    groups: tuple[str, ...]
    token: str

    def kernel_environment(self) -> dict[str, str]:
        """The variables that tell a kernel who its user is (read by :func:`imaging_lib.identity.current_identity`)."""
        environment = {
            settings.ACCESS.name: TEAM,
            settings.USER.name: self.name,
            settings.JUPYTERHUB_USER.name: self.name,
            settings.USER_GROUPS.name: ",".join(self.groups),
        }
        if self.token:
            environment["JUPYTERHUB_API_TOKEN"] = self.token
        return environment


CURRENT_VISITOR: contextvars.ContextVar[Visitor | None] = contextvars.ContextVar("imaging_visitor", default=None)
"""The visitor of the request being handled (set while authenticating it, read when its kernel starts)."""


def without_hub_credentials(environ: Mapping[str, str]) -> dict[str, str]:
    """``environ`` without the service's JupyterHub variables (its API token, OAuth client) nor an identity.

    Voilà gives each kernel the server's environment; a visitor's kernel must get the
    visitor's identity and token instead (:meth:`Visitor.kernel_environment`), never the
    service's.
    """
    identity = {settings.USER.name, settings.USER_GROUPS.name, settings.ACCESS.name}
    return {
        name: value
        for name, value in environ.items()
        if not name.startswith(("JUPYTERHUB_", "JPY_")) and name not in identity
    }


class HubIdentityProvider(JupyterHubIdentityProvider):
    """JupyterHub OAuth for the dashboards: users without a role are refused, and each visitor is recorded."""

    async def get_user(self, handler: web.RequestHandler) -> Any:
        """Return the Hub user of the request, or None (sign-in, or 403 when they hold no role)."""
        user = await super().get_user(handler)
        if user is None:
            return None
        model = user.hub_user
        groups = tuple(sorted(model.get("groups") or ()))
        identity = identity_for(model["name"], groups)
        if not identity.roles:
            self.log.warning("refused %s: no role (groups %s)", identity.name, list(groups))
            message = NO_ROLE_MESSAGE % (identity.name, ", ".join(ROLES))

            def refuse(*args: Any, **kwargs: Any) -> None:
                raise web.HTTPError(403, message, reason="No role")

            handler.redirect = refuse  # type: ignore[method-assign]  # @web.authenticated refuses, no sign-in loop
            handler._jupyterhub_user = None  # type: ignore[attr-defined]
            return None
        CURRENT_VISITOR.set(Visitor(identity.name, groups, self.hub_auth.get_token(handler) or ""))
        return user

    def get_handlers(self) -> list[tuple[Any, ...]]:
        """The OAuth callback and logout, under the service's prefix (Voilà adds no prefix to them)."""
        prefix = self.hub_auth.base_url
        return [(url_path_join(prefix, path), *rest) for path, *rest in super().get_handlers()]


def kernel_id_of(handler: web.RequestHandler) -> str:
    """The kernel id a request names in its path (``/api/kernels/<id>``, ``/voila/api/shutdown/<id>``), or ``""``."""
    kernel_id = handler.path_kwargs.get("kernel_id")
    if kernel_id is None and handler.path_args:
        kernel_id = handler.path_args[0]
    return str(kernel_id or "")


class OwnKernelsOnly:
    """Handler mixin: 404 for a kernel id that is not the signed-in user's (whatever the handler checks itself).

    Voilà's shutdown route asks only for a signed-in user, and kernel ids travel in page
    sources, logs and ``Referer`` headers; this check runs after sign-in, before the handler.
    """

    async def prepare(self, *args: Any, **kwargs: Any) -> None:
        """Authenticate as the handler does, then refuse another user's kernel."""
        prepared = super().prepare(*args, **kwargs)  # type: ignore[misc]
        if inspect.isawaitable(prepared):
            await prepared
        handler: Any = self
        kernel_id = kernel_id_of(handler)
        user = handler.current_user
        if user is not None and kernel_id and not handler.kernel_manager.may_use(kernel_id, user.username):
            handler.log.warning("refused %s access to kernel %s it does not own", user.username, kernel_id)
            raise web.HTTPError(404, "No such kernel")


def own_kernels_only(handler_class: type) -> type:
    """Return ``handler_class`` with :class:`OwnKernelsOnly` in front."""
    return type(f"Owned{handler_class.__name__}", (OwnKernelsOnly, handler_class), {})
