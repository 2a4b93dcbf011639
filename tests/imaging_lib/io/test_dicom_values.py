"""A bad attribute value is a typed error naming the file and the attribute, or a warning for a display hint."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imaging_lib import errors, sample_data
from imaging_lib.io.dicom import read_dicom_bytes
from support.mutations import MUTATED_KEYWORDS, raw_values, with_raw_value

SOURCES = ("CT_small.dcm", "MR_small_RLE.dcm", "rtdose.dcm")


@pytest.mark.parametrize(
    ("keyword", "raw", "reason"),
    [
        ("RescaleSlope", b"abc ", "RescaleSlope is not a number: 'abc'"),
        ("RescaleSlope", b"1\\2 ", "RescaleSlope must hold one value, not 2"),
        ("NumberOfFrames", b"-2", "NumberOfFrames must be between 1 and"),
        ("Rows", b"\x00\x00", "Rows must be between 1 and 65535, not 0"),
        ("Rows", b"\x01\x00\x02\x00\x03\x00", "Rows must hold one value, not 3"),
        ("BitsAllocated", b"\x0c\x00", "BitsAllocated must be one of"),
        ("BitsStored", b"\x40\x00", "BitsStored must be between 1 and 16, not 64"),
        ("PixelRepresentation", b"\x07\x00", "PixelRepresentation must be between 0 and 1"),
    ],
)
def test_a_bad_pixel_description_is_an_unreadable_image_naming_the_attribute(keyword, raw, reason):
    data = with_raw_value(sample_data.pydicom_file("CT_small.dcm"), keyword, raw)
    with pytest.raises(errors.UnreadableImage, match=reason) as info:
        read_dicom_bytes([("bad.dcm", data)])
    assert "bad.dcm" in str(info.value)


@pytest.mark.parametrize("keyword", ["WindowCenter", "SliceThickness"])
def test_a_non_numeric_display_or_spacing_hint_is_ignored_with_a_warning(keyword):
    data = with_raw_value(sample_data.pydicom_file("CT_small.dcm"), keyword, b"abc ")
    volume = read_dicom_bytes([("hint.dcm", data)])
    assert any(keyword in warning and "ignored" in warning for warning in volume.metadata["warnings"])
    assert volume.shape == (128, 128, 1)


def test_an_empty_bits_stored_means_every_allocated_bit():
    data = with_raw_value(sample_data.pydicom_file("CT_small.dcm"), "BitsStored", b"")
    reference = read_dicom_bytes([("ct.dcm", sample_data.pydicom_file("CT_small.dcm").read_bytes())])
    volume = read_dicom_bytes([("empty.dcm", data)])
    assert (volume.array == reference.array).all()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(source=st.sampled_from(SOURCES), keyword=st.sampled_from(MUTATED_KEYWORDS), raw=raw_values())
def test_mutated_attribute_values_give_a_volume_or_a_typed_error(source, keyword, raw):
    data = with_raw_value(sample_data.pydicom_file(source), keyword, raw)
    try:
        volume = read_dicom_bytes([("mutated.dcm", data)])
    except errors.ImagingError as exc:
        assert "mutated.dcm" in str(exc) or exc.source == "<memory>"
    else:
        assert volume.array.size > 0
