"""Hostile files built small and fast: gzip, deflate and zip bombs, RLE frames, nested zips.

Each builder is honest about what it claims: the streams are valid (their CRCs are
right) and really inflate to the sizes they state. They are fast to build because a
deflate block of 1 MiB of zeros, flushed with ``Z_FULL_FLUSH``, leaves the compressor
byte-aligned with no history, so the same 1,037 bytes can be repeated to stand for any
number of MiB (about 1,000:1, deflate's best). The tests check small versions all the
way through with :mod:`zlib`, :mod:`gzip` and :mod:`zipfile`.
"""

from __future__ import annotations

import io
import struct
import zipfile
import zlib

__all__ = [
    "MIB",
    "deflate_with_zeros",
    "deflated_dicom",
    "gzip_with_zeros",
    "nested_zip",
    "rle_zero_frame",
    "zip_of_zeros",
]

MIB = 1024**2
_ZERO_MIB = bytes(MIB)


def _zero_block() -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    return packer.compress(_ZERO_MIB) + packer.flush(zlib.Z_FULL_FLUSH)


def deflate_with_zeros(head: bytes, zero_mib: int, tail: bytes = b"") -> bytes:
    """A raw deflate stream of ``head``, then ``zero_mib`` MiB of zeros, then ``tail``."""
    packer = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    start = packer.compress(head) + packer.flush(zlib.Z_FULL_FLUSH)
    finisher = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    end = finisher.compress(tail) + finisher.flush()
    return start + _zero_block() * zero_mib + end


def _crc_with_zeros(head: bytes, zero_mib: int, tail: bytes = b"") -> int:
    crc = zlib.crc32(head)
    for _ in range(zero_mib):
        crc = zlib.crc32(_ZERO_MIB, crc)
    return zlib.crc32(tail, crc)


def gzip_with_zeros(head: bytes, zero_mib: int) -> bytes:
    """A gzip file of ``head`` followed by ``zero_mib`` MiB of zeros (valid CRC and size)."""
    size = len(head) + zero_mib * MIB
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
    trailer = struct.pack("<II", _crc_with_zeros(head, zero_mib), size & 0xFFFFFFFF)
    return header + deflate_with_zeros(head, zero_mib) + trailer


def deflated_dicom(dataset, *, pixel_length: int | None = None, pixel_zero_mib: int = 0, trailing_zero_mib: int = 0):
    """A Deflated Explicit VR Little Endian file of ``dataset`` whose pixel data or tail inflates hugely.

    Parameters
    ----------
    dataset : pydicom.Dataset
        Written without its pixel data; its Rows, Columns... say what the header declares.
    pixel_length : int, optional
        The length the pixel data element declares (default its zeros' length); the
        element holds ``pixel_zero_mib`` MiB of zeros (or, when 0, the declared pixels).
    trailing_zero_mib : int
        MiB of zeros in a Data Set Trailing Padding element after the pixel data.
    """
    import pydicom
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_dataset, write_file_meta_info

    header = pydicom.Dataset()
    for element in dataset:
        if element.tag < 0x7FE00010:
            header.add(element)
    body = DicomBytesIO()
    body.is_little_endian, body.is_implicit_VR = True, False
    write_dataset(body, header)
    declared = dataset.Rows * dataset.Columns * int(dataset.get("NumberOfFrames", 1)) * dataset.BitsAllocated // 8
    zeros = pixel_zero_mib * MIB if pixel_zero_mib else declared
    length = zeros if pixel_length is None else pixel_length
    pixels = b"\xe0\x7f\x10\x00OW\x00\x00" + struct.pack("<I", length)
    whole_mib, rest = divmod(zeros, MIB)
    packer = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    stream = packer.compress(body.getvalue() + pixels) + packer.flush(zlib.Z_FULL_FLUSH) + _zero_block() * whole_mib
    tail = bytes(rest)
    if trailing_zero_mib:
        padding = b"\xfc\xff\xfc\xffOB\x00\x00" + struct.pack("<I", trailing_zero_mib * MIB)
        packer = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
        stream += packer.compress(tail + padding) + packer.flush(zlib.Z_FULL_FLUSH) + _zero_block() * trailing_zero_mib
        tail = b""
    finisher = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    stream += finisher.compress(tail) + finisher.flush()
    meta = pydicom.dataset.FileMetaDataset(dataset.file_meta)
    meta.TransferSyntaxUID = pydicom.uid.DeflatedExplicitVRLittleEndian
    out = DicomBytesIO()
    out.write(b"\0" * 128 + b"DICM")
    write_file_meta_info(out, meta, enforce_standard=True)
    return out.getvalue() + stream


def rle_zero_frame(rows: int, columns: int, bytes_per_sample: int = 2, segment_bytes: int | None = None) -> bytes:
    """One RLE frame of zeros: ``bytes_per_sample`` segments of replicate runs (2 bytes per 128 zeros).

    ``segment_bytes`` makes each segment decode to that many bytes instead of ``rows * columns``
    (a frame that lies about its size).
    """
    plane = rows * columns if segment_bytes is None else segment_bytes
    runs, rest = divmod(plane, 128)
    segment = b"\x81\x00" * runs + (bytes([257 - rest, 0]) if rest else b"")
    offsets = [64 + index * len(segment) for index in range(bytes_per_sample)]
    header = struct.pack("<16I", bytes_per_sample, *offsets, *([0] * (15 - bytes_per_sample)))
    return header + segment * bytes_per_sample


def zip_of_zeros(member_mib: list[int]) -> bytes:
    """A zip archive whose members are ``member_mib[i]`` MiB of zeros each (deflated, valid CRCs)."""
    local, central = io.BytesIO(), io.BytesIO()
    for index, mib in enumerate(member_mib):
        name = f"scan_{index:03d}.dcm".encode()
        data = deflate_with_zeros(b"", mib)
        crc, size = _crc_with_zeros(b"", mib), mib * MIB
        offset = local.tell()
        local.write(struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, 8, 0, 0, crc, len(data), size, len(name), 0))
        local.write(name + data)
        central.write(
            struct.pack(
                "<IHHHHHHIIIHHHHHII",
                0x02014B50,
                20,
                20,
                0,
                8,
                0,
                0,
                crc,
                len(data),
                size,
                len(name),
                0,
                0,
                0,
                0,
                0,
                offset,
            )
            + name
        )
    directory = central.getvalue()
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(member_mib), len(member_mib), len(directory), local.tell(), 0)
    return local.getvalue() + directory + end


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as bundle:
        for name, data in members.items():
            bundle.writestr(name, data)
    return buffer.getvalue()


def nested_zip(fan_out: int = 256) -> tuple[bytes, int]:
    """A zip holding a zip of ``fan_out`` zips of ``fan_out`` small files each; return it and its leaf count.

    With the default 256 it is a few KiB and holds 65,536 leaves three archives deep.
    """
    inner = _zip({f"leaf_{index:03d}.dcm": b"not an image" for index in range(fan_out)})
    middle = _zip({f"inner_{index:03d}.zip": inner for index in range(fan_out)})
    return _zip({"middle.zip": middle}), fan_out * fan_out
