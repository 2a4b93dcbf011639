"""Who may train, cancel and promote models: the one role check of training and the registry.

Every action that changes which model the platform runs goes through :func:`require_role`:

* ``promote`` (make a model the store's default) needs the ``admin`` role;
* ``train`` and ``cancel`` (start or stop a training job) need ``researcher``.

Roles come from :func:`roles_of`. A single-user installation (a laptop, ``make demo``) has
no identity provider, so its one user holds every role. A team deployment installs its
lookup (JupyterHub groups) with :func:`set_role_lookup`; the dashboards then hide what a
role may not do (:func:`allowed`) and the library refuses it anyway (:func:`require_role`),
so a forged request from a dashboard changes nothing.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable

from ..errors import NotAllowed

__all__ = ["ACTION_ROLES", "ROLES", "allowed", "require_role", "roles_of", "set_role_lookup"]

ROLES = ("admin", "researcher", "reviewer", "viewer")
ACTION_ROLES = {"promote": "admin", "train": "researcher", "cancel": "researcher"}
"""The role each action needs."""

RoleLookup = Callable[[str], Iterable[str]]
_lookup: RoleLookup | None = None
_lock = threading.Lock()


def set_role_lookup(lookup: RoleLookup | None) -> None:
    """Install how users' roles are found (a team deployment's groups); ``None`` goes back to single-user mode."""
    global _lookup
    with _lock:
        _lookup = lookup


def roles_of(user: str) -> frozenset[str]:
    """The roles of ``user``: from the installed lookup, else every role (single-user mode)."""
    with _lock:
        lookup = _lookup
    return frozenset(ROLES) if lookup is None else frozenset(lookup(user))


def _current(user: str | None) -> str:
    from ..store.records import current_user

    return user or current_user()


def allowed(action: str, user: str | None = None) -> bool:
    """Whether ``user`` (default the current user) may do ``action`` (a key of :data:`ACTION_ROLES`).

    Raises
    ------
    ValueError
        If ``action`` is unknown.
    """
    if action not in ACTION_ROLES:
        raise ValueError(f"unknown action {action!r}; known: {sorted(ACTION_ROLES)}")
    return ACTION_ROLES[action] in roles_of(_current(user))


def require_role(action: str, user: str | None = None) -> str:
    """Return the acting user if they may do ``action``, else refuse.

    Parameters
    ----------
    action : str
        ``"promote"``, ``"train"`` or ``"cancel"``.
    user : str, optional
        Who asks; default :func:`imaging_lib.store.records.current_user`.

    Returns
    -------
    str
        The user name (to record as ``created_by``).

    Raises
    ------
    NotAllowed
        If the user lacks the role the action needs.
    """
    who = _current(user)
    if not allowed(action, who):
        raise NotAllowed(who, f"{action} needs the {ACTION_ROLES[action]} role")
    return who
