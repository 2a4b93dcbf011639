"""The images of a PapayaViewer as the browser fetches them: layers and overlay models.

A :class:`Layer` is one image (the base volume or an overlay) with an id, a data version
and its encoded NIfTI parts (a downsampled preview for a large volume, and the full
image), ready to be cut into chunks. A :class:`PapayaOverlay` is an overlay's child widget
model: its display settings sync on their own, so changing one overlay's colours or
opacity sends a few bytes of state and never voxels. Versions leave room for patches of
changed voxels (an edit sends a diff, not the whole mask).
"""

from __future__ import annotations

import uuid
from typing import Any

import ipywidgets
import numpy as np
import traitlets

from imaging_lib.volume import Volume

from .papaya_encoding import MASK_COLOURS, colour_table, encode_for_papaya, is_mask, preview_stride, voxels_3d

__all__ = ["Layer", "PapayaOverlay", "display_settings", "mib", "sent_nbytes"]


def mib(nbytes: int) -> str:
    return f"{nbytes / 1024**2:.0f} MiB"


def sent_nbytes(array: np.ndarray) -> int:
    """Bytes of ``array`` as Papaya receives it (64-bit integers and halves become 32-bit)."""
    itemsize = array.dtype.itemsize
    if (array.dtype.kind in "iu" and itemsize == 8) or array.dtype == np.float16:
        itemsize = 4
    return int(array.size) * itemsize


class Layer:
    """One image the browser can fetch: its id, data version and encoded parts."""

    def __init__(self, volume: Volume, *, window: tuple[float, float] = (0.0, 0.0)) -> None:
        array = voxels_3d(volume)
        self.id = uuid.uuid4().hex
        self.version = 1
        self.volume = volume
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

    def spec(self) -> dict[str, Any]:
        """Id, name, lut, colors, min, max and alpha (no voxel data)."""
        keys = ("name", "lut", "colors", "min", "max", "alpha")
        return {"id": self.layer_id, **{key: getattr(self, key) for key in keys}}


def display_settings(
    overlay: Volume, lut: Any, color: Any, low: float | None, high: float | None, alpha: float
) -> dict[str, Any]:
    """Papaya settings of an overlay: named table or knots, display range, opacity."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must lie in [0, 1], got {alpha}")
    colors = colour_table(lut, color=color)
    if color is None and colors is None and low is None and high is None and is_mask(np.asarray(overlay.array)):
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
