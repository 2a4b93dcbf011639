"""LIME heat maps as Parametric Maps (acquired slice) or Secondary Captures (any other plane)."""

from __future__ import annotations

import io

import numpy as np
import pydicom
import pytest
from pydicom.sr.codedict import codes

from imaging_lib.errors import InvalidInput
from imaging_lib.interop.heatmap import build_heatmap, heatmap_kind, render_overlay
from imaging_lib.interop.sources import source_series_for
from imaging_lib.io.dicom_dataset import dataset_to_bytes
from imaging_lib.volume import Volume
from support.phi import find_phi


def _inputs(results_store, name):
    store = results_store.store
    result = results_store.results[name]
    heatmap = store.read_volume(result["explanation_key"])
    image = store.read_volume(result["volume_key"])
    return result, heatmap, image, source_series_for(store, results_store.study(name), heatmap, result["record_key"])


def test_the_rule_parametric_map_on_acquired_slices_secondary_capture_otherwise():
    assert heatmap_kind({"slice_axis": 2}) == "pmap"
    assert heatmap_kind({}) == "pmap"
    assert heatmap_kind({"slice_axis": 0}) == heatmap_kind({"slice_axis": 1}) == "sc"


@pytest.mark.parametrize("name", ["brain", "ct"])
def test_the_parametric_map_holds_the_lime_weights_of_the_explained_image(results_store, name):
    result, heatmap, image, source = _inputs(results_store, name)
    k = result["explanation"]["slice_index"]
    dataset = build_heatmap(source, heatmap, result, record_key=result["record_key"], image=image)
    data = dataset_to_bytes(dataset)
    back = pydicom.dcmread(io.BytesIO(data))
    assert back.SOPClassUID.name == "Parametric Map Storage"
    expected = heatmap.array[:, :, k].T.astype(np.float32)
    assert np.abs(expected).max() > 0
    assert np.array_equal(back.pixel_array.reshape(expected.shape), expected)
    derived = back.PerFrameFunctionalGroupsSequence[0].DerivationImageSequence[0].SourceImageSequence[0]
    assert derived.ReferencedSOPInstanceUID == source.images[k].SOPInstanceUID
    frame = back.SharedFunctionalGroupsSequence[0]
    position = back.PerFrameFunctionalGroupsSequence[0].PlanePositionSequence[0].ImagePositionPatient
    assert [float(v) for v in position] == pytest.approx([float(v) for v in source.images[k].ImagePositionPatient])
    mapping = frame.RealWorldValueMappingSequence[0]
    assert mapping.QuantityDefinitionSequence[0].ConceptCodeSequence[0].CodeValue == codes.DCM.Saliency.value
    assert mapping.LUTLabel == "LIME" and back.FrameOfReferenceUID == source.frame_of_reference_uid
    assert back.PatientIdentityRemoved == "YES"
    assert find_phi(data) == []


def test_a_plane_across_the_acquired_slices_becomes_a_secondary_capture(results_store):
    _, _, image, source = _inputs(results_store, "brain")
    heat = np.zeros(image.shape, np.float32)  # synthetic: where the signs are is known
    heat[128, 100:121, 5:9] = 0.8
    heat[128, 150:171, 12:15] = -0.4
    record = {
        "label": "lesion",
        "model_id": "demo",
        "explanation": {"slice_axis": 0, "slice_index": 128},
        "provenance": {"created_at": "t"},
    }
    dataset = build_heatmap(source, Volume(heat, image.affine), record, record_key="r", image=image)
    data = dataset_to_bytes(dataset)
    back = pydicom.dcmread(io.BytesIO(data))
    assert back.SOPClassUID.name == "Secondary Capture Image Storage"
    pixels = back.pixel_array
    scale = image.spacing[2] / image.spacing[1]  # rows are slices, stretched to square pixels
    assert pixels.shape == (round(20 * scale), 256, 3) and back.PhotometricInterpretation == "RGB"

    def row(k: float) -> int:  # the top row is the last slice
        return int((19.5 - k) * scale)

    red, blue = pixels[row(6.5), 110].astype(int), pixels[row(13), 160].astype(int)
    assert red[0] > red[2] + 50 and blue[2] > blue[0] + 20
    grey = pixels[row(10), 30]
    assert grey[0] == grey[1] == grey[2]
    assert len(back.SourceImageSequence) == 20 and "ImagePositionPatient" not in back
    assert len(back.PatientOrientation) == 2 and back.BurnedInAnnotation == "NO"
    assert back.PatientIdentityRemoved == "YES" and find_phi(data) == []


def test_a_secondary_capture_needs_the_image_and_a_slice_in_range(results_store):
    result, heatmap, _, source = _inputs(results_store, "brain")
    across = {**result, "explanation": {"slice_axis": 0, "slice_index": 10}}
    with pytest.raises(InvalidInput, match="needs the series' volume"):
        build_heatmap(source, heatmap, across, record_key="r")
    outside = {**result, "explanation": {"slice_axis": 2, "slice_index": 20}}
    with pytest.raises(InvalidInput, match="not in a volume"):
        build_heatmap(source, heatmap, outside, record_key="r")


def test_render_overlay_is_grey_where_there_is_no_weight():
    image = np.arange(16, dtype=float).reshape(4, 4)
    heat = np.zeros((4, 4))
    heat[0, 0], heat[3, 3] = 1.0, -1.0
    rgb = render_overlay(image, heat, (7.5, 15.0))
    assert rgb.dtype == np.uint8 and rgb.shape == (4, 4, 3)
    assert rgb[1, 1, 0] == rgb[1, 1, 1] == rgb[1, 1, 2] and rgb[1, 2, 0] > rgb[1, 1, 0]
    assert rgb[0, 0, 0] > rgb[0, 0, 1] and rgb[3, 3, 2] > rgb[3, 3, 1]
