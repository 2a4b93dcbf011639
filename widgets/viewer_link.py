"""Linked PapayaViewers: moving in one moves the others to the same world position."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .papaya import PapayaViewer

__all__ = ["ViewerLink", "link_viewers"]


class ViewerLink:
    """Keeps several viewers at the same world position; :meth:`unlink` stops it."""

    def __init__(self, viewers: Sequence[PapayaViewer]) -> None:
        if len(viewers) < 2:
            raise ValueError("link at least two viewers")
        self.viewers = tuple(viewers)
        self._moving = False
        for viewer in self.viewers:
            viewer.observe(self._follow, names="coordinate")

    def _follow(self, change: Mapping[str, Any]) -> None:
        if self._moving or not change["new"]:
            return
        self._moving = True
        try:
            world = change["new"]["world"]
            for viewer in self.viewers:
                if viewer is change["owner"] or viewer.volume is None:
                    continue
                if viewer.volume.contains(viewer.volume.world_to_voxel(world)):
                    viewer.goto(world=world)
        finally:
            self._moving = False

    def unlink(self) -> None:
        """Stop following."""
        for viewer in self.viewers:
            viewer.unobserve(self._follow, names="coordinate")


def link_viewers(*viewers: PapayaViewer) -> ViewerLink:
    """Link viewers so that moving in one moves the others to the same world position.

    Returns
    -------
    ViewerLink
        Call ``.unlink()`` to stop.
    """
    return ViewerLink(viewers)
