"""ClusterSelector: where a batch started from the dashboards runs, and (for admins) a choice of Dask profile.

Everyone sees the sentence "A batch started here runs on ..." for the kernel's current
profile (:func:`imaging_lib.jobs.cluster.describe_profile`). Admins (the
``select_cluster`` permission) also get a drop-down of :data:`~imaging_lib.jobs.cluster.PROFILES`;
choosing one calls :func:`~imaging_lib.jobs.cluster.select_profile` for this kernel. A
change sent by anyone else (a forged websocket message) is refused there and the
drop-down goes back to the profile in use.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from typing import Any

import ipywidgets

from imaging_lib.errors import PermissionDenied
from imaging_lib.jobs.cluster import PROFILES, describe_profile, resolve_profile, select_profile

from .access import gate

__all__ = ["ClusterSelector"]


class ClusterSelector(ipywidgets.VBox):
    """The sentence saying where batches run, and the admins' profile drop-down.

    Attributes
    ----------
    profile : ipywidgets.Dropdown
        The profile drop-down (hidden unless the user may ``select_cluster``).
    where : ipywidgets.HTML
        The sentence.
    """

    def __init__(self) -> None:
        self.profile = gate(
            ipywidgets.Dropdown(options=list(PROFILES), value=resolve_profile(), description="Run batches on"),
            "select_cluster",
        )
        self.where = ipywidgets.HTML()
        self._reverting = False
        super().__init__([self.profile, self.where])
        self.profile.observe(self._on_change, names="value")
        self.show()

    def show(self) -> None:
        """Say where a batch started now runs."""
        self.where.value = f"<p class='job-cluster'>A batch started here runs on {html.escape(describe_profile())}.</p>"

    def _on_change(self, change: Mapping[str, Any]) -> None:
        if self._reverting:
            return
        try:
            select_profile(change["new"])
        except PermissionDenied:
            self._reverting = True
            try:
                self.profile.value = resolve_profile()
            finally:
                self._reverting = False
        self.show()
