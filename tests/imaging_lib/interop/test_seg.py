"""DICOM SEG of saved masks: read back with highdicom, voxel for voxel on the right source images."""

from __future__ import annotations

import io

import highdicom as hd
import numpy as np
import pydicom
import pytest

from imaging_lib.errors import InvalidInput
from imaging_lib.interop.seg import build_segmentation
from imaging_lib.interop.sources import source_series_for
from imaging_lib.io.dicom_dataset import dataset_to_bytes
from imaging_lib.volume import Volume
from support.phi import find_phi


def _mask_and_source(results_store, name):
    record = results_store.masks[name]
    mask = results_store.store.read_volume(record["mask_key"])
    source = source_series_for(results_store.store, results_store.study(name), mask, record["mask_key"])
    return record, mask, source


def _round_trip(dataset) -> tuple[bytes, hd.seg.Segmentation]:
    data = dataset_to_bytes(dataset)
    return data, hd.seg.Segmentation.from_dataset(pydicom.dcmread(io.BytesIO(data)))


@pytest.mark.parametrize("name", ["brain", "ct"])
def test_every_frame_lies_on_its_source_image_voxel_for_voxel(results_store, name):
    record, mask, source = _mask_and_source(results_store, name)
    data, seg = _round_trip(build_segmentation(source, mask, record, record_key=record["record_key"]))
    uids = [str(image.SOPInstanceUID) for image in source.images]
    filled = [k for k in range(mask.shape[2]) if mask.array[:, :, k].any()]
    assert seg.NumberOfFrames == len(filled) and 0 < len(filled) <= len(uids)
    assert sorted(seg.get_source_image_uids()[i][2] for i in range(len(uids))) == sorted(uids)
    for k in filled:
        pixels = seg.get_pixels_by_source_instance(source_sop_instance_uids=[uids[k]], segment_numbers=[1])
        assert np.array_equal(pixels[0, :, :, 0], mask.array[:, :, k].T), f"slice {k}"
    positions = {
        str(frame.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID): [
            float(v) for v in frame.PlanePositionSequence[0].ImagePositionPatient
        ]
        for frame in seg.PerFrameFunctionalGroupsSequence
    }
    for k in filled:
        assert positions[uids[k]] == pytest.approx([float(v) for v in source.images[k].ImagePositionPatient])
    assert find_phi(data) == []


def test_the_seg_joins_the_de_identified_study_and_says_so(results_store):
    record, mask, source = _mask_and_source(results_store, "brain")
    _, seg = _round_trip(build_segmentation(source, mask, record, record_key=record["record_key"]))
    first = source.images[0]
    assert seg.StudyInstanceUID == first.StudyInstanceUID == results_store.uids["brain"]
    assert seg.FrameOfReferenceUID == first.FrameOfReferenceUID
    assert seg.PatientID == first.PatientID and str(seg.PatientID).startswith("ANON-")
    assert seg.PatientIdentityRemoved == "YES"
    assert "Derived by imaging-lab from de-identified images" in seg.DeidentificationMethod
    assert {item.CodeValue for item in seg.DeidentificationMethodCodeSequence} == {"113100", "113107"}
    description = seg.SegmentSequence[0]
    assert description.SegmentAlgorithmType == "SEMIAUTOMATIC"
    assert description.SegmentAlgorithmName == "imaging_lib.science.segment.grow_region"
    assert description.SegmentLabel == record["seg_id"]
    assert seg.SeriesInstanceUID != first.SeriesInstanceUID


def test_the_same_record_always_gives_the_same_uids(results_store):
    record, mask, source = _mask_and_source(results_store, "ct")
    first = build_segmentation(source, mask, record, record_key=record["record_key"])
    again = build_segmentation(source, mask, record, record_key=record["record_key"])
    other = build_segmentation(source, mask, {**record, "provenance": {"created_at": "later"}}, record_key="x")
    assert (first.SOPInstanceUID, first.SeriesInstanceUID) == (again.SOPInstanceUID, again.SeriesInstanceUID)
    assert other.SOPInstanceUID != first.SOPInstanceUID and other.SeriesInstanceUID == first.SeriesInstanceUID
    assert len(first.SOPInstanceUID) <= 64


def test_empty_and_non_binary_masks_are_refused(results_store):
    record, mask, source = _mask_and_source(results_store, "ct")
    empty = Volume(np.zeros_like(mask.array), mask.affine)
    with pytest.raises(InvalidInput, match="empty mask"):
        build_segmentation(source, empty, record, record_key="k")
    labels = Volume(mask.array * 3, mask.affine)
    with pytest.raises(InvalidInput, match="not a binary mask"):
        build_segmentation(source, labels, record, record_key="k")
