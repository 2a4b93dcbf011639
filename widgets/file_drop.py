"""FileDrop: a drop zone for files and whole folders, whose bytes arrive in Python.

ipywidgets' ``FileUpload`` is a button without drag and drop (its file input is not even
in the page), so the dashboards use this small anywidget instead: drop files or folders
on it, or choose files or a folder. The browser checks the total against
:attr:`FileDrop.max_bytes` first, then sends the files in chunks of at most
:data:`CHUNK_BYTES` (under tornado's stock 10 MiB ``websocket_max_message_size``, so no
server setting is needed), a few chunks in flight at a time: each is acknowledged, which
bounds the memory of both ends and drives the progress shown under the zone. Python
checks every chunk again (order, sizes, the limit) before keeping it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import anywidget
import traitlets

from .assets import JS

__all__ = ["CHUNK_BYTES", "FileDrop", "Upload"]

logger = logging.getLogger(__name__)


CHUNK_BYTES = 4 * 1024**2
"""Largest piece of a file in one message from the browser."""

MAX_FILES = 100_000
"""Most files one drop may hold (a DICOM study has a few thousand)."""

Upload = tuple[str, bytes]
"""One received file: its name (relative path inside a dropped folder) and bytes."""


@dataclass
class _Incoming:
    """A drop on its way: the files announced, and the bytes received so far."""

    names: list[str]
    sizes: list[int]
    parts: list[bytearray] = field(default_factory=list)

    @property
    def received(self) -> int:
        return sum(len(part) for part in self.parts)


class FileDrop(anywidget.AnyWidget):
    """A drop zone that calls back with the dropped files.

    Parameters
    ----------
    max_bytes : int
        Largest total size of one drop; bigger drops are refused in the browser (and
        again here, chunk by chunk).
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
    chunk_bytes = traitlets.Int(CHUNK_BYTES).tag(sync=True)
    status = traitlets.Unicode("").tag(sync=True)
    busy = traitlets.Bool(False).tag(sync=True)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._callbacks: list[Callable[[list[Upload]], Any]] = []
        self._incoming: dict[str, _Incoming] = {}
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

    # ------------------------------------------------------------------ the browser's messages
    def _refuse(self, upload: str, reason: str) -> None:
        self._incoming.pop(upload, None)
        self.status = f"Refused: {reason}."
        self.send({"type": "refused", "upload": upload, "reason": reason})
        logger.warning("FileDrop: upload refused: %s", reason)

    def _start(self, upload: str, content: Mapping[str, Any]) -> None:
        names, sizes = content.get("names"), content.get("sizes")
        if not (isinstance(names, list) and isinstance(sizes, list) and len(names) == len(sizes) <= MAX_FILES):
            self._refuse(upload, "a malformed list of files")
            return
        if not all(isinstance(n, str) for n in names) or not all(isinstance(s, int) and s >= 0 for s in sizes):
            self._refuse(upload, "a malformed list of files")
            return
        if sum(sizes) > self.max_bytes:
            self._refuse(upload, f"{sum(sizes)} bytes exceed the upload limit of {self.max_bytes} bytes")
            return
        self._incoming = {upload: _Incoming(list(names), list(sizes), [bytearray() for _ in names])}
        self.send({"type": "ack", "upload": upload, "received": 0})

    def _chunk(self, upload: str, content: Mapping[str, Any], buffers: Sequence[Any]) -> None:
        incoming = self._incoming.get(upload)
        index, offset = content.get("file"), content.get("offset")
        if incoming is None or not isinstance(index, int) or not 0 <= index < len(incoming.names):
            self._refuse(upload, "a piece of an unknown file")
            return
        data = b"".join(memoryview(buffer).cast("B") for buffer in buffers)
        part = incoming.parts[index]
        if offset != len(part) or len(data) > self.chunk_bytes or len(part) + len(data) > incoming.sizes[index]:
            self._refuse(upload, f"a piece of {incoming.names[index]} out of order or larger than announced")
            return
        part += data
        self.send({"type": "ack", "upload": upload, "received": incoming.received})

    def _finish(self, upload: str) -> None:
        incoming = self._incoming.pop(upload, None)
        if incoming is None:
            return
        if [len(part) for part in incoming.parts] != incoming.sizes:
            self._refuse(upload, "files that arrived incomplete")
            return
        self.receive([(name, bytes(part)) for name, part in zip(incoming.names, incoming.parts, strict=True)])

    def _on_message(self, _widget: Any, content: Mapping[str, Any], buffers: Sequence[Any]) -> None:
        kind, upload = content.get("type"), str(content.get("upload", ""))
        if kind == "start":
            self._start(upload, content)
        elif kind == "chunk":
            self._chunk(upload, content, buffers)
        elif kind == "done":
            self._finish(upload)
