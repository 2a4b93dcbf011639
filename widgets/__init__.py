"""Jupyter widgets of the platform: the Papaya viewer and the panels built on it."""

from .papaya import PapayaViewer
from .viewer_link import ViewerLink, link_viewers

__all__ = ["PapayaViewer", "ViewerLink", "link_viewers"]
