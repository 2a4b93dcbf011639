"""Role-gated controls for the dashboards: hide what the visitor's roles may not do, and say who they are.

The kernel-side check is :func:`imaging_lib.identity.require`, called first thing in each
action; it refuses a forged request whatever the page shows. This module only keeps the
page honest about it:

* :func:`gate` marks a control with the CSS classes ``imaging-gated`` and
  ``imaging-requires-<permission>`` and hides it (``display: none``) unless the kernel's
  user holds the permission. Browser tests find every gated control through these
  classes; a panel that gates a control with ``gate(button, "review")`` is covered by
  them without a test of its own.
* :class:`IdentityBar` shows who is signed in and with which roles (team mode), with
  a sign-out link.

Both follow :func:`imaging_lib.identity.bind`: a kernel that learns its visitor late (a
pre-started kernel pool) shows what that visitor may use.
"""

from __future__ import annotations

import html
import os
from typing import TypeVar

import ipywidgets

from imaging_lib.identity import Identity, current_identity, on_bind

__all__ = ["GATED_CLASS", "IdentityBar", "gate", "requires_class", "with_identity"]

GATED_CLASS = "imaging-gated"
"""CSS class of every role-gated control."""

W = TypeVar("W", bound=ipywidgets.DOMWidget)


def requires_class(permission: str) -> str:
    """The CSS class naming the permission (or role) a control needs: ``imaging-requires-<permission>``."""
    return f"imaging-requires-{permission}"


def _show(widget: ipywidgets.DOMWidget, permission: str, identity: Identity) -> None:
    widget.layout.display = None if identity.can(permission) else "none"


def gate(widget: W, permission: str) -> W:
    """Show ``widget`` only to users who may do ``permission``; mark it for tests and styles.

    Parameters
    ----------
    widget : ipywidgets.DOMWidget
        A control (button, drop zone, selector...).
    permission : str
        A permission or role of :mod:`imaging_lib.identity`.

    Returns
    -------
    widget
        The same widget.

    Raises
    ------
    ValueError
        If ``permission`` is unknown.
    """
    identity = current_identity()
    identity.can(permission)  # an unknown name raises here, at build time
    widget.add_class(GATED_CLASS)
    widget.add_class(requires_class(permission))
    _show(widget, permission, identity)
    on_bind(lambda bound: _show(widget, permission, bound))
    return widget


def _identity_html(identity: Identity) -> str:
    if not identity.team:
        return ""
    roles = ", ".join(identity.roles) or "no role"
    logout = html.escape(os.environ.get("VOILA_BASE_URL", "/") + "logout", quote=True)
    return (
        f"<div class='imaging-identity'>Signed in as <b class='imaging-identity-name'>{html.escape(identity.name)}</b>"
        f" · <span class='imaging-identity-roles'>{html.escape(roles)}</span>"
        f" · <a href='{logout}' target='_top'>Sign out</a></div>"
    )


class IdentityBar(ipywidgets.HTML):
    """ "Signed in as alice · researcher, reviewer · Sign out" (empty in single-user mode)."""

    def __init__(self) -> None:
        super().__init__(_identity_html(current_identity()))
        on_bind(lambda bound: setattr(self, "value", _identity_html(bound)))


def with_identity(panel: ipywidgets.Widget) -> ipywidgets.Widget:
    """``panel`` under an :class:`IdentityBar` in team mode; ``panel`` itself for one person."""
    return ipywidgets.VBox([IdentityBar(), panel]) if current_identity().team else panel
