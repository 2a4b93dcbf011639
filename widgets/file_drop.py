"""FileDrop: a drop zone for files and whole folders, whose bytes arrive in Python.

ipywidgets' ``FileUpload`` is a button without drag and drop (its file input is not even
in the page), so the dashboards use this small anywidget instead: drop files or folders
on it, or choose files or a folder. Everything dropped at once reaches Python as one
message over the kernel's websocket, checked against :attr:`FileDrop.max_bytes` in the
browser first (the server refuses messages over ``websocket_max_message_size``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import anywidget
import traitlets

from .assets import JS

__all__ = ["FileDrop", "Upload"]

logger = logging.getLogger(__name__)


Upload = tuple[str, bytes]
"""One received file: its name (relative path inside a dropped folder) and bytes."""


class FileDrop(anywidget.AnyWidget):
    """A drop zone that calls back with the dropped files.

    Parameters
    ----------
    max_bytes : int
        Largest total size of one drop; bigger drops are refused in the browser.
    prompt : str
        Text in the zone (the limit is appended).

    Traits
    ------
    status : str
        Line shown under the zone.
    busy : bool
        Grey the zone out and ignore drops (while a drop is processed).
    """

    _esm = JS / "file_drop.js"
    _css = JS / "file_drop.css"

    prompt = traitlets.Unicode("Drop DICOM files, folders, zip archives or NIfTI volumes here").tag(sync=True)
    max_bytes = traitlets.Int(1 << 30).tag(sync=True)
    status = traitlets.Unicode("").tag(sync=True)
    busy = traitlets.Bool(False).tag(sync=True)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._callbacks: list[Callable[[list[Upload]], Any]] = []
        self.on_msg(self._on_message)

    def on_files(self, callback: Callable[[list[Upload]], Any]) -> None:
        """Call ``callback(files)`` with the ``(name, bytes)`` pairs of every drop."""
        self._callbacks.append(callback)

    def receive(self, files: Sequence[Upload]) -> None:
        """Hand ``files`` to the callbacks, as a drop in the browser does."""
        total = sum(len(data) for _name, data in files)
        if total > self.max_bytes:
            self.status = f"Refused: {total} bytes exceed the upload limit of {self.max_bytes} bytes."
            return
        for callback in self._callbacks:
            callback(list(files))

    def _on_message(self, _widget: Any, content: Mapping[str, Any], buffers: Sequence[Any]) -> None:
        if content.get("type") != "files":
            return
        names = list(content.get("names") or [])
        if len(names) != len(buffers):
            logger.warning("FileDrop: %d names for %d buffers; drop ignored", len(names), len(buffers))
            return
        self.receive([(str(name), bytes(buffer)) for name, buffer in zip(names, buffers, strict=True)])
