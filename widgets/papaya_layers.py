"""The images of a PapayaViewer as the browser fetches them: layers, transfers, overlay models.

A :class:`Layer` is one image (the base volume or an overlay) with an id, a data version
and its encoded NIfTI parts (a downsampled preview for a large volume, and the full
image), ready to be cut into chunks. :class:`Transfers` sends the chunks a page asked
for, at most :data:`TRANSFER_WINDOW` bytes of each transfer ahead of the page's
acknowledgements, taking turns between transfers: a small mask asked for just after a
large volume arrives while the volume is still travelling, a replaced image stops
travelling at once, and a page that went away holds up nothing else. A
:class:`PapayaOverlay` is an overlay's child widget model: its display settings sync on
their own, so changing one overlay's colours or opacity sends a few bytes of state and
never voxels. An editable mask's voxels change in place by patches (see
:mod:`widgets.papaya_edit`): each counts a revision of its layer, and a later fetch sends
the voxels as they are then.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import ipywidgets
import numpy as np
import traitlets

from imaging_lib.errors import ImageTooLarge
from imaging_lib.limits import VIEWER_MAX_BYTES
from imaging_lib.volume import Volume

from .papaya_encoding import (
    CHUNK_BYTES,
    MASK_COLOURS,
    EncodedVolume,
    colour_table,
    encode_for_papaya,
    is_mask,
    preview_stride,
    voxels_3d,
)

__all__ = [
    "TRANSFER_WINDOW",
    "Layer",
    "PapayaOverlay",
    "Transfers",
    "display_settings",
    "mib",
    "over_budget",
    "overlay_changes",
    "sent_nbytes",
]

TRANSFER_WINDOW = 4 * CHUNK_BYTES
"""Bytes of one transfer sent ahead of the page's acknowledgements: enough to keep the
websocket busy, little enough that a second transfer gets its turn soon."""

Send = Callable[[dict[str, Any], list[memoryview]], None]


def mib(nbytes: int) -> str:
    """``nbytes`` in whole MiB, for messages."""
    return f"{nbytes / 1024**2:.0f} MiB"


def over_budget(source: str, nbytes: int) -> ImageTooLarge | None:
    """The error of images taking ``nbytes`` in a browser tab, over :data:`~imaging_lib.limits.VIEWER_MAX_BYTES`."""
    if nbytes <= VIEWER_MAX_BYTES:
        return None
    return ImageTooLarge(
        source,
        f"the viewer would hold {mib(nbytes)} of images in the browser, over its limit of "
        f"{mib(VIEWER_MAX_BYTES)}: show a crop or a downsampled copy (e.g. array[::2, ::2, ::2])",
    )


def sent_nbytes(array: np.ndarray) -> int:
    """Bytes ``array`` takes in the browser (64-bit integers and halves become 32-bit there)."""
    itemsize = array.dtype.itemsize
    if (array.dtype.kind in "iu" and itemsize == 8) or array.dtype == np.float16:
        itemsize = 4
    return int(array.size) * itemsize


class Layer:
    """One image the browser can fetch: its id, data version, edit revision and encoded parts.

    ``version`` names the data the browser fetches (a new version means: fetch again);
    ``revision`` counts the patches applied to an editable mask's voxels in place since
    (a fetch sends the voxels as they are then, with the revision they hold).
    """

    def __init__(self, volume: Volume, *, window: tuple[float, float] = (0.0, 0.0)) -> None:
        array = voxels_3d(volume)
        self.id = uuid.uuid4().hex
        self.version = 1
        self.revision = 0
        self.volume = volume
        self._encoded = (volume, 0)
        self.window = window
        self.full = encode_for_papaya(volume, window=window)
        stride = preview_stride(array.shape, self.full.body.nbytes)
        self.preview = encode_for_papaya(volume, stride=stride, window=window) if stride > 1 else None

    @property
    def nbytes(self) -> int:
        """Bytes the browser holds for this layer at full resolution."""
        return self.full.nbytes

    def spec(self) -> dict[str, Any]:
        """What the browser needs to know before fetching."""
        return {"id": self.id, "version": self.version, "nbytes": self.nbytes, "preview": self.preview is not None}

    def patched(self) -> int:
        """Count a patch applied to the voxels in place; returns the new revision."""
        self.revision += 1
        return self.revision

    def refresh(self) -> None:
        """Encode the voxels again if they were replaced or patched since they were last encoded.

        A 0/1 mask's encoding is a packed copy, so a fetch under way keeps sending the
        voxels as they were when it started, whatever patches arrive meanwhile.
        """
        volume, revision = self._encoded
        if volume is not self.volume or revision != self.revision:
            self.full = encode_for_papaya(self.volume, window=self.window)
            self._encoded = (self.volume, self.revision)


class PapayaOverlay(ipywidgets.Widget):
    """An overlay of a :class:`PapayaViewer`: its display settings, synced on their own.

    Voxels travel once, when the browser fetches the layer ``layer_id`` at ``version``.
    Made by :meth:`PapayaViewer.add_overlay`; change ``lut``/``colors``/``min``/``max``/
    ``alpha`` through :meth:`PapayaViewer.update_overlay`.
    """

    layer_id = traitlets.Unicode("").tag(sync=True)
    version = traitlets.Int(1).tag(sync=True)
    nbytes = traitlets.Int(0).tag(sync=True)
    name = traitlets.Unicode("").tag(sync=True)
    lut = traitlets.Unicode(None, allow_none=True).tag(sync=True)
    colors: traitlets.List[list[float]] = traitlets.List(None, allow_none=True).tag(sync=True)
    min = traitlets.Float(None, allow_none=True).tag(sync=True)
    max = traitlets.Float(None, allow_none=True).tag(sync=True)
    alpha = traitlets.Float(0.6).tag(sync=True)
    editable = traitlets.Bool(False).tag(sync=True)

    def spec(self) -> dict[str, Any]:
        """Id, name, lut, colors, min, max, alpha and editable (no voxel data)."""
        keys = ("name", "lut", "colors", "min", "max", "alpha", "editable")
        return {"id": self.layer_id, **{key: getattr(self, key) for key in keys}}


def display_settings(
    overlay: Volume,
    lut: Any,
    color: Any,
    low: float | None,
    high: float | None,
    alpha: float,
    *,
    binary: bool | None = None,
) -> dict[str, Any]:
    """Papaya settings of an overlay: named table or knots, display range, opacity.

    A 0/1 mask (``binary``; by default: if its voxels are 0 and 1) is drawn solid in its
    table's colour; an empty mask to be edited is given ``binary=True``.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must lie in [0, 1], got {alpha}")
    colors = colour_table(lut, color=color)
    binary = is_mask(np.asarray(overlay.array)) if binary is None else binary
    if color is None and colors is None and low is None and high is None and binary:
        hue = MASK_COLOURS.get(lut)
        colors = [[0.0, *hue], [1.0, *hue]] if hue else None
        low, high = 0.0, (1.0 if hue else 2.0)  # other tables: 1 maps to their middle colour
    elif colors is not None and len({tuple(k[1:]) for k in colors}) == 1 and low is None and high is None:
        low, high = 0.0, 1.0
    return {
        "lut": lut if isinstance(lut, str) and colors is None else None,
        "colors": colors,
        "min": None if low is None else float(low),
        "max": None if high is None else float(high),
        "alpha": float(alpha),
    }


def overlay_changes(lut: Any, color: Any, low: float | None, high: float | None, alpha: float | None) -> dict[str, Any]:
    """The overlay settings :meth:`PapayaViewer.update_overlay` changes (only those given)."""
    changes: dict[str, Any] = {}
    if lut is not None or color is not None:
        colors = colour_table(lut, color=color)
        changes["colors"] = colors
        changes["lut"] = lut if isinstance(lut, str) and colors is None else None
    if low is not None:
        changes["min"] = float(low)
    if high is not None:
        changes["max"] = float(high)
    if alpha is not None:
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must lie in [0, 1], got {alpha}")
        changes["alpha"] = float(alpha)
    return changes


def layer_chunks(layer: Layer, reply: Mapping[str, Any], with_preview: bool) -> Iterator[tuple[dict, list]]:
    """The messages of a fetch: the preview's chunks (when asked and there is one), then the full image's."""
    parts: list[tuple[str, EncodedVolume]] = [("full", layer.full)]
    if layer.preview is not None and with_preview:
        parts.insert(0, ("preview", layer.preview))
    for part, encoded in parts:
        described = {"part": part, "total": encoded.nbytes, "axes": list(encoded.axes), "stride": encoded.stride}
        for piece, buffers in encoded.chunks(CHUNK_BYTES):
            yield {"type": "chunk", **reply, **described, **piece}, buffers


class Transfers:
    """The fetches under way, sent in turns within :data:`TRANSFER_WINDOW` bytes each."""

    def __init__(self, send: Send, alive: Callable[[str, int], bool]) -> None:
        self._send = send
        self._alive = alive  # whether layer id, version is still shown
        self._pending: dict[str, tuple[str, int, Iterator[tuple[dict, list]]]] = {}
        self._in_flight: dict[str, int] = {}

    def start(self, transfer: str, layer: Layer, reply: Mapping[str, Any], with_preview: bool) -> None:
        """Queue the chunks of ``layer`` for the page's ``transfer`` and send what the window allows."""
        self._pending[transfer] = (layer.id, layer.version, layer_chunks(layer, reply, with_preview))
        self._in_flight[transfer] = 0
        self.pump()

    def acknowledge(self, transfer: Any, nbytes: Any) -> None:
        """The page has ``nbytes`` more of ``transfer``: send on."""
        if transfer in self._in_flight and isinstance(nbytes, int):
            self._in_flight[transfer] = max(0, self._in_flight[transfer] - nbytes)
            self.pump()

    def pump(self) -> None:
        """Send one chunk of each transfer in turn while its window allows; drop finished or stale ones."""
        moved = True
        while moved:
            moved = False
            for transfer, (layer_id, version, chunks) in list(self._pending.items()):
                if not self._alive(layer_id, version):
                    self._forget(transfer)
                    continue
                if self._in_flight[transfer] >= TRANSFER_WINDOW:
                    continue
                message = next(chunks, None)
                if message is None:
                    self._forget(transfer)
                    continue
                content, buffers = message
                self._send(content, buffers)
                self._in_flight[transfer] += sum(memoryview(b).nbytes for b in buffers)
                moved = True

    def _forget(self, transfer: str) -> None:
        self._pending.pop(transfer, None)
        self._in_flight.pop(transfer, None)
