"""What the PapayaViewer sends to the browser: volumes as NIfTI-1 bytes, built without copies.

Pure functions of volumes and options, no widget state:

* :func:`as_volume` turns anything the viewer accepts into a :class:`Volume`;
* :func:`encode_for_papaya` gives an :class:`EncodedVolume`: a 352-byte NIfTI-1 header
  and the voxel array's own memory as the body (no copy for a C- or Fortran-ordered
  array: a C-ordered one is declared with its axes reversed, which is its Fortran order;
  a 0/1 mask is packed to one bit per voxel, an eighth of its bytes);
  :meth:`EncodedVolume.chunks` cuts it into websocket messages under tornado's stock
  10 MiB limit;
* :func:`preview_stride` picks the voxel step of the downsampled preview of a large
  volume, :func:`single_plane` the one plane a 2D image is shown in;
* colour tables (:func:`colour_table`, :data:`MASK_COLOURS`) and :func:`is_mask`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
from nibabel import orientations

from imaging_lib.errors import InvalidGeometry, MissingDependency, UnsupportedImage
from imaging_lib.io.nifti import read_nifti
from imaging_lib.volume import Volume

__all__ = [
    "CHUNK_BYTES",
    "MASK_COLOURS",
    "PAPAYA_LUTS",
    "PREVIEW_BYTES",
    "PROGRESSIVE_BYTES",
    "EncodedVolume",
    "ImageLike",
    "as_volume",
    "colour_table",
    "display_affine",
    "encode_for_papaya",
    "is_mask",
    "preview_stride",
    "single_plane",
    "voxel_range",
]

CHUNK_BYTES = 4 * 1024**2
"""Largest websocket message of voxel bytes: well under tornado's stock 10 MiB
``websocket_max_message_size``. Measured through jupyter_server into Chromium, 32 MiB take
the same time as one message or in 1 to 8 MiB chunks (about 0.3 s); the kernel and the
server handle chunks faster than one large message."""

PROGRESSIVE_BYTES = 64 * 1024**2
"""Volumes larger than this paint a downsampled preview first, then full resolution."""

PREVIEW_BYTES = 8 * 1024**2
"""Largest size of that preview."""

NIFTI1_HEADER_BYTES = 352
"""The 348-byte NIfTI-1 header and the 4-byte extension flag: where the voxels start."""

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

ImageLike = Volume | str | os.PathLike | nib.spatialimages.SpatialImage | np.ndarray


# ---------------------------------------------------------------------- volumes
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
    imaging_lib.errors.UnsupportedImage
        If a folder holds more than one DICOM series.
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

            series = read_dicom_folder(path)
            if len(series) != 1:
                raise UnsupportedImage(str(path), f"the folder holds {len(series)} series: show one of them")
            return series[0]
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


def voxels_3d(volume: Volume) -> np.ndarray:
    """The volume's voxels as a 3D array (a trailing axis of length 1 is dropped).

    Raises
    ------
    InvalidGeometry
        If the volume has a fourth axis longer than 1.
    """
    array = volume.array
    while array.ndim > 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim != 3:
        raise InvalidGeometry(
            str(volume.metadata.get("source", "<volume>")), f"the viewer shows 3D volumes, got shape {array.shape}"
        )
    return array


def _papaya_dtype(array: np.ndarray) -> np.ndarray:
    """Voxels in a little-endian NIfTI type Papaya reads (no 64-bit integers or halves).

    Booleans are viewed as bytes without a copy; other conversions copy.
    """
    if array.dtype == np.bool_:
        return array.view(np.uint8)
    if array.dtype.kind == "c":
        raise TypeError(f"complex voxels ({array.dtype}) cannot be shown; pass a magnitude image")
    if array.dtype.kind in "iu" and array.dtype.itemsize == 8:
        info = np.iinfo(np.int32)
        if array.size == 0 or (array.min() >= info.min and array.max() <= info.max):
            return array.astype(np.int32)
        return array.astype(np.float64)
    if array.dtype == np.float16:
        return array.astype(np.float32)
    if array.dtype.kind not in "iuf":
        raise TypeError(f"voxels of type {array.dtype} cannot be shown; pass numbers")
    if array.dtype.byteorder == ">" and array.dtype.itemsize > 1:
        return array.astype(array.dtype.newbyteorder("<"))
    return array


def voxel_range(array: np.ndarray) -> tuple[float, float]:
    """Smallest and largest finite voxel value, ``(0, 0)`` when there is none."""
    if array.size == 0 or array.dtype.kind not in "biuf":
        return 0.0, 0.0
    if array.dtype.kind == "f":
        finite = array if np.isfinite(array).all() else array[np.isfinite(array)]
        if finite.size == 0:
            return 0.0, 0.0
        return float(finite.min()), float(finite.max())
    return float(array.min()), float(array.max())


@dataclass(frozen=True)
class EncodedVolume:
    """An uncompressed NIfTI-1 file as a header and the voxel array's own memory.

    Attributes
    ----------
    header : bytes
        The 352-byte NIfTI-1 header (``vox_offset`` 352).
    body : memoryview
        The voxel bytes in the order the header declares (a view of the array, or of a
        converted copy when Papaya cannot read the array's type); for a 0/1 mask
        (``bits``), one bit per voxel, least significant bit first.
    axes : tuple of int
        The volume axis of each axis of the file: ``(0, 1, 2)``, or ``(2, 1, 0)`` for a
        C-ordered array declared as its Fortran-ordered transpose.
    stride : int
        Voxel step of a downsampled preview along every axis (1 at full resolution):
        voxel ``n`` of the file is voxel ``stride * n`` of the volume.
    shape : tuple of int
        The volume's 3D shape (not the file's).
    voxel_bytes : int
        Size of the file's voxel data once unpacked.
    bits : bool
        Whether ``body`` holds a 0/1 mask packed 8 voxels to a byte (a mask travels in
        an eighth of its size; the browser unpacks it as it arrives).
    """

    header: bytes
    body: memoryview
    axes: tuple[int, int, int]
    stride: int
    shape: tuple[int, int, int]
    voxel_bytes: int
    bits: bool = False

    @property
    def nbytes(self) -> int:
        """Size of the whole file (unpacked), as the browser holds it."""
        return len(self.header) + self.voxel_bytes

    @property
    def sent_bytes(self) -> int:
        """Bytes that travel: the header and the (packed) body."""
        return len(self.header) + self.body.nbytes

    def to_bytes(self) -> bytes:
        """The whole file as one bytes object (a copy: for saving or checking, not sending)."""
        if self.bits:
            voxels = np.unpackbits(np.asarray(self.body), count=self.voxel_bytes, bitorder="little")
            return self.header + voxels.tobytes()
        return self.header + self.body.tobytes()

    def chunks(self, size: int = CHUNK_BYTES) -> Iterator[tuple[dict[str, Any], list[memoryview]]]:
        """Cut the file into messages of at most ``size`` bytes, without copying.

        Yields
        ------
        (dict, list of memoryview)
            What the browser needs to place a piece (``offset`` in the unpacked file,
            ``encoding`` ``"raw"`` or ``"bits"``, and for bits the ``voxels`` they hold)
            and its buffer. The header comes first, alone.
        """
        yield {"offset": 0, "encoding": "raw"}, [memoryview(self.header)]
        start_of_voxels = len(self.header)
        for start in range(0, self.body.nbytes, size):
            piece = self.body[start : start + size]
            if self.bits:
                voxels = min(8 * piece.nbytes, self.voxel_bytes - 8 * start)
                yield {"offset": start_of_voxels + 8 * start, "encoding": "bits", "voxels": voxels}, [piece]
            else:
                yield {"offset": start_of_voxels + start, "encoding": "raw"}, [piece]


def _nifti_header(file_array: np.ndarray, affine: np.ndarray, description: str, window: tuple[float, float]) -> bytes:
    """The 352-byte NIfTI-1 header of ``file_array`` (Fortran order) placed by ``affine``."""
    header = nib.Nifti1Header()
    header.set_data_dtype(file_array.dtype)
    header.set_data_shape(file_array.shape)
    header.set_qform(affine, code="aligned")
    header.set_sform(affine, code="aligned")
    header.set_xyzt_units("mm", "sec")
    header["descrip"] = description[:79].encode("ascii", "replace")
    header["vox_offset"] = NIFTI1_HEADER_BYTES
    header["cal_min"], header["cal_max"] = window
    block = header.binaryblock + b"\0" * 4  # no extensions
    if len(block) != NIFTI1_HEADER_BYTES:  # pragma: no cover - nibabel's NIfTI-1 header is 348 bytes
        raise AssertionError(f"unexpected NIfTI-1 header size {len(block)}")
    return block


def encode_for_papaya(volume: Volume, *, stride: int = 1, window: tuple[float, float] = (0.0, 0.0)) -> EncodedVolume:
    """Describe a 3D volume as uncompressed NIfTI-1 bytes in Papaya's display geometry.

    The file is placed by :func:`display_affine` (rounded to float32, NIfTI-1's precision:
    it only places the picture; positions are computed from the volume's own affine).
    A C- or Fortran-ordered array of a type Papaya reads is not copied.

    Parameters
    ----------
    volume : Volume
        The image.
    stride : int
        Take every ``stride``-th voxel along each axis (a preview); 1 for all voxels.
    window : (float, float)
        Stored as ``cal_min``/``cal_max``: Papaya's first display range. Passing the
        data range spares Papaya a voxel-by-voxel scan of the volume; ``(0, 0)`` leaves
        the choice to Papaya.

    Returns
    -------
    EncodedVolume

    Raises
    ------
    InvalidGeometry
        If the volume is not 3D (a fourth axis of length 1 is dropped).
    TypeError
        For complex or non-numeric voxels.
    """
    array = voxels_3d(volume)
    shape = tuple(int(n) for n in array.shape)
    if stride > 1:
        array = array[::stride, ::stride, ::stride]
    array = _papaya_dtype(array)
    axes: tuple[int, int, int] = (0, 1, 2)
    if not array.flags.f_contiguous:
        if array.flags.c_contiguous:
            array, axes = array.T, (2, 1, 0)
        else:
            array = np.asfortranarray(array)
    voxels = array.ravel(order="F")
    bits = voxels.dtype == np.uint8 and voxels.size > 0 and int(voxels.max()) <= 1
    packed = np.packbits(voxels, bitorder="little") if bits else voxels
    body = memoryview(packed).cast("B")  # type: ignore[arg-type]  # numpy arrays are buffers
    placed = np.asarray(volume.affine, dtype=np.float64) @ np.diag([stride, stride, stride, 1.0])
    file_affine = placed[:, [*axes, 3]]
    shown = display_affine(file_affine).astype(np.float32).astype(np.float64)
    description = str(volume.metadata.get("series_description", ""))
    header = _nifti_header(array, shown, description, window)
    return EncodedVolume(header, body, axes, stride, (shape[0], shape[1], shape[2]), int(voxels.nbytes), bits)


def preview_stride(shape: tuple[int, ...], nbytes: int) -> int:
    """Voxel step of the preview of a volume of ``nbytes`` voxel bytes, 1 when it needs none.

    A volume over :data:`PROGRESSIVE_BYTES` gets the smallest step that brings its
    preview under :data:`PREVIEW_BYTES` (only axes longer than 1 shrink).
    """
    if nbytes <= PROGRESSIVE_BYTES:
        return 1
    long_axes = sum(1 for n in shape[:3] if n > 1)
    return max(2, math.ceil((nbytes / PREVIEW_BYTES) ** (1.0 / max(long_axes, 1))))


def single_plane(shape: tuple[int, ...], affine: Any) -> str | None:
    """The one plane to show a 2D image in, or None for a volume.

    A volume with exactly one axis of length 1 (a single slice) is shown in the plane of
    its other two axes: ``"axial"`` when the flat axis runs inferior-superior,
    ``"coronal"`` for posterior-anterior, ``"sagittal"`` for left-right.
    """
    flat = [axis for axis, n in enumerate(shape[:3]) if n == 1]
    if len(flat) != 1:
        return None
    world_axis = int(orientations.io_orientation(np.asarray(affine, dtype=np.float64))[flat[0], 0])
    return ("sagittal", "coronal", "axial")[world_axis]


def is_mask(array: np.ndarray) -> bool:
    """Whether every voxel is 0 or 1 (a binary mask), and at least one is 1."""
    if array.dtype == np.bool_:
        return bool(array.any())
    if array.dtype.kind not in "iuf":
        return False
    if array.dtype.kind in "iu":
        low, high = voxel_range(array)
        return low >= 0 and high == 1
    return bool(np.all((array == 0) | (array == 1)) and np.any(array == 1))


# ---------------------------------------------------------------------- colours
def _rgb(colour: Any) -> tuple[float, float, float]:
    """A colour given as a name, ``#rrggbb`` or an RGB triple in [0, 1]."""
    try:
        from matplotlib.colors import to_rgb
    except ImportError as exc:  # matplotlib is a dependency; keep the message clear anyway
        raise MissingDependency("matplotlib", "needed to parse colour names; pip install matplotlib") from exc
    red, green, blue = to_rgb(colour)
    return float(red), float(green), float(blue)


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


def check_same_grid(base: Volume, overlay: Volume) -> None:
    """Raise :class:`InvalidGeometry` unless ``overlay`` lies on ``base``'s voxel grid."""
    source = str(overlay.metadata.get("source", "<overlay>"))
    if overlay.shape[:3] != base.shape[:3]:
        raise InvalidGeometry(source, f"overlay shape {overlay.shape[:3]} differs from the image's {base.shape[:3]}")
    if not np.allclose(overlay.affine, base.affine, atol=1e-3):
        raise InvalidGeometry(source, "overlay affine differs from the image's: resample it onto the image first")
