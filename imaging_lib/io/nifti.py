"""Read and write NIfTI-1/2 volumes (``.nii``, ``.nii.gz``, and bytes in memory).

The affine travels exactly: nibabel's best affine (sform, else qform) on the way in,
and both sform and qform set from the volume's affine on the way out. Headers are
checked before any voxel memory is allocated: the declared size must fit the file and
the configurable limit. A gzip stream is inflated as far as the header, checked, and
then only as far as the voxels it declares (:mod:`imaging_lib.io.inflate`), so a small
file that would inflate to gigabytes is refused at the cost of the limit. Voxels are a
view of the inflated bytes, not a copy; volumes are written by streaming the voxels
through gzip.
"""

from __future__ import annotations

import gzip
import io
import os
from pathlib import Path
from typing import Any, BinaryIO, cast

import nibabel as nib
import numpy as np
from nibabel.volumeutils import apply_read_scaling

from ..errors import ImageTooLarge, UnreadableImage
from ..limits import INFLATE_CHUNK_BYTES, MAX_HEADER_BYTES
from ..volume import Volume, check_affine
from .dicom import DEFAULT_MAX_BYTES
from .inflate import GZIP, BoundedInflater

__all__ = [
    "is_nifti_name",
    "nifti_from_bytes",
    "nifti_to_bytes",
    "read_nifti",
    "write_nifti",
    "write_nifti_stream",
]

GZIP_MAGIC = b"\x1f\x8b"
GZIP_LEVEL = 1
"""zlib level of stored ``.nii.gz``: on the 256x256x20 int16 MR series (2.6 MB) level 1
takes 30 ms against 113 ms at level 6 (CPU time, best of 9) for a file 1.8 % larger
(47.2 % of the raw size against 46.4 %); MR/CT noise leaves little for slower levels."""

_HEADER_CLASSES = (nib.Nifti1Header, nib.Nifti2Header)
_LONGEST_HEADER = max(header.sizeof_hdr for header in _HEADER_CLASSES)


def is_nifti_name(name: str | os.PathLike[str]) -> bool:
    """Whether a file name ends in ``.nii`` or ``.nii.gz``."""
    return str(name).lower().endswith((".nii", ".nii.gz"))


def _declared_bytes(header: nib.Nifti1Header) -> int:
    shape = header.get_data_shape()
    return int(np.prod(shape, dtype=np.int64)) * header.get_data_dtype().itemsize


def _parse_header(head: bytes | bytearray, source: str) -> nib.Nifti1Header:
    for header_class in _HEADER_CLASSES:
        size = header_class.sizeof_hdr
        if len(head) >= size and header_class.may_contain_header(bytes(head[:size])):
            try:
                return header_class.from_fileobj(io.BytesIO(bytes(head[:size])), check=False)
            except Exception as exc:  # nibabel raises HeaderDataError, ValueError, struct errors...
                raise UnreadableImage(source, f"invalid NIfTI header ({type(exc).__name__}: {exc})") from None
    raise UnreadableImage(source, "not a NIfTI-1 or NIfTI-2 file (bad header size or magic)")


def _voxel_bytes(data: bytes, source: str, max_bytes: int) -> tuple[nib.Nifti1Header, memoryview, int]:
    """Return the header, the (inflated) file and the voxels' offset, checked against the limits.

    Raises
    ------
    UnreadableImage
        Empty, not NIfTI, truncated or a corrupt gzip stream.
    ImageTooLarge
        The header declares more than ``max_bytes`` of voxels, or the gzip stream would
        inflate past what its header declares.
    """
    if not data:
        raise UnreadableImage(source, "empty file")
    inflater = None
    raw: bytes | bytearray = data
    if data[:2] == GZIP_MAGIC:
        inflater = BoundedInflater(
            data, wbits=GZIP, source=source, limit=max_bytes + MAX_HEADER_BYTES, what="gzip stream"
        )
        raw = inflater.inflate_to(_LONGEST_HEADER)
    header = _parse_header(raw, source)
    declared = _declared_bytes(header)
    if declared > max_bytes:
        raise ImageTooLarge(source, f"header declares {declared} bytes of voxels, over the limit of {max_bytes}")
    offset = max(int(header.get_data_offset()), header.sizeof_hdr)
    if offset > MAX_HEADER_BYTES:
        raise ImageTooLarge(source, f"header declares voxels at offset {offset}, past the limit of {MAX_HEADER_BYTES}")
    if inflater is not None:
        raw = inflater.inflate_to(offset + declared)
        if not inflater.ends_within(INFLATE_CHUNK_BYTES):
            raise ImageTooLarge(
                source, f"gzip stream inflates past the {offset + declared} bytes its header declares (a gzip bomb?)"
            )
    if offset + declared > len(raw):
        raise UnreadableImage(
            source,
            f"truncated: header declares {declared} bytes of voxels after offset {offset}, file holds {len(raw)}",
        )
    return header, memoryview(raw), offset


def _native(array: np.ndarray) -> np.ndarray:
    """Drop a trailing time axis of length 1 and convert to native byte order."""
    while array.ndim > 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if not array.dtype.isnative:
        array = array.astype(array.dtype.newbyteorder("="))
    return array


def nifti_from_bytes(data: bytes, source: str = "<bytes>", *, max_bytes: int = DEFAULT_MAX_BYTES) -> Volume:
    """Read a NIfTI volume (gzipped or not) from bytes.

    Parameters
    ----------
    data : bytes
        The whole file.
    source : str
        Name used in error messages (a file name or a store key).
    max_bytes : int
        Largest voxel data accepted, checked from the header before allocating.

    Returns
    -------
    Volume
        Voxels with scaling applied (``scl_slope``/``scl_inter``) when the header sets it,
        and the image's best affine.

    Raises
    ------
    UnreadableImage
        Empty, truncated, corrupt or not NIfTI.
    ImageTooLarge
        Declared voxel data over ``max_bytes``.
    InvalidGeometry
        NaN or singular affine.
    """
    header, raw, offset = _voxel_bytes(data, source, max_bytes)
    try:
        affine = header.get_best_affine()
    except Exception as exc:
        raise UnreadableImage(source, f"invalid NIfTI geometry ({type(exc).__name__}: {exc})") from None
    check_affine(affine, source)
    try:
        voxels = np.ndarray(
            header.get_data_shape(), dtype=header.get_data_dtype(), buffer=raw, offset=offset, order="F"
        )
        slope, intercept = header.get_slope_inter()
        array = voxels if slope is None else apply_read_scaling(voxels, slope, intercept)
    except Exception as exc:
        raise UnreadableImage(source, f"voxel data cannot be read ({type(exc).__name__}: {exc})") from None
    array = _native(array)
    if not array.flags.writeable:  # a view of bytes given uncompressed: callers may change their voxels
        array = array.copy(order="K")
    if np.issubdtype(array.dtype, np.floating) and not np.all(np.isfinite(array)):
        raise UnreadableImage(source, "voxel data contain NaN or infinite values")
    description = header.get("descrip")
    metadata = {
        "source": source,
        "format": "NIfTI",
        "series_description": bytes(description).split(b"\0")[0].decode("latin-1") if description is not None else "",
        "modality": "",
        "warnings": [],
    }
    return Volume(array, affine, metadata)


def read_nifti(path: str | os.PathLike[str], *, max_bytes: int = DEFAULT_MAX_BYTES) -> Volume:
    """Read a ``.nii`` or ``.nii.gz`` file; see :func:`nifti_from_bytes`.

    Raises
    ------
    UnreadableImage
        Missing, empty, truncated or not NIfTI.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UnreadableImage(path, f"cannot open: {exc.strerror or exc}") from None
    volume = nifti_from_bytes(data, str(path), max_bytes=max_bytes)
    volume.metadata["spacing"] = volume.spacing
    volume.metadata["orientation"] = "".join(volume.orientation)
    return volume


def write_nifti_stream(volume: Volume, stream: BinaryIO, *, compress: bool = True) -> None:
    """Write a volume as NIfTI to a binary stream, gzipped when ``compress``.

    The voxels go through nibabel's writer slab by slab, so no second copy of the
    volume is made (gzip output is deterministic: no file name, time 0).
    """
    image = volume.to_nifti()
    if not compress:
        image.to_stream(cast(Any, stream))
        return
    with gzip.GzipFile(filename="", mode="wb", fileobj=stream, compresslevel=GZIP_LEVEL, mtime=0) as packed:
        image.to_stream(cast(Any, packed))


def nifti_to_bytes(volume: Volume, *, compress: bool = True) -> bytes:
    """Serialise a volume to NIfTI-1 bytes (gzipped when ``compress``).

    The viewer takes uncompressed bytes (Papaya renders them about twice as fast);
    the store keeps them gzipped (and streams them, see :func:`write_nifti_stream`).
    """
    buffer = io.BytesIO()
    write_nifti_stream(volume, buffer, compress=compress)
    return buffer.getvalue()


def write_nifti(volume: Volume, path: str | os.PathLike[str]) -> Path:
    """Write a volume to ``path``; the extension ``.nii.gz`` or ``.nii`` picks compression."""
    path = Path(path)
    if not is_nifti_name(path):
        raise ValueError(f"{path}: a NIfTI file name ends in .nii or .nii.gz")
    path.write_bytes(nifti_to_bytes(volume, compress=path.name.lower().endswith(".gz")))
    return path
