"""Kernel side of a pre-started dashboard kernel being handed to its visitor.

The dashboards keep a few study browsers rendered ahead of their visitors
(:mod:`imaging_lib.dashboard.pool`). Such a kernel ran its notebook before anyone asked
for it, so when the server hands it to a visitor it runs :func:`hand_out` in the kernel,
on the shell channel (the browser cannot: Voilà drops every execute request a page
sends). :func:`hand_out` gives the kernel its Hub visitor, if any, through
:func:`imaging_lib.identity.bind`, then tells the :func:`on_hand_out` listeners, so a
panel rendered minutes ago re-reads the store before its visitor sees it.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from .identity import bind

__all__ = ["hand_out", "on_hand_out"]

_listeners: list[Callable[[], None]] = []


def on_hand_out(listener: Callable[[], None]) -> None:
    """Call ``listener()`` when this kernel is handed to its visitor (never, for a kernel started for one)."""
    _listeners.append(listener)


def hand_out(visitor_json: str) -> None:
    """Take this kernel's visitor: bind their identity (Hub sign-in), then refresh the listeners.

    Parameters
    ----------
    visitor_json : str
        ``null`` (the dashboards' token: one person), or a JSON object with ``name``,
        ``groups`` and ``token`` (their OAuth token for the service, may be empty), as the
        server learnt them from the Hub.

    Raises
    ------
    imaging_lib.errors.PermissionDenied
        If the kernel already serves another user.
    """
    visitor = json.loads(visitor_json)
    if visitor is not None:
        bind(visitor["name"], visitor["groups"], visitor.get("token") or None)
    for listener in list(_listeners):
        listener()
