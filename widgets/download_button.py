"""DownloadButton: a button that sends one store object to the browser as a file download.

The bytes are read only when the button is clicked and travel over the kernel's
websocket (which answers only to the dashboard's token), so no store path is ever
exposed as a URL. Used for reports (HTML, PDF), de-identified NIfTI volumes and masks.
"""

from __future__ import annotations

import logging
import mimetypes
import posixpath
from collections.abc import Mapping
from typing import Any

import anywidget
import traitlets

from imaging_lib.errors import ImagingError

from .assets import JS

__all__ = ["DownloadButton", "mime_type"]

logger = logging.getLogger(__name__)


_MIME = {
    ".gz": "application/gzip",
    ".nii": "application/octet-stream",
    ".pdf": "application/pdf",
    ".html": "text/html",
    ".ipynb": "application/x-ipynb+json",
    ".json": "application/json",
}


def mime_type(filename: str) -> str:
    """Return the media type a browser should save ``filename`` with."""
    suffix = posixpath.splitext(filename)[1].lower()
    return _MIME.get(suffix) or mimetypes.guess_type(filename)[0] or "application/octet-stream"


class DownloadButton(anywidget.AnyWidget):
    """A button that downloads the store object ``key`` as ``filename``.

    Parameters
    ----------
    store : imaging_lib.store.Store
    key : str
        Store key of the object.
    description : str
        Button label.
    filename : str, optional
        Name the browser saves the file as; default the key's last segment.

    Attributes
    ----------
    downloads : int
        How many times the bytes were sent.
    """

    _esm = JS / "download_button.js"

    description = traitlets.Unicode().tag(sync=True)
    filename = traitlets.Unicode().tag(sync=True)

    def __init__(self, store: Any, key: str, description: str, filename: str | None = None) -> None:
        super().__init__(description=description, filename=filename or posixpath.basename(key))
        self.store = store
        self.key = key
        self.downloads = 0
        self.on_msg(self._on_message)

    def payload(self) -> tuple[dict[str, str], bytes]:
        """Return the message and bytes a click sends.

        Raises
        ------
        imaging_lib.errors.MissingRecord
            If the object is no longer in the store.
        """
        data = self.store.read_bytes(self.key)
        return {"type": "file", "filename": self.filename, "mime": mime_type(self.filename)}, data

    def _on_message(self, _widget: Any, content: Mapping[str, Any], _buffers: Any) -> None:
        if content.get("type") != "download":
            return
        try:
            message, data = self.payload()
        except (ImagingError, OSError) as exc:
            logger.warning("download of %s failed: %s", self.key, exc)
            self.send({"type": "error", "error": f"not available: {exc}"})
            return
        self.send(message, buffers=[data])
        self.downloads += 1
