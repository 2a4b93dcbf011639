"""Play a page of the PapayaViewer in Python: fetch a layer, join its chunks, send edits.

The browser's requests are played by calling the widget's message handler with the
messages the front end sends (``widgets/js/``); what the kernel would send is recorded
(``viewer.send`` is replaced).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from widgets.papaya_patches import patch_messages, runs_from_indices

if TYPE_CHECKING:
    from widgets.papaya import PapayaViewer

__all__ = ["ORIGIN", "Page", "assemble", "fetch", "nbytes"]

ORIGIN = "page-test"
"""The played page's id (its patches' ``origin``)."""


def nbytes(buffers) -> int:
    return sum(memoryview(b).nbytes for b in buffers)


def fetch(viewer: PapayaViewer, layer: str, version: int = 1, preview: bool = False) -> list[tuple[dict, list]]:
    """Play the browser asking for a layer and acknowledging each chunk; return what the kernel sent."""
    sent: list[tuple[dict, list]] = []
    viewer.send = lambda content, buffers=None: sent.append((content, list(buffers or [])))  # type: ignore[method-assign]
    request = {"type": "fetch", "layer": layer, "version": version, "preview": preview, "transfer": "t1"}
    viewer._handle_browser_message(viewer, request, [])
    acknowledged = 0
    while acknowledged < len(sent):
        content, buffers = sent[acknowledged]
        acknowledged += 1
        if content["type"] == "chunk":
            viewer._handle_browser_message(viewer, {"type": "ack", "transfer": "t1", "bytes": nbytes(buffers)}, [])
    del viewer.send
    return sent


def assemble(messages: list[tuple[dict, list]], part: str = "full") -> tuple[bytes, dict]:
    """Join the chunks of one part as the browser does; return the file and its description."""
    chunks = [(content, buffers) for content, buffers in messages if content.get("part") == part]
    assert chunks, f"no {part} chunks"
    file = bytearray(chunks[0][0]["total"])
    for content, buffers in chunks:
        offset = content["offset"]
        for buffer in buffers:
            view = memoryview(buffer).cast("B")
            if content["encoding"] == "bits":
                voxels = np.unpackbits(np.frombuffer(view, np.uint8), count=content["voxels"], bitorder="little")
                file[offset : offset + voxels.size] = voxels.tobytes()
                offset += voxels.size
            else:
                file[offset : offset + view.nbytes] = view
                offset += view.nbytes
    return bytes(file), chunks[0][0]


class Page:
    """Records what the kernel sends and plays a page's messages."""

    def __init__(self, viewer: PapayaViewer) -> None:
        self.viewer = viewer
        self.sent: list[tuple[dict, list]] = []
        viewer.send = lambda content, buffers=None: self.sent.append((content, list(buffers or [])))  # type: ignore[method-assign]

    def take(self) -> list[tuple[dict, list]]:
        sent, self.sent = self.sent, []
        return sent

    def message(self, content: dict, buffers=()) -> list[tuple[dict, list]]:
        self.viewer._handle_browser_message(self.viewer, content, list(buffers))
        return self.take()

    def patch(self, layer: str, base: int, indices, values, tool: str = "brush", **extra) -> list[tuple[dict, list]]:
        runs, run_values = runs_from_indices(np.asarray(indices), np.broadcast_to(values, np.shape(indices)))
        header = {"type": "patch", "layer": layer, "version": self.version(layer), "base": base,
                  "revision": base + 1, "tool": tool, "origin": ORIGIN, **extra}  # fmt: skip
        replies = []
        for content, buffers in patch_messages(runs, run_values, header):
            replies += self.message(content, buffers)
        return replies

    def version(self, layer: str) -> int:
        return self.viewer._overlay_model(layer).version
