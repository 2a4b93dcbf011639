"""Real DICOM files with one attribute's stored value replaced by raw bytes: wrong-typed, empty, huge, negative.

:func:`with_raw_value` writes the bytes through pydicom as a raw data element, so the
file carries exactly the value a broken scanner or a hostile uploader would write,
whatever its VR allows. :data:`MUTATED_KEYWORDS` are the attributes the readers,
de-identification and ingest use; :func:`raw_values` is a hypothesis strategy of
values that are not what those attributes should hold.
"""

from __future__ import annotations

import io
from pathlib import Path

__all__ = ["MUTATED_KEYWORDS", "raw_values", "with_raw_value"]

MUTATED_KEYWORDS = (
    "Rows",
    "Columns",
    "BitsAllocated",
    "BitsStored",
    "HighBit",
    "PixelRepresentation",
    "SamplesPerPixel",
    "PhotometricInterpretation",
    "PlanarConfiguration",
    "NumberOfFrames",
    "RescaleSlope",
    "RescaleIntercept",
    "RescaleType",
    "WindowCenter",
    "WindowWidth",
    "SliceThickness",
    "SpacingBetweenSlices",
    "PixelSpacing",
    "ImageOrientationPatient",
    "ImagePositionPatient",
    "StudyInstanceUID",
    "SeriesInstanceUID",
    "SOPInstanceUID",
    "FrameOfReferenceUID",
    "SOPClassUID",
    "Modality",
    "BodyPartExamined",
    "StudyDate",
    "SeriesDate",
    "ContentDate",
    "StudyTime",
    "PatientID",
    "PatientName",
    "PatientBirthDate",
    "BurnedInAnnotation",
    "InstanceNumber",
)

_SPECIAL = [
    b"",
    b" ",
    b"abc",
    b"-1",
    b"-2147483649",
    b"1e308",
    b"1e999",
    b"nan",
    b"inf",
    b"-0",
    b"0",
    b"1\\2\\3",
    b"\\",
    b"99999999999999999999",
    b"\x00\x00",
    b"\xff\xff\xff\xff",
    b"\x01",
    b"\xff" * 7,
    b"1.5",
    b"20240317 Smith^John",
    b"\x80\xfe",
]


def raw_values():
    """A hypothesis strategy of raw values: special cases, random bytes, and multi-valued text."""
    from hypothesis import strategies as st

    multiple = st.lists(
        st.sampled_from([b"0", b"1", b"-1", b"abc", b"", b"1e9", b"nan", b"65536"]), min_size=2, max_size=7
    )
    return st.one_of(st.sampled_from(_SPECIAL), st.binary(max_size=16), multiple.map(b"\\".join))


def with_raw_value(source: str | Path, keyword: str, raw: bytes) -> bytes:
    """The bytes of ``source`` with ``keyword``'s value replaced by ``raw`` (padded to even length)."""
    import pydicom
    from pydicom.datadict import dictionary_VR, tag_for_keyword
    from pydicom.dataelem import RawDataElement
    from pydicom.tag import Tag

    dataset = pydicom.dcmread(source)
    tag = Tag(tag_for_keyword(keyword))
    vr = dictionary_VR(tag)
    if len(raw) % 2:
        raw += b"\0" if vr in ("UI", "OB", "US", "SS", "UL", "SL", "FL", "FD", "AT", "OW") else b" "
    dataset[tag] = RawDataElement(tag, vr, len(raw), raw, 0, False, True)
    buffer = io.BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()
