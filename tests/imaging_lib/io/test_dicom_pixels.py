"""Encoded frames are checked against the header before decoding; modality LUTs give pydicom's values."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pydicom
import pytest
from pydicom.encaps import encapsulate, generate_frames
from pydicom.pixels import apply_modality_lut

from imaging_lib import errors, sample_data
from imaging_lib.io.dicom import read_dicom_series
from support.bombs import MIB, rle_zero_frame


def _with_frames(name: str, frames: list[bytes], tmp_path):
    dataset = pydicom.dcmread(sample_data.pydicom_file(name))
    dataset.PixelData = encapsulate(frames)
    path = tmp_path / f"forged_{name}"
    dataset.save_as(path)
    return path


def _first_frame(name: str) -> bytearray:
    dataset = pydicom.dcmread(sample_data.pydicom_file(name))
    return bytearray(next(generate_frames(dataset.PixelData, number_of_frames=1)))


def test_an_rle_segment_that_decodes_past_rows_x_columns_is_refused_before_decoding(tmp_path):
    lying = rle_zero_frame(64, 64, bytes_per_sample=2, segment_bytes=64 * MIB)  # 1 MiB a segment, decoding to 64 MiB
    path = _with_frames("MR_small_RLE.dcm", [lying], tmp_path)
    assert path.stat().st_size < 3 * MIB
    tracemalloc.start()
    with pytest.raises(errors.ImageTooLarge, match="RLE segment 0 decodes to more than the 4096 bytes") as info:
        read_dicom_series(path)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert path.name in str(info.value) and peak < 32 * MIB


def test_an_rle_frame_with_the_wrong_segment_count_is_unreadable(tmp_path):
    path = _with_frames("MR_small_RLE.dcm", [rle_zero_frame(64, 64, bytes_per_sample=1)], tmp_path)
    with pytest.raises(errors.UnreadableImage, match="1 segments, the header declares 2"):
        read_dicom_series(path)


def test_a_jpeg_frame_declaring_a_larger_image_than_the_header_is_refused(tmp_path):
    frame = _first_frame("SC_rgb_jpeg_dcmtk.dcm")
    sof = next(i for i in range(2, len(frame) - 1) if frame[i] == 0xFF and frame[i + 1] == 0xC0)
    frame[sof + 5 : sof + 9] = (30000).to_bytes(2, "big") * 2  # 30000 x 30000 in a 100 x 100 image
    path = _with_frames("SC_rgb_jpeg_dcmtk.dcm", [bytes(frame)], tmp_path)
    with pytest.raises(errors.ImageTooLarge, match="codestream declares 30000x30000x3, the header 100x100x3"):
        read_dicom_series(path)


def test_a_jpeg_2000_frame_declaring_a_larger_image_than_the_header_is_refused(tmp_path):
    frame = _first_frame("MR_small_jp2klossless.dcm")
    siz = frame.find(b"\xff\x4f\xff\x51")
    frame[siz + 8 : siz + 16] = (40000).to_bytes(4, "big") * 2
    path = _with_frames("MR_small_jp2klossless.dcm", [bytes(frame)], tmp_path)
    with pytest.raises(errors.ImageTooLarge, match="codestream declares 40000x40000x1, the header 64x64x1"):
        read_dicom_series(path)


def test_a_multiframe_rle_file_decodes_frame_by_frame(tmp_path):
    dataset = pydicom.dcmread(sample_data.pydicom_file("MR_small_RLE.dcm"))
    dataset.NumberOfFrames = 40
    dataset.PixelData = encapsulate([rle_zero_frame(64, 64)] * 40)
    path = tmp_path / "frames.dcm"
    dataset.save_as(path)
    volume = read_dicom_series(path)
    assert volume.shape == (64, 64, 40) and not volume.array.any()


def test_a_modality_lut_sequence_gives_the_values_pydicom_gives(tmp_path):
    dataset = pydicom.dcmread(sample_data.pydicom_file("MR_small.dcm"))
    for keyword in ("RescaleSlope", "RescaleIntercept"):
        dataset.pop(keyword, None)
    dataset.PixelRepresentation = 0  # a LUT maps unsigned stored values
    item = pydicom.Dataset()
    item.LUTDescriptor = [2048, 0, 16]
    item.add_new("LUTData", "US", [(index * 37) % 4000 for index in range(2048)])
    item.ModalityLUTType = "OD"
    dataset.ModalityLUTSequence = [item]
    path = tmp_path / "lut.dcm"
    dataset.save_as(path)
    reference = apply_modality_lut(pydicom.dcmread(path).pixel_array, pydicom.dcmread(path))
    volume = read_dicom_series(path)
    np.testing.assert_array_equal(volume.array[:, :, 0], reference.T)
    assert reference.max() > 2048  # the LUT really maps, not the identity
