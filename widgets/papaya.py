"""PapayaViewer: the Papaya medical image viewer as a Jupyter widget (anywidget).

The widget works in JupyterLab, Notebook 7 and Voilà, offline and on stock servers: the
front end (``widgets/static/papaya_widget.js``, built from ``widgets/js/`` by ``npm run
build``) embeds Papaya from npm ``papaya-viewer``.

Voxels never travel in the widget's state. Each image (the base volume and every
overlay) is a *layer* with an id and a version; the browser asks for the layers it lacks
(``{"type": "fetch"}``) and the kernel answers with uncompressed NIfTI-1 bytes in binary
messages of at most :data:`~widgets.papaya_encoding.CHUNK_BYTES` (under tornado's
10 MiB ``websocket_max_message_size``, whichever way a front end sends state), cut from
the voxel array's own memory. A volume over
:data:`~widgets.papaya_encoding.PROGRESSIVE_BYTES` sends a downsampled preview first.
Each overlay is its own child model (:class:`PapayaOverlay`): adding one sends its bytes
once, changing its colours or opacity sends a few bytes of state, removing it sends
nothing more. A mask overlay can be edited in the page (:mod:`widgets.papaya_edit`):
only the changed voxels travel, as patches, both ways.

Papaya shows the voxel grid reoriented to its own display orientation. The browser
reports positions as the volume's own voxel indices ``(i, j, k)``, and world positions
are computed here from the volume's true affine, so clicks and :meth:`PapayaViewer.goto`
agree with :class:`imaging_lib.volume.Volume` exactly, oblique volumes included (Papaya
is given the nearest non-oblique affine, so it never resamples).
"""

from __future__ import annotations

import itertools
import logging
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import anywidget
import ipywidgets
import numpy as np
import traitlets

from imaging_lib.errors import MissingDependency, UnsupportedImage
from imaging_lib.volume import Volume

from .papaya_edit import EDIT_MESSAGES, MaskEditing
from .papaya_encoding import (
    PAPAYA_LUTS,
    ImageLike,
    as_volume,
    check_same_grid,
    colour_table,
    display_affine,
    encode_for_papaya,
    is_mask,
    single_plane,
    voxel_range,
    voxels_3d,
)
from .papaya_layers import Layer, PapayaOverlay, Transfers, display_settings, over_budget, overlay_changes, sent_nbytes

__all__ = [
    "BUNDLE",
    "PAPAYA_LUTS",
    "PapayaOverlay",
    "PapayaViewer",
    "as_volume",
    "colour_table",
    "display_affine",
    "encode_for_papaya",
    "is_mask",
]

logger = logging.getLogger(__name__)

STATIC = Path(__file__).resolve().parent / "static"
BUNDLE = STATIC / "papaya_widget.js"
BUNDLE_CSS = STATIC / "papaya_widget.css"

ClickCallback = Callable[[tuple[int, int, int], tuple[float, float, float], float], Any]


# ---------------------------------------------------------------------- the widget
class PapayaViewer(MaskEditing, anywidget.AnyWidget):
    """An interactive Papaya viewer of a 3D volume with overlays, clicks back to Python.

    Parameters
    ----------
    volume : Volume, path, nibabel image or numpy array, optional
        The base image (see :meth:`show`).
    overlays : iterable, optional
        Overlays to add, each an image or an ``(image, options)`` pair where ``options``
        are :meth:`add_overlay` keyword arguments.
    affine : array_like, optional
        Affine of a numpy ``volume``.
    **kwargs
        Trait values: ``window_min``/``window_max``, ``toolbar``, ``main_view``, ``layout``...

    Raises
    ------
    MissingDependency
        If the front end bundle has not been built (``npm ci && npm run build``).
    ImageTooLarge
        If the images would take more than :data:`imaging_lib.limits.VIEWER_MAX_BYTES`
        of browser memory.

    Traits
    ------
    coordinate : dict
        Current position: ``{"ijk": (i, j, k), "world": (x, y, z), "value": v}`` (world in
        RAS+ mm from the volume's affine, value of the base image), updated on clicks,
        drags, keyboard moves and :meth:`goto`.
    busy, busy_message : bool, str
        Show a spinner with the message over the viewer (e.g. while segmenting).
    painted : dict
        The browser's last report that every image was drawn at full resolution:
        ``volume_id``, ``overlays``, ``load_ms`` (browser time to load and draw),
        ``wait_ms`` (time the browser waited for bytes) and ``received`` (``time.time()``).
    error : Exception or None
        What went wrong last in the browser (an :class:`~imaging_lib.errors.UnsupportedImage`
        when Papaya cannot read an image); the widget shows it too. ``last_error`` holds
        its message.
    edit_overlay, edit_tool, brush_mm, brush_depth
        The edit mode (see :class:`~widgets.papaya_edit.MaskEditing`: :meth:`edit`,
        :meth:`mask`, :meth:`patch_mask`, :meth:`set_mask`).
    """

    # The bundle path; None when it is not built (anywidget reads files when the class is
    # made and would fail on import): the constructor then raises MissingDependency.
    _esm = BUNDLE if BUNDLE.exists() else None
    _css = BUNDLE_CSS if BUNDLE_CSS.exists() else None

    _viewer_id = traitlets.Unicode("").tag(sync=True)
    _volume = traitlets.Dict().tag(sync=True)
    _overlays = traitlets.List(traitlets.Instance(PapayaOverlay)).tag(sync=True, **ipywidgets.widget_serialization)
    _cursor = traitlets.Dict().tag(sync=True)
    _notice = traitlets.Unicode("").tag(sync=True)
    window_min = traitlets.Float(None, allow_none=True).tag(sync=True)
    window_max = traitlets.Float(None, allow_none=True).tag(sync=True)
    busy = traitlets.Bool(False).tag(sync=True)
    busy_message = traitlets.Unicode("Working…").tag(sync=True)
    toolbar = traitlets.Bool(False).tag(sync=True)
    main_view = traitlets.Enum(("axial", "coronal", "sagittal"), "axial").tag(sync=True)

    coordinate = traitlets.Dict()
    painted = traitlets.Dict()
    last_error = traitlets.Unicode("")
    error = traitlets.Instance(Exception, allow_none=True)

    def __init__(
        self,
        volume: ImageLike | None = None,
        overlays: Iterable[Any] = (),
        *,
        affine: Any = None,
        **kwargs: Any,
    ) -> None:
        if not BUNDLE.exists():
            raise MissingDependency(
                str(BUNDLE), "the viewer's front end is not built: run `npm ci && npm run build` (or `make install`)"
            )
        super().__init__(_viewer_id=uuid.uuid4().hex, **kwargs)
        self.volume: Volume | None = None
        self._base: Layer | None = None
        self._overlay_layers: dict[str, Layer] = {}
        self._transfers = Transfers(self._send_chunk, self._layer_alive)
        self._cursor_seq = itertools.count(1)
        self._click_handlers = ipywidgets.CallbackDispatcher()
        self._start_editing()
        self.on_msg(self._handle_browser_message)
        if volume is not None:
            self.show(volume, affine=affine)
            for overlay in overlays:
                image, options = overlay if isinstance(overlay, tuple) else (overlay, {})
                self.add_overlay(image, **options)

    # ------------------------------------------------------------------ images
    def _refuse_if_too_large(self, source: str, nbytes: int) -> None:
        error = over_budget(source, nbytes)
        if error is not None:
            self._notice = str(error)
            raise error

    def show(self, volume: ImageLike, *, affine: Any = None) -> PapayaViewer:
        """Show a new base image; overlays of the previous one are removed.

        Parameters
        ----------
        volume : Volume, str, os.PathLike, nibabel image or numpy.ndarray
            See :func:`as_volume`.
        affine : array_like, optional
            Affine of a numpy array.

        Returns
        -------
        PapayaViewer
            ``self``, so that ``PapayaViewer().show(v)`` displays in a cell.

        Raises
        ------
        ImageTooLarge
            If the volume would take more than :data:`imaging_lib.limits.VIEWER_MAX_BYTES`
            in the browser (the widget shows the message too).
        InvalidGeometry
            If the volume is not 3D.
        """
        volume = as_volume(volume, affine)
        array = voxels_3d(volume)
        source = str(volume.metadata.get("source", "<volume>"))
        self._refuse_if_too_large(source, sent_nbytes(array))  # before any work on a huge array
        base = Layer(volume, window=voxel_range(array))
        self._refuse_if_too_large(source, base.nbytes)
        previous = list(self._overlays)
        self.volume = volume
        self._base = base
        self._overlay_layers = {}
        centre = [int(n) // 2 for n in volume.shape[:3]]
        with self.hold_sync():
            self._overlays = []
            self._volume = {
                **base.spec(),
                "shape": list(array.shape),
                "spacing": [float(s) for s in volume.spacing],
                "plane": single_plane(array.shape, display_affine(volume.affine)),
            }
            self._cursor = {"ijk": centre, "seq": next(self._cursor_seq)}
            self._notice = ""
        for overlay in previous:
            overlay.close()
        self.coordinate = self._position(centre)
        return self

    def add_overlay(
        self,
        volume: ImageLike,
        lut: Any = "Red Overlay",
        min: float | None = None,
        max: float | None = None,
        alpha: float = 0.6,
        *,
        color: Any = None,
        name: str | None = None,
        affine: Any = None,
        editable: bool = False,
    ) -> str:
        """Draw a volume over the base image; only its own bytes travel, once.

        Voxels at or below ``min`` are transparent; values from ``min`` to ``max`` run
        through the colour table. A 0/1 mask shows solid in the table's colour (red for
        ``"Red Overlay"``) unless ``min``/``max`` are given.

        Parameters
        ----------
        volume : image
            Overlay on the same voxel grid as the base image (a mask, a heat map...).
        lut : str, knots or matplotlib colormap
            A Papaya table name (:data:`PAPAYA_LUTS`), custom knots ``[[pos, r, g, b], ...]``
            or a matplotlib colormap or its name.
        min, max : float, optional
            Display range; Papaya picks one from the data when omitted.
        alpha : float
            Opacity in [0, 1].
        color : colour, optional
            Draw every shown voxel in this one colour (name, ``#rrggbb`` or RGB).
        name : str, optional
            Label of the overlay; adding another with the same name replaces it.
        affine : array_like, optional
            Affine of a numpy array (defaults to the base image's).
        editable : bool
            A 0/1 mask (possibly empty) to :meth:`edit`: drawn solid, held as Python's own copy.

        Returns
        -------
        str
            The overlay's id, for :meth:`remove_overlay`.

        Raises
        ------
        RuntimeError
            If no base image is shown yet.
        InvalidGeometry
            If the overlay's grid differs from the base image's.
        ImageTooLarge
            If the images would take more than :data:`imaging_lib.limits.VIEWER_MAX_BYTES`.
        ValueError
            For a bad colour table or alpha.
        InvalidLabel
            If ``editable`` and the overlay holds values other than 0 and 1.
        """
        if self.volume is None or self._base is None:
            raise RuntimeError("show() a base image before adding overlays")
        if isinstance(volume, np.ndarray) and affine is None:
            affine = self.volume.affine
        overlay = as_volume(volume, affine)
        check_same_grid(self.volume, overlay)
        settings = display_settings(overlay, lut, color, min, max, alpha, binary=True if editable else None)
        replaced = [model for model in self._overlays if name is not None and model.name == name]
        kept_bytes = sum(self._overlay_layers[m.layer_id].nbytes for m in self._overlays if m not in replaced)
        source = str(overlay.metadata.get("source", name or "<overlay>"))
        self._refuse_if_too_large(source, self._base.nbytes + kept_bytes + sent_nbytes(voxels_3d(overlay)))
        layer = Layer(overlay)
        model = PapayaOverlay(
            layer_id=layer.id,
            version=layer.version,
            nbytes=layer.nbytes,
            name=name or f"overlay {len(self._overlays) + 1}",
            **settings,
        )
        self._overlay_layers[layer.id] = layer
        self._set_overlays([*(m for m in self._overlays if m not in replaced), model])
        if editable:
            self._editable(layer.id)
        return layer.id

    def _set_overlays(self, models: list[PapayaOverlay]) -> None:
        """Show ``models`` (bottom to top), closing the ones that go."""
        gone = [model for model in self._overlays if model not in models]
        self._overlays = models
        self._forget_edits([model.layer_id for model in gone])
        for model in gone:
            self._overlay_layers.pop(model.layer_id, None)
            model.close()

    def _overlay_model(self, overlay: str) -> PapayaOverlay:
        for model in self._overlays:
            if overlay in (model.layer_id, model.name):
                return model
        raise KeyError(f"no overlay with id or name {overlay!r}")

    def remove_overlay(self, overlay: str | None = None) -> None:
        """Remove an overlay by id or name, or every overlay when ``overlay`` is None.

        Nothing but the new list of overlays travels to the browser.

        Raises
        ------
        KeyError
            If no overlay has that id or name.
        """
        if overlay is None:
            self._set_overlays([])
            return
        model = self._overlay_model(overlay)
        self._set_overlays([m for m in self._overlays if m is not model])

    def update_overlay(
        self,
        overlay: str,
        *,
        lut: Any = None,
        min: float | None = None,
        max: float | None = None,
        alpha: float | None = None,
        color: Any = None,
    ) -> None:
        """Change how an overlay is drawn; its voxels do not travel again.

        Parameters
        ----------
        overlay : str
            Id or name.
        lut, color : see :meth:`add_overlay`
            A new colour table or single colour.
        min, max, alpha : float, optional
            A new display range or opacity.

        Raises
        ------
        KeyError
            If no overlay has that id or name.
        ValueError
            For a bad colour table or alpha.
        """
        model = self._overlay_model(overlay)
        changes = overlay_changes(lut, color, min, max, alpha)
        with model.hold_sync():
            for key, value in changes.items():
                setattr(model, key, value)

    @property
    def overlays(self) -> list[dict[str, Any]]:
        """Overlays shown, bottom to top: id, name, lut, colors, min, max, alpha (no voxel data)."""
        return [model.spec() for model in self._overlays]

    def set_window(self, *, level: float, width: float) -> None:
        """Set the base image's display window by its centre (level) and width."""
        if width <= 0:
            raise ValueError(f"window width must be positive, got {width}")
        with self.hold_sync():
            self.window_min = level - width / 2.0
            self.window_max = level + width / 2.0

    # ------------------------------------------------------------------ transfer
    def _layer(self, layer_id: Any) -> Layer | None:
        if self._base is not None and layer_id == self._base.id:
            return self._base
        return self._overlay_layers.get(layer_id) if isinstance(layer_id, str) else None

    def _send_chunk(self, content: dict[str, Any], buffers: list[memoryview]) -> None:
        self.send(content, buffers)

    def _layer_alive(self, layer_id: str, version: int) -> bool:
        layer = self._layer(layer_id)
        return layer is not None and layer.version == version

    def _send_layer(self, request: Mapping[str, Any]) -> None:
        """Answer a browser's fetch: queue the layer's chunks with their ``revision`` (``gone`` if replaced)."""
        layer = self._layer(request.get("layer"))
        reply = {"layer": request.get("layer"), "version": request.get("version"), "transfer": request.get("transfer")}
        if layer is None or layer.version != request.get("version") or not isinstance(request.get("transfer"), str):
            self.send({"type": "gone", **reply})
            return
        layer.refresh()
        reply["revision"] = layer.revision
        self._transfers.start(str(request["transfer"]), layer, reply, bool(request.get("preview")))

    # ------------------------------------------------------------------ position
    def _position(self, ijk: Sequence[int]) -> dict[str, Any]:
        """Position record of voxel ``ijk`` of the base image."""
        assert self.volume is not None
        index = tuple(int(v) for v in ijk)
        world = tuple(float(v) for v in self.volume.voxel_to_world(index))
        value = self.volume.array[index]
        value = value.flat[0] if np.ndim(value) else value
        return {"ijk": index, "world": world, "value": value.item() if hasattr(value, "item") else value}

    def goto(self, ijk: Sequence[int] | None = None, world: Sequence[float] | None = None) -> dict[str, Any]:
        """Move the crosshair to a voxel or a world position (the nearest voxel).

        Parameters
        ----------
        ijk : sequence of 3 int, optional
            Voxel index of the base image.
        world : sequence of 3 float, optional
            RAS+ millimetres.

        Returns
        -------
        dict
            The new :attr:`coordinate`.

        Raises
        ------
        ValueError
            If neither or both are given, or the position lies outside the volume.
        RuntimeError
            If no image is shown.
        """
        if self.volume is None:
            raise RuntimeError("show() an image before moving the crosshair")
        if (ijk is None) == (world is None):
            raise ValueError("give exactly one of ijk= or world=")
        if world is not None:
            ijk = np.rint(self.volume.world_to_voxel(np.asarray(world, dtype=np.float64)))
        index = np.asarray(ijk, dtype=np.float64)
        if index.shape != (3,) or not self.volume.contains(index):
            raise ValueError(
                f"position {list(np.ravel(index))} lies outside the volume of shape {self.volume.shape[:3]}"
            )
        position = self._position([int(v) for v in np.rint(index)])
        self._cursor = {"ijk": list(position["ijk"]), "seq": next(self._cursor_seq)}
        self.coordinate = position
        return position

    def on_click(self, callback: ClickCallback, remove: bool = False) -> None:
        """Call ``callback(voxel, world, value)`` when the user clicks the image.

        ``voxel`` is the base image's ``(i, j, k)``, ``world`` its RAS+ mm position and
        ``value`` the base image's voxel value. A drag calls it once, where the button is
        released. Exceptions in the callback are shown, not raised.
        """
        self._click_handlers.register_callback(callback, remove=remove)

    def _handle_browser_message(self, _widget: Any, content: Mapping[str, Any], buffers: Any) -> None:
        kind = content.get("type")
        if kind in EDIT_MESSAGES:
            self._handle_edit_message(str(kind), content, list(buffers or []))
        elif kind == "fetch":
            self._send_layer(content)
        elif kind == "ack":
            self._transfers.acknowledge(content.get("transfer"), content.get("bytes"))
        elif kind in ("position", "click", "report") and self.volume is not None:
            ijk = content.get("ijk")
            if not isinstance(ijk, list) or len(ijk) != 3 or not self.volume.contains(ijk):
                logger.warning("PapayaViewer: ignoring a position outside the volume: %r", ijk)
                return
            if kind == "position" and content.get("cursor", self._cursor.get("seq")) != self._cursor.get("seq"):
                return  # the page reported before it applied the latest goto: Python's cursor stands
            position = self._position(ijk)
            self.coordinate = position
            if kind == "click":
                self._click_handlers(position["ijk"], position["world"], position["value"])
        elif kind == "painted":
            self.painted = {**content, "received": time.time()}
        elif kind == "error":
            message = str(content.get("message", ""))
            source = str(self.volume.metadata.get("source", "<volume>")) if self.volume is not None else "<volume>"
            self.error = UnsupportedImage(source, f"the browser could not show it: {message}")
            self.last_error = message
            logger.warning("PapayaViewer: the browser reported: %s", message)
