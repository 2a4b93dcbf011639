"""Who is acting in this process, which roles they hold, and what those roles allow.

A team deployment signs people in with JupyterHub and gives them roles through Hub
groups. The *server* tells each process who its user is, never the browser:

* in a researcher's JupyterLab, the Hub's spawner sets ``JUPYTERHUB_USER`` and
  ``IMAGING_USER_GROUPS`` (see :mod:`imaging_lib.hub.config`);
* in a dashboard kernel, the dashboards' Voilà service asks the Hub who owns the
  visitor's OAuth token and starts the kernel with ``IMAGING_USER`` and
  ``IMAGING_USER_GROUPS`` (see :mod:`imaging_lib.dashboard.hub_auth`).

Both set ``IMAGING_ACCESS=team``. Without it (``single-user``, the default: one person
on a laptop behind the dashboards' token) the user holds every permission.

Roles are the Hub groups of :data:`ROLES`; a user may be in several and holds the union
of their permissions. A user in none has no permission at all, not even ``view``.

============  ==============================================================
role          permissions
============  ==============================================================
researcher    view, upload, run_batch, segment, train, export, notebooks
reviewer      view, segment, review
viewer        view
uploader      view, upload (a viewer who may also upload: add both groups)
admin         every permission, among them promote, manage_keys, select_cluster
============  ==============================================================

Panels call :func:`require` on the kernel side before every action that writes, so a
forged websocket message is refused whatever the page showed, and :func:`can` to hide
the controls a role may not use. :func:`bind` gives a kernel started before its visitor
was known (a pre-started kernel pool) its visitor; :func:`on_bind` lets widgets follow.
"""

from __future__ import annotations

import getpass
import logging
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from . import settings
from .errors import PermissionDenied

__all__ = [
    "PERMISSIONS",
    "ROLES",
    "TEAM",
    "Identity",
    "bind",
    "can",
    "current_identity",
    "identity_for",
    "on_bind",
    "parse_groups",
    "require",
    "user_name",
]

log = logging.getLogger(__name__)

TEAM = "team"
"""The value of ``IMAGING_ACCESS`` that turns roles on."""

PERMISSIONS: dict[str, str] = {
    "view": "see the dashboards",
    "upload": "upload studies",
    "run_batch": "start a batch",
    "segment": "save segmentations",
    "review": "accept, reject or edit results and labels",
    "train": "train models",
    "export": "export results",
    "promote": "promote a model to the default",
    "manage_keys": "manage keys",
    "select_cluster": "choose where batches run",
    "notebooks": "use notebooks (JupyterLab)",
}
"""Every permission, with the words error messages use for it."""

ROLES: dict[str, frozenset[str]] = {
    "researcher": frozenset({"view", "upload", "run_batch", "segment", "train", "export", "notebooks"}),
    "reviewer": frozenset({"view", "segment", "review"}),
    "viewer": frozenset({"view"}),
    "uploader": frozenset({"view", "upload"}),
    "admin": frozenset(PERMISSIONS),
}
"""Hub group name -> the permissions it grants."""

_bound_listeners: list[Callable[[Identity], None]] = []


def parse_groups(value: str | Iterable[str] | None) -> frozenset[str]:
    """Return the group names of a comma-separated string (or an iterable), stripped, empty ones dropped."""
    parts = value.split(",") if isinstance(value, str) else (value or ())
    return frozenset(part.strip() for part in parts if part and part.strip())


@dataclass(frozen=True)
class Identity:
    """A user, their Hub groups, and whether roles apply.

    Attributes
    ----------
    name : str
        The user name records carry (``provenance.created_by``).
    groups : frozenset of str
        Every Hub group of the user (those that are not roles are ignored).
    team : bool
        Roles apply (``IMAGING_ACCESS=team``); else the user holds every permission.
    """

    name: str
    groups: frozenset[str] = frozenset()
    team: bool = True

    @property
    def roles(self) -> tuple[str, ...]:
        """The user's groups that are roles, in the order of :data:`ROLES`."""
        if not self.team:
            return ("admin",)
        return tuple(role for role in ROLES if role in self.groups)

    @property
    def permissions(self) -> frozenset[str]:
        """Every permission the user's roles grant."""
        return frozenset().union(*(ROLES[role] for role in self.roles))

    def can(self, permission: str) -> bool:
        """Whether the user may do ``permission``, or holds the role of that name.

        Raises
        ------
        ValueError
            If ``permission`` is neither a permission nor a role (a typo must not pass or fail silently).
        """
        if permission in ROLES:
            return permission in self.roles
        if permission not in PERMISSIONS:
            raise ValueError(f"unknown permission or role {permission!r}; known: {', '.join([*PERMISSIONS, *ROLES])}")
        return permission in self.permissions

    def describe(self) -> str:
        """``"alice (researcher, reviewer)"``, ``"carol (no role)"`` or ``"dan (single-user)"``."""
        if not self.team:
            return f"{self.name} (single-user)"
        return f"{self.name} ({', '.join(self.roles) or 'no role'})"


def _roles_with(permission: str) -> list[str]:
    return [role for role, granted in ROLES.items() if permission in granted or permission == role]


def user_name(environ: Mapping[str, str] | None = None) -> str:
    """Who is acting: ``IMAGING_USER``, else ``JUPYTERHUB_USER``, else the operating-system user.

    In team mode there is no fallback to the operating-system user: a process the
    server gave no user gets ``""`` (and no role).
    """
    environ = os.environ if environ is None else environ
    name = settings.read(settings.USER, environ) or settings.read(settings.JUPYTERHUB_USER, environ)
    if name:
        return name
    return "" if settings.read(settings.ACCESS, environ) == TEAM else getpass.getuser()


def current_identity(environ: Mapping[str, str] | None = None) -> Identity:
    """Return who acts in this process, read now (a bound kernel is seen at once).

    Parameters
    ----------
    environ : mapping, optional
        Default ``os.environ``.

    Raises
    ------
    ValueError
        If ``IMAGING_ACCESS`` is neither ``single-user`` nor ``team``.
    """
    environ = os.environ if environ is None else environ
    access = settings.read(settings.ACCESS, environ)
    if access not in (TEAM, settings.ACCESS.default):
        raise ValueError(f"{settings.ACCESS.name} must be 'single-user' or 'team', not {access!r}")
    return Identity(user_name(environ), parse_groups(settings.read(settings.USER_GROUPS, environ)), team=access == TEAM)


def identity_for(name: str, groups: Iterable[str]) -> Identity:
    """The team identity of a Hub user with these groups."""
    return Identity(name, parse_groups(groups), team=True)


def can(permission: str, identity: Identity | None = None) -> bool:
    """Whether ``identity`` (default :func:`current_identity`) may do ``permission`` (or holds that role)."""
    return (identity or current_identity()).can(permission)


def require(permission: str, identity: Identity | None = None) -> Identity:
    """Refuse unless ``identity`` (default :func:`current_identity`) may do ``permission``.

    Call it on the kernel side first thing in every action that writes: it is what
    refuses a forged request, whatever the page showed. A refusal is logged.

    Parameters
    ----------
    permission : str
        A key of :data:`PERMISSIONS`, or a role name of :data:`ROLES`.
    identity : Identity, optional
        Default :func:`current_identity`.

    Returns
    -------
    Identity
        The identity allowed (its ``name`` is who to record).

    Raises
    ------
    PermissionDenied
        If the user's roles do not allow it; the message names the roles that would.
    ValueError
        If ``permission`` is unknown.
    """
    identity = identity or current_identity()
    if identity.can(permission):
        return identity
    what = PERMISSIONS.get(permission, f"act as {permission}")
    needed = " or ".join(_roles_with(permission))
    error = PermissionDenied(
        f"user {identity.name or '(nobody)'}",
        f"may not {what}: that needs the role {needed}; this account has {', '.join(identity.roles) or 'no role'}",
    )
    log.warning("refused: %s", error)
    raise error


def bind(name: str, groups: Iterable[str], hub_token: str | None = None) -> Identity:
    """Give this process (a kernel started before its visitor was known) its team user.

    The server calls it, on the kernel's shell channel, when it hands a pre-started
    kernel to a visitor; a visitor cannot (Voilà lets no execute request through from
    the browser). It sets the same variables a kernel started for the visitor gets, so
    records, Dask workers started later and :func:`current_identity` agree, then tells
    :func:`on_bind` listeners.

    Raises
    ------
    PermissionDenied
        If the process already acts for another user: a kernel serves one visitor.
    """
    current = user_name()
    if settings.read(settings.ACCESS) == TEAM and current and current != name:
        raise PermissionDenied(f"user {name}", f"this kernel already serves {current}")
    os.environ.update(
        {
            settings.ACCESS.name: TEAM,
            settings.USER.name: name,
            settings.JUPYTERHUB_USER.name: name,
            settings.USER_GROUPS.name: ",".join(sorted(parse_groups(groups))),
        }
    )
    if hub_token:
        os.environ["JUPYTERHUB_API_TOKEN"] = hub_token
    identity = current_identity()
    for listener in list(_bound_listeners):
        listener(identity)
    return identity


def on_bind(listener: Callable[[Identity], None]) -> None:
    """Call ``listener(identity)`` whenever :func:`bind` gives this process a user."""
    _bound_listeners.append(listener)
