"""Deflated DICOM is inflated with bounds: the header, then exactly the declared pixels, nothing after."""

from __future__ import annotations

import io
import tracemalloc

import numpy as np
import pydicom
import pytest

from imaging_lib import errors, sample_data
from imaging_lib.io.dicom import read_dicom_series
from imaging_lib.io.dicom_dataset import inflate_deflated, parse_dicom
from support.bombs import MIB, deflated_dicom


def _ct():
    return pydicom.dcmread(sample_data.pydicom_file("CT_small.dcm"))


def _refused_with_peak(data: bytes, name: str) -> tuple[errors.ImagingError, int]:
    tracemalloc.start()
    try:
        parse_dicom(data, name)
    except errors.ImagingError as exc:
        error = exc
    else:
        pytest.fail("expected a typed error")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return error, peak


def test_a_real_deflated_file_gives_the_pixels_pydicom_gives():
    path = sample_data.pydicom_file("image_dfl.dcm")
    reference = pydicom.dcmread(path)
    parsed = parse_dicom(path.read_bytes(), "image_dfl.dcm")
    assert parsed.file_meta.TransferSyntaxUID == pydicom.uid.DeflatedExplicitVRLittleEndian  # written back deflated
    assert parsed.PixelData == reference.PixelData and parsed.Rows == reference.Rows
    volume = read_dicom_series(path)
    np.testing.assert_array_equal(volume.array[:, :, 0], reference.pixel_array.T)


def test_a_3_mib_deflated_file_whose_pixel_element_inflates_to_3_gib_is_refused_fast():
    bomb = deflated_dicom(_ct(), pixel_zero_mib=3 * 1024)  # 128x128 declared, 3 GiB in the element
    assert len(bomb) < 4 * MIB
    error, peak = _refused_with_peak(bomb, "bomb.dcm")
    assert isinstance(error, errors.ImageTooLarge) and "bomb.dcm" in str(error)
    assert "where the header declares 32768" in error.reason
    assert peak < 16 * MIB


def test_a_deflated_file_declaring_3_gib_of_pixels_is_refused_after_its_header():
    dataset = _ct()
    dataset.Rows = dataset.Columns = 8192
    dataset.NumberOfFrames = 24  # 3 GiB declared
    bomb = deflated_dicom(dataset, pixel_length=3 * 1024 * MIB, pixel_zero_mib=3 * 1024)
    error, peak = _refused_with_peak(bomb, "declared.dcm")
    assert isinstance(error, errors.ImageTooLarge) and "over the limit" in error.reason
    assert peak < 16 * MIB


def test_gigabytes_after_the_pixel_data_are_never_inflated():
    dataset = _ct()
    padded = deflated_dicom(dataset, trailing_zero_mib=3 * 1024)  # 3 GiB of trailing padding
    tracemalloc.start()
    parsed = parse_dicom(padded, "padded.dcm")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 16 * MIB
    assert parsed.PixelData == bytes(len(parsed.PixelData)) and len(parsed.PixelData) == 128 * 128 * 2
    assert "DataSetTrailingPadding" not in parsed


def test_a_corrupt_deflate_stream_is_an_unreadable_image():
    data = bytearray(sample_data.pydicom_file("image_dfl.dcm").read_bytes())
    data[400:420] = b"\xff" * 20
    with pytest.raises(errors.UnreadableImage, match="corrupt") as info:
        parse_dicom(bytes(data), "corrupt.dcm")
    assert "corrupt.dcm" in str(info.value)
    cut = sample_data.pydicom_file("image_dfl.dcm").read_bytes()[:2000]
    with pytest.raises(errors.UnreadableImage):
        inflate_deflated(cut, "cut.dcm")


def test_the_inflated_file_round_trips_through_pydicom():
    path = sample_data.pydicom_file("image_dfl.dcm")
    rewritten = pydicom.dcmread(io.BytesIO(inflate_deflated(path.read_bytes(), "image_dfl.dcm")))
    assert rewritten.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
    np.testing.assert_array_equal(rewritten.pixel_array, pydicom.dcmread(path).pixel_array)
