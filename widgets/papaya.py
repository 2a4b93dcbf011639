"""PapayaViewer: the Papaya medical image viewer as a Jupyter widget (anywidget).

The widget works in JupyterLab, Notebook 7 and Voilà with no network: the front end
(``widgets/static/papaya_widget.js``, built from ``widgets/js/`` by ``npm run build``)
embeds Papaya from npm ``papaya-viewer``. Volumes travel to the browser as uncompressed
NIfTI bytes in binary websocket buffers (never base64, never gzipped: Papaya renders
uncompressed volumes about twice as fast); nothing travels back but positions.

Papaya shows the voxel grid reoriented to its own display orientation. The browser
reports positions as the volume's own voxel indices ``(i, j, k)``, and world positions
are computed here from the volume's true affine, so clicks and :meth:`PapayaViewer.goto`
agree with :class:`imaging_lib.volume.Volume` exactly, oblique volumes included (Papaya
is given the nearest non-oblique affine, so it never resamples).
"""

from __future__ import annotations

import itertools
import logging
import os
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import anywidget
import ipywidgets
import nibabel as nib
import numpy as np
import traitlets
from nibabel import orientations

from imaging_lib.errors import InvalidGeometry, MissingDependency
from imaging_lib.io.nifti import nifti_to_bytes, read_nifti
from imaging_lib.volume import Volume

__all__ = [
    "BUNDLE",
    "PAPAYA_LUTS",
    "PapayaViewer",
    "ViewerLink",
    "as_volume",
    "colour_table",
    "display_affine",
    "encode_for_papaya",
    "is_mask",
    "link_viewers",
]

logger = logging.getLogger(__name__)

STATIC = Path(__file__).resolve().parent / "static"
BUNDLE = STATIC / "papaya_widget.js"
BUNDLE_CSS = STATIC / "papaya_widget.css"

#: Papaya's built-in colour tables (``lut=`` names).
PAPAYA_LUTS = (
    "Grayscale",
    "Spectrum",
    "Fire",
    "Hot-and-Cold",
    "Gold",
    "Overlay (Positives)",
    "Overlay (Negatives)",
    "Red Overlay",
    "Green Overlay",
    "Blue Overlay",
)

# The hue a 0/1 mask takes with each overlay table. Papaya maps values at or above the
# overlay's max to the table's top colour, which is white for the three "... Overlay"
# tables, so masks are drawn with a solid table of the overlay's own colour instead.
MASK_COLOURS: dict[str, tuple[float, float, float]] = {
    "Red Overlay": (1.0, 0.0, 0.0),
    "Green Overlay": (0.0, 1.0, 0.0),
    "Blue Overlay": (0.0, 0.0, 1.0),
    "Overlay (Positives)": (1.0, 0.0, 0.0),
    "Overlay (Negatives)": (0.0, 0.0, 1.0),
}

_MISSING_BUNDLE_ESM = """
export default { render({ el }) {
  el.textContent = "PapayaViewer: the front end is not built (run `npm ci && npm run build`).";
} };
"""

ImageLike = Volume | str | os.PathLike | nib.spatialimages.SpatialImage | np.ndarray
ClickCallback = Callable[[tuple[int, int, int], tuple[float, float, float], float], Any]


# ---------------------------------------------------------------------- pure helpers
def as_volume(image: ImageLike, affine: Any = None) -> Volume:
    """Turn anything the viewer accepts into a :class:`Volume`.

    Parameters
    ----------
    image : Volume, str, os.PathLike, nibabel image or numpy.ndarray
        A volume; a NIfTI file (``.nii``/``.nii.gz``) or a folder of one DICOM series; a
        nibabel image; or a voxel array (then ``affine`` places it, identity if omitted).
    affine : array_like, optional
        4x4 voxel-to-RAS+ affine, only for a numpy array.

    Returns
    -------
    Volume

    Raises
    ------
    TypeError
        For any other type, or an affine given with something that has its own.
    imaging_lib.errors.UnreadableImage
        If a file cannot be read.
    """
    if affine is not None and not isinstance(image, np.ndarray):
        raise TypeError("affine= is only used with a numpy array; volumes and files carry their own")
    if isinstance(image, Volume):
        return image
    if isinstance(image, np.ndarray):
        return Volume(image, np.eye(4) if affine is None else affine, {"source": "<array>"})
    if isinstance(image, nib.spatialimages.SpatialImage):
        return Volume.from_nifti(image, source="<nibabel image>")
    if isinstance(image, (str, os.PathLike)):
        path = Path(image)
        if path.is_dir():
            from imaging_lib.io.dicom import read_dicom_folder

            return read_dicom_folder(path)
        return read_nifti(path)
    raise TypeError(
        f"cannot show a {type(image).__name__}: pass a Volume, a NIfTI path, a DICOM folder, "
        "a nibabel image or a numpy array with an affine"
    )


def display_affine(affine: Any) -> np.ndarray:
    """Return the nearest affine without rotation: same voxel sizes, axis order and signs.

    Papaya resamples an oblique volume into world space, which would break the one-to-one
    link between what is shown and the volume's voxels; given this affine it shows the
    voxel grid itself. Positions reported to Python are still converted with the true affine.

    Parameters
    ----------
    affine : array_like
        4x4 voxel-to-RAS+ affine.

    Returns
    -------
    numpy.ndarray
        4x4 affine whose 3x3 part is a signed permutation scaled by the voxel sizes, with
        the original translation (the centre of voxel ``(0, 0, 0)``).
    """
    affine = np.asarray(affine, dtype=np.float64)
    axes = orientations.io_orientation(affine)
    spacing = np.linalg.norm(affine[:3, :3], axis=0)
    result = np.eye(4)
    result[:3, :3] = 0.0
    for voxel_axis, (world_axis, flip) in enumerate(axes):
        result[int(world_axis), voxel_axis] = flip * spacing[voxel_axis]
    result[:3, 3] = affine[:3, 3]
    return result


def _papaya_dtype(array: np.ndarray) -> np.ndarray:
    """Cast voxels to a NIfTI data type Papaya reads (it has no 64-bit integers or halves)."""
    if array.dtype == np.bool_:
        return array.astype(np.uint8)
    if array.dtype.kind in "iu" and array.dtype.itemsize == 8:
        info = np.iinfo(np.int32)
        if array.size == 0 or (array.min() >= info.min and array.max() <= info.max):
            return array.astype(np.int32)
        return array.astype(np.float64)
    if array.dtype == np.float16:
        return array.astype(np.float32)
    if array.dtype.kind == "c":
        raise TypeError(f"complex voxels ({array.dtype}) cannot be shown; pass a magnitude image")
    return array


def encode_for_papaya(volume: Volume, affine: np.ndarray) -> bytes:
    """Serialise a 3D volume as uncompressed NIfTI-1 bytes placed by ``affine``.

    The affine is rounded to float32 (NIfTI-1's precision; it only places the picture,
    positions are computed from the volume's own affine), so the header is the 352-byte
    NIfTI-1 one that every Papaya build reads.

    Raises
    ------
    InvalidGeometry
        If the volume is not 3D (a fourth axis of length 1 is dropped).
    """
    array = volume.array
    while array.ndim > 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim != 3:
        raise InvalidGeometry(
            str(volume.metadata.get("source", "<volume>")), f"the viewer shows 3D volumes, got shape {array.shape}"
        )
    rounded = np.asarray(affine, dtype=np.float32).astype(np.float64)
    shown = Volume(_papaya_dtype(array), rounded, {"series_description": volume.metadata.get("series_description", "")})
    return nifti_to_bytes(shown, compress=False)


def is_mask(array: np.ndarray) -> bool:
    """Whether every voxel is 0 or 1 (a binary mask), and at least one is 1."""
    if array.dtype == np.bool_:
        return bool(array.any())
    if array.dtype.kind not in "iuf":
        return False
    return bool(np.all((array == 0) | (array == 1)) and np.any(array == 1))


def _rgb(colour: Any) -> tuple[float, float, float]:
    """A colour given as a name, ``#rrggbb`` or an RGB triple in [0, 1]."""
    try:
        from matplotlib.colors import to_rgb
    except ImportError as exc:  # matplotlib is a dependency; keep the message clear anyway
        raise MissingDependency("matplotlib", "needed to parse colour names; pip install matplotlib") from exc
    return tuple(float(c) for c in to_rgb(colour))


def colour_table(lut: Any = None, *, color: Any = None, samples: int = 16) -> list[list[float]] | None:
    """Return a custom Papaya colour table as knots ``[[position, r, g, b], ...]``.

    Parameters
    ----------
    lut : str, sequence of knots or matplotlib colormap, optional
        A built-in Papaya table name gives ``None`` (Papaya has it). Knots are
        ``[position, r, g, b]`` with positions rising from 0 to 1 and colours in [0, 1].
        A matplotlib colormap (or its registered name) is sampled at ``samples`` knots.
    color : colour, optional
        A single colour (name, ``#rrggbb`` or RGB triple): a solid table of that colour.
    samples : int
        Knots taken from a matplotlib colormap.

    Returns
    -------
    list of list of float or None

    Raises
    ------
    ValueError
        If knots are malformed or the name is neither a Papaya table nor a matplotlib colormap.
    """
    if color is not None:
        r, g, b = _rgb(color)
        return [[0.0, r, g, b], [1.0, r, g, b]]
    if lut is None or (isinstance(lut, str) and lut in PAPAYA_LUTS):
        return None
    if isinstance(lut, str) or (hasattr(lut, "N") and callable(lut)):
        import matplotlib

        try:
            cmap = matplotlib.colormaps[lut] if isinstance(lut, str) else lut
        except KeyError:
            raise ValueError(
                f"unknown colour table {lut!r}: use one of {', '.join(PAPAYA_LUTS)}, a matplotlib colormap or knots"
            ) from None
        positions = np.linspace(0.0, 1.0, samples)
        return [[float(p), *(float(c) for c in cmap(p)[:3])] for p in positions]
    knots = np.asarray(lut, dtype=np.float64)
    if knots.ndim != 2 or knots.shape[1] != 4 or len(knots) < 2:
        raise ValueError("a colour table is a list of at least two [position, r, g, b] knots")
    if not np.all(np.isfinite(knots)) or knots.min() < 0 or knots.max() > 1:
        raise ValueError("colour table positions and colours must lie in [0, 1]")
    if knots[0, 0] != 0 or knots[-1, 0] != 1 or np.any(np.diff(knots[:, 0]) < 0):
        raise ValueError("colour table positions must rise from 0 to 1")
    return knots.tolist()


def _check_same_grid(base: Volume, overlay: Volume) -> None:
    source = str(overlay.metadata.get("source", "<overlay>"))
    if overlay.shape[:3] != base.shape[:3]:
        raise InvalidGeometry(source, f"overlay shape {overlay.shape[:3]} differs from the image's {base.shape[:3]}")
    if not np.allclose(overlay.affine, base.affine, atol=1e-3):
        raise InvalidGeometry(source, "overlay affine differs from the image's: resample it onto the image first")


# ---------------------------------------------------------------------- the widget
class PapayaViewer(anywidget.AnyWidget):
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

    Notes
    -----
    Large volumes: a 256^3 int16 volume is 32 MiB on the websocket. Kernel-to-browser
    messages are not limited by the server, but browser-to-server messages are (tornado's
    ``websocket_max_message_size``, 10 MiB by default) and a widget state echoed back, for
    instance by a front end saving widget state, would be refused. Start servers with the
    limit raised, as the tests and ``imaging-lab dashboard`` do::

        voila app.ipynb --Voila.tornado_settings="{'websocket_max_message_size': 1073741824}"
        jupyter lab --ServerApp.tornado_settings="{'websocket_max_message_size': 1073741824}"

    This widget itself only ever sends positions from the browser.

    Traits
    ------
    coordinate : dict
        Current position: ``{"ijk": (i, j, k), "world": (x, y, z), "value": v}`` (world in
        RAS+ mm from the volume's affine, value of the base image), updated on clicks,
        drags, keyboard moves and :meth:`goto`.
    busy, busy_message : bool, str
        Show a spinner with the message over the viewer (e.g. while segmenting).
    painted : dict
        The browser's last report that images were drawn: ``volume_id``, ``overlays``,
        ``load_ms`` (browser time to load and draw) and ``received`` (``time.time()``).
    """

    _esm = BUNDLE if BUNDLE.exists() else _MISSING_BUNDLE_ESM
    _css = BUNDLE_CSS if BUNDLE_CSS.exists() else ""

    _volume = traitlets.Bytes(b"").tag(sync=True)
    _volume_id = traitlets.Unicode("").tag(sync=True)
    _overlays = traitlets.List(traitlets.Dict()).tag(sync=True)
    _cursor = traitlets.Dict().tag(sync=True)
    window_min = traitlets.Float(None, allow_none=True).tag(sync=True)
    window_max = traitlets.Float(None, allow_none=True).tag(sync=True)
    busy = traitlets.Bool(False).tag(sync=True)
    busy_message = traitlets.Unicode("Working…").tag(sync=True)
    toolbar = traitlets.Bool(False).tag(sync=True)
    main_view = traitlets.Enum(("axial", "coronal", "sagittal"), "axial").tag(sync=True)

    coordinate = traitlets.Dict()
    painted = traitlets.Dict()
    last_error = traitlets.Unicode("")

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
        super().__init__(**kwargs)
        self.volume: Volume | None = None
        self._display_affine: np.ndarray | None = None
        self._overlay_volumes: dict[str, Volume] = {}
        self._cursor_seq = itertools.count(1)
        self._click_handlers = ipywidgets.CallbackDispatcher()
        self.on_msg(self._handle_browser_message)
        if volume is not None:
            self.show(volume, affine=affine)
            for overlay in overlays:
                image, options = overlay if isinstance(overlay, tuple) else (overlay, {})
                self.add_overlay(image, **options)

    # ------------------------------------------------------------------ images
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
        """
        volume = as_volume(volume, affine)
        shown_affine = display_affine(volume.affine)
        data = encode_for_papaya(volume, shown_affine)
        self.volume = volume
        self._display_affine = shown_affine
        self._overlay_volumes = {}
        centre = [int(n) // 2 for n in volume.shape[:3]]
        with self.hold_sync():
            self._overlays = []
            self._volume = data
            self._volume_id = uuid.uuid4().hex
            self._cursor = {"ijk": centre, "seq": next(self._cursor_seq)}
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
    ) -> str:
        """Draw a volume over the base image.

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
        ValueError
            For a bad colour table or alpha.
        """
        if self.volume is None:
            raise RuntimeError("show() a base image before adding overlays")
        if isinstance(volume, np.ndarray) and affine is None:
            affine = self.volume.affine
        overlay = as_volume(volume, affine)
        _check_same_grid(self.volume, overlay)
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must lie in [0, 1], got {alpha}")
        colors = colour_table(lut, color=color)
        if color is None and colors is None and min is None and max is None and is_mask(np.asarray(overlay.array)):
            hue = MASK_COLOURS.get(lut)
            colors = [[0.0, *hue], [1.0, *hue]] if hue else None
            min, max = 0.0, (1.0 if hue else 2.0)  # other tables: 1 maps to their middle colour
        elif colors is not None and len({tuple(k[1:]) for k in colors}) == 1 and min is None and max is None:
            min, max = 0.0, 1.0
        overlay_id = uuid.uuid4().hex
        spec = {
            "id": overlay_id,
            "name": name or f"overlay {len(self._overlays) + 1}",
            "data": encode_for_papaya(overlay, self._display_affine),
            "lut": lut if isinstance(lut, str) and colors is None else None,
            "colors": colors,
            "min": None if min is None else float(min),
            "max": None if max is None else float(max),
            "alpha": float(alpha),
        }
        overlays = list(self._overlays)
        replaced = [i for i, existing in enumerate(overlays) if name is not None and existing["name"] == name]
        for index in reversed(replaced):
            self._overlay_volumes.pop(overlays.pop(index)["id"], None)
        overlays.append(spec)
        self._overlay_volumes[overlay_id] = overlay
        self._overlays = overlays
        return overlay_id

    def remove_overlay(self, overlay: str | None = None) -> None:
        """Remove an overlay by id or name, or every overlay when ``overlay`` is None.

        Raises
        ------
        KeyError
            If no overlay has that id or name.
        """
        if overlay is None:
            kept = []
        else:
            kept = [spec for spec in self._overlays if overlay not in (spec["id"], spec["name"])]
            if len(kept) == len(self._overlays):
                raise KeyError(f"no overlay with id or name {overlay!r}")
        for spec in self._overlays:
            if spec not in kept:
                self._overlay_volumes.pop(spec["id"], None)
        self._overlays = kept

    @property
    def overlays(self) -> list[dict[str, Any]]:
        """Overlays shown, bottom to top: id, name, lut, colors, min, max, alpha (no voxel data)."""
        return [{k: v for k, v in spec.items() if k != "data"} for spec in self._overlays]

    def set_window(self, *, level: float, width: float) -> None:
        """Set the base image's display window by its centre (level) and width."""
        if width <= 0:
            raise ValueError(f"window width must be positive, got {width}")
        with self.hold_sync():
            self.window_min = level - width / 2.0
            self.window_max = level + width / 2.0

    # ------------------------------------------------------------------ position
    def _position(self, ijk: Sequence[int]) -> dict[str, Any]:
        """Position record of voxel ``ijk`` of the base image."""
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
        position = self._position(np.rint(index).astype(int))
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

    def _handle_browser_message(self, _widget: Any, content: Mapping[str, Any], _buffers: Any) -> None:
        kind = content.get("type")
        if kind in ("position", "click", "report") and self.volume is not None:
            ijk = content.get("ijk")
            if not isinstance(ijk, list) or len(ijk) != 3 or not self.volume.contains(ijk):
                logger.warning("PapayaViewer: ignoring a position outside the volume: %r", ijk)
                return
            position = self._position(ijk)
            self.coordinate = position
            if kind == "click":
                self._click_handlers(position["ijk"], position["world"], position["value"])
        elif kind == "painted":
            self.painted = {**content, "received": time.time()}
        elif kind == "error":
            self.last_error = str(content.get("message", ""))
            logger.warning("PapayaViewer: the browser reported: %s", self.last_error)


# ---------------------------------------------------------------------- linking
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
