"""Edit mode of the PapayaViewer: brush, eraser, fill and interpolation on a mask, synced as patches.

:class:`MaskEditing` is mixed into :class:`~widgets.papaya.PapayaViewer`. ``viewer.edit(name)``
puts one 0/1 mask overlay in edit mode: the page shows the tools (brush and eraser in mm,
in 2D or across ±n slices, fill, interpolation, undo and redo, keyboard shortcuts) and
paints into the overlay's voxels itself, with no round trip per dab. Only the voxels that
change travel, both ways, as *patches* (:mod:`widgets.papaya_patches`: runs of flat
NIfTI-order indices and their values, in binary messages under 4 MiB):

* a page's stroke, undo or redo is a ``patch`` from revision ``base`` to ``base + 1``;
  Python applies it if its mask is at ``base`` (``patched`` tells every page), and
  refuses it otherwise (``refused``): the page then fetches the mask again, as Python
  holds it, and goes on from there;
* fill (region growing from a click, in the slab of ±n slices: the same
  :func:`~imaging_lib.science.region_growing.grow_region` as the study browser's clicks)
  and interpolation (:func:`~imaging_lib.science.slice_interpolation.interpolate_between_slices`)
  run here, on the real voxels, and come back to the page that asked as a patch it can undo;
* :meth:`~MaskEditing.patch_mask` and :meth:`~MaskEditing.set_mask` send Python's own
  changes the same way (a diff larger than a re-fetch of the mask is sent as one).

Python's copy of an edited mask (a Fortran-ordered ``uint8`` array, so that its flat
index is the page's) is what :meth:`~MaskEditing.mask` returns: once a stroke is synced,
exactly what is drawn. Every revision a page applies must follow the one it holds, and
every voxel a patch names must change; a page that finds otherwise fetches the mask again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

import ipywidgets
import numpy as np
import traitlets

from imaging_lib.errors import ImagingError, InvalidLabel
from imaging_lib.limits import VIEWER_MAX_BRUSH_MM, VIEWER_MAX_EDIT_DEPTH, VIEWER_PATCH_MAX_BYTES
from imaging_lib.science.region_growing import grow_region
from imaging_lib.science.slice_interpolation import interpolate_between_slices
from imaging_lib.store.masks import apply_voxel_diff, label_mask_array, voxel_diff
from imaging_lib.volume import Volume

from .papaya_encoding import voxels_3d
from .papaya_layers import TRANSFER_WINDOW, Layer, PapayaOverlay, display_settings
from .papaya_patches import EDIT_TOOLS, RUN_BYTES, PatchAssembly, patch_messages, read_patch_part, runs_from_indices

__all__ = ["EDIT_MESSAGES", "EDIT_TOOLS", "FILL_PARAMS", "PYTHON_TOOL", "MaskEditing", "fill_region", "is_binary"]

logger = logging.getLogger(__name__)

EDIT_MESSAGES = ("patch", "fill", "interpolate")
"""Messages of a page's edit mode."""

PYTHON_TOOL = "python"
"""The tool a patch from Python code records."""

FILL_PARAMS: dict[str, Any] = {"tolerance": 1.0, "smoothing_sigma_mm": 1.0}
"""Region growing of the fill tool (:func:`~imaging_lib.science.region_growing.grow_region`):
the study browser's click settings, which keep a click on a real scan to its structure."""

EditCallback = Callable[[str, str, int], Any]


def is_binary(array: np.ndarray) -> bool:
    """Whether every voxel is 0 or 1 (an empty mask too)."""
    if array.dtype == np.bool_ or array.size == 0:
        return True
    if array.dtype.kind in "iu":
        return int(array.min()) >= 0 and int(array.max()) <= 1
    return array.dtype.kind == "f" and bool(np.all((array == 0) | (array == 1)))


def fill_region(
    volume: Volume, seed: Sequence[int], axis: int, depth: int, params: Mapping[str, Any]
) -> tuple[tuple[slice, ...], np.ndarray]:
    """Grow a region from ``seed`` in the slab of ±``depth`` slices along ``axis``.

    Returns
    -------
    (tuple of slice, numpy.ndarray)
        The slab's index in the volume and the region within it (boolean).

    Raises
    ------
    InvalidSeed, RegionTooLarge
        From :func:`~imaging_lib.science.region_growing.grow_region`.
    """
    values = voxels_3d(volume)
    low, high = max(seed[axis] - depth, 0), min(seed[axis] + depth + 1, values.shape[axis])
    window = [slice(None)] * 3
    window[axis] = slice(low, high)
    corner = np.zeros(3)
    corner[axis] = low
    affine = np.array(volume.affine, dtype=np.float64)
    affine[:3, 3] = volume.voxel_to_world(corner)
    local = [int(v) for v in seed]
    local[axis] -= low
    slab = Volume(np.ascontiguousarray(values[tuple(window)]), affine, dict(volume.metadata))
    return tuple(window), grow_region(slab, local, **params).array.astype(bool)


def _integer(content: Mapping[str, Any], name: str, low: int, high: int) -> int:
    value = content.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidLabel("<viewer edit>", f"{name} must be an integer in [{low}, {high}], got {value!r}")
    return value


class MaskEditing(traitlets.HasTraits):
    """The edit mode of a :class:`~widgets.papaya.PapayaViewer` (mixed into it).

    Traits
    ------
    edit_overlay : str
        Layer id of the overlay in edit mode, ``""`` for none (set by :meth:`edit`).
    edit_tool : {"brush", "eraser", "fill", "interpolate"}
        The page's current tool (its buttons and shortcuts set it too).
    brush_mm : float
        Brush diameter in mm: it paints the voxels whose centres lie within half of it of
        the brush centre, with the volume's own (possibly anisotropic) voxel spacing.
    brush_depth : int
        Slices on each side of the current one the brush and the fill reach (0: 2D).
    fill_params : dict
        Keyword arguments of :func:`~imaging_lib.science.region_growing.grow_region` for fill.
    """

    edit_overlay = traitlets.Unicode("").tag(sync=True)
    edit_tool = traitlets.Enum(EDIT_TOOLS, "brush").tag(sync=True)
    brush_mm = traitlets.Float(5.0, min=0.0, max=VIEWER_MAX_BRUSH_MM).tag(sync=True)
    brush_depth = traitlets.Int(0, min=0, max=VIEWER_MAX_EDIT_DEPTH).tag(sync=True)
    _edit_limits = traitlets.Dict(
        {"max_depth": VIEWER_MAX_EDIT_DEPTH, "max_brush_mm": VIEWER_MAX_BRUSH_MM, "patch_bytes": VIEWER_PATCH_MAX_BYTES}
    ).tag(sync=True)

    if TYPE_CHECKING:  # provided by PapayaViewer
        volume: Volume | None
        _overlay_layers: dict[str, Layer]

        def _overlay_model(self, overlay: str) -> PapayaOverlay: ...

        def send(self, content: dict[str, Any], buffers: list[Any] | None = None) -> None: ...

    def _start_editing(self) -> None:
        self.fill_params: dict[str, Any] = dict(FILL_PARAMS)
        self._edit_tools: dict[str, list[str]] = {}
        self._incoming: dict[str, PatchAssembly] = {}
        self._edit_handlers = ipywidgets.CallbackDispatcher()

    # ------------------------------------------------------------------ public
    def edit(self, overlay: str | None) -> str | None:
        """Put one 0/1 mask overlay (id or name) in edit mode, or leave edit mode with None.

        Returns
        -------
        str or None
            The overlay's layer id.

        Raises
        ------
        KeyError
            If no overlay has that id or name.
        InvalidLabel
            If the overlay holds values other than 0 and 1.
        """
        if overlay is None:
            self.edit_overlay = ""
            return None
        model = self._editable(overlay)
        self.edit_overlay = model.layer_id
        return model.layer_id

    def mask(self, overlay: str) -> np.ndarray:
        """A copy of an overlay's voxels as Python holds them; for an edited mask, what is drawn once synced.

        Raises
        ------
        KeyError
            If no overlay has that id or name.
        """
        layer = self._overlay_layers[self._overlay_model(overlay).layer_id]
        return np.array(voxels_3d(layer.volume), order="C")

    def patch_mask(self, overlay: str, indices: Any, values: Any, *, order: Literal["F", "C"] = "F") -> np.ndarray:
        """Change voxels of a mask overlay; only they travel to the page (it may undo nothing of it).

        Parameters
        ----------
        overlay : str
            Id or name of a 0/1 mask overlay (it becomes editable).
        indices : array_like of int
            Flat indices, each at most once.
        values : array_like of int or int
            New values, 0 or 1.
        order : {"F", "C"}
            How indices are flattened: ``"F"`` (NIfTI, ``i`` fastest) or ``"C"`` (numpy).

        Returns
        -------
        numpy.ndarray
            The previous values (``uint8``): patching them back undoes the change exactly.

        Raises
        ------
        InvalidLabel
            Indices out of range or repeated, values other than 0 and 1 (nothing changes).
        """
        model = self._editable(overlay)
        layer = self._overlay_layers[model.layer_id]
        if not is_binary(np.asarray(values)):
            raise InvalidLabel(model.name, "an edited mask holds 0 and 1 only")
        array = layer.volume.array
        previous = apply_voxel_diff(array, indices, values, order=order, source=model.name)
        flat = np.asarray(indices, dtype=np.int64).reshape(-1)
        if order == "C":
            flat = np.ravel_multi_index(np.unravel_index(flat, array.shape), array.shape, order="F")
        changed = np.sort(flat[array.reshape(-1, order="F")[flat] != previous])
        self._send_patch(model, layer, changed, array.reshape(-1, order="F")[changed], tool=PYTHON_TOOL)
        return previous

    def set_mask(self, overlay: str, mask: Volume | np.ndarray) -> int:
        """Make a mask overlay equal ``mask``; only the voxels that differ travel.

        Returns
        -------
        int
            How many voxels changed.

        Raises
        ------
        MaskGeometryMismatch
            If ``mask`` is not on the viewer's grid.
        InvalidLabel
            If it holds values other than 0 and 1.
        """
        model = self._editable(overlay)
        layer = self._overlay_layers[model.layer_id]
        assert self.volume is not None
        new = label_mask_array(mask, self.volume, source=model.name)
        if not is_binary(new):
            raise InvalidLabel(model.name, "an edited mask holds 0 and 1 only")
        indices, values = voxel_diff(layer.volume.array, new, order="F")
        layer.volume.array.reshape(-1, order="F")[indices] = values
        self._send_patch(model, layer, indices, values, tool=PYTHON_TOOL)
        return len(indices)

    def edited_with(self, overlay: str) -> list[str]:
        """The tools that changed a mask since it was made editable or :meth:`mark_saved`, in order of first use."""
        return list(self._edit_tools.get(self._overlay_model(overlay).layer_id, []))

    def mark_saved(self, overlay: str) -> None:
        """Start a new list of tools for :meth:`edited_with` (after the mask was saved)."""
        self._edit_tools[self._overlay_model(overlay).layer_id] = []

    def edits_arriving(self, overlay: str) -> bool:
        """Whether part of a page's patch to the mask arrived and the rest is still on its way."""
        return self._overlay_model(overlay).layer_id in self._incoming

    def on_edit(self, callback: EditCallback, remove: bool = False) -> None:
        """Call ``callback(overlay_name, tool, voxels_changed)`` after each page edit Python applied."""
        self._edit_handlers.register_callback(callback, remove=remove)

    # ------------------------------------------------------------------ state
    def _editable(self, overlay: str) -> PapayaOverlay:
        """The overlay's model, its layer made editable: Python's own Fortran-ordered uint8 copy."""
        model = self._overlay_model(overlay)
        if model.editable:
            return model
        layer = self._overlay_layers[model.layer_id]
        array = voxels_3d(layer.volume)
        if not is_binary(array):
            raise InvalidLabel(model.name, "only a 0/1 mask can be edited; this overlay holds other values")
        layer.volume = layer.volume.with_array(np.array(array, dtype=np.uint8, order="F"))
        if not (layer.full.bits and layer.full.axes == (0, 1, 2)):
            layer.version += 1  # the page holds it in another memory order or type: it fetches it again
        settings: dict[str, Any] = {}
        if model.colors is None and model.min is None and model.max is None:
            settings = display_settings(layer.volume, model.lut, None, None, None, model.alpha, binary=True)
        with model.hold_sync():
            for key, value in {**settings, "editable": True, "version": layer.version}.items():
                setattr(model, key, value)
        self._edit_tools[layer.id] = []
        return model

    def _forget_edits(self, layer_ids: Sequence[str]) -> None:
        """Forget what concerned overlays that are gone."""
        for layer_id in layer_ids:
            self._edit_tools.pop(layer_id, None)
            self._incoming.pop(layer_id, None)
            if self.edit_overlay == layer_id:
                self.edit_overlay = ""

    def _edited(self, layer_id: Any) -> tuple[PapayaOverlay, Layer] | None:
        layer = self._overlay_layers.get(layer_id) if isinstance(layer_id, str) else None
        if layer is None:
            return None
        model = self._overlay_model(layer_id)
        return (model, layer) if model.editable else None

    def _record_tool(self, layer_id: str, tool: str) -> None:
        tools = self._edit_tools.setdefault(layer_id, [])
        if tool not in tools:
            tools.append(tool)

    # ------------------------------------------------------------------ to the page
    def _send_patch(
        self,
        model: PapayaOverlay,
        layer: Layer,
        indices: np.ndarray,
        values: np.ndarray,
        *,
        tool: str,
        origin: str = PYTHON_TOOL,
        request: int | None = None,
    ) -> None:
        """Count a revision of voxels already changed here and send the patch to the pages."""
        base, revision = layer.revision, layer.patched()
        if len(indices):
            self._record_tool(layer.id, tool)
        runs, run_values = runs_from_indices(indices, values)
        header = {
            "type": "patch", "layer": layer.id, "version": layer.version, "base": base, "revision": revision,
            "tool": tool, "origin": origin, "request": request, "voxels": len(indices),
        }  # fmt: skip
        if RUN_BYTES * len(runs) > TRANSFER_WINDOW:
            layer.version += 1  # a re-fetch of the packed mask travels with acknowledgements
            model.version = layer.version
            self.send({**header, "type": "reloaded", "version": layer.version})
            return
        for content, buffers in patch_messages(runs, run_values, header):
            self.send(content, buffers)

    def _refuse(self, content: Mapping[str, Any], reason: str, revision: int | None) -> None:
        origin = content.get("origin")
        logger.warning("PapayaViewer: refused an edit from the page: %s", reason)
        self.send({
            "type": "refused", "layer": content.get("layer") if isinstance(content.get("layer"), str) else None,
            "origin": origin if isinstance(origin, str) and len(origin) <= 64 else None,
            "request": content.get("request") if isinstance(content.get("request"), int) else None,
            "revision": revision, "reason": reason,
        })  # fmt: skip

    # ------------------------------------------------------------------ from the page
    def _handle_edit_message(self, kind: str, content: Mapping[str, Any], buffers: list[Any]) -> None:
        edited = self._edited(content.get("layer"))
        if edited is None:
            self._refuse(content, "no editable overlay has that layer (it was removed or replaced)", None)
            return
        model, layer = edited
        try:
            if content.get("version") != layer.version:
                raise InvalidLabel(model.name, "the mask was replaced: the page fetches it again")
            if kind == "patch":
                self._receive_patch_part(model, layer, content, buffers)
            else:
                self._run_tool(kind, model, layer, content)
        except InvalidLabel as error:
            self._incoming.pop(layer.id, None)
            self._refuse(content, error.reason, layer.revision)

    def _receive_patch_part(
        self, model: PapayaOverlay, layer: Layer, content: Mapping[str, Any], buffers: list[Any]
    ) -> None:
        part = read_patch_part(content, buffers, layer.volume.array.size)
        if part.part == 0:
            self._incoming[layer.id] = assembly = PatchAssembly(part)
        elif layer.id in self._incoming:
            assembly = self._incoming[layer.id]
        else:
            raise InvalidLabel(model.name, f"part {part.part} of a patch arrived without the parts before it")
        reply = {"layer": layer.id, "version": layer.version, "origin": part.origin, "base": part.base}
        if not assembly.add(part):
            self.send({"type": "received", **reply, "part": part.part, "revision": part.revision})
            return
        del self._incoming[layer.id]
        if part.base != layer.revision:
            raise InvalidLabel(
                model.name, f"the edit was made on revision {part.base}, but the mask is at {layer.revision} now"
            )
        indices, values = assembly.diff()
        apply_voxel_diff(layer.volume.array, indices, values, order="F", source=model.name)
        revision = layer.patched()
        self._record_tool(layer.id, part.tool)
        self.send({"type": "patched", **reply, "revision": revision, "tool": part.tool})
        self._edit_handlers(model.name, part.tool, len(indices))

    def _run_tool(self, kind: str, model: PapayaOverlay, layer: Layer, content: Mapping[str, Any]) -> None:
        """Fill or interpolate on Python's mask, and send the result to the page that asked, as a patch."""
        assert self.volume is not None
        base = _integer(content, "base", 0, 2**31)
        request = _integer(content, "request", 0, 2**31)
        axis = _integer(content, "axis", 0, 2)
        origin = content.get("origin")
        if not isinstance(origin, str) or not 0 < len(origin) <= 64:
            raise InvalidLabel(model.name, "origin must be text of 1 to 64 characters")
        if base != layer.revision:
            raise InvalidLabel(model.name, f"{kind} asked on revision {base}, but the mask is at {layer.revision}")
        array = layer.volume.array
        if kind == "fill":
            seed, depth = self._seed(content), _integer(content, "depth", 0, VIEWER_MAX_EDIT_DEPTH)
        try:
            if kind == "fill":
                window, region = fill_region(self.volume, seed, axis, depth, self.fill_params)
                new = array.copy(order="F")
                new[window] |= region.astype(np.uint8)
            else:
                new = interpolate_between_slices(array, axis, self.volume.spacing)
        except ImagingError as error:
            self.send({"type": "tool-failed", "layer": layer.id, "origin": origin, "request": request,
                       "message": f"{kind}: {error.reason}"})  # fmt: skip
            return
        indices, values = voxel_diff(array, new, order="F")
        array.reshape(-1, order="F")[indices] = values
        self._send_patch(model, layer, indices, values, tool=kind, origin=origin, request=request)
        if len(indices):
            self._edit_handlers(model.name, kind, len(indices))

    def _seed(self, content: Mapping[str, Any]) -> list[int]:
        assert self.volume is not None
        ijk = content.get("ijk")
        if not isinstance(ijk, list) or len(ijk) != 3 or not self.volume.contains(ijk):
            raise InvalidLabel("<viewer edit>", f"the fill's seed {ijk!r} is not a voxel of the volume")
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in ijk):
            raise InvalidLabel("<viewer edit>", "the fill's seed must be three integers")
        return [int(v) for v in ijk]
